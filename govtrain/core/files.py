"""Durable writes: temp file, fsync, rename, fsync of the folder. A crash leaves the old file or the new
one, never half of one, and a full disk is said as such, naming the path, with no temp file left behind.
Records, ledgers, chain appends, registration files and the LATEST marker are all written this way."""
from __future__ import annotations

import errno
import os
from pathlib import Path


class NoSpaceError(RuntimeError):
    """The disk is full; the message names the path being written."""


def write_durably(path: Path, data: bytes | str) -> Path:
    path = Path(path)
    payload = data.encode() if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        sync_folder(path.parent)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise NoSpaceError(f"{path}: no space left on the device (needed {len(payload)} bytes); "
                               f"nothing was written") from exc
        raise
    return path


def sync_folder(folder: Path) -> None:
    """Make a rename in this folder durable (POSIX: fsync the directory); given a file, its contents."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
