#!/usr/bin/env bash
# Create .venv and install qac-bench with everything the workflow and the tests need.
# torch/torchvision are pinned to the releases this project is tested with (on the project's
# CPU machines pip takes them from a local wheel cache); set QAC_TORCH_SPEC to override, e.g.
#   QAC_TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu124"
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet ${QAC_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
.venv/bin/python -m pip install --quiet -e '.[dev,workflow]'
echo "installed: $(.venv/bin/python -c 'import torch, qac; print("torch", torch.__version__)')"
