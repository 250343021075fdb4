#!/usr/bin/env bash
# Dependency drift: install the NEWEST releases that pyproject.toml's ranges allow into a
# throwaway virtualenv, run the whole suite there, and report which versions differ from the
# lock. Not part of .ci/run (the newest releases change under it); run it before refreshing the
# lock with scripts/lock.sh --upgrade, or on a schedule, to learn early what a release breaks.
# Extra arguments go to pytest. Exit status: the suite's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/bookbot-drift-XXXXXX")"
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
pip=("$work/venv/bin/python" -m pip --quiet --disable-pip-version-check --no-input)
"${pip[@]}" install --upgrade pip setuptools
"${pip[@]}" install --upgrade --upgrade-strategy eager -e ".[test]"
echo "== Versions that differ from requirements-test.lock (locked -> newest) =="
"$work/venv/bin/python" -m pip freeze --exclude-editable \
    | "$work/venv/bin/python" scripts/lock_diff.py requirements-test.lock
echo "== The suite on the newest versions =="
status=0
(
    "$work/venv/bin/ruff" check . && "$work/venv/bin/ruff" format --check . \
        && "$work/venv/bin/mypy" --strict engine storage bots benchmarks \
        && "$work/venv/bin/pytest" -p no:cacheprovider "$@"
) || status=$?
if [ "$status" -eq 0 ]; then
    echo "drift: the suite passes on the newest releases; scripts/lock.sh --upgrade is safe."
else
    echo "drift: the suite FAILS on the newest releases (exit $status); the lock keeps main green." >&2
fi
exit "$status"
