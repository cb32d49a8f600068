#!/usr/bin/env bash
# Set up (if needed) and run the server with the embedded offline defaults on http://localhost:7135.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/avatarchat serve "$@"
