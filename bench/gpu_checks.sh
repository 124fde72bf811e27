#!/usr/bin/env bash
# The GPU checks of issues 4 and 5, as one short script for a lent GPU machine (run from the repo
# root; wheels for packages the GPU image lacks travel in .whl/). Writes logs and results to $OUT.
set -uo pipefail
OUT=${OUT:-bench/results/gpu}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, diffusers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'nccl', torch.cuda.nccl.version())" | tee -a "$OUT/gpu.txt"
echo "== comm: NCCL world with device_id, p2p creates no extra communicators"
timeout 150 python3 bench/gpu_comm_check.py 2>&1 | tee "$OUT/gpu_comm_check.log"
echo "== models: full-size Flux DiT step per resolution, bf16, width 1"
timeout 330 python3 bench/gpu_dit_step.py --out "$OUT/dit" 2>&1 | tee "$OUT/gpu_dit_step.log"
