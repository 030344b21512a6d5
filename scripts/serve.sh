#!/usr/bin/env bash
# Set up a virtual environment and run the web server on the embedded default (SQLite + local disk).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e .
exec .venv/bin/faces serve "$@"
