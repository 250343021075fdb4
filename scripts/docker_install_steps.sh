#!/usr/bin/env bash
# The Dockerfile's install steps, run for real in a fresh venv (there is no Docker engine here):
# its COPYs into a temporary folder, then its `python -m pip install` lines verbatim, the lock
# step downloading from the package index exactly as `docker build` would; then `bookbot --help`,
# the imports and a migration. The test suite runs the same test offline (the locked files come
# from .venv: tests reach nothing beyond 127.0.0.1); this script is the networked run.
set -euo pipefail
LOCK=requirements-test.lock source "$(dirname "$0")/_venv.sh"
BOOKBOT_INSTALL_ONLINE=1 exec .venv/bin/pytest -q -p no:cacheprovider \
    tests/test_deploy.py -k test_dockerfile_install_steps_give_a_working_bookbot_in_a_fresh_venv "$@"
