"""Run each contender in its own forked process and report wall time and peak RSS side by side."""
from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _child(fn: Callable[[], object], queue: mp.Queue) -> None:
    started = time.perf_counter()
    extra = fn()
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((seconds, peak_mb, extra))


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    """(seconds, peak RSS MB of the process, whatever fn returned); imports done before fn count as setup."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(fn, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def demo_splits(folder: Path, rows: int) -> tuple[Any, dict[str, Path], int]:
    """The demo table, its first 80 % as train.parquet and the rest as val.parquet: (files, paths, train rows)."""
    import pandas as pd

    from govtrain.pipelines import demo_data

    files = demo_data.write_demo_data(folder / "data", rows)
    frame = pd.read_parquet(files.data)
    cut = int(len(frame) * 0.8)
    paths = {"train": folder / "train.parquet", "val": folder / "val.parquet"}
    frame[:cut].to_parquet(paths["train"])
    frame[cut:].to_parquet(paths["val"])
    return files, paths, cut


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
