"""Run each contender in its own forked process and report wall time and peak RSS side by side."""
from __future__ import annotations

import multiprocessing as mp
import resource
import time
from collections.abc import Callable


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


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))
