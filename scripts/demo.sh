#!/usr/bin/env bash
# Install and open the terminal chat over demo data on the embedded SQLite default.
# Extra arguments go to `bookbot demo` (e.g. --reset, --course calculus-1).
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
exec .venv/bin/bookbot demo "$@"
