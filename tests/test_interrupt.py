"""SIGINT and SIGTERM to `govtrain run` mid-training, sent to its whole process group (a terminal's Ctrl-C) and
to it alone (`kill PID`, a supervisor): every child stops (kfp executor, torchrun, workers), the run is sealed
with an `interrupted` record naming the step, its MLflow run ends KILLED, and the exit code is 130 or 143.

Measured before: Ctrl-C to the group sealed the run as "training workers failed (exit 1)"; SIGINT to govtrain
alone exited 130 with no message and no ledger, leaving torchrun and its workers running under PID 1."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from conftest import base_config
from mlflow import MlflowClient

from govtrain.governance.ledger import verify

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers


def in_session(session: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live process in the session the test created for the run."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[3]) == session:
            found.append((int(entry), cmdline))
    return found


@pytest.mark.parametrize("target,signum", [("group", signal.SIGINT), ("alone", signal.SIGINT),
                                            ("alone", signal.SIGTERM)])
def test_an_interrupted_run_stops_every_child_and_is_sealed_as_interrupted(small_data, tmp_path, target, signum):
    raw = base_config(small_data.data)
    raw["training"] |= {"epochs": 500, "batch_size": 32,  # still training when the signal comes
                        "early_stopping_patience": None}
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    state = tmp_path / "state"
    env = {**os.environ, "GOVTRAIN_HOME": str(state), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "govtrain.pipelines.cli", "run", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # its own group and session: ours to signal, and to check
    try:
        deadline = time.monotonic() + 240
        while not any("govtrain.components.train.worker" in cmd for _, cmd in in_session(proc.pid)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "training never started"
            time.sleep(0.2)
        time.sleep(2)  # in the middle of an epoch
        if target == "group":
            os.killpg(proc.pid, signum)
        else:
            os.kill(proc.pid, signum)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    name = signal.Signals(signum).name
    assert proc.returncode == 128 + signum, err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {name} during train; every child process stopped; sealed evidence: "), err
    assert "Traceback" not in err + out
    assert in_session(proc.pid) == []  # no executor, torchrun or worker left behind

    [run_dir] = [p for p in (state / "runs").iterdir() if p.is_dir()]
    assert last.endswith(str(run_dir))
    ledger = json.loads((run_dir / "ledger.json").read_bytes())
    assert ledger["outcome"] == f"interrupted at train by {name}"
    [record] = [r for r in ledger["records"] if r["step"] == "interrupted"]
    assert record["decision"] == "interrupted" and record["details"]["step"] == "train"
    assert record["details"]["signal"] == name
    assert {r["step"] for r in ledger["records"]} >= {"prepare", "validate", "leakage", "data_gate"}
    assert verify(run_dir, trusted_keys=(state / "keys" / "trusted.pub").read_text().split()).ok

    client = MlflowClient(f"sqlite:///{state / 'mlflow.db'}")
    [run] = client.search_runs([e.experiment_id for e in client.search_experiments()],
                               f"tags.`govtrain.run_id` = '{ledger['run_id']}'")
    assert run.info.status == "KILLED"
    assert run.data.tags["govtrain.outcome"] == f"interrupted by {name} during train"
