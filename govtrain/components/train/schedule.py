"""The learning rate per optimizer step (the worker's LambdaLR)."""
from __future__ import annotations

import math
from collections.abc import Callable

from govtrain.components.train.job import TrainJob


def lr_factor(job: TrainJob, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate per optimizer step, as a factor of job.lr: constant, or a linear warm-up over
    warmup_epochs then a cosine decay to 0 at the last planned step (early stopping may end sooner)."""
    total, warmup = job.epochs * steps_per_epoch, round(job.warmup_epochs * steps_per_epoch)
    if job.lr_schedule == "constant":
        return lambda step: 1.0

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))
    return factor
