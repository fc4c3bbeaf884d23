"""Snapshots each epoch: a second start resumes from the newest readable one, and a killed worker is
restarted by torchrun and resumes from the snapshot."""
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from govtrain.components.prepare import prepare
from govtrain.components.train.step import train

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers


def test_training_resumes_from_the_newest_readable_snapshot(small_data, write_config, tmp_path):
    checkpoints = tmp_path / "ckpt"
    config = write_config(small_data.data, training={"epochs": 2, "checkpoint_dir": str(checkpoints)})
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "resume")
    first = train(config, paths, tmp_path / "ev-prepare", tmp_path / "m1", tmp_path / "ev-1", "resume")
    assert first["details"]["resumed_from_epoch"] is None
    snapshots = checkpoints / "resume"
    assert (snapshots / "snapshot.pt").is_file() and (snapshots / "snapshot.prev.pt").is_file()

    # Corrupt the newest snapshot (epoch 2): the trainer must fall back to the previous one (epoch 1).
    (snapshots / "snapshot.pt").write_bytes(b"torn write")
    longer = write_config(small_data.data, training={"epochs": 3, "checkpoint_dir": str(checkpoints)})
    second = train(longer, paths, tmp_path / "ev-prepare", tmp_path / "m2", tmp_path / "ev-2", "resume")
    assert second["details"]["resumed_from_epoch"] == 1
    history = second["details"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]  # epoch 1 from the snapshot, 2 and 3 redone/new
    assert history[0]["train_loss"] == first["details"]["history"][0]["train_loss"]
    assert "skipping unreadable snapshot" in (tmp_path / "ev-2" / "files" / "train" / "train.log").read_text()


def descendants(pid: int) -> list[int]:
    """Every process below pid, from /proc/<pid>/task/*/children (the kernel's own parent links)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            queue += children
    return found


def worker_pids(local_rank: int) -> list[int]:
    """PIDs of this test's own torchrun workers with this LOCAL_RANK: only descendants of this process,
    so another govtrain training on the machine is never a candidate."""
    found = []
    for pid in descendants(os.getpid()):
        proc = Path(f"/proc/{pid}")
        try:
            if b"govtrain.components.train.worker" not in (proc / "cmdline").read_bytes():
                continue
            if f"LOCAL_RANK={local_rank}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(pid)
        except (OSError, ValueError):
            continue
    return found


def kill_rank_1_once(progress: Path, marker: str, thread: threading.Thread, outcome: dict) -> None:
    """SIGKILL this test's rank-1 worker as soon as the progress file shows `marker`, then wait for the run."""
    deadline = time.time() + 120
    while not (progress.is_file() and marker in progress.read_text()):
        assert time.time() < deadline and thread.is_alive(), f"never reached {marker}: {outcome}"
        time.sleep(0.005)
    victims = worker_pids(local_rank=1)
    assert len(victims) == 1
    os.kill(victims[0], signal.SIGKILL)
    thread.join(timeout=120)


def test_a_worker_killed_mid_training_is_restarted_and_resumes(small_data, write_config, tmp_path):
    checkpoints = tmp_path / "ckpt"
    config = write_config(small_data.data, training={"epochs": 5, "batch_size": 16, "max_restarts": 2,
                                                     "early_stopping_patience": None,  # every epoch runs
                                                     "checkpoint_dir": str(checkpoints)})
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "fault")
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["record"] = train(config, paths, tmp_path / "ev-prepare", tmp_path / "m", tmp_path / "ev", "fault")
        except Exception as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    progress = checkpoints / "fault" / "progress.jsonl"
    kill_rank_1_once(progress, '"epoch": 3', thread, outcome)  # epochs 1-2 snapshotted, 3 running

    assert "error" not in outcome, outcome.get("error")
    record = outcome["record"]
    assert record["metrics"]["restart_count"] == 1  # the evidence says a restart happened
    assert record["metrics"]["epochs"] == 5
    assert [h["epoch"] for h in record["details"]["history"]] == [1, 2, 3, 4, 5]
    assert record["metrics"]["epochs_redone"] <= 1
    assert record["details"]["resumed_from_epoch"] in (2, 3)
    restarts = [json.loads(line)["restart"] for line in progress.read_text().splitlines()]
    assert restarts[0] == 0 and restarts[-1] == 1
    assert "resumed from" in (tmp_path / "ev" / "files" / "train" / "train.log").read_text()


def test_training_stops_early_and_ships_the_best_epoch_which_survives_a_restart(tmp_path):
    """309 train rows and a wide network overfit within a few epochs: training stops `patience` epochs after
    the lowest validation loss, ships that epoch's weights, and a restart after the stop keeps them."""
    import pandas as pd
    import torch
    import yaml
    from safetensors.torch import load_file

    from govtrain.core.config import load_config
    from govtrain.model.network import LoadedModel
    from tests.test_tasks import diabetes

    frame = diabetes(tmp_path)
    checkpoints = tmp_path / "ckpt"
    (tmp_path / "d.yaml").write_text(yaml.safe_dump({
        "dataset": {"path": "diabetes.csv", "target": "target", "numeric": [c for c in frame if c != "target"]},
        "training": {"epochs": 60, "batch_size": 16, "lr": 0.005, "early_stopping_patience": 3,
                     "checkpoint_dir": str(checkpoints)}}))
    config = load_config(tmp_path / "d.yaml")
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "stop")
    record = train(config, paths, tmp_path / "ev-prepare", tmp_path / "m1", tmp_path / "ev-1", "stop")
    history, details = record["details"]["history"], record["details"]
    losses = [h["val_loss"] for h in history]
    best = losses.index(min(losses)) + 1
    assert len(history) == best + 3 < 60 and details["stop_reason"].startswith(f"stopped early after epoch {best + 3}")
    assert record["metrics"]["best_epoch"] == best and details["kept_epoch"] == "best"
    snapshot = torch.load(checkpoints / "stop" / "snapshot.pt", weights_only=True)
    assert snapshot["best_epoch"] == best and snapshot["epochs_run"] == best + 3
    shipped = load_file(str(tmp_path / "m1" / "model.safetensors"))
    assert all(torch.equal(shipped[k], snapshot["best"][k]) for k in shipped)
    assert not all(torch.equal(shipped[k], snapshot["model"][k]) for k in shipped)  # not the last epoch's
    val = pd.read_parquet(paths["val"])
    model = LoadedModel(tmp_path / "m1")
    y = torch.tensor(model.task.encode(val["target"]))
    loss = float(model.task.loss(model.logits(*model.features.tensors(val)), y))
    assert loss == pytest.approx(min(losses), rel=1e-4)  # the shipped weights give the best validation loss

    again = train(config, paths, tmp_path / "ev-prepare", tmp_path / "m2", tmp_path / "ev-2", "stop")
    assert again["details"]["resumed_from_epoch"] == best + 3 and len(again["details"]["history"]) == best + 3
    assert "decided before the restart" in again["details"]["stop_reason"]
    assert (tmp_path / "m2" / "model.safetensors").read_bytes() == (tmp_path / "m1" / "model.safetensors").read_bytes()


def test_a_worker_killed_inside_an_epoch_resumes_at_the_snapshot_and_ends_with_the_same_weights(
        small_data, write_config, tmp_path):
    """training.snapshot_every_steps: a snapshot after every 2 optimizer steps; rank 1 is killed just after one
    inside epoch 2, torchrun restarts the job, and it resumes at that micro-batch. The model it ships is the
    uninterrupted run's, byte for byte."""
    training = {"epochs": 2, "batch_size": 16, "max_restarts": 2, "early_stopping_patience": None,
                "snapshot_every_steps": 2}
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    straight_config = write_config(small_data.data, training={**training, "checkpoint_dir": str(tmp_path / "a")})
    prepare(straight_config, paths, tmp_path / "ev-prepare", "inside")
    straight = train(straight_config, paths, tmp_path / "ev-prepare", tmp_path / "m-straight", tmp_path / "ev-a",
                     "inside")
    assert straight["details"]["resumed_at_micro_batch"] is None

    config = write_config(small_data.data, training={**training, "checkpoint_dir": str(tmp_path / "b")})
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["record"] = train(config, paths, tmp_path / "ev-prepare", tmp_path / "m-killed", tmp_path / "ev-b",
                                      "inside")
        except Exception as exc:  # surfaced by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    kill_rank_1_once(tmp_path / "b" / "inside" / "progress.jsonl", '"epoch": 2, "snapshot_at_micro_batch"', thread,
                     outcome)

    assert "error" not in outcome, outcome.get("error")
    details = outcome["record"]["details"]
    assert outcome["record"]["metrics"]["restart_count"] == 1
    assert details["resumed_from_epoch"] == 1 and details["resumed_at_micro_batch"] >= 2
    steps = details["schedule"]["steps_per_epoch"]
    assert details["resumed_at_micro_batch"] < steps  # inside the epoch, not at its end
    weights = sorted(p.name for p in (tmp_path / "m-straight").glob("*.safetensors"))
    assert weights
    for name in weights:
        assert (tmp_path / "m-killed" / name).read_bytes() == (tmp_path / "m-straight" / name).read_bytes()
    history = [h["train_loss"] for h in details["history"]]
    assert history == pytest.approx([h["train_loss"] for h in straight["details"]["history"]], rel=1e-5)
