#!/usr/bin/env bash
# Set up (if needed), lint, and run the whole test suite, browser tests included (Debian's chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --test
.venv/bin/ruff check src tests benchmarks  # lint and import order (pyproject.toml); a finding fails the run
exec .venv/bin/python -m pytest "$@"
