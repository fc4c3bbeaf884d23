"""What a step spends on communication, measured inside DDP: a communication hook that wraps the all-reduce
(plain, or a compressing one) and times each bucket from its launch to its completion, and counts its bytes.

DDP launches a bucket's all-reduce as soon as its gradients are ready, while backward still computes the
rest; backward() returns once every bucket is reduced. So per step:

    communication busy   the sum of the buckets' launch-to-done times
    exposed              from the last bucket's launch to backward() returning: the communication nothing hid
    overlap              busy minus exposed, as a share of busy (how much of it ran under compute)

The exposed time is what a larger world size costs each step; it is the "communication share" the train
record gives (exposed / step time), beside the bytes all-reduced per step and the bucket size. It includes
waiting for the slowest rank to reach the all-reduce (a straggler costs every other rank that time), so on a
machine whose cores are shared it is larger than the wire time alone.
"""
# No `from __future__ import annotations` here: DDP compares the hook's annotations with dist.GradBucket and
# Future[Tensor] at registration, so they must be the objects, not strings.
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook

COMM_HOOKS = ("none", "fp16", "bf16", "powersgd")


@dataclass
class CommMeter:
    """Totals over an epoch; `step_started`/`backward_done` bracket each step's backward."""
    busy: float = 0.0
    exposed: float = 0.0
    bytes: int = 0
    buckets: int = 0
    steps: int = 0
    wire_bytes_per_element: int | None = None  # fp16/bf16 send 2; None: the gradient's own element size
    _last_launch: float = 0.0
    _inner: Callable[[Any, Any], torch.futures.Future] = field(default=default_hooks.allreduce_hook, repr=False)

    def hook(self, state: Any, bucket: dist.GradBucket) -> torch.futures.Future[torch.Tensor]:
        launched = time.perf_counter()
        self._last_launch = launched
        self.buckets += 1
        self.bytes += bucket.buffer().numel() * (self.wire_bytes_per_element or bucket.buffer().element_size())
        future = self._inner(state, bucket)

        def done(fut: torch.futures.Future) -> torch.Tensor:
            self.busy += time.perf_counter() - launched
            return fut.value()
        return future.then(done)

    def backward_done(self) -> None:
        """Call right after backward() returns on a step that all-reduced (not under no_sync)."""
        self.exposed += max(0.0, time.perf_counter() - self._last_launch)
        self.steps += 1

    def epoch_stats(self, seconds: float) -> dict[str, float]:
        """The epoch's communication, per step and as shares of the epoch's training time."""
        steps = max(self.steps, 1)
        return {"comm_steps": self.steps, "comm_bytes_per_step": self.bytes / steps,
                "comm_buckets_per_step": self.buckets / steps,
                "comm_busy_seconds": round(self.busy, 6), "comm_exposed_seconds": round(self.exposed, 6),
                "comm_share": round(self.exposed / seconds, 6) if seconds > 0 else 0.0,
                # exposed can exceed busy by the bookkeeping after the last bucket: no overlap, not a negative one
                "comm_overlap": round(max(0.0, 1 - self.exposed / self.busy), 6) if self.busy > 0 else 0.0}

    def reset(self) -> None:
        self.busy = self.exposed = 0.0
        self.bytes = self.buckets = self.steps = 0


def attach(model: torch.nn.parallel.DistributedDataParallel, kind: str, process_group: Any = None) -> CommMeter:
    """The meter registered as the model's communication hook, reducing with `kind` (COMM_HOOKS)."""
    if kind not in COMM_HOOKS:
        raise ValueError(f"training.ddp.comm_hook {kind!r}: one of {', '.join(COMM_HOOKS)}")
    state: Any = process_group
    inner: Callable[[Any, Any], torch.futures.Future] = default_hooks.allreduce_hook
    if kind == "fp16":
        inner = default_hooks.fp16_compress_hook
    elif kind == "bf16":
        inner = default_hooks.bf16_compress_hook
    elif kind == "powersgd":
        # rank 2 and 1,000 plain all-reduces first (PowerSGD's own advice for a warm start)
        state = powerSGD_hook.PowerSGDState(process_group=process_group, matrix_approximation_rank=2,
                                            start_powerSGD_iter=1_000)
        inner = powerSGD_hook.powerSGD_hook
    # PowerSGD's bytes are counted as the gradients' (it sends a low-rank factorisation after its warm start)
    meter = CommMeter(wire_bytes_per_element=2 if kind in ("fp16", "bf16") else None, _inner=inner)
    model.register_comm_hook(state, meter.hook)
    return meter
