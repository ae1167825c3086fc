#!/usr/bin/env bash
# The README's third command: set up, then serve the web app over the demo's trained run.
#   bash scripts/serve.sh                      # the demo's run (bash scripts/demo.sh first)
#   RUN=path/to/run bash scripts/serve.sh --port 8001 --data my-project
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
RUN=${RUN:-sepsiscope-demo/run}
if [ -d "$RUN/classifier" ]; then
    exec .venv/bin/sepsiscope serve "$RUN" "$@"
fi
echo "note: no trained run at $RUN (run 'bash scripts/demo.sh' first, about 9 minutes, or set" \
     "RUN=path/to/run); serving the metrics without the network" >&2
exec .venv/bin/sepsiscope serve "$@"
