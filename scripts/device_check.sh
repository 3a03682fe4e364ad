#!/usr/bin/env bash
# TensorRT checks on a CUDA machine (what a CPU-only CI cannot run): the TensorRT tests of
# test_runtime.py (engine parity FP32/FP16 vs PyTorch, cache reuse, the bindings API on 8.x) and
# `crossover_ros bench encoders --backend all` (torch eager FP32 on the GPU, ONNX Runtime,
# TensorRT FP16 and FP32, with the FP16-vs-FP32 cosine). Needs a set-up environment whose torch
# sees the GPU (scripts/env.sh's venv, or PYTHON=... for another interpreter with crossover_ros
# installed); installs nothing but `pip install tensorrt` if it is missing. About 5-8 minutes on
# an H100, mostly engine builds (cached in $CACHE for a second run).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" && -f "${repo}/.venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "${repo}/scripts/env.sh"
fi
PYTHON="${PYTHON:-python3}"
CACHE="${CACHE:-$(mktemp -d -t crossover_trt.XXXXXX)}"
export PYTHONUNBUFFERED=1

"${PYTHON}" -c 'import tensorrt' 2>/dev/null || "${PYTHON}" -m pip install -q tensorrt
"${PYTHON}" - <<'EOF'
import sys

import tensorrt
import torch

if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU: use an environment with a CUDA build")
print(f"TensorRT {tensorrt.__version__}, torch {torch.__version__}, {torch.cuda.get_device_name()}")
EOF

cd "${repo}"
timeout 300 "${PYTHON}" -m pytest -q -rs crossover_ros/test/unit/test_runtime.py \
    -k "tensorrt or runner or builder or engine"
cd /tmp  # never run from the repository root: its folder shadows the package
timeout 300 "${PYTHON}" -m crossover_ros.cli.main bench encoders --backend all \
    --encoders image frames scene_points text --repeats 50 --cache "${CACHE}"
