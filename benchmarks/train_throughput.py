"""Our DDP trainer (torchrun, 1 and 2 workers) vs a minimal hand-written PyTorch loop: same data, model,
per-worker batch size and epochs, samples/s over the training epochs (validation excluded for both).

    python -m benchmarks.train_throughput [--rows 100000] [--epochs 3] [--batch-size 1024] [--repeats 3]
                                          [--devices cpu cuda]

Each contender runs --repeats times, interleaved, and the median is reported, because a 2-core machine's
background noise is of the same order as the differences measured. On a machine with CUDA the same
table is repeated on the GPU (1 worker, NCCL backend, bf16 autocast in ours and in the loop).
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from benchmarks.harness import demo_splits, measure, table
from govtrain.components.train.shards import read_manifest
from govtrain.components.train.step import RESTART_SAFE_ENV, write_job
from govtrain.core.config import Config
from govtrain.model.features import FeatureSpec
from govtrain.model.network import build_model
from govtrain.pipelines import demo_data


def hand_loop(job_dir: Path, job: dict, device: str) -> float:
    """What a user would write by hand: one process, tensors in memory, AdamW, shuffled minibatches."""
    torch.set_num_threads(1)
    features = FeatureSpec(**json.loads((job_dir / "features.json").read_text()))
    parts = [load_file(str(job_dir / c["file"])) for c in read_manifest(job_dir)["chunks"]]  # the whole split
    data = {k: torch.cat([p[k] for p in parts]).to(device) for k in ("x_num", "x_cat", "y")}
    torch.manual_seed(0)
    model = build_model(features, job["embedding_dim"], job["hidden"], numeric_embedding=job["numeric_embedding"],
                        dropout=job["dropout"]).to(device)  # the same network as ours
    optimizer = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=job["weight_decay"])
    n, batch = len(data["y"]), job["batch_size"]
    if device == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(job["epochs"]):
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = F.cross_entropy(model(data["x_num"][idx], data["x_cat"][idx]), data["y"][idx].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return n * job["epochs"] / (time.perf_counter() - started)


def ours(job_dir: Path, out: Path, workers: int, device: str) -> tuple[float, float]:
    """(samples/s over the epochs, peak RSS MB of the largest worker)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **RESTART_SAFE_ENV}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
                    "-m", "govtrain.components.train.worker", "--job", str(job_dir), "--out", str(out)],
                   check=True, capture_output=True, env=env)
    history = json.loads((out / "result.json").read_text())["history"]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # total samples over total epoch seconds, as for the hand loop (a mean of per-epoch rates would favour us)
    return sum(h["samples_per_second"] * h["seconds"] for h in history) / sum(h["seconds"] for h in history), peak_mb


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None,
                        help="default: cpu, and cuda when torch sees a GPU")
    args = parser.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files, paths, cut = demo_splits(tmp, args.rows)
        for device in devices:
            rows_out = []
            for batch in args.batch_size:
                config = Config.model_validate({
                    "dataset": {"path": str(files.data), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                                "categorical": demo_data.CATEGORICAL},
                    "training": {"epochs": args.epochs, "batch_size": batch, "early_stopping_patience": None}})
                job_dir = tmp / f"job-{batch}"
                write_job(config, paths, job_dir, tmp / "unused")
                job = json.loads((job_dir / "job.json").read_text())
                worker_counts = (1, 2) if device == "cpu" else (1,)
                rates: dict[object, list[float]] = {"loop": [], **{w: [] for w in worker_counts}}
                peaks: dict[object, float] = {}
                for repeat in range(args.repeats):
                    _, peaks["loop"], rate = measure(lambda d=job_dir, j=job, v=device: hand_loop(d, j, v))
                    rates["loop"].append(rate)
                    for workers in worker_counts:
                        run = tmp / f"run-{device}-{batch}-{workers}-{repeat}"
                        job["checkpoint_dir"] = str(run / "ckpt")  # a fresh start, never a resume
                        (job_dir / "job.json").write_text(json.dumps(job))
                        rate, peaks[workers] = ours(job_dir, run / "out", workers, device)
                        rates[workers].append(rate)
                median = {k: statistics.median(v) for k, v in rates.items()}
                row = [cut, len(demo_data.NUMERIC) + len(demo_data.CATEGORICAL), batch, f"{median['loop']:.0f}",
                       f"{median[1]:.0f}", f"{median[1] / median['loop']:.2f}"]
                if device == "cpu":
                    row += [f"{median[2]:.0f}", f"{median[2] / (2 * median[1]):.2f}"]
                row += [f"{peaks['loop']:.0f}", f"{max(peaks[w] for w in worker_counts):.0f}"]
                rows_out.append(row)
            header = ["train rows", "features", "batch/worker", "hand loop", "ours 1w", "ours 1w / loop"]
            if device == "cpu":
                header += ["ours 2w", "T2 / 2·T1"]
            header += ["loop peak MB", "worker peak MB"]
            name = torch.cuda.get_device_name() if device == "cuda" else "CPU, 1 thread per worker"
            table(f"training throughput, samples/s, median of {args.repeats} ({args.epochs} epochs, {name})",
                  header, rows_out)


if __name__ == "__main__":
    main()
