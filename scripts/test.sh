#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, browser tests included (Debian's chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
exec .venv/bin/python -m pytest "$@"
