"""Our DDP trainer (torchrun, 1 and 2 workers) vs a minimal hand-written PyTorch loop, same data and model.

    python -m benchmarks.train_vs_loop [--rows 100000] [--epochs 3] [--batch-size 1024]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from benchmarks.harness import measure, table
from components.train.features import FeatureSpec
from components.train.model import build_model
from components.train.step import write_job
from pipelines import demo_data
from pipelines.config import Config


def hand_loop(job_dir: Path, job: dict) -> float:
    """What a user would write by hand: one process, tensors in memory, AdamW, shuffled minibatches."""
    torch.set_num_threads(1)
    features = FeatureSpec(**json.loads((job_dir / "features.json").read_text()))
    data = load_file(str(job_dir / "train.safetensors"))
    torch.manual_seed(0)
    model = build_model(features, job["embedding_dim"], job["hidden"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=job["weight_decay"])
    n, started = len(data["y"]), time.perf_counter()
    for _ in range(job["epochs"]):
        order = torch.randperm(n)
        for i in range(0, n, job["batch_size"]):
            idx = order[i:i + job["batch_size"]]
            loss = F.cross_entropy(model(data["x_num"][idx], data["x_cat"][idx]), data["y"][idx].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return n * job["epochs"] / (time.perf_counter() - started)


def ours(job_dir: Path, out: Path, workers: int) -> float:
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
                    "-m", "components.train.worker", "--job", str(job_dir), "--out", str(out)],
                   check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    history = json.loads((out / "result.json").read_text())["history"]
    return sum(h["samples_per_second"] for h in history) / len(history)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[256, 1024, 4096])
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = demo_data.write_demo_data(tmp / "data", args.rows)
        frame = pd.read_parquet(files.data)
        cut = int(len(frame) * 0.8)
        paths = {"train": tmp / "train.parquet", "val": tmp / "val.parquet"}
        frame[:cut].to_parquet(paths["train"])
        frame[cut:].to_parquet(paths["val"])
        for batch in args.batch_size:
            config = Config.model_validate({
                "dataset": {"path": str(files.data), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                            "categorical": demo_data.CATEGORICAL},
                "training": {"epochs": args.epochs, "batch_size": batch}})
            job_dir = tmp / f"job-{batch}"
            write_job(config, paths, job_dir, tmp / f"ckpt-{batch}")
            job = json.loads((job_dir / "job.json").read_text())
            loop_s, loop_mb, loop_rate = measure(lambda: hand_loop(job_dir, job))
            results = {}
            for workers in (1, 2):
                (tmp / f"ckpt-{batch}").exists() and subprocess.run(["rm", "-rf", str(tmp / f"ckpt-{batch}")])
                results[workers] = ours(job_dir, tmp / f"out-{batch}-{workers}", workers)
            rows_out.append([cut, len(demo_data.NUMERIC) + len(demo_data.CATEGORICAL), batch, f"{loop_rate:.0f}",
                             f"{results[1]:.0f}", f"{results[2]:.0f}", f"{results[1] / loop_rate:.2f}",
                             f"{results[2] / results[1] / 2:.2f}", f"{loop_mb:.0f}"])
    table(f"training throughput, samples/s ({args.epochs} epochs, CPU, 1 thread per worker)",
          ["train rows", "features", "batch/worker", "hand loop", "ours 1w", "ours 2w", "ours 1w/loop",
           "2w share of linear", "loop peak MB"], rows_out)


if __name__ == "__main__":
    main()
