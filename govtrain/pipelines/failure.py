"""What a failed step's log says went wrong, in one line: its own error line, or, for a step the kernel
killed (no error line: the process never got to write one), the signal and, for SIGKILL, the likely cause
with this machine's memory limit and peak (a table too large for memory ends this way)."""
from __future__ import annotations

import re
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-9;]*m")
TASK_DONE = re.compile(r"Task '([\w-]+)' finished with status (\w+)")
ERROR_LINE = re.compile(r"^(?:[\w.]+\.)?(DataError|ConfigError|TrainingError|MlflowException|\w+Error): (.+)$")
# A shell's "Killed", torchrun's "exitcode: -9" / "Signals.SIGKILL", Python's "died with <Signals.SIGKILL: 9>"
SIGNALLED = re.compile(r"(?m)^\s*(Killed)\s*$|Signals\.(SIG[A-Z]+)|exitcode\s*:\s*-(\d+)|signal (\d+)\b")
SIGNAL_NAMES = {"9": "SIGKILL", "15": "SIGTERM", "6": "SIGABRT", "11": "SIGSEGV", "Killed": "SIGKILL"}
CGROUP = Path("/sys/fs/cgroup")


def gib(value: int) -> str:
    return f"{value / 2**30:.1f} GiB"


def memory_limits(cgroup: Path = CGROUP, meminfo: Path = Path("/proc/meminfo")) -> str:
    """"memory limit 4.0 GiB (cgroup), peak 3.9 GiB" or the machine's total when no cgroup limit is set."""
    said = []
    limit = (cgroup / "memory.max").read_text().strip() if (cgroup / "memory.max").is_file() else "max"
    if limit != "max":
        said.append(f"memory limit {gib(int(limit))} (cgroup memory.max)")
    elif meminfo.is_file():
        total = re.search(r"MemTotal:\s+(\d+) kB", meminfo.read_text())
        if total:
            said.append(f"no cgroup limit; this machine has {gib(int(total.group(1)) * 1024)}")
    if (cgroup / "memory.peak").is_file():
        said.append(f"peak use {gib(int((cgroup / 'memory.peak').read_text().strip()))} (cgroup memory.peak)")
    return f" ({'; '.join(said)})" if said else ""


def killed(text: str, limits: str | None = None) -> str | None:
    """The failed step and the signal that ended it, when the log shows one; None otherwise."""
    failed = [m.group(1) for m in TASK_DONE.finditer(text) if m.group(2).upper() == "FAILURE"]
    found = [next(g for g in m.groups() if g) for m in SIGNALLED.finditer(text)]
    if not found:
        return None
    name = found[-1] if found[-1].startswith("SIG") else SIGNAL_NAMES.get(found[-1], f"signal {found[-1]}")
    step = f"the {failed[0].removesuffix('-op')} step" if failed else "a step"
    if name != "SIGKILL":
        return f"{step} was killed by {name}"
    return (f"{step} was killed by SIGKILL, most likely by the kernel's out-of-memory killer"
            f"{memory_limits() if limits is None else limits}: give it fewer rows or columns, fewer "
            f"training.workers or a smaller training.batch_size, or more memory")


def step_error(log_path: Path) -> str:
    """The step's own one-line error, else how it was killed, else that a step failed."""
    text = ANSI.sub("", log_path.read_text(errors="replace"))
    for line in reversed(text.splitlines()):
        match = ERROR_LINE.match(line.strip())
        if match:
            return match.group(2)
    return killed(text) or "a pipeline step failed"
