# Shared by demo.sh and test.sh: a project virtualenv installed from the committed lock file.
# LOCK names the lock to install (requirements.lock for the demo, requirements-test.lock for the
# tests). The install runs only when that lock or pyproject.toml changed since the last one: a
# stamp in .venv holds their checksum, so a normal start costs no pip run at all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
LOCK="${LOCK:-requirements.lock}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "bookbot needs Python 3.11 or newer (set PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
stamp=".venv/.bookbot-installed-${LOCK%.lock}"
wanted="$(cat "$LOCK" pyproject.toml | .venv/bin/python -c 'import hashlib,sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing the locked dependencies ($LOCK) into .venv …" >&2
    pip=(.venv/bin/python -m pip --quiet --disable-pip-version-check --no-input)
    # Exact versions and hashes from the lock, setuptools (the build backend) included, so that
    # the editable install below builds offline from what the lock pinned.
    "${pip[@]}" install --require-hashes --no-deps -r "$LOCK"
    "${pip[@]}" install --no-deps --no-build-isolation -e . 2>/dev/null >/dev/null \
        || "${pip[@]}" install --no-deps --no-build-isolation -e .
    echo "$wanted" >"$stamp"
fi
