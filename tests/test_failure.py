"""Issue 32: a step the kernel killed (20M rows in a 4 GiB limit) ended with "a pipeline step failed"; the
one line now names the step, the signal and, for SIGKILL, memory with the limit it met and the peak."""
from __future__ import annotations

from govtrain.pipelines.failure import killed, memory_limits, step_error

LOG = """Executing task 'prepare-op'
Task 'prepare-op' finished with status SUCCESS
Executing task 'train-op'
    epoch 1/6 loss 0.5603 val_auc 0.7093 80585 samples/s
Task 'train-op' finished with status FAILURE
Killed
"""


def test_a_step_killed_by_the_kernel_is_named_with_memory_and_its_limits(tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.max").write_text(f"{4 * 2**30}\n")
    (cgroup / "memory.peak").write_text(f"{int(3.9 * 2**30)}\n")
    limits = memory_limits(cgroup, tmp_path / "none")
    assert limits == " (memory limit 4.0 GiB (cgroup memory.max); peak use 3.9 GiB (cgroup memory.peak))"
    assert killed(LOG, limits) == (
        "the train step was killed by SIGKILL, most likely by the kernel's out-of-memory killer (memory limit 4.0 "
        "GiB (cgroup memory.max); peak use 3.9 GiB (cgroup memory.peak)): give it fewer rows or columns, fewer "
        "training.workers or a smaller training.batch_size, or more memory")


def test_no_cgroup_limit_names_the_machines_memory(tmp_path):
    (tmp_path / "cgroup").mkdir()
    (tmp_path / "cgroup" / "memory.max").write_text("max\n")
    (tmp_path / "meminfo").write_text("MemTotal:       25165824 kB\n")
    assert memory_limits(tmp_path / "cgroup", tmp_path / "meminfo") == " (no cgroup limit; this machine has 24.0 GiB)"


def test_other_signals_and_torchruns_words_are_read_too():
    assert killed("Task 'evaluate-op' finished with status FAILURE\nexitcode  : -15 (pid: 12)\n") == (
        "the evaluate step was killed by SIGTERM")
    assert killed("worker died with <Signals.SIGSEGV: 11>\n") == "a step was killed by SIGSEGV"
    assert killed("Task 'train-op' finished with status FAILURE\n") is None


def test_a_steps_own_error_line_comes_first(tmp_path):
    log = tmp_path / "log"
    log.write_text(LOG.replace("Killed\n", "govtrain.data.io.DataError: credit.csv: line 7 is short\nKilled\n"))
    assert step_error(log) == "credit.csv: line 7 is short"
    log.write_text("nothing useful\n")
    assert step_error(log) == "a pipeline step failed"
