#!/usr/bin/env bash
# GPU checks (what a CPU-only CI cannot run), in one go:
# - training on the GPU: every stage with the CPU's losses, torchrun with two processes on it
#   (test_model.py, test_distributed.py);
# - the PyTorch backend of every encoder on the GPU against the CPU (test_runtime.py);
# - where TensorRT is installed (or `pip install tensorrt` works): its tests (engine parity
#   FP32/FP16 vs PyTorch, cache reuse, the bindings API on 8.x);
# - `crossover_ros bench encoders --backend all`: torch eager FP32 on the GPU, ONNX Runtime and,
#   with TensorRT, FP16 and FP32 engines with the FP16-vs-FP32 cosine.
# Needs a Python whose torch sees the GPU and that has crossover_ros's dependencies (the
# scripts/env.sh venv, or PYTHON=...); the package itself is taken from this checkout. MODEL: the
# checkpoint to benchmark (default: the shipped model). About 5 minutes without TensorRT, 5-8
# more with it (engine builds, cached in $CACHE for a second run).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" && -f "${repo}/.venv/bin/activate" ]]; then
    # shellcheck disable=SC1091
    source "${repo}/scripts/env.sh"
fi
PYTHON="${PYTHON:-python3}"
CACHE="${CACHE:-$(mktemp -d -t crossover_trt.XXXXXX)}"
MODEL="${MODEL:-crossover}"
export PYTHONUNBUFFERED=1 PYTHONPATH="${repo}/crossover_ros${PYTHONPATH:+:${PYTHONPATH}}"

"${PYTHON}" -c 'import tensorrt' 2>/dev/null || "${PYTHON}" -m pip install -q tensorrt ||
    echo "TensorRT cannot be installed here: its tests and engines are left out"
tensorrt=$("${PYTHON}" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)
"${PYTHON}" - <<'EOF'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit(f"torch {torch.__version__} sees no CUDA GPU: use an environment with a CUDA build")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
EOF
echo "TensorRT: ${tensorrt:-not installed}"

cd "${repo}"
select="gpu or processes"
[[ -n "${tensorrt}" ]] && select="${select} or tensorrt or runner or builder or engine"
timeout 420 "${PYTHON}" -m pytest -q -rs -p no:cacheprovider \
    crossover_ros/test/unit/test_model.py crossover_ros/test/unit/test_distributed.py \
    crossover_ros/test/unit/test_runtime.py -k "${select}"
cd /tmp  # never run from the repository root: its folder shadows the package
timeout 300 "${PYTHON}" -m crossover_ros.cli.main bench encoders --backend all --model "${MODEL}" \
    --encoders image frames scene_points instance_point_cloud regions --repeats 50 \
    --cache "${CACHE}"
