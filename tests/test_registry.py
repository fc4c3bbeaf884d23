"""Registration on a real MLflow server: a retried register step creates no second version, a crash
mid-registration is completed by the rerun, the model card is generated from the evidence and follows
approvals, and `govtrain server` serves the embedded store on loopback."""
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import free_port
from mlflow import MlflowClient

from govtrain.components.register import register
from govtrain.governance import chain
from govtrain.pipelines.run import run_local
from govtrain.registry.audit import audit_model
from govtrain.registry.lifecycle import Refused, promote
from tests.loopback import FaultProxy

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers


@pytest.fixture(scope="module")
def registered(small_data, mlflow_server, isolated_state, tmp_path_factory):
    import yaml
    from conftest import base_config

    from govtrain.core.config import load_config

    raw = base_config(small_data.data)
    raw["registry"] = {"tracking_uri": mlflow_server, "model_name": "card-credit",
                       "intended_use": "Rank test applications for a reviewer.",
                       "limitations": ["Synthetic data only."],
                       "datasheet": {"collection": "govtrain demo-data, seed 3"}}
    raw["governance"] = {"chain_dir": str(tmp_path_factory.mktemp("chains"))}
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    run = run_local(config, isolated_state, show_progress=False)
    outputs = isolated_state / "kfp" / run.log_path.stem
    model_dir = next(outputs.glob("*/train-op*/model"))
    evaluate_evidence = next(outputs.glob("*/evaluate-op*/evidence"))
    return config, run, model_dir, evaluate_evidence


def versions(client, name):
    return sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))


def test_a_retried_register_step_creates_no_second_version(registered, tmp_path):
    config, run, model_dir, evaluate_evidence = registered
    client = MlflowClient(config.registry.tracking_uri)
    before = versions(client, "card-credit")
    again = register(config, model_dir, evaluate_evidence, tmp_path / "ev", tmp_path / "bundle", run.run_id)
    assert versions(client, "card-credit") == before
    assert again["version"] == run.registration["version"] and again["ledger_root"] == run.ledger["root"]
    assert (tmp_path / "bundle" / "ledger.json").read_bytes() == (run.run_dir / "ledger.json").read_bytes()


class Crash(BaseException):
    """The process dying between creating the version and finishing it (not an Exception: no cleanup runs)."""


def test_a_crash_mid_registration_is_completed_by_the_rerun(registered, tmp_path, monkeypatch):
    config, _, model_dir, evaluate_evidence = registered
    client = MlflowClient(config.registry.tracking_uri)
    before = versions(client, "card-credit")
    real_append = chain.Open.append

    def crash(*args, **kwargs):
        raise Crash()

    monkeypatch.setattr(chain.Open, "append", crash)
    with pytest.raises(Crash):
        register(config, model_dir, evaluate_evidence, tmp_path / "ev1", tmp_path / "b1", "retry-run")
    created = versions(client, "card-credit")
    assert len(created) == len(before) + 1
    half = client.get_model_version("card-credit", str(created[-1]))
    assert half.tags["govtrain.ledger_root"]  # the version has its evidence even though the step died
    assert "evidence/ledger.json" in {a.path for a in client.list_artifacts(half.run_id, "evidence")}

    monkeypatch.setattr(chain.Open, "append", real_append)
    done = register(config, model_dir, evaluate_evidence, tmp_path / "ev2", tmp_path / "b2", "retry-run")
    assert versions(client, "card-credit") == created  # completed, not duplicated
    assert done["version"] == half.version and done["ledger_root"] == half.tags["govtrain.ledger_root"]
    assert client.get_model_version_by_alias("card-credit", "challenger").version == half.version
    records = chain.read_chain(config.governance.chain_dir, "card-credit")
    assert chain.registered_root(records, half.version) == done["ledger_root"]


def test_a_registration_killed_mid_way_is_completed_or_retired_without_a_pipeline_rerun(registered, tmp_path,
                                                                                      monkeypatch):
    """Before: the version stayed incomplete and @challenger for good unless the pipeline run was retried."""
    from govtrain.registry.publish import complete_registration

    config, _, model_dir, evaluate_evidence = registered
    client = MlflowClient(config.registry.tracking_uri)
    real_append = chain.Open.append

    def crash(*args, **kwargs):
        raise Crash()

    halves = []
    for run_id in ("killed-1", "killed-2"):
        monkeypatch.setattr(chain.Open, "append", crash)
        with pytest.raises(Crash):
            register(config, model_dir, evaluate_evidence, tmp_path / run_id / "ev", tmp_path / run_id / "b", run_id)
        monkeypatch.setattr(chain.Open, "append", real_append)
        halves.append(str(versions(client, "card-credit")[-1]))
    for number in halves:
        assert client.get_model_version("card-credit", number).tags["govtrain.registration"] == "incomplete"
    said = audit_model(config, f"card-credit/{halves[0]}").problem
    assert "`govtrain complete-registration --model card-credit/" in said

    done = complete_registration(config, f"card-credit/{halves[0]}")
    assert done["step"] == "register" and done["version"] == halves[0]
    assert client.get_model_version("card-credit", halves[0]).tags["govtrain.registration"] == "complete"
    assert audit_model(config, f"card-credit/{halves[0]}").ok
    with pytest.raises(ValueError, match="is not incomplete; nothing to complete"):
        complete_registration(config, f"card-credit/{halves[0]}")

    retired = complete_registration(config, f"card-credit/{halves[1]}", retire="killed by the node's OOM killer")
    assert retired["step"] == "retire" and retired["details"]["reason"] == "killed by the node's OOM killer"
    assert halves[1] not in {str(v) for v in versions(client, "card-credit")}
    assert audit_model(config, f"card-credit/{halves[0]}").ok  # the registry and the chain agree again


def test_mlflow_dropping_every_call_after_create_model_version_leaves_no_promotable_version(registered, tmp_path,
                                                                                           monkeypatch):
    """The measured fault: MLflow answers create_model_version, then drops every request (a proxy on 127.0.0.1
    closes the connection unanswered). The version exists, marked incomplete: promote and audit refuse it. The
    retry of the same pipeline run (KFP retries the register step) completes it: no second version."""
    config, _, model_dir, evaluate_evidence = registered
    client = MlflowClient(config.registry.tracking_uri)
    before = versions(client, "card-credit")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with FaultProxy(config.registry.tracking_uri, drop_after="model-versions/create") as proxy:
        via_proxy = config.model_copy(update={"registry": config.registry.model_copy(
            update={"tracking_uri": proxy.url})})
        with pytest.raises(Exception):  # noqa: B017 - whichever call MLflow's client failed on first
            register(via_proxy, model_dir, evaluate_evidence, tmp_path / "ev1", tmp_path / "b1", "dropped-run")
    assert any("model-versions/create" in p for p in proxy.forwarded) and proxy.dropped
    created = versions(client, "card-credit")
    assert len(created) == len(before) + 1
    half = client.get_model_version("card-credit", str(created[-1]))
    assert half.tags["govtrain.registration"] == "incomplete"
    assert chain.registered_root(chain.read_chain(config.governance.chain_dir, "card-credit"), half.version) is None
    with pytest.raises(Refused, match="registration is incomplete"):
        promote(config, "card-credit", half.version, "alice", "an orphan")
    audit = audit_model(config, f"card-credit/{half.version}")
    assert not audit.ok and "registration is incomplete" in audit.problem

    done = register(config, model_dir, evaluate_evidence, tmp_path / "ev2", tmp_path / "b2", "dropped-run")
    assert versions(client, "card-credit") == created and done["version"] == half.version
    assert client.get_model_version("card-credit", half.version).tags["govtrain.registration"] == "complete"
    assert client.get_model_version_by_alias("card-credit", "challenger").version == half.version
    assert audit_model(config, f"card-credit/{half.version}").ok


def test_model_card_is_generated_from_the_evidence_and_follows_approvals(registered):
    config, run, _, _ = registered
    client = MlflowClient(config.registry.tracking_uri)
    version = client.get_model_version("card-credit", run.registration["version"])
    card = version.description
    assert len(card) <= 5000
    assert "## Intended use\n\nRank test applications for a reviewer." in card
    prepare = next(r for r in run.ledger["records"] if r["step"] == "prepare")
    full = open(client.download_artifacts(version.run_id, "model_card/model_card.md")).read()
    # The description keeps the verdict, gates, comparison, figures and metrics within MLflow's 5,000
    # characters and drops the least-read sections first (issue 29); the whole card is the run artifact.
    assert prepare["outputs"][0]["sha256"] in full and "collection: govtrain demo-data, seed 3" in full
    assert "## Data\n\n(in the full card: model_card/model_card.html)" in card
    assert card.index("## Verdict") < card.index("## Gates") < card.index("## Figures")
    evaluate = next(r for r in run.ledger["records"] if r["step"] == "evaluate")
    low, high = evaluate["details"]["confidence_intervals"]["roc_auc"]
    assert (f"| discrimination | ROC AUC | {evaluate['metrics']['roc_auc']} (95% CI {low:.4f} to {high:.4f}) |"
            in card)
    assert "| MEASURE 2.12 | train `" in full and run.ledger["root"] in card
    # issue 31: what the step's all-reduce cost, from the train record, and how the step ran
    train = next(r for r in run.ledger["records"] if r["step"] == "train")
    assert f"- communication: {train['metrics']['comm_share']:.1%} of step time exposed" in full
    assert "- compile: auto, ran eager" in full
    trees, linear = evaluate["details"]["baselines"]
    metrics = evaluate["metrics"]
    assert linear["value"] == metrics["linear_roc_auc"] and linear["network"] == metrics["roc_auc"]
    from govtrain.governance.verdict import comparison_words
    for row in (trees, linear):
        name = row["model"].removeprefix("sklearn ")
        assert (f"| {name} | roc_auc | {row['value']} | {row['network']} | {comparison_words(row)} |"
                in card)
    assert "not yet approved" in card
    html = client.download_artifacts(version.run_id, "model_card/model_card.html")
    assert "<h2>Intended use</h2>" in open(html).read()
    inputs = client.get_run(version.run_id).inputs.dataset_inputs
    assert {d.dataset.name for d in inputs} == {"train", "val", "test"}

    promote(config, "card-credit", run.registration["version"], "carol", "reviewed the card")
    card = client.get_model_version("card-credit", run.registration["version"]).description
    assert "by carol: reviewed the card" in card and "not yet approved" not in card


def test_govtrain_server_serves_the_embedded_store_on_loopback(tmp_path):
    port = free_port()
    env = {**os.environ, "GOVTRAIN_HOME": str(tmp_path)}
    # Output to a file, not a pipe nobody drains: a full pipe blocks the server's shutdown logging after SIGINT.
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "govtrain.pipelines.cli", "server", "--port", str(port)],
                                env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, line = time.monotonic() + 180, ""
        while not line and time.monotonic() < deadline and proc.poll() is None:
            line = next((x for x in log_path.read_text().splitlines() if "MLflow tracking server at" in x), "")
            time.sleep(0.5)
        assert f"http://127.0.0.1:{port}" in line, log_path.read_text()[-2000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            assert response.status == 200
        assert (tmp_path / "mlflow.db").is_file()
        assert (tmp_path / "mlflow.db").stat().st_mode & 0o777 == 0o600  # the registry: its owner's only
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        # the server's own bound is 10 s graceful + 10 s after SIGKILL; the rest is a loaded 2-core CI machine
        proc.wait(timeout=120)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
