"""A model's whole life on a real MLflow server: two registrations, approval with separation of
duties, rollback, a drift run, then audit verify / export / report, and a tampered bundle refused."""
import getpass
import hashlib
import json
import os
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from govtrain.governance import signing
from govtrain.governance.audit import audit_export
from govtrain.governance.chain import chain_path, read_chain
from govtrain.monitoring.drift import WEBHOOK_ENV, monitoring_metrics, notify, record_drift, run_drift
from govtrain.monitoring.history import drift_history
from govtrain.monitoring.job import drift_job
from govtrain.monitoring.webhook import SECRET_ENV, signature
from govtrain.pipelines.run import run_local
from govtrain.registry.audit import audit_model, export, report
from govtrain.registry.lifecycle import Refused, discrepancies, history, promote, rollback
from govtrain.registry.models import client_for, load_version_model, parse_ref, reference_sample, resolve
from govtrain.registry.runs import log_monitoring_run
from tests.loopback import Loopback, QuietHandler

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers


class FlakyWebhook(Loopback):
    """A webhook receiver on 127.0.0.1 that answers 500 to its first `failures` requests."""

    def __init__(self, failures: int):
        self.bodies: list[bytes] = []
        self.signatures: list[str | None] = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self):
                hook.bodies.append(self.body())
                hook.signatures.append(self.headers.get("X-Govtrain-Signature-256"))
                self.reply(500 if len(hook.bodies) <= failures else 200)

        super().__init__(Handler, "/hook")


def flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


def add_line(data: bytes) -> bytes:
    return data + b"\nimport os  # an insider's line, run at load time\n"


@pytest.fixture
def signed(monkeypatch):
    seed, public = signing.new_key()
    monkeypatch.setenv(signing.KEY_ENV, seed)
    return public


def test_a_models_life_is_one_verifiable_chain(small_data, write_config, mlflow_server, isolated_state, signed,
                                               tmp_path):
    policy = tmp_path / "ai-policy.md"
    policy.write_text("# AI policy\nTrustworthiness characteristics we hold ourselves to.\n")
    config = write_config(small_data.data, registry={"tracking_uri": mlflow_server, "model_name": "life-credit"},
                          governance={"public_keys": [signed], "chain_dir": str(tmp_path / "chains"), "artefacts": {
                              "GOVERN 1.2": {"file": str(policy),
                                             "sha256": hashlib.sha256(policy.read_bytes()).hexdigest()},
                              "MAP 1.1": {"url": "https://example.com/intended-use"}}})
    first = run_local(config, isolated_state, show_progress=False)
    assert first.ledger["signature"]["public_key"] == signed

    # Separation of duties: whoever started the run cannot approve it.
    with pytest.raises(Refused, match="separation of duties"):
        promote(config, "life-credit", first.registration["version"], getpass.getuser(), "self-approval")
    promote(config, "life-credit", first.registration["version"], "alice", "first champion")

    second = run_local(config, isolated_state, show_progress=False)
    register = next(r for r in second.ledger["records"] if r["step"] == "register")
    assert register["details"]["previous_champion"] == {"version": first.registration["version"],
                                                        "ledger_root": first.ledger["root"]}
    promote(config, "life-credit", second.registration["version"], "alice", "better on paper")
    move = rollback(config, "life-credit", "bob", "regressed in production")
    assert (move.from_version, move.to_version) == (second.registration["version"], first.registration["version"])
    client = MlflowClient(mlflow_server)
    assert client.get_model_version_by_alias("life-credit", "champion").version == first.registration["version"]
    assert [(h["action"], h["to"], h["approver"]) for h in history(config, "life-credit")] == [
        ("promote", first.registration["version"], "alice"), ("promote", second.registration["version"], "alice"),
        ("rollback", first.registration["version"], "bob")]
    tags = client.get_registered_model("life-credit").tags
    assert sum(k.startswith("govtrain.alias_history.") for k in tags) == 3

    # Drift against the reference stored with the version at registration, logged as a monitoring run,
    # alerted through a webhook that fails twice before it answers, and recorded in the chain.
    version = resolve(client_for(config.registry.tracking_uri), parse_ref("life-credit@champion"))
    reference = reference_sample(version, tmp_path / "ref")
    assert version.version == first.registration["version"]
    drift = run_drift(config, small_data.current, reference, tmp_path / "drift", model=load_version_model(version))
    assert drift.drifted
    summary = json.loads(drift.summary.read_text())
    assert summary["prediction"]["method"] == "Wasserstein distance (normed)" and summary["prediction"]["value"] > 0
    assert summary["performance"]["reference_auc"] > 0.6 and "target" in summary  # the demo batch is labelled
    monitoring_run = log_monitoring_run(config.registry.tracking_uri, config.registry.experiment, version,
                                        drift.drifted, monitoring_metrics(drift), [drift.html, drift.summary])
    assert MlflowClient(mlflow_server).get_run(monitoring_run).data.metrics["drift_share"] == drift.drift_share
    with FlakyWebhook(failures=2) as hook:
        os.environ[WEBHOOK_ENV] = hook.url
        try:
            delivered = notify(drift, "life-credit/1", backoff=0.01)
        finally:
            del os.environ[WEBHOOK_ENV]
    assert delivered == {"delivered": True, "attempts": 3, "error": None, "signed": False}
    assert json.loads(hook.bodies[-1])["drifted_columns"]
    with FlakyWebhook(failures=10) as hook:
        os.environ[WEBHOOK_ENV] = hook.url
        try:
            lost = notify(drift, "life-credit/1", attempts=3, backoff=0.01)
        finally:
            del os.environ[WEBHOOK_ENV]
    assert lost["delivered"] is False and lost["attempts"] == 3 and "500" in lost["error"]
    record_drift(config, "life-credit@champion", drift, small_data.current, monitoring_run=monitoring_run,
                 webhook=delivered)
    assert [row["drifted"] for row in drift_history(config, "life-credit")] == [True]

    # Through MLflow: bundle, signature, registry tag and chain all hold; the champion's life is in it.
    audit = audit_model(config, "life-credit@champion")
    assert audit.ok, audit.problem
    assert audit.ledger.signed_by == signed
    assert [r["step"] for r in audit.lifecycle] == ["register", "promote", "rollback", "drift"]

    # Offline: the exported zip verifies with the trusted key and nothing else, and not with another key.
    archive = export(config, "life-credit@champion", tmp_path / "export.zip")
    assert audit_export(archive, trusted=[signed]).ok
    other = audit_export(archive, trusted=[signing.new_key()[1]])
    assert not other.ok and "not a trusted key" in other.problem

    # The report: every subcategory a verified record claims is "evidenced", artefacts are linked.
    _, md, html = report(config, "life-credit@champion", tmp_path / "report")
    rows = {line.split(" | ")[0].strip("| "): line for line in md.read_text().splitlines() if line.startswith("| ")}
    claimed = {sid for r in first.ledger["records"] + audit.lifecycle for sid in r["rmf"]}
    assert claimed >= {"MEASURE 2.4", "MANAGE 2.4", "GOVERN 1.6", "MEASURE 2.12"}
    for sid in claimed:
        assert "| evidenced |" in rows[sid], rows[sid]
    assert "| artefact linked |" in rows["GOVERN 1.2"] and "| artefact linked |" in rows["MAP 1.1"]
    assert "| evidenced |" in rows["MEASURE 2.11"]  # fairness by gender, measured and gated by evaluate
    assert "| document to attach |" in rows["GOVERN 1.1"] and "needs a human artefact" in rows["GOVERN 1.1"]
    assert "<table>" in html.read_text() and "alice" in html.read_text()
    # No auth app on this server: the report says plainly that nobody vouched for these names.
    assert f"- registered by: {getpass.getuser()} (identity not authenticated)" in md.read_text()
    assert "by alice (identity not authenticated): first champion" in md.read_text()

    # A scheduled drift run retried by Kubernetes (same Job name as idempotency key) leaves one MLflow run
    # and one chain record: the retry reports the first attempt's record.
    # The alert is signed, names the chain record written before it, and its delivery is recorded too.
    key = "govtrain-drift-29412735"
    with FlakyWebhook(failures=0) as hook:
        os.environ[WEBHOOK_ENV], os.environ[SECRET_ENV] = hook.url, "shared-with-the-receiver"
        try:
            attempt = drift_job(config, small_data.current, model="life-credit@champion", out_dir=tmp_path / "k1",
                                idempotency_key=key)
            retry = drift_job(config, small_data.current, model="life-credit@champion", out_dir=tmp_path / "k2",
                              idempotency_key=key)
        finally:
            del os.environ[WEBHOOK_ENV], os.environ[SECRET_ENV]
    assert not attempt.replayed and retry.replayed and retry.record["hash"] == attempt.record["hash"]
    assert retry.monitoring_run == attempt.monitoring_run
    assert [row["drifted"] for row in drift_history(config, "life-credit")] == [True, True]
    [body] = hook.bodies  # one POST: the retry sent nothing
    assert json.loads(body)["chain_record"] == attempt.record["hash"]
    assert hook.signatures == [signature("shared-with-the-receiver", body)]
    notice = read_chain(config.chain_dir, "life-credit")[-1]
    assert (notice["step"], notice["details"]["drift_record"], notice["details"]["delivered"]) == (
        "notify", attempt.record["hash"], True)

    # The champion moved in MLflow directly, not through govtrain: the audit fails, naming alias, version
    # and the chain's last move; history says so too. Moved back, it verifies again.
    client.set_registered_model_alias("life-credit", "champion", second.registration["version"])
    moved = audit_model(config, "life-credit@champion")
    assert not moved.ok and moved.problem == (
        f"alias champion of life-credit points at version {second.registration['version']}, but the chain's "
        f"last move of it (record {move.record['seq']}, rollback by bob at {move.record['finished']}) was to "
        f"version {first.registration['version']}: moved outside govtrain")
    assert discrepancies(config, "life-credit") == [moved.problem]
    client.set_registered_model_alias("life-credit", "champion", first.registration["version"])
    assert audit_model(config, "life-credit@champion").ok and discrepancies(config, "life-credit") == []

    # The newest chain record cut off (the rest still links and is signed): the registry's anchor shows it,
    # through MLflow and in an export made afterwards. Put back, it verifies again.
    newest = sorted((chain_path(config.chain_dir, "life-credit") / "records").iterdir())[-1]
    kept = newest.read_bytes()
    newest.unlink()
    cut = audit_model(config, "life-credit@champion")
    assert not cut.ok and cut.problem.endswith("records were removed from the end")
    offline = audit_export(export(config, "life-credit@champion", tmp_path / "cut.zip"), trusted=[signed])
    assert not offline.ok and offline.problem == cut.problem
    newest.write_bytes(kept)
    assert audit_model(config, "life-credit@champion").ok

    # The served model is evidence: one flipped byte of the weights, or one line added to the shipped code (it
    # runs when a server loads the model), written into the artifact store, fails the audit and the promotion,
    # naming the file. Put back, it verifies again.
    v1 = client.get_model_version("life-credit", first.registration["version"])
    model_id = v1.source.rsplit("/", 1)[-1]
    original = Path(mlflow.artifacts.download_artifacts(v1.source, dst_path=str(tmp_path / "served")))
    weights = next(original.rglob("*.safetensors"))
    code = next(p for p in original.rglob("*.py") if p.parts[len(original.parts)] == "code")
    for target, change in ((weights, flip_last_byte), (code, add_line)):
        rel = target.relative_to(original)
        tampered = tmp_path / "tampered" / rel.name
        tampered.parent.mkdir(exist_ok=True)
        tampered.write_bytes(change(target.read_bytes()))
        client.log_model_artifact(model_id, str(tampered), artifact_path=rel.parent.as_posix())
        audit = audit_model(config, "life-credit@champion")
        assert not audit.ok and audit.problem.endswith(f"file model/{rel.as_posix()} does not match its sha256")
        with pytest.raises(Refused, match=f"model/{rel.as_posix()} does not match"):
            promote(config, "life-credit", first.registration["version"], "carol", "tampered")
        client.log_model_artifact(model_id, str(target), artifact_path=rel.parent.as_posix())
        assert audit_model(config, "life-credit@champion").ok

    # A version whose evidence was altered in MLflow is refused and fails the audit.
    bundle_ledger = tmp_path / "ledger.json"
    v2 = client.get_model_version("life-credit", second.registration["version"])
    ledger = json.loads((second.run_dir / "ledger.json").read_bytes())
    ledger["records"][-1]["actor"] = "someone-else"
    bundle_ledger.write_text(json.dumps(ledger))
    mlflow.set_tracking_uri(mlflow_server)
    MlflowClient(mlflow_server).log_artifact(v2.run_id, str(bundle_ledger), artifact_path="evidence")
    with pytest.raises(Refused, match="does not verify"):
        promote(config, "life-credit", second.registration["version"], "alice", "again")
    assert not audit_model(config, f"life-credit/{second.registration['version']}").ok
