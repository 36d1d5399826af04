#!/usr/bin/env bash
# Create .venv and install qac-bench with everything the workflow and the tests need.
# torch/torchvision are pinned to the releases this project is tested with (on the project's
# CPU machines pip takes them from a local wheel cache); set QAC_TORCH_SPEC to override, e.g.
#   QAC_TORCH_SPEC="torch torchvision --index-url https://download.pytorch.org/whl/cu124"
# QAC_EXTRAS picks the optional dependency groups (default dev,workflow; add bench for the
# SpikingJelly comparison of `python -m benchmarks`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet ${QAC_TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}
.venv/bin/python -m pip install --quiet -e ".[${QAC_EXTRAS:-dev,workflow}]"
# Build the fused CPU kernels now (~30 s once; cached in ~/.cache/torch_extensions) rather than
# in the middle of the first training job. Without a C++ compiler qac falls back to PyTorch ops.
.venv/bin/python -c "from qac import kernels; kernels.native_module()" 2>/dev/null \
  && echo "built the fused CPU kernels" \
  || echo "warning: could not build the fused CPU kernels (no C++ compiler?); using PyTorch ops"
echo "installed: $(.venv/bin/python -c 'import torch, qac; print("torch", torch.__version__)')"
