"""The training worker: one process of a DistributedDataParallel job.

torchrun starts it locally and the Training Operator starts it in PyTorchJob pods; either way it reads
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT from the environment. Each epoch a worker loads
only the train chunks dealt to it (shards.py) as in-memory tensors (a per-row Dataset would make the step
Python-bound), shuffles them, and snapshots after every epoch (and every job.snapshot_every_steps optimizer
steps inside one) so a restarted job resumes where the snapshot was taken. Only rank 0 loads the val split: it
alone validates.

    python -m torch.distributed.run --nproc-per-node 2 -m components.train.worker --job DIR
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import sys
import time
from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from sklearn.metrics import roc_auc_score

from govtrain.components.train import shards
from govtrain.components.train.comm import CommMeter, attach
from govtrain.components.train.job import TrainJob, batch_size_for, optimizer_steps
from govtrain.components.train.runtime import device_name, optimizer_for, seed_everything, setup, step_objective
from govtrain.components.train.schedule import lr_factor
from govtrain.components.train.snapshots import PREVIOUS, SNAPSHOT, check_room, write_snapshot
from govtrain.model.features import FeatureSpec
from govtrain.model.network import build_network, save_model
from govtrain.model.task import Task
from govtrain.registry.runs import EpochLogger

log = logging.getLogger(__name__)

PROGRESS = "progress.jsonl"  # a line per epoch started (and per snapshot inside one), so redone work is countable


def restart_count() -> int:
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0))


def load_split(path: Path, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tensors = load_file(str(path))
    return tensors["x_num"].to(device), tensors["x_cat"].to(device), tensors["y"].to(device)


VAL_METRIC = {"binary": "val_auc", "multiclass": "val_accuracy", "regression": "val_rmse"}


def val_metric(task: Task, outputs: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """The task's validation metric: ROC AUC, accuracy, or RMSE in the target's units."""
    if task.kind == "binary":
        proba = torch.softmax(outputs, dim=1)[:, 1].cpu().numpy()
        return {"val_auc": float(roc_auc_score(y.cpu().numpy(), proba))}
    if task.kind == "multiclass":
        return {"val_accuracy": float((outputs.argmax(dim=1) == y.long()).float().mean())}
    return {"val_rmse": float(((outputs[:, 0] - y.float()) ** 2).mean().sqrt()) * task.std}


class Trainer:
    def __init__(self, job: TrainJob, job_dir: Path, rank: int, world: int, device: torch.device):
        self.job, self.rank, self.world, self.device = job, rank, world, device
        self.features = FeatureSpec(**json.loads((job_dir / "features.json").read_text()))
        self.task = Task(**json.loads((job_dir / "task.json").read_text()))
        self.job_dir, self.chunks = job_dir, shards.read_manifest(job_dir)
        self.val_data = load_split(job_dir / "val.safetensors", device) if rank == 0 else None
        self.val_bytes = sum(t.element_size() * t.nelement() for t in self.val_data) if self.val_data else 0
        seed_everything(job.seed)
        model = build_network(self.features, self.task, network=job.model, embedding_dim=job.embedding_dim,
                              hidden=job.hidden, numeric_embedding=job.numeric_embedding,
                              dropout=job.dropout, members=job.members).to(device)
        self.optimizer = optimizer_for(model, job.lr, job.weight_decay)
        # every rank takes the same number of steps: each steps through the largest share, padded (shards.py)
        shard_rows = self.share_rows = shards.share_rows(self.chunks["rows"], world, self.chunks["chunk_rows"])
        self.batch_size = batch_size_for(shard_rows, job.batch_size, job.min_steps_per_epoch)
        # the rule the train step planned "auto" epochs with (job.optimizer_steps)
        self.steps_per_epoch = optimizer_steps(shard_rows, self.batch_size, job.grad_accumulation)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(job, self.steps_per_epoch))
        self.snapshot_dir = job.checkpoint_dir
        self.epochs_run = 0
        self.history: list[dict[str, Any]] = []
        self.reads: list[dict[str, Any]] = []  # rank 0: which chunks each rank read, per epoch run here
        self.resumed_from: int | None = None
        # where a snapshot taken inside an epoch left it: the next micro-batch, and the loss and rows so far (all
        # ranks summed; rank 0 carries them on)
        self.position: dict[str, Any] | None = None
        self.resumed_at_step: int | None = None
        # The epoch with the lowest validation loss and its weights (rank 0 validates), kept in every snapshot
        # so a restarted job still restores it.
        self.best: dict[str, Any] = {"epoch": 0, "val_loss": float("inf"), "state": None}
        self.stop_reason = f"all {job.epochs} epochs ran"
        self._load_snapshot(model)
        check_room(self.snapshot_dir)  # a restart after a full disk stops here, not an epoch later
        self.module = model
        # what a step calls: the network and its loss, compiled where that pays, in DDP with 2+ workers
        self.objective, self.ddp, self.compiled = step_objective(model, self.task, job, device, world)
        self.meter: CommMeter | None = attach(self.ddp, job.comm_hook) if self.ddp is not None else None
        self.logger = EpochLogger(job.mlflow if rank == 0 else None)

    # --- snapshots ---------------------------------------------------------------------------
    def _load_snapshot(self, model: torch.nn.Module) -> None:
        for name in (SNAPSHOT, PREVIOUS):
            path = self.snapshot_dir / name
            if not path.is_file():
                continue
            try:
                snap = torch.load(path, map_location=self.device, weights_only=True)
                model.load_state_dict(snap["model"])
                self.optimizer.load_state_dict(snap["optimizer"])
                if "scheduler" in snap:
                    self.scheduler.load_state_dict(snap["scheduler"])
            except Exception as exc:  # a torn or corrupt file: fall back to the one before it
                log.warning("[rank %d] skipping unreadable snapshot %s: %s", self.rank, path, exc)
                continue
            self.epochs_run = int(snap["epochs_run"])
            self.history = json.loads(snap["history"])
            if "best" in snap:
                self.best = {"epoch": int(snap["best_epoch"]), "val_loss": float(snap["best_val_loss"]),
                             "state": snap["best"]}
            if "micro" in snap:
                self.position = {"micro": int(snap["micro"]), "loss_sum": float(snap["loss_sum"]),
                                 "seen": int(snap["seen"])}
                self.resumed_at_step = self.position["micro"]
            torch.set_rng_state(snap["rng"].cpu())
            if "cuda_rng" in snap and self.device.type == "cuda":
                torch.cuda.set_rng_state(snap["cuda_rng"].cpu(), self.device)
            self.resumed_from = self.epochs_run
            log.info("[rank %d] resumed from %s at epoch %d", self.rank, path, self.epochs_run)
            return

    def _save_snapshot(self, position: dict[str, Any] | None = None) -> None:
        """Durably, keeping the previous snapshot as a fallback (snapshots.py); `position` inside an epoch."""
        snap = {"model": self.module.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), **(position or {}),
                "epochs_run": self.epochs_run, "history": json.dumps(self.history), "rng": torch.get_rng_state()}
        if self.best["state"] is not None:
            snap |= {"best": self.best["state"], "best_epoch": self.best["epoch"],
                     "best_val_loss": self.best["val_loss"]}
        if self.device.type == "cuda":
            snap["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        write_snapshot(self.snapshot_dir, snap)

    # --- one epoch -----------------------------------------------------------------------------
    def _run_epoch(self, epoch: int) -> dict:
        self.module.train()
        mine = shards.deal(len(self.chunks["chunks"]), self.world, self.job.seed, epoch)[self.rank]
        (x_num, x_cat, y), held = shards.load_share(self.job_dir, self.chunks, mine, self.device)
        order = shards.epoch_order(len(y), self.share_rows, self.job.seed, epoch, self.rank, self.device)
        self._record_reads(epoch, mine, len(y), held)
        batch, accumulate = self.batch_size, self.job.grad_accumulation
        if self.meter is not None:
            self.meter.reset()
        # a job resumed inside this epoch starts at the snapshot's micro-batch; rank 0 carries the loss and rows
        # all ranks had summed by then
        position, self.position = self.position or {"micro": 0, "loss_sum": 0.0, "seen": 0}, None
        carried = self.rank == 0
        loss_sum = torch.tensor(position["loss_sum"] if carried else 0.0, device=self.device)
        seen, started = position["seen"] if carried else 0, time.perf_counter()
        use_bf16 = self.device.type == "cuda"
        starts = range(0, len(order), batch)
        for micro, start in enumerate(starts):
            if micro < position["micro"]:
                continue
            idx = order[start:start + batch]
            # the optimizer steps after `accumulate` micro-batches (or the epoch's last); gradients are
            # all-reduced only then, and each micro-batch's loss is scaled so the step sees their mean
            stepping = (micro + 1) % accumulate == 0 or micro == len(starts) - 1
            group = min(accumulate, len(starts) - micro // accumulate * accumulate)  # micro-batches in this step
            syncing = nullcontext() if stepping or self.ddp is None else self.ddp.no_sync()
            with syncing:
                with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = self.objective(x_num[idx], x_cat[idx], y[idx])
                (loss / group if group > 1 else loss).backward()
            if stepping:
                if self.meter is not None:
                    self.meter.backward_done()
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach() * len(idx)
            seen += len(idx)
            if stepping and self._snapshot_due(micro, len(starts)):
                self._snapshot_inside(epoch, micro + 1, loss_sum, seen)
        elapsed = time.perf_counter() - started
        totals = torch.stack([loss_sum, torch.tensor(float(seen), device=self.device)])
        dist.all_reduce(totals)
        stats = {"epoch": epoch + 1, "train_loss": float(totals[0] / totals[1]),
                 "lr_end": float(self.scheduler.get_last_lr()[0]),
                 "samples_per_second": (float(totals[1]) - position["seen"]) / elapsed, "seconds": elapsed,
                 "world_size": self.world}
        if self.meter is not None:
            stats |= self.meter.epoch_stats(elapsed)
        return stats

    def _snapshot_due(self, micro: int, micro_batches: int) -> bool:
        every, steps = self.job.snapshot_every_steps, (micro + 1) // self.job.grad_accumulation
        return every is not None and micro < micro_batches - 1 and steps % every == 0

    def _snapshot_inside(self, epoch: int, micro: int, loss_sum: torch.Tensor, seen: int) -> None:
        """A snapshot inside the epoch, after an optimizer step: every rank reaches it at the same micro-batch
        (the shares are padded alike), sums the loss and rows so far, and rank 0 writes them with the weights."""
        totals = torch.stack([loss_sum.detach().clone(), torch.tensor(float(seen), device=self.device)])
        dist.all_reduce(totals)
        if self.rank == 0:
            self._save_snapshot({"micro": micro, "loss_sum": float(totals[0]), "seen": int(totals[1])})
            self._progress({"epoch": epoch + 1, "snapshot_at_micro_batch": micro})

    def _record_reads(self, epoch: int, mine: list[int], rows: int, held: int) -> None:
        """Rank 0 keeps what every rank read this epoch: its chunks (and their digest), rows, padding, and the
        bytes of data it held (its train share; val, on rank 0 only)."""
        read = {"rank": self.rank, "chunks": mine, "digest": shards.digest(mine), "rows": rows,
                "padded_rows": max(self.share_rows - rows, 0), "train_bytes": held, "val_bytes": self.val_bytes}
        gathered: list[Any] = [None] * self.world
        dist.all_gather_object(gathered, read)
        if self.rank == 0:
            every = sorted({k for r in gathered for k in r["chunks"]})
            self.reads.append({"epoch": epoch + 1, "ranks": gathered,
                               "chunks_unread": len(self.chunks["chunks"]) - len(every)})

    def _progress(self, line: dict[str, Any]) -> None:
        """A line of progress.jsonl: an epoch started, or a snapshot taken inside one."""
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        with open(self.snapshot_dir / PROGRESS, "a") as progress:
            progress.write(json.dumps({**line, "restart": restart_count(), "at": datetime.now(UTC).isoformat()}) + "\n")

    @torch.no_grad()
    def _validate(self) -> dict:
        module = self.module
        module.eval()
        assert self.val_data is not None  # rank 0 alone validates
        x_num, x_cat, y = self.val_data
        logits = torch.cat([module(x_num[i:i + 65536], x_cat[i:i + 65536]) for i in range(0, len(y), 65536)]).float()
        return {"val_loss": float(self.task.loss(logits, y)), **val_metric(self.task, logits, y)}

    def _track_best(self, stats: dict) -> bool:
        """Keep the weights of the best validation loss; True when training should stop early. The epochs of the
        learning rate's warm-up are not candidates (unless they are all there is): on a small table's val split
        (airquality: 17 rows) the barely trained first epoch could win by chance and ship."""
        warming = stats["epoch"] <= math.floor(self.job.warmup_epochs) and stats["epoch"] < self.job.epochs
        if stats["val_loss"] < self.best["val_loss"] and not warming:
            state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.best = {"epoch": stats["epoch"], "val_loss": stats["val_loss"], "state": state}
        if self._patience_spent(stats["epoch"]):
            self.stop_reason = (f"stopped early after epoch {stats['epoch']}: no lower validation loss for "
                                f"{self.job.early_stopping_patience} epochs")
            return True
        return False

    def _patience_spent(self, epoch: int) -> bool:
        patience = self.job.early_stopping_patience
        return patience is not None and epoch - self.best["epoch"] >= patience

    def train(self, out_dir: Path) -> None:
        if self.history and self._resumed_into_a_stop():
            return self._finish(out_dir)
        for epoch in range(self.epochs_run, self.job.epochs):
            if self.rank == 0:
                self._progress({"epoch": epoch + 1})
            stats = self._run_epoch(epoch)
            self.epochs_run = epoch + 1
            stop = torch.zeros(1, device=self.device)
            if self.rank == 0:
                stats |= self._validate()
                stats["restart_count"] = restart_count()
                self.history.append(stats)
                stop[0] = float(self._track_best(stats))
                self._save_snapshot()
                self.logger.log(stats)
                name = VAL_METRIC[self.task.kind]
                log.info("epoch %d/%d loss %.4f %s %.4f %.0f samples/s", stats["epoch"], self.job.epochs,
                         stats["train_loss"], name, stats[name], stats["samples_per_second"])
            dist.broadcast(stop, 0)  # rank 0 decides; every rank stops at the same epoch
            if stop.item():
                if self.rank == 0:
                    log.info(self.stop_reason)
                break
        self._finish(out_dir)

    def _resumed_into_a_stop(self) -> bool:
        """A job restarted after its early stop was decided (and snapshotted) does not train on."""
        stop = torch.zeros(1, device=self.device)
        if self.rank == 0:
            stop[0] = float(self._patience_spent(self.history[-1]["epoch"]))
        dist.broadcast(stop, 0)
        if stop.item() and self.rank == 0:
            self.stop_reason = f"stopped early after epoch {self.history[-1]['epoch']} (decided before the restart)"
        return bool(stop.item())

    def _finish(self, out_dir: Path) -> None:
        if self.rank != 0:
            return
        kept = "last"
        if self.job.keep_best and self.best["state"] is not None:
            self.module.load_state_dict(self.best["state"])
            kept = "best"
        save_model(self.module, self.features, out_dir, embedding_dim=self.job.embedding_dim,
                   hidden=self.job.hidden, task=self.task, network=self.job.model,
                   numeric_embedding=self.job.numeric_embedding, dropout=self.job.dropout,
                   members=self.job.members)
        progress_file = self.snapshot_dir / PROGRESS
        lines = progress_file.read_text().splitlines() if progress_file.is_file() else []
        progress = [line for line in lines if "snapshot_at_micro_batch" not in line]  # epochs started
        result = {"history": self.history, "epochs": self.epochs_run, "planned_epochs": self.job.epochs,
                  "world_size": self.world,
                  "resumed_from_epoch": self.resumed_from, "resumed_at_micro_batch": self.resumed_at_step,
                  "snapshots_inside_epochs": len(lines) - len(progress), "restart_count": restart_count(),
                  "epochs_started": len(progress), "epochs_redone": len(progress) - self.epochs_run,
                  "device": str(self.device), "device_name": device_name(self.device),
                  "compile": self.compiled, "optimizer": "AdamW, fused",
                  "best_epoch": self.best["epoch"], "best_val_loss": self.best["val_loss"], "kept": kept,
                  "stop_reason": self.stop_reason,
                  "communication": {"bucket_cap_mb": self.job.bucket_cap_mb, "comm_hook": self.job.comm_hook,
                                    "static_graph": self.job.static_graph,
                                    "grad_accumulation": self.job.grad_accumulation,
                                    "measured": "rank 0, per epoch" if self.world > 1 else "one worker: none"},
                  "schedule": {"kind": self.job.lr_schedule, "peak_lr": self.job.lr,
                               "warmup_epochs": self.job.warmup_epochs, "steps_per_epoch": self.steps_per_epoch,
                               "batch_size_per_worker": self.batch_size},
                  "network": {"numeric_embedding": self.job.numeric_embedding, "dropout": self.job.dropout,
                              "members": self.job.members,
                              "embedding_dim": self.job.embedding_dim, "hidden": self.job.hidden},
                  "data": self._data_summary()}
        (out_dir / "result.json").write_text(json.dumps(result, indent=2))

    def _data_summary(self) -> dict:
        """How the train split reached the ranks: the chunk plan, and per epoch run in this incarnation what
        each rank read (a resumed job lists the epochs after its restart)."""
        return {"rows": self.chunks["rows"], "chunks": len(self.chunks["chunks"]),
                "chunk_rows": self.chunks["chunk_rows"], "rows_per_rank_per_epoch": self.share_rows,
                "rule": self.chunks["rule"],
                "chunks_sha256": hashlib.sha256(json.dumps([c["sha256"] for c in self.chunks["chunks"]])
                                                .encode()).hexdigest(),
                "chunks_unread": max((r["chunks_unread"] for r in self.reads), default=0),
                "bytes_largest_rank": max((x["train_bytes"] + x["val_bytes"] for r in self.reads
                                           for x in r["ranks"]), default=0),
                "train_bytes_per_rank": [max(x["train_bytes"] for r in self.reads for x in r["ranks"]
                                             if x["rank"] == k) for k in range(self.world)] if self.reads else [],
                "val_bytes_rank_0": self.val_bytes,
                "epochs": self.reads}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, required=True, help="folder written by the train step")
    parser.add_argument("--out", type=Path, required=True, help="where rank 0 writes the model")
    args = parser.parse_args()
    # torchrun gathers each worker's stdout into the train step's log (the evidence file train.log).
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    job = TrainJob.read(args.job)
    torch.set_num_threads(job.threads_per_worker)
    rank, world, device = setup()
    try:
        Trainer(job, args.job, rank, world, device).train(args.out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
