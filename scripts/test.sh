#!/usr/bin/env bash
# Set up a virtual environment with the test extras and run the whole test suite
# on SQLite, PostgreSQL and MariaDB (the servers of ../shared/docs: 127.0.0.1:5432 and :3306).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"
export FACES_TEST_DATABASES="${FACES_TEST_DATABASES:-sqlite,postgresql,mariadb}"
export FACES_ARTIFACTS="${FACES_ARTIFACTS:-$PWD/artifacts}"
mkdir -p "$FACES_ARTIFACTS"
echo "screenshots and test artifacts: $FACES_ARTIFACTS"
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
