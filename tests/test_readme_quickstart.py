"""Issue 32: a newcomer following only the README's first screen registers a model from a table of their own.
The commands are read out of README.md between the quickstart markers and run as they are, each under a
pseudo-terminal as a person's shell runs it, in a fresh folder holding a real public table (scikit-learn's
breast cancer table, 569 rows, saved as loans.csv with its label named `defaulted`, as the README says)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quickstart() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- quickstart[^>]*-->\s*```bash\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert block, "README.md has no quickstart block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_quickstart_is_one_screen():
    lines = quickstart()
    assert 3 <= len(lines) <= 10 and all(line.startswith("govtrain ") for line in lines)


@pytest.mark.slow
def test_the_readme_quickstart_registers_and_promotes_a_model_from_a_table_of_ones_own(tmp_path):
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.rename(columns={"target": "defaulted"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.to_csv(tmp_path / "loans.csv", index=False)
    # A newcomer's shell: none of the suite's MLflow or govtrain settings (another test's server, keys).
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "GOVTRAIN_"))}
    env = {**clean, "GOVTRAIN_HOME": str(tmp_path / "state"),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    outputs = []
    for line in quickstart():
        # Under a pseudo-terminal (script(1)), as a person's shell runs it: the run's progress shows as it goes.
        command = ["script", "-qec", line, "/dev/null"] if shutil.which("script") else ["bash", "-c", line]
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, (line, result.stdout[-3000:], result.stderr[-2000:])
        outputs.append(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", result.stdout).replace("\r", ""))  # a terminal's colours
    assert "30 numeric and 0 categorical features" in outputs[0]
    assert "registered model loans version 1" in outputs[1]
    if shutil.which("script"):  # issue 32: each step starting, and the epochs while training runs
        lines = outputs[1].splitlines()
        started = next(i for i, line in enumerate(lines) if "train-op       started" in line)
        epochs = [i for i, line in enumerate(lines) if "train epoch " in line]
        ended = next(i for i, line in enumerate(lines) if "train-op       success" in line)
        assert epochs and started < epochs[0] and epochs[-1] < ended
        assert "left" not in lines[epochs[0]] and all("s left" in lines[i] for i in epochs[1:-1])
        assert any("evaluate robustness (" in line for line in lines)
    assert "loans version 1: verified" in outputs[2]
    assert "loans@champion: - -> 1 by a-colleague" in outputs[3]
