"""Snapshots each epoch: a second start resumes from the newest readable one."""

from components.prepare import prepare
from components.train.step import train


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
