"""The training step's settings (the network, its schedule, DDP, the cluster job), part of the typed
configuration in config.py."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from govtrain.core.cluster import PyTorchJobSpec, TrainJobSpec


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NumericEmbeddingSpec(_Strict):
    """How the MLP sees each numeric feature: "periodic" learns `frequencies` cos/sin features per column
    (initial frequencies ~ N(0, sigma)) mapped to `dim` numbers; "none" feeds the standardised value; "auto"
    is periodic from `auto_min_rows` train rows (below, its extra weights overfit: diabetes, 442 rows, R^2
    0.29 against 0.35)."""
    kind: Literal["auto", "periodic", "none"] = "auto"
    auto_min_rows: int = Field(10_000, ge=0)
    frequencies: int = Field(48, ge=1)  # as rtdl_num_embeddings, the authors' package (16 before: decisions 49)
    # 0.3, not 1: at 1 the network lost more ROC AUC under the robustness gate's noise than the trees do
    # (0.876 of clean against HGB's 0.903, under the 0.9 gate; 0.903 at 0.3), and no accuracy (decisions 49)
    sigma: float = Field(0.3, gt=0)
    dim: int = Field(16, ge=1)
    # with "periodic": a whole-number numeric of at most this many values also gets an embedding per value (0: never)
    max_code_values: int = Field(255, ge=0)


class DdpSpec(_Strict):
    """DistributedDataParallel's communication knobs (measured per epoch in the train record)."""
    bucket_cap_mb: float = Field(25.0, gt=0, le=1024)  # PyTorch's default
    # How gradients are all-reduced: as they are, or compressed to fp16/bf16, or PowerSGD (rank 2). "none" by
    # default: compression sped training up in 6 of 200+ measured set-ups (Agarwal et al., MLSys 2022).
    comm_hook: Literal["none", "fp16", "bf16", "powersgd"] = "none"
    static_graph: bool = False  # the same parameters are used every step (true of the MLP)


class TrainingSpec(_Strict):
    backend: Literal["local", "pytorchjob", "trainjob"] = "local"
    # "mlp", or a factory "package.module:function" given (FeatureSpec, Task) that returns an nn.Module
    model: str = Field("mlp", pattern=r"^(mlp|[A-Za-z_][\w.]*:[A-Za-z_]\w*)$")
    workers: int = Field(2, ge=1, le=64)  # local: torchrun processes; pytorchjob/trainjob: pods (nodes)
    # "auto": enough epochs for 1,000 optimizer steps, at least 8 and at most 60 (a table of a few thousand rows
    # got 128 steps from a fixed 8 epochs, and its validation loss was still falling: docs/decisions.md 59)
    epochs: Annotated[int, Field(ge=1)] | Literal["auto"] = Field("auto", union_mode="left_to_right")
    batch_size: int = Field(1024, ge=8)  # per worker: large enough to pay for the all-reduce on CPU
    # a small table gets smaller batches (16 rows at least), so an epoch takes at least this many optimizer
    # steps: with one step an epoch, 442-row diabetes trailed ridge (RMSE 59.3 against 57.3; 56.0 with 16)
    min_steps_per_epoch: int = Field(16, ge=1)
    # the schedule's peak, after a warm-up. "auto": 1e-2 at a batch of 1,024 rows per worker (docs/decisions.md
    # 49), scaled by the square root of the batch a worker takes over 1,024 (the square-root rule for Adam,
    # Malladi et al. 2022): a small table's 16-row batches at 1e-2 overfit within an epoch (docs/decisions.md 59)
    lr: Annotated[float, Field(gt=0)] | Literal["auto"] = Field("auto", union_mode="left_to_right")
    weight_decay: float = Field(1e-4, ge=0)
    hidden: list[int] = Field(default_factory=lambda: [256, 256])
    # width of each categorical's embedding; "auto": min(32, round(1.6 x cardinality^0.56))
    embedding_dim: Annotated[int, Field(ge=1)] | Literal["auto"] = Field("auto", union_mode="left_to_right")
    # a category on fewer train rows shares the unknown embedding (decisions 60: midwest memorised its counties)
    min_category_rows: int = Field(5, ge=1)
    numeric_embedding: NumericEmbeddingSpec = Field(default_factory=lambda: NumericEmbeddingSpec())
    dropout: float = Field(0.1, ge=0, lt=1)  # after each hidden layer (0 before decisions 60: robustness to noise)
    # MLP networks trained side by side, each from its own weights, served as the mean of their outputs. "auto":
    # AUTO_MEMBERS below AUTO_MEMBERS_ROWS train rows, where one network's variance refused sane tables
    # (decisions 61), else 1
    members: Annotated[int, Field(ge=1, le=32)] | Literal["auto"] = Field("auto", union_mode="left_to_right")
    # the learning rate per optimizer step: "cosine" warms up linearly for warmup_epochs, then decays to 0 by
    # the last epoch (one-cycle's shape); "constant" keeps lr
    lr_schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: float = Field(1.0, ge=0)
    # Stop when the validation loss has not improved for this many epochs (None: run every epoch), and ship
    # the weights of the epoch with the lowest validation loss (false: the last epoch's).
    early_stopping_patience: int | None = Field(10, ge=1)  # 3 before decisions 59: it stopped at the noise
    keep_best: bool = True
    threads_per_worker: int = Field(1, ge=1)
    # Micro-batches of batch_size per optimizer step: gradients all-reduced once per step (DDP no_sync on the
    # others), so communication per sample falls by this factor; the effective batch grows by it too. "auto":
    # 4 when more than one worker each holds at least 100,000 train rows, else 1 (docs/decisions.md 54: on 1M
    # demo rows, 2 workers' efficiency 0.785 -> 0.944, validation AUC 0.7586 -> 0.7580).
    grad_accumulation: Annotated[int, Field(ge=1, le=1024)] | Literal["auto"] = Field("auto",
                                                                                    union_mode="left_to_right")
    ddp: DdpSpec = Field(default_factory=DdpSpec)
    max_restarts: int = Field(1, ge=0)
    seed: int = 0
    checkpoint_dir: Path | None = None  # local: None keeps snapshots in a temp folder of the step
    # also snapshot inside an epoch every this many optimizer steps (None: after each epoch only), so a restarted
    # job on a large table resumes at the step, not the epoch's start; the weights do not change (a resumed run
    # gives the uninterrupted run's bytes)
    snapshot_every_steps: int | None = Field(2000, ge=1)
    # torch.compile the step: "auto" on a CUDA device only (as a CUDA graph with one worker), where a step is
    # kernel launches; on the 2-core CPU host the compiled step ran at 0.69 of eager (decisions 67).
    # "on" compiles on any device, "off" never. A compiled run's dropout masks differ from an eager run's.
    compile: Literal["auto", "on", "off"] = "auto"
    price_per_worker_hour: float = Field(0.0, ge=0)  # for the run's compute cost in the evidence (MEASURE 2.12)
    pytorchjob: PyTorchJobSpec = Field(default_factory=PyTorchJobSpec)
    trainjob: TrainJobSpec = Field(default_factory=TrainJobSpec)
