"""Issue 32: a newcomer following only the README's first screen registers a model from a table of their own.
The commands are read out of README.md between the quickstart markers and run as they are, in a fresh
folder holding a real public table (scikit-learn's breast cancer table, 569 rows, saved as loans.csv with its
label named `defaulted`, as the README's example says)."""
from __future__ import annotations

import os
import re
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
        result = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=600)
        assert result.returncode == 0, (line, result.stdout[-3000:], result.stderr[-2000:])
        outputs.append(result.stdout)
    assert "30 numeric and 0 categorical features" in outputs[0]
    assert "registered model loans version 1" in outputs[1]
    assert "loans version 1: verified" in outputs[2]
    assert "loans@champion: - -> 1 by a-colleague" in outputs[3]
