"""Row hashes spilled to disk in hash partitions, so the leakage checks of a large table never hold it whole.

A record is (key, row, label): a 64-bit hash of some of the row's columns, the row's number in its split, and its
label as a number. Records go to the partition named by the key's top 32 bits scaled to the partition count (one
partition per PARTITION_ROWS rows, so every partition's sort costs the same whatever the table's size), one file
per (kind, split, partition),
so every row sharing a key, in any split, sits in one partition: a check that matches keys across the splits
reads one partition at a time. Memory then holds one partition (24 B a record), not the table.

A key held by many rows (a table of few discrete values, where whole rows repeat) keeps all of them in its
partition: that partition grows with those rows, at 24 B each.
"""
from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np

RECORD = np.dtype([("key", np.uint64), ("row", np.int64), ("label", np.float64)])
PARTITION_ROWS = 1 << 20  # rows a partition is sized for: 24 MB of records


def partitions_for(rows: int, per_partition: int) -> int:
    return max(1, math.ceil(rows / per_partition))


class Spill:
    """The partition files of one leakage run, under `folder`, removed by close()."""

    def __init__(self, folder: Path, splits: list[str], rows: int, per_partition: int | None = None):
        self.folder, self.splits = folder, splits
        self.parts = partitions_for(rows, per_partition or PARTITION_ROWS)
        folder.mkdir(parents=True, exist_ok=True)

    def add(self, kind: str, split: str, keys: np.ndarray, rows: np.ndarray, labels: np.ndarray) -> None:
        records = np.empty(len(keys), RECORD)
        records["key"], records["row"], records["label"] = keys, rows, labels
        part = ((keys >> np.uint64(32)) * np.uint64(self.parts) >> np.uint64(32)).astype(np.int64)
        order = np.argsort(part, kind="stable")
        bounds = np.searchsorted(part[order], np.arange(self.parts + 1))
        for p in range(self.parts):
            if bounds[p] < bounds[p + 1]:
                # Opened per write, not held: 7 kinds x 3 splits x 128 partitions at 100M rows would pass the
                # usual limit of 1,024 open files.
                with open(self._path(kind, split, p), "ab") as handle:
                    handle.write(records[order[bounds[p]:bounds[p + 1]]].tobytes())

    def _path(self, kind: str, split: str, part: int) -> Path:
        return self.folder / f"{kind}-{split}-{part}.bin"

    def partitions(self, kind: str) -> Iterator[dict[str, np.ndarray]]:
        """Per partition: each split's records (possibly empty)."""
        for p in range(self.parts):
            yield {s: (np.fromfile(path, RECORD) if (path := self._path(kind, s, p)).exists() else
                       np.empty(0, RECORD)) for s in self.splits}

    def recurring(self, kind: str, split: str, rows: np.ndarray) -> np.ndarray:
        """Which of these rows of the split hold a key the table holds three times or more, over all splits."""
        wanted = np.sort(rows)
        flags = np.zeros(len(wanted), bool)
        if not len(wanted):
            return flags
        for part in self.partitions(kind):
            keys, counts = np.unique(np.concatenate([r["key"] for r in part.values()]), return_counts=True)
            ours = part[split]
            at = np.searchsorted(wanted, ours["row"]).clip(max=len(wanted) - 1)
            mine = ours[wanted[at] == ours["row"]]
            common = mine["row"][counts[np.searchsorted(keys, mine["key"])] >= 3]
            flags[np.searchsorted(wanted, common)] = True
        return flags[np.searchsorted(wanted, rows)]

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
