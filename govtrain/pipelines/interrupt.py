"""Ctrl-C and SIGTERM during `govtrain run`: every child stops, and the run says it was interrupted.

kfp.local runs each step as a child process; the train step's torchrun and its workers are children of
that. A terminal's Ctrl-C reaches the whole process group, while `kill PID` or a supervisor's SIGTERM
reaches govtrain alone. Either way the handler passes the signal on to every descendant, by PID (read
from /proc, never by name), and raises Interrupted in the main thread; run_local then waits for the
descendants (SIGKILL after a grace period), seals the run with an `interrupted` record naming the step,
and ends its MLflow run KILLED; the CLI exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The run was stopped by a signal; step and run_dir are filled in once it is sealed."""

    def __init__(self, signum: int, step: str | None = None, run_dir: Path | None = None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.step, self.run_dir = signum, step, run_dir

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def descendants(root: int | None = None) -> list[int]:
    """Every live process below root (default: this one), parents first, from /proc/<pid>/stat."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone since the listing
        if fields[0] != "Z":  # a zombie has exited already; its parent reaps it
            parent_of[int(entry.name)] = int(fields[1])
    found, frontier = [], [root or os.getpid()]
    while frontier:
        children = [pid for pid, parent in parent_of.items() if parent in frontier]
        found += children
        frontier = children
    return found


def signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass


def stop_descendants(signum: int, grace: float = 30.0) -> int:
    """Pass signum on to every descendant (again: some start after the first pass, such as a worker torchrun
    restarts), wait up to grace seconds for all to exit, then SIGKILL what is left. Returns how many were
    killed."""
    deadline = time.monotonic() + grace
    while (left := descendants()) and time.monotonic() < deadline:
        signal_all(left, signum)
        time.sleep(0.2)
    left = descendants()
    signal_all(left, signal.SIGKILL)
    return len(left)


@contextmanager
def interruptible() -> Iterator[None]:
    """Within: SIGINT and SIGTERM are passed on to every descendant and raise Interrupted here (only the main
    thread can install handlers; elsewhere this is a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        for sig in HANDLED:  # a second signal while the first is handled must not interrupt the cleanup
            signal.signal(sig, signal.SIG_IGN)
        signal_all(descendants(), signum)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, handler) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before)
