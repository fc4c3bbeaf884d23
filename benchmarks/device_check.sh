#!/usr/bin/env bash
# The GPU checks, run on a lent CUDA machine from the repo root (see README "Benchmarks"): training throughput
# against the hand loop (1 GPU, NCCL, bf16), then snapshots and resume. Packages the machine's image lacks travel
# as wheels in .whl/ (pydantic and its three dependencies); govtrain itself runs from the checkout.
set -u
out=${OUT:-/tmp/device-check}; mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda, torch.cuda.is_available())" | tee -a "$out/gpu.txt"
timeout 330 python3 -m benchmarks.train_throughput --devices cuda --rows 250000 --epochs 3 --batch-size 1024 8192 \
  --repeats 3 2>&1 | tee "$out/throughput.txt"
[ "${1:-}" = throughput ] || timeout 200 python3 -m benchmarks.snapshot_resume --rows 400000 --epochs 6 --batch-size 1024 2>&1 | tee "$out/resume.txt"
