#!/usr/bin/env bash
# Set up, then run the demonstration: messages sent through broker outages, counted on the other side.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh >&2
exec .venv/bin/resilientmq demo "$@"
