"""train: fit feature statistics on train, run the DDP workers, keep the model and the evidence.

The step itself does no gradient work: it writes the shard tensors and a job file, then either starts
`torchrun` here (backend "local") or submits a PyTorchJob (Training Operator v1) or a TrainJob (Trainer
v2) whose pods run the same worker under torchrun, waits for it, and records what ran, where, for how
long, and at what cost.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import torch
import yaml
from safetensors.torch import save_file

from govtrain.components.train.costmodel import LINKS, predicted_against_measured
from govtrain.components.train.fitting import anchors_from, fit_train, rows_of, tensors
from govtrain.components.train.job import MlflowTarget, TrainJob, auto_epochs, auto_lr, batch_size_for, optimizer_steps
from govtrain.components.train.shards import share_rows, write_chunks
from govtrain.core.config import Config, TrainingSpec
from govtrain.governance.evidence import Record, StepEvidence
from govtrain.governance.hashing import sha256_file
from govtrain.model import network as network_module
from govtrain.model.features import FeatureSpec
from govtrain.model.network import CONFIG_FILE, DEFAULT_NETWORK, WEIGHTS_FILE, factory_of, factory_source
from govtrain.registry.runs import pipeline_run

# torchrun shares its rendezvous TCPStore with the workers' process group by default; after a restart the
# new workers can then read the dead workers' gloo/NCCL addresses and fail to connect
# (pytorch/pytorch#135712). A store of their own per incarnation avoids that.
RESTART_SAFE_ENV = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
MANIFEST_FILE = "training-job.yaml"  # the PyTorchJob or TrainJob as submitted


class TrainingError(RuntimeError):
    pass


def write_job(config: Config, split_paths: dict[str, Path], job_dir: Path, checkpoint_dir: Path,
              mlflow_run: MlflowTarget | None = None) -> FeatureSpec:
    spec, training = config.dataset, config.training
    if training.model != DEFAULT_NETWORK:  # here, not in every worker: one line instead of a torchrun trace
        try:
            factory_of(training.model)
        except (ImportError, AttributeError) as exc:
            raise TrainingError(f"training.model {training.model!r} cannot be imported here: {exc}") from exc
    # A pass for the statistics, a pass for the tensors: the split is never held whole (fitting.py)
    features, task, counts = fit_train(split_paths["train"], spec.numeric, spec.categorical, spec.target, spec.task,
                                       spec.positive_label, training.min_category_rows,
                                       training.numeric_embedding.max_code_values)
    train_rows = rows_of(split_paths["train"])
    job_dir.mkdir(parents=True, exist_ok=True)
    # chunks each rank reads its own share of (shards.py); val is read by rank 0 alone, which validates
    write_chunks(job_dir, tensors(split_paths["train"], features, task, spec.target, "train split: "), train_rows,
                 training.workers, training.seed)
    save_file(joined(tensors(split_paths["val"], features, task, spec.target, "val split: "),
                     rows_of(split_paths["val"])), str(job_dir / "val.safetensors"))
    (job_dir / "features.json").write_text(json.dumps(features.to_dict()))
    (job_dir / "task.json").write_text(json.dumps(task.to_dict()))
    accumulation = grad_accumulation(training, train_rows)
    epochs, lr = epochs_and_lr(training, train_rows, accumulation)
    copied = training.model_dump(include={"model", "batch_size", "weight_decay", "hidden", "early_stopping_patience",
                                          "keep_best", "embedding_dim", "threads_per_worker", "seed", "dropout",
                                          "lr_schedule", "warmup_epochs", "min_steps_per_epoch",
                                          "snapshot_every_steps", "compile"})
    job = TrainJob(epochs=epochs, lr=lr, **copied, members=members(training, train_rows),
                   numeric_embedding=numeric_embedding(training, train_rows, counts, features),
                   checkpoint_dir=checkpoint_dir, mlflow=mlflow_run, grad_accumulation=accumulation,
                   **training.ddp.model_dump())
    job.write(job_dir)
    return features


def joined(batches: Iterator[dict[str, torch.Tensor]], rows: int) -> dict[str, torch.Tensor]:
    """The batches as one tensor each, filled in place: the split's tensors once, not again for a concatenation."""
    out: dict[str, torch.Tensor] = {}
    start = 0
    for batch in batches:
        for name, values in batch.items():
            if name not in out:
                out[name] = torch.empty((rows, *values.shape[1:]), dtype=values.dtype)
            out[name][start:start + len(values)] = values
        start += len(batch["y"])
    return out


def epochs_and_lr(training: TrainingSpec, train_rows: int, accumulation: int) -> tuple[int, float]:
    """The job's epochs and peak learning rate: the config's numbers, or "auto" resolved from the batch and the
    optimizer steps an epoch takes on each of training.workers shards (job.auto_epochs, job.auto_lr)."""
    shard = share_rows(train_rows, training.workers)  # as the workers will step through it (shards.py)
    batch = batch_size_for(shard, training.batch_size, training.min_steps_per_epoch)
    epochs = training.epochs
    if epochs == "auto":
        epochs = auto_epochs(optimizer_steps(shard, batch, accumulation))
    return epochs, auto_lr(batch) if training.lr == "auto" else training.lr


AUTO_ACCUMULATION, AUTO_ACCUMULATION_ROWS = 4, 100_000


def grad_accumulation(training: TrainingSpec, train_rows: int) -> int:
    """Micro-batches per optimizer step; "auto" accumulates only where it pays and costs no optimizer steps a
    small table needs: with more than one worker, each holding AUTO_ACCUMULATION_ROWS train rows or more."""
    if training.grad_accumulation != "auto":
        return training.grad_accumulation
    shard = train_rows // training.workers
    return AUTO_ACCUMULATION if training.workers > 1 and shard >= AUTO_ACCUMULATION_ROWS else 1


AUTO_MEMBERS, AUTO_MEMBERS_ROWS = 4, 10_000


def members(training: TrainingSpec, train_rows: int) -> int:
    """Networks in the ensemble; "auto": AUTO_MEMBERS below AUTO_MEMBERS_ROWS train rows (where a single
    network's luck of initialisation moved a small test set's score by more than its gate's margin: cowles,
    diabetes), else 1. A user's factory (training.model) is one network."""
    if training.model != "mlp":
        return 1
    if training.members != "auto":
        return training.members
    return AUTO_MEMBERS if train_rows < AUTO_MEMBERS_ROWS else 1


def numeric_embedding(training: TrainingSpec, train_rows: int, counts: dict[str, pd.Series | None],
                      features: FeatureSpec) -> dict | None:
    """The numeric embedding the job trains with (None: standardised values); "auto" decides by table size."""
    spec = training.numeric_embedding
    kind = spec.kind if spec.kind != "auto" else ("periodic" if train_rows >= spec.auto_min_rows else "none")
    if kind == "none":
        return None
    return {"kind": kind, "frequencies": spec.frequencies, "sigma": spec.sigma, "dim": spec.dim,
            "codes": anchors_from(counts, features, training.min_category_rows)}


def torchrun_command(config: Config, job_dir: Path, model_dir: Path) -> list[str]:
    training = config.training
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(training.workers), "--max-restarts", str(training.max_restarts),
            "-m", "govtrain.components.train.worker", "--job", str(job_dir), "--out", str(model_dir)]


def run_logged(command: list[str], log_path: Path, threads: int = 1) -> int:
    """Run a command, echoing its output and keeping a copy as evidence."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", **RESTART_SAFE_ENV}
    with open(log_path, "w") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, env=env) as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            sys.stdout.write(line)
            sys.stdout.flush()  # a pipe is block-buffered: the run's progress lines would come in one burst
            log.write(line)
        return proc.wait()


def tee(log_path: Path) -> Callable[[str], None]:
    lock = threading.Lock()

    def write(line: str) -> None:
        with lock, open(log_path, "a") as log:
            sys.stdout.write(line + "\n")  # the pods' log lines, relayed to the step's own output
            sys.stdout.flush()
            log.write(line + "\n")
    return write


def worker_error(log_path: Path) -> str:
    """The first exception a worker raised, from torchrun's "[rankN]: XError: ..." lines."""
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"\[rank(\d+)\]: (\w+(?:Error|Exception): .*)", line)
        if match:
            return f"rank {match.group(1)}: {match.group(2)}"
    return "no worker error found; see train.log"


def train_local(config: Config, split_paths: dict[str, Path], model_dir: Path, run_id: str, work: Path,
                mlflow_run: MlflowTarget, log_path: Path) -> None:
    training = config.training
    job_dir = work / "job"
    checkpoint_dir = training.checkpoint_dir / run_id if training.checkpoint_dir else work / "checkpoints"
    write_job(config, split_paths, job_dir, checkpoint_dir, mlflow_run)
    code = run_logged(torchrun_command(config, job_dir, model_dir), log_path, training.threads_per_worker)
    if code != 0 or not (model_dir / "result.json").is_file():
        raise TrainingError(f"training workers failed (exit {code}): {worker_error(log_path)}")


class ClusterJobFailed(TrainingError):
    """The training job failed on the cluster; its replica logs were collected before it was deleted."""

    def __init__(self, message: str, logs: list[Path]):
        super().__init__(message)
        self.logs = logs


def train_on_cluster(config: Config, split_paths: dict[str, Path], model_dir: Path, run_id: str, work: Path,
                     mlflow_run: MlflowTarget, log_path: Path) -> dict:
    """Write the job to the shared work volume, run it as a PyTorchJob or a TrainJob, copy the model back."""
    from govtrain.components.train.cluster_job import PYTORCHJOB, TRAINJOB, pod_paths
    from govtrain.components.train.launcher import JobError, JobLauncher, api_client, owner_reference
    from govtrain.components.train.pytorchjob import build_pytorchjob
    from govtrain.components.train.trainjob import build_trainjob

    training, cluster = config.training, config.cluster
    pytorchjob = training.backend == "pytorchjob"
    kind, spec = (PYTORCHJOB, training.pytorchjob) if pytorchjob else (TRAINJOB, training.trainjob)
    paths = {k: Path(v) for k, v in pod_paths(config, run_id).items()}
    if not Path(cluster.work_mount).is_dir():
        raise TrainingError(f"cluster.work_mount {cluster.work_mount} is not mounted in this step "
                            f"(the compiled pipeline mounts claim {cluster.work_volume_claim!r} there)")
    shutil.rmtree(paths["model"], ignore_errors=True)  # a retried step must not pick up a stale model
    # A pod cannot reach a sqlite file on this machine: only a tracking server gets per-epoch metrics.
    remote = mlflow_run if mlflow_run.tracking_uri.startswith(("http://", "https://")) else None
    write_job(config, split_paths, paths["job"], paths["checkpoints"], remote)

    cancel = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # KFP cancels a run by deleting the step's pod: SIGTERM. Stop waiting and delete the job.
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    try:
        api = api_client()
        owner = owner_reference(api, cluster.namespace, log=tee(log_path))
        build = build_pytorchjob if kind is PYTORCHJOB else build_trainjob
        manifest = build(config, run_id, remote.tracking_uri if remote else None, owner=owner)
        (work / MANIFEST_FILE).write_text(yaml.safe_dump(manifest, sort_keys=False))
        launcher = JobLauncher(api, kind, cluster.namespace, spec.poll_seconds, log=tee(log_path),
                               logs_dir=work / "replica-logs")
        final = launcher.run(manifest, timeout_seconds=spec.active_deadline_seconds + 600, cancel=cancel)
    except JobError as exc:
        raise ClusterJobFailed(str(exc), exc.logs) from exc
    if not (paths["model"] / "result.json").is_file():
        raise TrainingError(f"{kind.kind} succeeded but wrote no model to {paths['model']} (is the claim "
                            f"ReadWriteMany?)")
    shutil.copytree(paths["model"], model_dir, dirs_exist_ok=True)
    return final.get("status", {})


def train(config: Config, split_paths: dict[str, Path], parent_evidence: Path, model_dir: Path,
          evidence_dir: Path, run_id: str) -> Record:
    evidence = StepEvidence("train", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    for name in ("train", "val"):
        evidence.add_input(f"data/{name}.parquet", split_paths[name])
    mlflow_run = MlflowTarget(tracking_uri=config.tracking_uri,
                              run_id=pipeline_run(config.tracking_uri, config.registry.experiment, run_id))
    work = Path(tempfile.mkdtemp(prefix="govtrain-train-"))
    log_path = work / "train.log"
    model_dir.mkdir(parents=True, exist_ok=True)

    try:
        return _train_and_record(config, split_paths, model_dir, run_id, work, mlflow_run, log_path, evidence)
    except ClusterJobFailed as exc:
        # On a cluster the record is mirrored to the work volume, so the exit handler seals the failure
        # with every replica's log in it; then the step still fails.
        evidence.details = {"backend": config.training.backend, "error": str(exc)}
        for path in exc.logs:
            evidence.add_file(f"replica-logs/{path.name}", path, kind="log")
        if (work / MANIFEST_FILE).is_file():
            evidence.add_file(MANIFEST_FILE, work / MANIFEST_FILE, kind="manifest")
        if log_path.is_file():
            evidence.add_file("train.log", log_path, kind="log")
        evidence.finish("error")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)  # shard tensors and snapshots are derived; the digests name the source


def pooled_categories(model_dir: Path, min_rows: int) -> dict:
    rare = json.loads((model_dir / CONFIG_FILE).read_text())["features"].get("rare", {})
    return {"min_category_rows": min_rows,
            "columns": {column: len(values) for column, values in rare.items() if values}}


def network_evidence(network: str, evidence: StepEvidence) -> dict[str, str]:
    """Which network trained, and the digest of the source that defines it (a user's factory or model/network.py),
    which is also an input of the record."""
    source = factory_source(network) if network != DEFAULT_NETWORK else Path(network_module.__file__)
    evidence.add_input(f"code/{source.name}", source)
    return {"model": network, "source_file": source.name, "source_sha256": sha256_file(source)}


def _train_and_record(config: Config, split_paths: dict[str, Path], model_dir: Path, run_id: str, work: Path,
                      mlflow_run: MlflowTarget, log_path: Path, evidence: StepEvidence) -> Record:
    training = config.training
    started = time.perf_counter()
    job_status = None
    if training.backend == "local":
        train_local(config, split_paths, model_dir, run_id, work, mlflow_run, log_path)
    else:
        job_status = train_on_cluster(config, split_paths, model_dir, run_id, work, mlflow_run, log_path)
    wall = time.perf_counter() - started

    result = json.loads((model_dir / "result.json").read_text())
    last = result["history"][-1]
    worker_seconds = wall * result["world_size"]
    gpu_seconds = worker_seconds if result["device"].startswith("cuda") else 0.0
    evidence.metrics = {
        "epochs": result["epochs"], "world_size": result["world_size"], "final_train_loss": last["train_loss"],
        **{f"final_{k}": v for k, v in last.items() if k.startswith("val_") and k != "val_loss"},
        "samples_per_second": last["samples_per_second"],
        "wall_seconds": round(wall, 3), "worker_seconds": round(worker_seconds, 3),
        "gpu_seconds": round(gpu_seconds, 3),
        "cost": round(worker_seconds / 3600 * training.price_per_worker_hour, 6),
        "restart_count": result["restart_count"], "epochs_redone": result["epochs_redone"],
        "best_epoch": result["best_epoch"], "best_val_loss": result["best_val_loss"],
        # what a step spent on communication nothing hid (the last epoch, rank 0); absent on one worker
        **{k: last[k] for k in ("comm_share", "comm_overlap", "comm_bytes_per_step") if k in last},
        **({"chunks_unread": result["data"]["chunks_unread"],
            "data_bytes_largest_rank": result["data"]["bytes_largest_rank"]} if result.get("data") else {}),
    }
    evidence.details = {"backend": training.backend, "device": result["device"], "device_name": result["device_name"],
                        # the setting beside what the worker's device made of it (runtime.py)
                        "compile": result.get("compile"), "optimizer": result.get("optimizer"),
                        "resumed_from_epoch": result["resumed_from_epoch"], "epochs_started": result["epochs_started"],
                        "resumed_at_micro_batch": result.get("resumed_at_micro_batch"),
                        "snapshots_inside_epochs": result.get("snapshots_inside_epochs", 0),
                        "price_per_worker_hour": training.price_per_worker_hour, "mlflow_run_id": mlflow_run.run_id,
                        "history": result["history"],
                        # the MLP's settings describe govtrain's network only, not a user's factory
                        "network": {**network_evidence(training.model, evidence),
                                    **(result.get("network", {}) if training.model == DEFAULT_NETWORK else {})},
                        # categories on fewer than min_category_rows train rows, sharing the unknown embedding
                        "pooled_categories": pooled_categories(model_dir, training.min_category_rows),
                        # what the config said ("auto" or a number) beside what the workers ran
                        "schedule": {**(result.get("schedule") or {}), "epochs_setting": training.epochs,
                                     "lr_setting": training.lr, "planned_epochs": result.get("planned_epochs")},
                        "kept_epoch": result["kept"],
                        "communication": {**(result.get("communication") or {}),
                                          "grad_accumulation_setting": training.grad_accumulation,
                                          "model": predicted_against_measured(last, LINKS["loopback"])
                                          if training.backend == "local" and result["device"] == "cpu" else None},
                        "stop_reason": result["stop_reason"],
                        # which chunks of the train split each rank read, per epoch (shards.py)
                        "data": result.get("data")}
    if job_status is not None:
        evidence.details["job_conditions"] = job_status.get("conditions", [])
        evidence.add_file(MANIFEST_FILE, work / MANIFEST_FILE, kind="manifest")
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        evidence.add_file(name, model_dir / name, kind="model")
    evidence.add_file("train.log", log_path, kind="log")
    return evidence.finish("pass")
