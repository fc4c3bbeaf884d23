"""Data-parallel scaling of our DDP trainer, and what communication cost at each world size: samples/s,
efficiency against one worker, the communication share of step time (exposed all-reduce, from the train
record), bytes all-reduced per step, and peak RSS of the largest rank.

    python -m benchmarks.scaling [--rows 1000000] [--epochs 3] [--workers 1 2] [--global-batch N]
                                 [--comm-hook none fp16] [--bucket-cap-mb 25] [--grad-accumulation 1 4]
                                 [--repeats 2] [--fit] [--json F]

Without --global-batch each worker takes the config's batch (1,024: the default config, weak scaling); with
it the global batch is fixed and split across workers (strong scaling). Efficiency = samples/s at N workers
/ (N x samples/s at 1 worker), each the median of --repeats runs; the first epoch is left out (warm-up).
On the GPU machine, run it with --workers 1 2 4 8 for gloo on its 16 cores.
"""
import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import demo_splits, table
from govtrain.components.train.step import RESTART_SAFE_ENV, write_job
from govtrain.core.config import Config
from govtrain.pipelines import demo_data


def run_workers(job_dir: Path, out: Path, workers: int) -> tuple[list[dict], float]:
    """(the epochs' history from result.json, peak RSS MB of the largest process so far)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", **RESTART_SAFE_ENV}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(workers),
                    "-m", "govtrain.components.train.worker", "--job", str(job_dir), "--out", str(out)],
                   check=True, capture_output=True, env=env)
    history = json.loads((out / "result.json").read_text())["history"]
    return history, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def rate(history: list[dict]) -> float:
    """Samples over seconds of the epochs after the first."""
    kept = history[1:] or history
    return sum(h["samples_per_second"] * h["seconds"] for h in kept) / sum(h["seconds"] for h in kept)


def mean_of(history: list[dict], key: str) -> float | None:
    values = [h[key] for h in history[1:] or history if key in h]
    return statistics.mean(values) if values else None


def per_step(history: list[dict], key: str) -> float | None:
    """An epoch total as seconds per all-reducing step, over the epochs after the first."""
    kept = [h for h in history[1:] or history if h.get("comm_steps")]
    return sum(h[key] for h in kept) / sum(h["comm_steps"] for h in kept) if kept else None


def fit_and_hold_out(records: list[dict], held_bucket_mb: float | None = None) -> None:
    """The step model (components/train/costmodel.py) fitted on some runs, then asked for the efficiency of the
    others, which it never saw: the held-out error. Fitted on the runs at the largest bucket size (they differ
    in gradient accumulation, so in compute per step), held out: the rest."""
    from govtrain.components.train.costmodel import StepModel, fit_host

    multi = [r for r in records if r["workers"] > 1 and r["efficiency"]]
    held_bucket_mb = held_bucket_mb or min(r["bucket_cap_mb"] for r in multi)
    fitted = [r for r in multi if r["bucket_cap_mb"] != held_bucket_mb]
    held = [r for r in multi if r["bucket_cap_mb"] == held_bucket_mb]

    def compute(r: dict) -> float:
        return r["batch_per_worker"] * r["grad_accumulation"] / r["single_worker_samples_per_second"]

    points = [{"workers": r["workers"], "compute_seconds_per_step": compute(r),
               "step_seconds": r["batch_per_worker"] * r["grad_accumulation"] * r["workers"] / r["samples_per_second"]}
              for r in fitted]
    link = fit_host(points, "gloo over loopback, one host", "benchmarks/scaling.py --fit")
    print(f"\nfitted on {len(fitted)} runs: compute per step x{1 + link.contention:.3f} per extra worker, "
          f"{2 * link.latency_s * 1e3:.2f} ms a step of all-reduce and waiting (latency {link.latency_s * 1e3:.3f} ms "
          f"a ring step)")
    rows = []
    for r in [*fitted, *held]:
        model = StepModel(1 / r["single_worker_samples_per_second"], int(r["comm_bytes_per_step"]),
                          r["batch_per_worker"], r["grad_accumulation"], r["bucket_cap_mb"])
        predicted = model.efficiency(r["workers"], link)
        rows.append(["fit" if r in fitted else "held out", r["workers"], r["comm_hook"], r["bucket_cap_mb"],
                     r["grad_accumulation"], f"{r['efficiency']:.3f}", f"{predicted:.3f}",
                     f"{(predicted - r['efficiency']) / r['efficiency']:+.1%}"])
    table("predicted against measured efficiency", ["set", "workers", "comm hook", "bucket MB", "accumulate",
                                                    "measured", "predicted", "error"], rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--global-batch", type=int, default=None)
    parser.add_argument("--comm-hook", nargs="+", default=["none"])
    parser.add_argument("--bucket-cap-mb", type=float, nargs="+", default=[25.0])
    parser.add_argument("--grad-accumulation", type=int, nargs="+", default=[1])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--fit", action="store_true", help="fit the step model on the runs at the larger bucket "
                        "sizes and report its error on those at the smallest")
    parser.add_argument("--refit", type=Path, default=None, help="only fit, from a --json file of earlier runs")
    args = parser.parse_args()
    if args.refit:
        fit_and_hold_out(json.loads(args.refit.read_text()))
        return
    rows_out, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files, paths, cut = demo_splits(tmp, args.rows)
        for hook, bucket, accumulate in itertools.product(args.comm_hook, args.bucket_cap_mb, args.grad_accumulation):
            single = None
            for workers in args.workers:
                training = {"epochs": args.epochs, "early_stopping_patience": None, "workers": workers,
                            "grad_accumulation": accumulate, "ddp": {"comm_hook": hook, "bucket_cap_mb": bucket}}
                if args.global_batch:
                    training["batch_size"] = args.global_batch // workers
                    training["min_steps_per_epoch"] = 1
                config = Config.model_validate({
                    "dataset": {"path": str(files.data), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                                "categorical": demo_data.CATEGORICAL}, "training": training})
                job_dir = tmp / f"job-{hook}-{bucket}-{accumulate}-{workers}"
                write_job(config, paths, job_dir, tmp / "unused")
                job = json.loads((job_dir / "job.json").read_text())
                rates, peak, history = [], 0.0, []
                for repeat in range(args.repeats):
                    run = job_dir / f"run-{repeat}"
                    job["checkpoint_dir"] = str(run / "ckpt")  # a fresh start, never a resume
                    (job_dir / "job.json").write_text(json.dumps(job))
                    history, peak = run_workers(job_dir, run / "out", workers)
                    rates.append(rate(history))
                speed = statistics.median(rates)
                single = speed if workers == 1 else single
                efficiency = speed / (workers * single) if single else None
                share, moved = mean_of(history, "comm_share"), mean_of(history, "comm_bytes_per_step")
                record = {"rows": cut, "workers": workers, "batch_per_worker": job["batch_size"], "comm_hook": hook,
                          "bucket_cap_mb": bucket, "grad_accumulation": accumulate, "samples_per_second": speed,
                          "single_worker_samples_per_second": single, "efficiency": efficiency,
                          "comm_share": share, "comm_bytes_per_step": moved, "peak_rss_mb": peak,
                          "comm_buckets_per_step": mean_of(history, "comm_buckets_per_step"),
                          "comm_exposed_seconds_per_step": per_step(history, "comm_exposed_seconds"),
                          "comm_busy_seconds_per_step": per_step(history, "comm_busy_seconds"),
                          # the model it trained: the default gate reads quality too, not only speed
                          "val_metric": {k: history[-1][k] for k in history[-1] if k.startswith("val_")}}
                records.append(record)
                rows_out.append([cut, len(demo_data.NUMERIC) + len(demo_data.CATEGORICAL), workers, job["batch_size"],
                                 hook, bucket, accumulate, f"{speed:.0f}",
                                 f"{efficiency:.2f}" if efficiency else "-",
                                 f"{share:.3f}" if share is not None else "-",
                                 f"{moved / 1024:.0f}" if moved else "-", f"{peak:.0f}"])
    table(f"DDP scaling on CPU, gloo, 1 thread per worker, median of {args.repeats} (epochs 2..{args.epochs})",
          ["train rows", "features", "workers", "batch/worker", "comm hook", "bucket MB", "accumulate", "samples/s",
           "efficiency", "comm share", "KiB/step", "peak RSS MB"], rows_out)
    if args.json:
        args.json.write_text(json.dumps(records, indent=2))
    if args.fit:
        fit_and_hold_out(records)


if __name__ == "__main__":
    main()
