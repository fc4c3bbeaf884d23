"""Snapshot files of the training worker: the newest and the one before it, written durably.

A snapshot is serialised in memory first and then written with core.files.write_durably, so a full
disk is said as "PATH: no space left" instead of torch's "basic_ios::clear: iostream error", and the
previous snapshot is never touched by a failed write. A restarted worker checks for room before it
trains: with less free space than the last snapshot took, another attempt could only fail the same way
after an epoch of work, so it stops at once with the reason.
"""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from govtrain.core.files import NoSpaceError, sync_folder, write_durably

SNAPSHOT = "snapshot.pt"
PREVIOUS = "snapshot.prev.pt"
INCOMING = "snapshot.incoming.pt"


def write_snapshot(folder: Path, snap: dict[str, Any]) -> Path:
    """snapshot.pt becomes snapshot.prev.pt only once the new one is whole on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(snap, buffer)
    incoming = write_durably(folder / INCOMING, buffer.getvalue())
    current = folder / SNAPSHOT
    if current.exists():
        os.replace(current, folder / PREVIOUS)
    os.replace(incoming, current)
    sync_folder(folder)
    return current


def check_room(folder: Path, margin: float = 1.1) -> None:
    """Refuse to start an epoch whose snapshot cannot be written (free space below the last one's size)."""
    current = folder / SNAPSHOT
    if not current.is_file():
        return
    needed, free = int(current.stat().st_size * margin), shutil.disk_usage(folder).free
    if free < needed:
        raise NoSpaceError(f"{folder}: no space left for the next snapshot ({free} bytes free, the last one "
                           f"took {current.stat().st_size}); free space or set training.checkpoint_dir "
                           f"elsewhere, then rerun")
