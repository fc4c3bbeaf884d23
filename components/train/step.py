"""train: fit feature statistics on train, run the DDP workers, keep the model and the evidence.

The step itself does no gradient work: it writes the shard tensors and a job file, then starts
`torchrun` (backend "local") so that N worker processes train with DistributedDataParallel.
"""

import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import save_file

from components.train.features import FeatureSpec
from components.train.model import CONFIG_FILE, WEIGHTS_FILE
from governance.evidence import StepEvidence
from pipelines.config import Config


class TrainingError(RuntimeError):
    pass


def write_job(config: Config, split_paths: dict[str, Path], job_dir: Path, checkpoint_dir: Path) -> FeatureSpec:
    spec, training = config.dataset, config.training
    train = pd.read_parquet(split_paths["train"])
    features = FeatureSpec.fit(train, spec.numeric, spec.categorical)
    job_dir.mkdir(parents=True, exist_ok=True)
    for name, frame in (("train", train), ("val", pd.read_parquet(split_paths["val"]))):
        x_num, x_cat = features.tensors(frame)
        y = torch.from_numpy(frame[spec.target].to_numpy().astype("float32"))
        save_file({"x_num": x_num, "x_cat": x_cat, "y": y}, str(job_dir / f"{name}.safetensors"))
    (job_dir / "features.json").write_text(json.dumps(features.to_dict()))
    job = training.model_dump(mode="json", include={"epochs", "batch_size", "lr", "weight_decay", "hidden",
                                                    "embedding_dim", "threads_per_worker", "seed"})
    job["checkpoint_dir"] = str(checkpoint_dir)
    (job_dir / "job.json").write_text(json.dumps(job, indent=2))
    return features


def torchrun_command(config: Config, job_dir: Path, model_dir: Path) -> list[str]:
    training = config.training
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(training.workers), "--max-restarts", str(training.max_restarts),
            "-m", "components.train.worker", "--job", str(job_dir), "--out", str(model_dir)]


def run_logged(command: list[str], log_path: Path) -> int:
    """Run a command, echoing its output and keeping a copy as evidence."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "PYTHONUNBUFFERED": "1"}
    with open(log_path, "w") as log, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                      text=True, env=env) as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            sys.stdout.write(line)
            log.write(line)
        return proc.wait()


def worker_error(log_path: Path) -> str:
    """The first exception a worker raised, from torchrun's "[rankN]: XError: ..." lines."""
    for line in log_path.read_text(errors="replace").splitlines():
        match = re.search(r"\[rank(\d+)\]: (\w+(?:Error|Exception): .*)", line)
        if match:
            return f"rank {match.group(1)}: {match.group(2)}"
    return "no worker error found; see train.log"


def train(config: Config, split_paths: dict[str, Path], parent_evidence: Path, model_dir: Path,
          evidence_dir: Path, run_id: str) -> dict:
    training = config.training
    if training.backend != "local":
        raise TrainingError("training.backend 'pytorchjob' is not available yet; use 'local'")
    evidence = StepEvidence("train", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    for name in ("train", "val"):
        evidence.add_input(f"data/{name}.parquet", split_paths[name])
    work = Path(tempfile.mkdtemp(prefix="govtrain-train-"))
    job_dir = work / "job"
    checkpoint_dir = training.checkpoint_dir / run_id if training.checkpoint_dir else work / "checkpoints"
    write_job(config, split_paths, job_dir, checkpoint_dir)
    model_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    log_path = work / "train.log"
    code = run_logged(torchrun_command(config, job_dir, model_dir), log_path)
    wall = time.perf_counter() - started
    if code != 0 or not (model_dir / "result.json").is_file():
        raise TrainingError(f"training workers failed (exit {code}): {worker_error(log_path)}")

    result = json.loads((model_dir / "result.json").read_text())
    last = result["history"][-1]
    evidence.metrics = {
        "epochs": result["epochs"], "world_size": result["world_size"], "final_train_loss": last["train_loss"],
        "final_val_auc": last["val_auc"], "samples_per_second": last["samples_per_second"],
        "wall_seconds": round(wall, 3), "worker_seconds": round(wall * result["world_size"], 3),
        "restart_count": result["restart_count"],
    }
    evidence.details = {"device": result["device"], "resumed_from_epoch": result["resumed_from_epoch"],
                        "backend": training.backend, "history": result["history"]}
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        evidence.add_file(name, model_dir / name, kind="model")
    evidence.add_file("train.log", log_path, kind="log")
    record = evidence.finish("pass")
    shutil.rmtree(work, ignore_errors=True)  # shard tensors and snapshots are derived; the digests above name the source
    return record
