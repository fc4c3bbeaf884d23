"""Acting on drift: `promote` refuses a version whose newest drift run flagged drift unless the approver
acknowledges it with a reason (recorded in the promote record, naming the drift record); a newer passing run
clears it. And the drift output says what its reference is (the train split, in-sample) and where a score
comes from a sample."""
import json

import pytest
import yaml
from mlflow import MlflowClient

from govtrain.governance.chain import read_chain
from govtrain.monitoring.drift import HTML_SAMPLE_ROWS, html_note
from govtrain.monitoring.job import drift_job
from govtrain.pipelines.run import run_local
from govtrain.registry.lifecycle import Refused, drift_acknowledgement, promote
from govtrain.registry.models import client_for, parse_ref, reference_sample, resolve
from tests.test_cli import govtrain

NAME = "ack-credit"


def drift_record(seq, root, decision, summary="4/9 columns drifted (share 0.44, threshold 0.50)"):
    return {"step": "drift", "seq": seq, "hash": f"{seq:02d}" * 32, "model_root": root, "version": "1",
            "decision": decision, "finished": f"2025-01-0{seq}T00:00:00Z", "details": {"summary": summary}}


def test_only_the_newest_drift_run_on_the_same_version_decides():
    flagged, passed = drift_record(1, "root-a", "fail"), drift_record(2, "root-a", "pass")
    other = drift_record(3, "root-b", "fail")  # another version's drift is not this one's
    assert drift_acknowledgement([flagged, passed, other], "m/1", "root-a", None) is None
    assert drift_acknowledgement([], "m/1", "root-a", "accepted") is None  # nothing to acknowledge: not recorded
    with pytest.raises(Refused) as refused:
        drift_acknowledgement([passed, flagged, other], "m/1", "root-a", None)
    assert str(refused.value) == (
        "m/1: its newest drift run (at 2025-01-01T00:00:00Z, chain record 1 010101010101) flagged drift: 4/9 "
        "columns drifted (share 0.44, threshold 0.50); to promote it anyway, say why with --acknowledge-drift "
        "REASON")
    assert drift_acknowledgement([passed, flagged], "m/1", "root-a", "seasonal, reviewed") == {
        "reason": "seasonal, reviewed", "drift_record": flagged["hash"], "drift_seq": 1,
        "finished": "2025-01-01T00:00:00Z", "summary": "4/9 columns drifted (share 0.44, threshold 0.50)"}


def test_an_empty_acknowledgement_is_a_usage_error():
    with pytest.raises(ValueError, match="--acknowledge-drift: give the reason"):
        promote(None, NAME, "1", "alice", "why", acknowledge_drift="  ")


def test_the_html_note_says_the_sample_and_that_its_scores_differ():
    big = html_note(HTML_SAMPLE_ROWS * 2, 3000)
    assert (big["reference_rows"], big["current_rows"], big["sampled"]) == (HTML_SAMPLE_ROWS, 3000, True)
    assert big["note"] == ("Evidently's page is drawn on seeded samples, 10000 of 20000 reference rows and 3000 of "
                           "3000 current rows: its scores differ from this summary's and the CLI's, which use "
                           "every row, and its verdict may too")
    small = html_note(2000, 600)
    assert (small["reference_rows"], small["current_rows"], small["sampled"]) == (2000, 600, False)
    assert small["note"] == "Evidently's page is drawn on every row of both batches"


@pytest.fixture(scope="module")
def two_versions(small_data, mlflow_server, isolated_state, tmp_path_factory):
    """Two registered versions of one model, no champion yet; the chains in a folder of their own."""
    from conftest import base_config

    from govtrain.core.config import load_config

    raw = base_config(small_data.data)
    raw["registry"] = {"tracking_uri": mlflow_server, "model_name": NAME}
    raw["governance"] = {"chain_dir": str(tmp_path_factory.mktemp("ack-chains"))}
    path = tmp_path_factory.mktemp("ack-cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    runs = [run_local(config, isolated_state, show_progress=False) for _ in range(2)]
    assert [r.registration["version"] for r in runs] == ["1", "2"]
    return config, path, small_data


def drift_records(config, version):
    return [r for r in read_chain(config.chain_dir, NAME) if r["step"] == "drift" and r["version"] == version]


@pytest.mark.slow  # real pipeline runs and an MLflow server
def test_a_drifted_version_is_promoted_only_with_an_acknowledgement(two_versions, mlflow_server, tmp_path,
                                                                   monkeypatch):
    config, path, data = two_versions
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    found = govtrain("drift", "--model", f"{NAME}/1", "--current", data.current, "--config", path, "--out",
                     tmp_path / "d1")
    assert found.returncode == 0, found.stderr
    out = found.stdout
    assert "DRIFT: " in out
    # What the labelled batch is compared with, said plainly; label drift printed, not only in the JSON.
    summary = json.loads((tmp_path / "d1" / "drift_summary.json").read_text())
    perf, target = summary["performance"], summary["target"]
    assert (f"labelled batch: auc {perf['current_auc']:.4f} vs {perf['reference_auc']:.4f} on the reference "
            f"(the train split, in-sample)") in out
    assert f"label drift: {target['method']} {target['value']:.4f} (threshold {target['threshold']}) " in out
    assert summary["reference_is"]["source"] == "stored train split" and summary["reference_is"]["in_sample"]
    assert summary["reference_is"]["description"].startswith(
        f"the whole train split ({summary['reference_rows']} rows) of {NAME}/1, as stored at registration")
    assert summary["html_report"]["sampled"] is False  # the small demo: Evidently's page saw every row
    assert "drift_report.html (Evidently's page is drawn on every row of both batches)" in out
    [flagged] = drift_records(config, "1")
    assert flagged["decision"] == "fail"

    # Refused, in one line naming the drift run and the flag; nothing moved.
    refused = govtrain("promote", "--model", NAME, "--version", "1", "--reason", "first champion", "--approver",
                       "alice", "--config", path)
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip() == (
        f"refused: {NAME}/1: its newest drift run (at {flagged['finished']}, chain record {flagged['seq']} "
        f"{flagged['hash'][:12]}) flagged drift: {flagged['details']['summary']}; to promote it anyway, say why "
        f"with --acknowledge-drift REASON")
    assert read_chain(config.chain_dir, NAME)[-1]["hash"] == flagged["hash"]  # nothing recorded after it

    promoted = govtrain("promote", "--model", NAME, "--version", "1", "--reason", "first champion", "--approver",
                        "alice", "--config", path, "--acknowledge-drift", "the demo batch drifts on purpose")
    assert promoted.returncode == 0, promoted.stderr
    record = read_chain(config.chain_dir, NAME)[-1]
    assert (record["step"], record["version"], record["details"]["reason"]) == ("promote", "1", "first champion")
    assert record["details"]["drift_acknowledged"] == {
        "reason": "the demo batch drifts on purpose", "drift_record": flagged["hash"], "drift_seq": flagged["seq"],
        "finished": flagged["finished"], "summary": flagged["details"]["summary"]}
    assert f"drift acknowledged: {flagged['details']['summary']}" in promoted.stdout
    assert MlflowClient(mlflow_server).get_model_version_by_alias(NAME, "champion").version == "1"


@pytest.mark.slow  # real pipeline runs and an MLflow server
def test_a_passing_drift_run_after_a_flagged_one_clears_the_version(two_versions, mlflow_server, tmp_path):
    config, _, data = two_versions
    flagged = drift_job(config, data.current, model=f"{NAME}/2", out_dir=tmp_path / "d1")
    assert flagged.result.drifted and flagged.record["decision"] == "fail"
    with pytest.raises(Refused, match="flagged drift: .*--acknowledge-drift REASON"):
        promote(config, NAME, "2", "alice", "better on paper")

    # The same rows as the reference: no drift. The newest run decides, so the version is clear.
    version = resolve(client_for(config.registry.tracking_uri), parse_ref(f"{NAME}/2"))
    same = reference_sample(version, tmp_path / "ref")
    passed = drift_job(config, same, model=f"{NAME}/2", out_dir=tmp_path / "d2")
    assert not passed.result.drifted and passed.record["decision"] == "pass"
    assert [r["decision"] for r in drift_records(config, "2")] == ["fail", "pass"]
    move = promote(config, NAME, "2", "alice", "better on paper")
    assert (move.to_version, move.record["step"], move.record["version"]) == ("2", "promote", "2")
    assert "drift_acknowledged" not in move.record["details"]
    assert move.record == read_chain(config.chain_dir, NAME)[-1]
    assert MlflowClient(mlflow_server).get_model_version_by_alias(NAME, "champion").version == "2"
