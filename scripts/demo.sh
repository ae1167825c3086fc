#!/usr/bin/env bash
# The README's first command: set up, then run the whole pipeline on a synthetic cohort.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/sepsiscope demo "$@"
