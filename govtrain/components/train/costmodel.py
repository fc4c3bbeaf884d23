"""What a world size buys, before it is paid for: one optimizer step as compute plus a ring all-reduce of the
gradients (the alpha-beta model: each of the 2(N-1) ring steps pays a latency per bucket, and each rank sends
2(N-1)/N of the gradient bytes over the link), with the share of the all-reduce that DDP hides behind the
backward pass. Compute per sample is measured (benchmarks/scaling.py, or `govtrain plan` timing the config's
own network); a link's latency and bandwidth are fitted from measured runs or stated for a named link.
Weak scaling: every worker keeps its batch, so N workers do N times the samples of one per step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Link:
    name: str
    latency_s: float  # per ring step and bucket
    bytes_per_s: float
    source: str  # where the numbers come from
    # Workers sharing one host slow each other's compute (cores, memory bandwidth): compute per step grows by
    # this share for each worker past the first. 0 between hosts, each with its own cores.
    contention: float = 0.0
    # A fitted host's latency is what a step waited, bucket count aside (its runs showed no dependence on it)
    per_bucket: bool = True


# Stated links: line rates and typical small-message latencies, not measurements (said in `govtrain plan`). The
# loopback link is fitted on this project's 2-core CPU machine by `python -m benchmarks.scaling --fit`.
LINKS = {
    # 2 workers on 2 cores: a step costs 1.14x the compute of one worker plus 4.7 ms (the all-reduce and the
    # wait for the slower rank; every run moved the same 499 KiB, so bandwidth is not separable and is folded
    # into the latency). Held-out error -3.5% to +9.8% (docs/training.md).
    "loopback": Link("gloo over loopback, one host", 2.35e-3, 1e15,
                     "fitted by benchmarks/scaling.py --fit on a 2-core CPU host, 2026-12-07", contention=0.141,
                     per_bucket=False),
    "25gbe": Link("25 GbE between hosts", 3e-5, 25e9 / 8, "stated: line rate, 30 us a message"),
    "100gbe": Link("100 GbE between hosts", 2e-5, 100e9 / 8, "stated: line rate, 20 us a message"),
    "nvlink": Link("NVLink within a host", 5e-6, 150e9, "stated: 150 GB/s a direction, 5 us a message"),
}


def buckets(gradient_bytes: int, bucket_cap_mb: float) -> int:
    return max(1, math.ceil(gradient_bytes / (bucket_cap_mb * 2**20)))


def allreduce_seconds(gradient_bytes: int, workers: int, link: Link, bucket_count: int = 1) -> float:
    """One step's ring all-reduce of every bucket."""
    if workers <= 1:
        return 0.0
    ring = 2 * (workers - 1)
    messages = bucket_count if link.per_bucket else 1
    return messages * ring * link.latency_s + ring / workers * gradient_bytes / link.bytes_per_s


@dataclass(frozen=True)
class StepModel:
    compute_s_per_sample: float
    gradient_bytes: int
    batch_per_worker: int
    grad_accumulation: int = 1
    bucket_cap_mb: float = 25.0
    overlap: float = 0.0  # share of the all-reduce hidden behind the backward pass (0: none, conservative)

    def step_seconds(self, workers: int, link: Link) -> float:
        """One optimizer step: every micro-batch's compute (slower on a shared host), then the exposed part of
        one all-reduce."""
        compute = self.compute_s_per_sample * self.batch_per_worker * self.grad_accumulation
        compute *= 1 + link.contention * (workers - 1)
        comm = allreduce_seconds(self.gradient_bytes, workers, link,
                                 buckets(self.gradient_bytes, self.bucket_cap_mb))
        return compute + (1 - self.overlap) * comm

    def samples_per_second(self, workers: int, link: Link) -> float:
        return workers * self.batch_per_worker * self.grad_accumulation / self.step_seconds(workers, link)

    def efficiency(self, workers: int, link: Link) -> float:
        return self.samples_per_second(workers, link) / (workers * self.samples_per_second(1, link))


def fit_link(points: list[dict], name: str = "fitted", source: str = "fitted") -> Link:
    """Latency and bandwidth from measured all-reduce seconds per step (least squares, no intercept): each point
    gives workers, gradient_bytes, bucket count and comm_seconds_per_step. It needs points that differ in bucket
    count or bytes, or the two terms cannot be told apart."""
    rows, seconds = [], []
    for p in points:
        ring = 2 * (p["workers"] - 1)
        rows.append([p["buckets"] * ring, ring / p["workers"] * p["gradient_bytes"]])
        seconds.append(p["comm_seconds_per_step"])
    (latency, inverse_bandwidth), *_ = np.linalg.lstsq(np.asarray(rows, float), np.asarray(seconds, float), rcond=None)
    if latency <= 0 or inverse_bandwidth <= 0:
        raise ValueError(f"the points do not fit a latency and a bandwidth (got {latency:.3g} s, "
                         f"{inverse_bandwidth:.3g} s/byte): vary the bucket size or the gradient bytes")
    return Link(name, float(latency), float(1 / inverse_bandwidth), source)


def fit_host(points: list[dict], name: str, source: str) -> Link:
    """A shared host from measured runs: each point gives workers, compute_seconds_per_step (one worker's, same
    batch) and step_seconds (measured at that world size). Least squares of step - compute =
    contention x (N-1) x compute + 2(N-1) x latency; the runs must differ in compute per step (gradient
    accumulation, batch) or contention and latency cannot be told apart."""
    rows = [[(p["workers"] - 1) * p["compute_seconds_per_step"], 2 * (p["workers"] - 1)] for p in points]
    extra = [p["step_seconds"] - p["compute_seconds_per_step"] for p in points]
    (contention, latency), *_ = np.linalg.lstsq(np.asarray(rows, float), np.asarray(extra, float), rcond=None)
    if latency <= 0 or contention < 0:
        raise ValueError(f"the points do not fit a contention and a latency (got {contention:.3g}, "
                         f"{latency:.3g} s): vary the compute per step")
    return Link(name, float(latency), 1e15, source, float(contention), per_bucket=False)


def plan_rows(models: dict[int, StepModel], rows_per_epoch: int, link: Link,
              price_per_worker_hour: float) -> list[dict[str, float]]:
    """Predicted samples/s, efficiency (against models[1], one worker), seconds and cost per epoch for each
    world size; each world size has its own model, as a small table's batch shrinks with its shard."""
    single = models[1].samples_per_second(1, link)
    out = []
    for n, model in sorted(models.items()):
        rate = model.samples_per_second(n, link)
        seconds = rows_per_epoch / rate
        out.append({"workers": n, "batch_per_worker": model.batch_per_worker, "samples_per_second": rate,
                    "efficiency": rate / (n * single), "epoch_seconds": seconds,
                    "epoch_cost": n * seconds / 3600 * price_per_worker_hour})
    return out


def predicted_against_measured(epoch: dict, link: Link) -> dict | None:
    """For the train record: an epoch's exposed all-reduce seconds a step and its efficiency (compute over
    compute plus exposed communication), as measured and as the model predicts them from the epoch's own bytes,
    buckets and world size. None for an epoch with no all-reduce measured (one worker)."""
    steps = epoch.get("comm_steps")
    if not steps or epoch.get("world_size", 1) < 2:
        return None
    measured = epoch["comm_exposed_seconds"] / steps
    compute = max(epoch["seconds"] / steps - measured, 1e-12)
    predicted = allreduce_seconds(int(epoch["comm_bytes_per_step"]), epoch["world_size"], link,
                                  max(1, round(epoch["comm_buckets_per_step"])))
    return {"link": link.name, "link_source": link.source,
            "exposed_seconds_per_step": {"measured": round(measured, 6), "predicted": round(predicted, 6)},
            "efficiency": {"measured": round(compute / (compute + measured), 4),
                           "predicted": round(compute / (compute + predicted), 4)}}

