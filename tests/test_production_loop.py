"""The production loop on a real served version: `govtrain serve` as a process on 127.0.0.1 under a bounded
load, `govtrain monitor` over what it captured, `govtrain labels` reconciling the estimate with delayed labels.
Three windows in order: in-distribution traffic, a covariate shift (rows selected by their risk features), a
concept shift (a region's labels flipped). And a server killed by SIGKILL mid-traffic."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from govtrain.core.state import state_dir
from govtrain.pipelines import demo_data
from govtrain.pipelines.cli_common import config_for
from govtrain.serving.capture import capture_folder, read_capture
from tests.conftest import free_port

ROWS_PER_REQUEST = 20


@contextmanager
def serving(ref: str, mlflow_server: str, log: Path, *extra: str):
    """`govtrain serve` in its own process group; stopped with SIGTERM (or already killed) when done."""
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).with_name("govtrain")), "serve", "--model", ref, "--port",
                                 str(port), *extra], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                time.sleep(0.5)
        yield proc, port
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def post(port: int, rows: pd.DataFrame, request_id: str) -> int:
    body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False,
                                                                  date_format="iso"))}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json", "X-Request-Id": request_id})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.headers["X-Request-Id"] == request_id
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code


def send(port: int, frame: pd.DataFrame, prefix: str) -> pd.DataFrame:
    """The rows in requests of ROWS_PER_REQUEST; the labels of every answered row, as a labelling system keeps
    them (request id, row in the request, label)."""
    labels = []
    for start in range(0, len(frame), ROWS_PER_REQUEST):
        chunk = frame.iloc[start:start + ROWS_PER_REQUEST]
        request_id = f"{prefix}-{start}"
        if post(port, chunk.drop(columns=[demo_data.TARGET]), request_id) == 200:
            labels += [{"request_id": request_id, "row": i, "label": int(v)}
                       for i, v in enumerate(chunk[demo_data.TARGET])]
    return pd.DataFrame(labels)


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """New applications from the demo's generator (the served model trained on seed 3)."""
    return pd.read_parquet(demo_data.write_demo_data(tmp_path_factory.mktemp("fresh"), 7000, seed=11, drift=0.0).data)


@pytest.mark.slow
def test_monitor_and_labels_tell_covariate_shift_from_concept_shift(served, fresh, mlflow_server, monkeypatch,
                                                                    tmp_path):
    from govtrain.monitoring.labels import reconcile
    from govtrain.monitoring.monitor import monitor

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    _, ref = served
    config = config_for(None, ref)
    risky = (((fresh["credit_score"] < 640) & (fresh["utilization"] > 0.5)) | (fresh["debt_to_income"] > 0.45)
             | (fresh["delinquencies_2y"] >= 2))  # the generator's risk terms: the label's mix moves with them
    keep = np.random.default_rng(0).random(len(fresh)) < np.where(risky, 0.95, 0.05)
    covariate = fresh.iloc[2000:5000][keep[2000:5000]].head(800)
    concept = fresh.iloc[5000:6200].copy()
    north = concept["region"] == "north"
    with serving(ref, mlflow_server, tmp_path / "serve.log") as (_, port):
        monitor(config, ref, out_dir=tmp_path / "m0")  # closes any window an earlier test left
        results, labels = {}, {}
        for name, frame in (("in", fresh.iloc[:1200]), ("covariate", covariate), ("concept", concept)):
            labels[name] = send(port, frame, name)
            results[name] = monitor(config, ref, out_dir=tmp_path / name)
        flipped = labels["concept"].copy()
        in_north = flipped["request_id"].map(lambda r: int(r.split("-")[1])) + flipped["row"]
        flipped.loc[north.to_numpy()[in_north.to_numpy()], "label"] ^= 1
        labels["concept"] = flipped
    for name, found in results.items():
        assert found.window["rows"] >= 0.9 * len(labels[name]) > 0, (name, found.window)
    reconciled = {}
    for name in results:
        path = tmp_path / f"labels-{name}.csv"
        labels[name].to_csv(path, index=False)
        windows = reconcile(config, ref, path).windows
        reconciled[name] = next(w for w in windows if w["monitor_record"] == results[name].record["hash"])

    auc = {name: found.estimate["roc_auc"] for name, found in results.items()}
    seen = {name: (reconciled[name]["metrics"], results[name].alerts) for name in results}  # shown on a failure
    accuracy = {name: found.estimate["accuracy"] for name, found in results.items()}
    # In-distribution: no alert; the realised accuracy (what is judged) inside the estimate's interval.
    assert results["in"].alerts == [] and results["in"].record["decision"] == "pass", results["in"].alerts
    assert reconciled["in"]["metrics"]["accuracy"]["inside"] and not reconciled["in"]["concept_shift"], seen
    # Covariate shift: drift flagged on the selected columns, the estimate moves, and still holds the realised value.
    drift = results["covariate"].drift
    assert drift["drifted"] and "debt_to_income" in drift["drifted_columns"], drift
    # The riskier mix: the estimate moves down (0.742 -> 0.724 on one training of this model). Calibration need not
    # hold under new inputs: the realised accuracy fell 0.017 to 0.037 under the estimate across five trainings, at
    # times just outside its sampling interval (0.687 against 0.694 to 0.754). A miss in a window whose inputs
    # drifted is a shift with drift, never called concept shift, and it is smaller than the concept shift's below.
    assert accuracy["covariate"]["expected"] < accuracy["in"]["expected"] - 0.01, seen
    covariate = reconciled["covariate"]
    assert not covariate["concept_shift"], seen
    assert covariate["metrics"]["accuracy"]["inside"] or covariate["shift_with_drift"], seen
    assert abs(covariate["metrics"]["accuracy"]["error"]) < 0.06, seen
    # Concept shift: the inputs did not move, so neither did the estimate; the labels say it no longer holds.
    assert not results["concept"].drift["drifted"]
    for metric in (auc, accuracy):
        assert abs(metric["concept"]["expected"] - metric["in"]["expected"]) < (
            metric["in"]["interval"][1] - metric["in"]["interval"][0]) / 2, seen
    assert reconciled["concept"]["concept_shift"], seen
    assert reconciled["concept"]["metrics"]["accuracy"]["realised"] < accuracy["concept"]["interval"][0], seen
    # The audit report puts each window's estimate beside what the labels showed.
    from govtrain.registry.audit import report

    _, markdown, _ = report(config, ref, tmp_path / "report")
    section = markdown.read_text().split("## Served traffic: estimated against realised")[1].split("\n## ")[0]
    assert section.count("CONCEPT SHIFT") == 1, section
    assert section.count("estimate held") + section.count("SHIFT WITH DRIFT") == 2, section
    assert ("SHIFT WITH DRIFT" in section) is covariate["shift_with_drift"], section
    assert f"{reconciled['concept']['metrics']['accuracy']['realised']:.4f}" in section, section
    # So does `govtrain history`, for every served version of the model.
    from tests.test_cli import govtrain

    shown = govtrain("history", "--model", ref.split("/")[0])
    assert shown.returncode == 0, shown.stderr
    assert "served traffic, estimated against realised" in shown.stdout and "CONCEPT" in shown.stdout, shown.stdout


@pytest.mark.slow
def test_every_request_answered_before_a_sigkill_is_in_the_capture(served, fresh, mlflow_server, tmp_path):
    _, ref = served
    answered: list[str] = []
    with serving(ref, mlflow_server, tmp_path / "serve.log", "--rotate-rows", "170") as (proc, port):
        def load() -> None:
            for i in range(400):
                request_id = f"kill-{i}"
                try:
                    status = post(port, fresh.iloc[i * 5:(i + 1) * 5].drop(columns=[demo_data.TARGET]), request_id)
                except (urllib.error.URLError, ConnectionError, OSError):
                    return
                if status == 200:
                    answered.append(request_id)

        sender = threading.Thread(target=load)
        sender.start()
        while len(answered) < 120 and sender.is_alive():
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # no shutdown: the open journal is left as it was
        sender.join(timeout=60)
    folder = capture_folder(state_dir(), *ref.split("/"))
    captured = read_capture(folder)
    assert len(answered) >= 120
    assert set(answered) <= set(captured.rows["request_id"]), sorted(set(answered) - set(captured.rows["request_id"]))
    assert list(folder.glob("journal-*.arrows")), "the killed server's journal is read as it was left"
    assert list(folder.glob("part-*.parquet")), "rotated parts (--rotate-rows 170) are read beside it"


@pytest.mark.slow
def test_monitor_reads_what_kserves_payload_logger_wrote(served, fresh, mlflow_server, monkeypatch, tmp_path):
    """On a cluster the traffic is KServe's: `govtrain monitor --kserve-log` over objects in the logger's own
    layout (tests/test_kserve_log.py), holding the version's real answers to 600 fresh rows as MLServer returns
    them, estimates exactly what the same rows give the estimator directly, and counts a request KServe logged
    without a 200 response as refused."""
    from govtrain.monitoring import estimate
    from govtrain.registry.models import client_for, load_version_model, parse_ref, resolve
    from govtrain.serving.kserve_log import REQUEST, RESPONSE
    from tests.test_cli import govtrain
    from tests.test_kserve_log import event, v2_request, v2_response, write_objects

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    run, ref = served
    version, name = run.registration["version"], parse_ref(ref).name
    model = load_version_model(resolve(client_for(mlflow_server), parse_ref(ref)), tmp_path / "model")
    rows = fresh.iloc[6200:6800].drop(columns=[demo_data.TARGET])
    events, probabilities = [], {}
    for start in range(0, len(rows), ROWS_PER_REQUEST):
        chunk = rows.iloc[start:start + ROWS_PER_REQUEST][model.features.numeric + model.features.categorical]
        answer = model.predict(chunk)
        probabilities[f"k-{start}"] = answer["probability"].to_numpy(float)
        events += [event(REQUEST, f"k-{start}", v2_request(chunk), version=version, model=name),
                   event(RESPONSE, f"k-{start}", v2_response(answer), version=version, model=name)]
    first = rows.iloc[:1][model.features.numeric + model.features.categorical]
    events.append(event(REQUEST, "k-refused", v2_request(first), version=version, model=name))
    write_objects(tmp_path / "log", events, path=f"v{version}")
    shown = govtrain("monitor", "--model", ref, "--kserve-log", tmp_path / "log", "--since", "2000-01-01",
                     "--out", tmp_path / "report")
    assert shown.returncode == 0, shown.stderr
    summary = json.loads((tmp_path / "report" / "monitor_summary.json").read_text())
    # the monitor reads rows oldest first, then by request id: one object, so by id
    expected = estimate.binary(np.concatenate([probabilities[k] for k in sorted(probabilities)]), seed=0)
    assert summary["window"]["rows"] == 600 and summary["capture_source"] == str(tmp_path / "log")
    assert summary["estimate"]["accuracy"]["expected"] == pytest.approx(expected["accuracy"]["expected"])
    assert summary["estimate"]["accuracy"]["interval"] == pytest.approx(expected["accuracy"]["interval"])
    assert summary["requests"]["refused_requests"] == 1 and summary["requests"]["requests"] == 31
    assert summary["drift"] is not None and len(summary["capture_files"]) == 1
    # Delayed labels join to KServe's logged rows by the Ce-Id the caller sent, in the window just judged.
    truth = fresh.iloc[6200:6800][demo_data.TARGET].to_numpy()
    labels = pd.DataFrame([{"request_id": f"k-{start}", "row": i, "label": int(truth[start + i])}
                           for start in range(0, len(rows), ROWS_PER_REQUEST) for i in range(ROWS_PER_REQUEST)])
    labels.to_csv(tmp_path / "labels.csv", index=False)
    joined = govtrain("labels", "--model", ref, "--file", tmp_path / "labels.csv", "--kserve-log", tmp_path / "log")
    assert joined.returncode == 0, joined.stderr
    assert "600 label(s) joined to served rows; 0 name no captured row" in joined.stdout, joined.stdout
    assert "(600 labelled of 600)" in joined.stdout, joined.stdout
