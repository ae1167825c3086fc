#!/usr/bin/env bash
# Create .venv (if missing) and install sepsiscope with the CPU PyTorch wheel.
# torch is installed first and pinned by constraints.txt, so no dependency can pull a CUDA build.
# Where pip's default index serves a CUDA build of torch (plain PyPI on Linux does), point it at
# PyTorch's CPU wheels first: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/setup.sh
# A second run with unchanged pyproject.toml and constraints.txt installs nothing (works offline).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
stamp=.venv/.sepsiscope-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv || {
        echo "error: could not create .venv; on Debian/Ubuntu install python3-venv first" >&2
        exit 1
    }
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"
echo "$want" > "$stamp"
