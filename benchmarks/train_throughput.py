"""Our DDP trainer (torchrun) vs a minimal hand-written PyTorch loop: same data, network, per-worker batch and
epochs; samples/s over the epochs after the first (steady state: the first epoch also pays torch.compile and
CUDA-graph recording, reported on its own as the first epoch's extra seconds), validation excluded for both.

    python -m benchmarks.train_throughput [--rows 100000] [--epochs 3] [--batch-size 1024] [--repeats 3]
                                          [--devices cpu cuda] [--compile auto off] [--json F]

Contenders per device: the hand loop, then ours at each --compile setting (1 worker; also 2 on the CPU). Each
runs --repeats times, interleaved, and the median is reported: a 2-core machine's background noise is of the
order of the differences measured. On CUDA both use bf16 autocast. The roofline column is the network's
forward+backward FLOPs per sample (matrix products, counted by torch's FlopCounterMode) times samples/s, as a
share of the card's dense bf16 peak (its datasheet figure; none is stated for a CPU). "same bytes" says whether
every repeat of a contender shipped the same weights (a fixed seed).
"""
import argparse
import hashlib
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
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.harness import demo_splits, measure, table
from govtrain.components.train.shards import read_manifest
from govtrain.components.train.step import RESTART_SAFE_ENV, write_job
from govtrain.core.config import Config
from govtrain.model.features import FeatureSpec
from govtrain.model.network import build_model
from govtrain.pipelines import demo_data

# dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s (SXM parts; a PCIe H100 is 756)
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "L4": 121.0}


def peak_tflops(device_name: str) -> float | None:
    return next((peak for name, peak in PEAK_BF16_TFLOPS.items() if name in device_name), None)


def network(job_dir: Path, job: dict, device: str) -> torch.nn.Module:
    features = FeatureSpec(**json.loads((job_dir / "features.json").read_text()))
    return build_model(features, job["embedding_dim"], job["hidden"], numeric_embedding=job["numeric_embedding"],
                       dropout=job["dropout"]).to(device)  # the same network as ours


def whole_split(job_dir: Path, device: str) -> dict[str, torch.Tensor]:
    parts = [load_file(str(job_dir / c["file"])) for c in read_manifest(job_dir)["chunks"]]
    return {k: torch.cat([p[k] for p in parts]).to(device) for k in ("x_num", "x_cat", "y")}


def flops_per_sample(job_dir: Path, job: dict) -> float:
    """Forward and backward FLOPs of one sample (matrix products and einsums; elementwise work is not counted)."""
    data, model = whole_split(job_dir, "cpu"), network(job_dir, job, "cpu")
    rows = min(1024, len(data["y"]))
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(data["x_num"][:rows], data["x_cat"][:rows]), data["y"][:rows].long()).backward()
    return counter.get_total_flops() / rows


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def hand_loop(job_dir: Path, job: dict, device: str) -> list[tuple[int, float]]:
    """What a user would write by hand: one process, tensors in memory, AdamW, shuffled minibatches.
    (samples, seconds) per epoch."""
    torch.set_num_threads(1)
    data = whole_split(job_dir, device)
    torch.manual_seed(0)
    model = network(job_dir, job, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=job["lr"], weight_decay=job["weight_decay"])
    n, batch = len(data["y"]), job["batch_size"]
    epochs = []
    for _ in range(job["epochs"]):
        sync(device)
        started = time.perf_counter()
        order = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
                loss = F.cross_entropy(model(data["x_num"][idx], data["x_cat"][idx]), data["y"][idx].long())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        sync(device)
        epochs.append((n, time.perf_counter() - started))
    return epochs


def ours(job_dir: Path, out: Path, workers: int, device: str) -> tuple[list[tuple[float, float]], float, str]:
    """((samples, seconds) per epoch, peak RSS MB of the largest worker so far, sha256 of the weights)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **RESTART_SAFE_ENV}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
                    "-m", "govtrain.components.train.worker", "--job", str(job_dir), "--out", str(out)],
                   check=True, capture_output=True, env=env)
    history = json.loads((out / "result.json").read_text())["history"]
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    digest = hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    return [(h["samples_per_second"] * h["seconds"], h["seconds"]) for h in history], peak_mb, digest


def steady(epochs: list[tuple[float, float]]) -> tuple[float, float]:
    """(samples/s over the epochs after the first, the first epoch's seconds beyond a steady epoch's)."""
    rest = epochs[1:] or epochs
    rate = sum(s for s, _ in rest) / sum(t for _, t in rest)
    return rate, epochs[0][1] - epochs[0][0] / rate


def run_device(tmp: Path, files, paths, cut: int, device: str, batch: int, args) -> list[dict]:
    config = Config.model_validate({
        "dataset": {"path": str(files.data), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                    "categorical": demo_data.CATEGORICAL},
        "training": {"epochs": args.epochs, "batch_size": batch, "early_stopping_patience": None,
                     "grad_accumulation": 1, "members": 1}})
    job_dir = tmp / f"job-{device}-{batch}"
    write_job(config, paths, job_dir, tmp / "unused")
    job = json.loads((job_dir / "job.json").read_text())
    contenders = [("hand loop", 0, "")] + [(f"ours {w}w compile={c}", w, c) for c in args.compile
                                             for w in ((1, 2) if device == "cpu" else (1,))]
    runs: dict[str, list] = {name: [] for name, _, _ in contenders}
    for repeat in range(args.repeats):
        for name, workers, setting in contenders:
            if not workers:
                _, peak, epochs = measure(lambda: hand_loop(job_dir, job, device))
                runs[name].append((epochs, peak, ""))
                continue
            run = tmp / f"run-{device}-{batch}-{workers}-{setting}-{repeat}"
            (job_dir / "job.json").write_text(json.dumps({**job, "compile": setting,
                                                          "checkpoint_dir": str(run / "ckpt")}))  # never a resume
            runs[name].append(ours(job_dir, run / "out", workers, device))
    flops = flops_per_sample(job_dir, job)
    # asked in a forked child: CUDA initialised in this process would refuse the next hand loop's fork
    name = str(measure(torch.cuda.get_device_name)[2]) if device == "cuda" else "CPU, 1 thread per worker"
    peak = peak_tflops(name) if device == "cuda" else None
    loop_rate = statistics.median(steady(e)[0] for e, _, _ in runs["hand loop"])
    out = []
    for contender, workers, _ in contenders:
        rate = statistics.median(steady(e)[0] for e, _, _ in runs[contender])
        tflops = rate * flops / 1e12
        out.append({"device": name, "train_rows": cut, "features": len(demo_data.NUMERIC + demo_data.CATEGORICAL),
                    "batch": batch, "contender": contender, "samples_per_second": round(rate),
                    "against_loop": round(rate / loop_rate, 3),
                    "first_epoch_extra_s": round(statistics.median(steady(e)[1] for e, _, _ in runs[contender]), 2),
                    "flops_per_sample": round(flops), "achieved_tflops": round(tflops, 4),
                    "percent_of_peak": round(100 * tflops / peak, 3) if peak else None,
                    "peak_mb": round(max(p for _, p, _ in runs[contender])),
                    "same_bytes": len({d for _, _, d in runs[contender]}) == 1 if workers else None})
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[1024])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--devices", nargs="+", choices=["cpu", "cuda"], default=None,
                        help="default: cpu, and cuda when torch sees a GPU")
    parser.add_argument("--compile", nargs="+", choices=["auto", "on", "off"], default=["auto"],
                        help="training.compile settings to run ours at (auto: compiled on CUDA only)")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        files, paths, cut = demo_splits(tmp, args.rows)
        for device in devices:
            for batch in args.batch_size:
                found = run_device(tmp, files, paths, cut, device, batch, args)
                rows += found
                table(f"training throughput, samples/s after the first epoch, median of {args.repeats} "
                      f"({args.epochs} epochs, {found[0]['device']}, {cut} train rows x {found[0]['features']} "
                      f"features, batch {batch} a worker, {found[0]['flops_per_sample']} FLOPs a sample)",
                      ["contender", "samples/s", "vs loop", "1st epoch extra s", "TFLOP/s", "% of bf16 peak",
                       "peak MB", "same bytes"],
                      [[r["contender"], r["samples_per_second"], r["against_loop"], r["first_epoch_extra_s"],
                        r["achieved_tflops"], r["percent_of_peak"] if r["percent_of_peak"] is not None else "n/a",
                        r["peak_mb"], {None: "", True: "yes", False: "no"}[r["same_bytes"]]] for r in found])
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
