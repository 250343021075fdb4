#!/usr/bin/env bash
# Dependency drift: install the NEWEST releases that pyproject.toml's ranges allow into a
# throwaway virtualenv, run the whole suite there, and report which versions differ from the
# lock. Not part of .ci/run (the newest releases change under it); run it before refreshing the
# lock with scripts/lock.sh --upgrade, or on a schedule, to learn early what a release breaks.
# Extra arguments go to pytest. Exit status: 0 when every check passes there, else 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/bookbot-drift-XXXXXX")"
trap 'rm -rf "$work"' EXIT
# PyPI alone, like scripts/lock.sh: the newest public releases, not a machine's local mirror.
export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL=
"$PYTHON" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --quiet --disable-pip-version-check --no-input)
"${pip[@]}" install --upgrade pip setuptools
"${pip[@]}" install --upgrade --upgrade-strategy eager -e ".[test]"
echo "== Versions that differ from requirements-test.lock (locked -> newest) =="
"$work/venv/bin/python" -m pip freeze --exclude-editable \
    | "$work/venv/bin/python" scripts/lock_diff.py requirements-test.lock
# Every check runs even when an earlier one fails: the report should show all that drifted.
failed=()
step() {
    local name="$1"
    shift
    echo "== $name on the newest versions =="
    "$@" || failed+=("$name")
}
step "ruff check" "$work/venv/bin/ruff" check .
step "ruff format" "$work/venv/bin/ruff" format --check .
step "mypy" "$work/venv/bin/mypy" --strict engine storage bots benchmarks
step "pytest" "$work/venv/bin/pytest" -p no:cacheprovider "$@"
if [ "${#failed[@]}" -eq 0 ]; then
    echo "drift: everything passes on the newest releases; scripts/lock.sh --upgrade is safe."
    exit 0
fi
echo "drift: FAILS on the newest releases: ${failed[*]} (main stays green on the lock)." >&2
exit 1
