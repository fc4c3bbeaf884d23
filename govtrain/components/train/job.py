"""The training job: what the train step hands the DDP workers, written as job.json beside the shard
tensors and read back, typed, by every worker (locally under torchrun, on a cluster in each pod)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict


def batch_size_for(shard_rows: int, batch_size: int, min_steps_per_epoch: int) -> int:
    """batch_size, or less on a small table so an epoch takes min_steps_per_epoch steps: at 3,500 train rows
    a batch of 1,024 per worker gave 2 steps an epoch, and the network trailed a linear model (ROC AUC 0.62
    against 0.68 on the demo; 0.70 with 32 steps)."""
    return max(min(16, shard_rows), min(batch_size, shard_rows // min_steps_per_epoch))


AUTO_STEPS, AUTO_MIN_EPOCHS, AUTO_MAX_EPOCHS = 1_000, 8, 60
AUTO_LR, AUTO_LR_BATCH, AUTO_LR_FLOOR = 1e-2, 1024, 3e-3


def optimizer_steps(shard_rows: int, batch: int, accumulation: int) -> int:
    """Optimizer steps per epoch of a worker holding shard_rows, as the worker counts them."""
    return math.ceil(math.ceil(shard_rows / batch) / accumulation)


def auto_epochs(steps_per_epoch: int) -> int:
    """training.epochs "auto": AUTO_STEPS optimizer steps, within AUTO_MIN_EPOCHS..AUTO_MAX_EPOCHS. Early stopping
    and keep_best still decide which epoch ships; this only sets how long it may look."""
    return min(max(math.ceil(AUTO_STEPS / steps_per_epoch), AUTO_MIN_EPOCHS), AUTO_MAX_EPOCHS)


def auto_lr(batch: int) -> float:
    """training.lr "auto": AUTO_LR at AUTO_LR_BATCH rows a worker, scaled by the square root of the batch's share
    of it (Adam's square-root scaling rule, Malladi et al. 2022, "On the SDEs and Scaling Rules for Adaptive
    Gradient Algorithms"), so a small table's short batches take smaller steps; not below AUTO_LR_FLOOR, the
    rate measured on 16-row batches (docs/decisions.md 59: at 1.25e-3, the rule's value there, the trees'
    lead on tiny tables grew)."""
    return round(max(AUTO_LR_FLOOR, AUTO_LR * math.sqrt(batch / AUTO_LR_BATCH)), 8)


JOB_FILE = "job.json"


class MlflowTarget(BaseModel):
    """Rank 0 logs each epoch into the pipeline run's MLflow run."""
    model_config = ConfigDict(extra="forbid")
    tracking_uri: str
    run_id: str


class TrainJob(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = "mlp"  # training.model
    epochs: int
    batch_size: int
    min_steps_per_epoch: int = 16
    lr: float
    weight_decay: float
    hidden: list[int]
    embedding_dim: int | str
    numeric_embedding: dict | None = None  # training.numeric_embedding; None: the standardised values
    dropout: float = 0.0
    members: int = 1  # training.members resolved: MLP networks averaged (model/network.py Ensemble)
    lr_schedule: str = "constant"
    warmup_epochs: float = 0.0
    threads_per_worker: int
    seed: int
    early_stopping_patience: int | None = None
    keep_best: bool = False
    checkpoint_dir: Path
    mlflow: MlflowTarget | None = None
    grad_accumulation: int = 1  # micro-batches per optimizer step; no_sync on all but the last
    bucket_cap_mb: float = 25.0  # DDP's gradient bucket size
    comm_hook: str = "none"  # none | fp16 | bf16 | powersgd (components/train/comm.py)
    static_graph: bool = False
    snapshot_every_steps: int | None = None  # also snapshot mid-epoch every this many optimizer steps
    compile: Literal["auto", "on", "off"] = "auto"  # torch.compile; resolved on the worker's device (runtime.py)

    def write(self, job_dir: Path) -> Path:
        path = job_dir / JOB_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def read(cls, job_dir: Path) -> TrainJob:
        return cls.model_validate_json((job_dir / JOB_FILE).read_text())
