#!/usr/bin/env bash
# Refresh the committed lock files from pyproject.toml's ranges (pip-tools, hashes, PyPI only).
#   bash scripts/lock.sh             keep every pinned version that still satisfies pyproject.toml
#   bash scripts/lock.sh --upgrade   move every pin to the newest release allowed by the ranges
# requirements-test.lock (runtime + test tools) is resolved first; requirements.lock (runtime
# only, for the demo and the Dockerfile) is constrained to the same versions, so that the demo
# and the tests never run different releases of one library.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
tools="$(mktemp -d "${TMPDIR:-/tmp}/bookbot-lock-XXXXXX")"
trap 'rm -rf "$tools"' EXIT
# Resolve against PyPI alone: a machine's local wheel folders or mirrors must not leak hashes
# into the lock that a fresh machine cannot match.
export PIP_CONFIG_FILE=/dev/null PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL=
"$PYTHON" -m venv "$tools/venv"
"$tools/venv/bin/pip" install --quiet --disable-pip-version-check pip-tools==7.6.2
compile=("$tools/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras
    --all-build-deps --no-emit-index-url "$@")
"${compile[@]}" --extra test -o requirements-test.lock pyproject.toml
sed -n 's/^\([A-Za-z0-9_.-]*==[^ ]*\).*/\1/p' requirements-test.lock >"$tools/constraints.txt"
"${compile[@]}" -c "$tools/constraints.txt" -o requirements.lock pyproject.toml
# The constraint file is temporary: name what it stands for, so the header stays the same.
sed -i "s|$tools/constraints.txt|requirements-test.lock|g" requirements.lock
echo "requirements.lock and requirements-test.lock refreshed; run bash scripts/test.sh, then commit them."
