#!/usr/bin/env bash
# The GPU checks, run on a lent CUDA machine from the repo root (README, "Training") in under 10 minutes:
# training throughput against the hand loop and itself uncompiled (1 GPU, NCCL, bf16), gloo scaling on the host's
# cores, then snapshots and resume; `bash benchmarks/device_check.sh throughput` stops after the first. Packages
# the machine's image lacks travel as wheels in .whl/ (pydantic and its three dependencies); govtrain itself runs
# from the checkout.
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
# 1. the step at batch 8,192: the hand loop, ours eager (compile=off) and compiled (auto: a CUDA graph on one GPU),
#    samples/s after the first epoch, % of the bf16 peak, and whether repeats ship the same bytes
timeout 300 python3 -m benchmarks.train_throughput --devices cuda --rows 2000000 --epochs 4 --batch-size 8192 \
  --repeats 2 --compile off auto --json "$out/throughput.json" 2>&1 | tee "$out/throughput.txt"
[ "${1:-}" = throughput ] && exit 0
# 2. gloo on the host's cores: 1, 2, 4 and 8 workers, with and without gradient accumulation
timeout 170 python3 -m benchmarks.scaling --rows 600000 --epochs 2 --workers 1 2 4 8 --grad-accumulation 1 4 \
  --repeats 1 --json "$out/scaling.json" 2>&1 | tee "$out/scaling.txt"
# 3. a worker killed mid-run resumes from its snapshot with the uninterrupted run's weights
timeout 120 python3 -m benchmarks.snapshot_resume --rows 200000 --epochs 4 --batch-size 1024 2>&1 | tee "$out/resume.txt"
