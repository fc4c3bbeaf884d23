"""Run-time state on this machine: where runs, the embedded MLflow store and demo data live, which
image runs the components on a cluster, and which local run is the newest."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from govtrain.core.files import write_durably

# The default of cluster.image, which every step, training pod and the drift CronJob run on a cluster;
# locally kfp.local runs the same function bodies in this interpreter.
COMPONENT_IMAGE = "ghcr.io/govtrain/govtrain:0.1.0"


def state_dir() -> Path:
    """The project-local folder for runs, the embedded MLflow store and demo data."""
    return Path(os.environ.get("GOVTRAIN_HOME", ".govtrain")).resolve()


def embedded_tracking_uri(state: Path | None = None) -> str:
    return f"sqlite:///{(state or state_dir()) / 'mlflow.db'}"


def run_stamp() -> str:
    """The time part of a local run id (UTC, to the microsecond: ids sort by start time)."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")


def latest_run_dir(state: Path) -> Path | None:
    """The newest local run's folder (runs/LATEST names it), or None before the first run."""
    marker = state / "runs" / "LATEST"
    return state / "runs" / marker.read_text().strip() if marker.is_file() else None


def mark_latest(state: Path, run_id: str) -> None:
    write_durably(state / "runs" / "LATEST", run_id + "\n")


def private_file(path: Path) -> Path:
    """The file (made empty if missing: SQLite takes an empty file as an empty database) readable and
    writable by its owner only; SQLite gives its journal the same mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    return path
