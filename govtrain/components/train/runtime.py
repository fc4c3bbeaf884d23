"""Where a training worker runs, and what one step executes there: the process group and device, the seeds,
the optimizer (fused AdamW), and the step's objective (the network and its loss as one module), compiled where
that pays and wrapped in DDP when there is more than one worker.

Compiling (training.compile). On a GPU a step of the default network at batch 8,192 took about 10 ms
(docs/gpu_measurements.md), a few hundred small kernels each launched from Python; torch.compile fuses them
and, with one worker, replays the step as a CUDA graph ("reduce-overhead"), so the launches are paid once.
With DDP it compiles without CUDA graphs: the all-reduce runs between the compiled pieces (dynamo splits the
graph at DDP's buckets, so communication still overlaps backward). On this project's 2-core CPU host the
compiled step ran at 0.69 of eager (docs/decisions.md 67), so "auto" compiles on CUDA only. Compiled dropout
draws its own random masks, so a compiled run's weights differ from an eager run's under the same seed; two
compiled runs under one seed match.
"""
from __future__ import annotations

import importlib.util
import os
import random
import shutil
from typing import Literal

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from govtrain.components.train.job import TrainJob
from govtrain.model.task import Task

CompileMode = Literal["reduce-overhead", "default"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA; same initial weights on every rank


def setup() -> tuple[int, int, torch.device]:
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if "MASTER_ADDR" not in os.environ:  # a plain `python -m ...` run: a world of one
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29500", RANK="0", WORLD_SIZE="1")
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return rank, world, device


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def compile_mode(setting: str, device: torch.device, world: int) -> tuple[CompileMode | None, str]:
    """training.compile resolved on the worker's device: (the mode, None for eager; why). "on" compiles on any
    device; "auto" only on CUDA, and only where Triton can build its kernels: it needs a C compiler at run time,
    which a slim image lacks (docker/Dockerfile installs one in the CUDA build)."""
    if setting == "off":
        return None, "training.compile is off"
    if setting == "auto" and device.type != "cuda":
        return None, "auto: eager on a CPU (the compiled step was slower there, decisions 67)"
    if setting == "auto" and not compiler_found():
        return None, "auto: eager, Triton or a C compiler (cc, gcc or $CC) is missing on this host"
    if device.type != "cuda":
        return "default", f"{setting}: compiled on {device.type}"
    if world == 1:
        return "reduce-overhead", f"{setting}: a CUDA graph on cuda"
    return "default", f"{setting}: compiled on cuda, {world} workers (no CUDA graphs under DDP)"


def compiler_found() -> bool:
    return importlib.util.find_spec("triton") is not None and any(
        shutil.which(c) for c in (os.environ.get("CC", "cc"), "gcc", "clang"))


def optimizer_for(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with its fused kernel: on a GPU one launch for every parameter, not several per parameter; on the
    CPU host no different (18.9 against 19.0 ms a step, median of 5). Its rounding differs from the loop's by
    about 1e-7 after 40 steps."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


class Objective(nn.Module):
    """The network's loss on a batch: the unit that is compiled and that DDP wraps, so the loss is fused with
    the forward pass and DDP sees one module whose output is the loss."""

    def __init__(self, network: nn.Module, task: Task):
        super().__init__()
        self.network, self.task = network, task

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.task.loss(self.network(x_num, x_cat), y)


def step_objective(network: nn.Module, task: Task, job: TrainJob, device: torch.device,
                   world: int) -> tuple[nn.Module, DDP | None, dict[str, str | None]]:
    """(what a step calls with a batch, the DDP wrapper or None for a world of one, how it was compiled: the
    setting, the mode and why). DDP wraps the compiled module, as nanoGPT does; a world of one has nothing to
    all-reduce and no DDP hooks."""
    mode, why = compile_mode(job.compile, device, world)
    compiled = {"setting": job.compile, "mode": mode, "why": why}
    objective: nn.Module = Objective(network, task)
    if mode is not None:
        objective = torch.compile(objective, mode=mode)  # type: ignore[assignment]
    if world == 1:
        return objective, None, compiled
    ddp = DDP(objective, device_ids=[device.index] if device.type == "cuda" else None,
              gradient_as_bucket_view=True, bucket_cap_mb=job.bucket_cap_mb, static_graph=job.static_graph)
    return ddp, ddp, compiled
