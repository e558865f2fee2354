#!/usr/bin/env bash
# Set up, then run the whole test suite against the real brokers (lint and type checks first).
# Extra arguments go to pytest, e.g. scripts/test.sh -m soak for the long soak runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
echo "[test] ruff"
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
echo "[test] mypy --strict src"
.venv/bin/mypy
echo "[test] import-linter (the layers: core, adapters, test kit)"
.venv/bin/lint-imports --no-cache
echo "[test] pytest"
exec .venv/bin/python -m pytest "$@"
