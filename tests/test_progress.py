"""Issue 32: a first run is not silent. Under a pseudo-terminal (`script`, as a person's shell), `govtrain
run` shows each step starting and each training epoch while training runs, before the step's end."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("script") is None, reason="util-linux script is not installed")
def test_a_run_under_a_terminal_shows_epochs_while_training(small_data, write_config, tmp_path):
    write_config(small_data.data)  # writes tmp_path/config.yaml
    command = f"{sys.executable} -m govtrain.pipelines.cli run --config {tmp_path / 'config.yaml'}"
    result = subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "GOVTRAIN_HOME": str(tmp_path / "state")})
    assert result.returncode == 0, result.stdout[-2000:]
    lines = result.stdout.splitlines()
    started = next(i for i, line in enumerate(lines) if "train-op       started" in line)
    epochs = [i for i, line in enumerate(lines) if "train epoch " in line]
    ended = next(i for i, line in enumerate(lines) if "train-op       success" in line)
    assert started < epochs[0] and epochs[-1] < ended and len(epochs) == 3  # the config trains 3 epochs
    assert "left" not in lines[epochs[0]] and "s left" in lines[epochs[1]]  # paced from epoch 1 on
    assert any("evaluate robustness (" in line for line in lines)
