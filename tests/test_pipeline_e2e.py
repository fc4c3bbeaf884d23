"""The whole pipeline through kfp.local against a real MLflow server on loopback."""
import json
import shutil

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from govtrain.governance.ledger import verify
from govtrain.pipelines import demo_data
from govtrain.pipelines.run import PipelineFailed, run_local

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers


def test_pipeline_registers_a_verifiable_model(small_data, write_config, mlflow_server, isolated_state, tmp_path):
    config = write_config(small_data.data, registry={"tracking_uri": mlflow_server, "model_name": "e2e-credit"})
    run = run_local(config, isolated_state, show_progress=False)

    assert run.registered and run.ledger["outcome"] == "registered"
    steps = [r["step"] for r in run.ledger["records"]]
    # validate and leakage run in parallel, so their order may differ; the rest is a chain.
    assert steps[0] == "prepare" and set(steps[1:3]) == {"validate", "leakage"}
    assert steps[3:] == ["data_gate", "train", "evaluate", "register"]

    client = MlflowClient(mlflow_server)
    version = client.get_model_version_by_alias("e2e-credit", "challenger")
    assert version.version == run.registration["version"]
    assert version.tags["govtrain.ledger_root"] == run.ledger["root"]
    assert version.tags["govtrain.config_digest"] == config.digest()
    assert version.tags["govtrain.gate.evaluate.roc_auc"].startswith("pass")
    prepare = next(r for r in run.ledger["records"] if r["step"] == "prepare")
    assert version.tags["govtrain.data.train.sha256"] == prepare["outputs"][0]["sha256"]
    assert f"ledger root `{run.ledger['root']}`" in version.description
    # Issue 29: the card in MLflow is whole: the verdict first, the gates, the provenance command filled in.
    card = version.description
    assert card.index("## Verdict") < card.index("## Provenance") and "(in the full card" not in card.split(
        "## Gates")[1].split("## ")[0]
    assert f"`govtrain audit verify --model e2e-credit/{version.version}`" in card and len(card) <= 5000
    assert "| evaluate.roc_auc | " in card and "| ≥ 0.6 | config" in card
    assert f"(get-artifact?path=evidence/files/evaluate/roc_pr.png&run_uuid={version.run_id})" in card

    # Issue 32: the run's parameters are those that applied (no cluster.* for a local run), and the run page's
    # description names the run, its table and the verdict.
    mlflow_run = client.get_run(version.run_id)
    assert not [k for k in mlflow_run.data.params if k.startswith("cluster.")]
    assert mlflow_run.data.params["training.workers"] == "2" and "None" not in mlflow_run.data.params.values()
    note = mlflow_run.data.tags["mlflow.note.content"]
    assert note.startswith(f"govtrain run `{run.run_id}` on `{small_data.data.name}`") and "gated checks" in note

    # One MLflow run per pipeline run: rank 0 logged every epoch into the run that register completed.
    runs = client.search_runs([client.get_experiment_by_name("govtrain").experiment_id],
                              filter_string=f"tags.`govtrain.run_id` = '{run.run_id}'")
    assert [r.info.run_id for r in runs] == [version.run_id]
    losses = client.get_metric_history(version.run_id, "train_loss")
    assert [m.step for m in losses] == [1, 2, 3]
    train_record = next(r for r in run.ledger["records"] if r["step"] == "train")
    assert [m.value for m in losses] == [h["train_loss"] for h in train_record["details"]["history"]]
    assert client.get_metric_history(version.run_id, "world_size")[-1].value == 2

    # The registered model loads without unpickling and scores the training schema.
    mlflow.set_tracking_uri(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/e2e-credit@challenger")
    test = pd.read_parquet(run.run_dir / "data" / "test.parquet")
    scores = model.predict(test.head(50))["probability"]
    assert len(scores) == 50 and scores.between(0, 1).all()

    # The evidence bundle is in MLflow too, and the local copy verifies...
    artifacts = {a.path for a in client.list_artifacts(version.run_id, "evidence")}
    assert "evidence/ledger.json" in artifacts
    docs = {a.path for a in client.list_artifacts(version.run_id, "data_docs")}
    assert docs == {f"data_docs/data_docs_{s}.html" for s in ("train", "val", "test")}
    page = client.download_artifacts(version.run_id, "data_docs/data_docs_test.html")
    html = open(page).read()
    assert "Great Expectations" in html and "values must be greater than or equal to" in html
    # ...and each split's Data Docs page is a KFP HTML artifact of the validate step.
    kfp_docs = sorted((isolated_state / "kfp").glob("*/*/validate-op*/test_data_docs"))
    assert kfp_docs
    assert kfp_docs[-1].read_bytes() == (run.run_dir / "files" / "validate" / "data_docs_test.html").read_bytes()
    result = verify(run.run_dir)
    assert result.ok, result.problem
    assert result.records == 7 and result.data_not_supplied == 0

    # ...until one byte of one evidence file changes.
    tampered = tmp_path / "tampered"
    shutil.copytree(run.run_dir, tampered)
    target = tampered / "files" / "evaluate" / "evaluation.json"
    data = bytearray(target.read_bytes())
    data[10] ^= 0x20
    target.write_bytes(bytes(data))
    broken = verify(tampered)
    assert not broken.ok and "evaluate" in broken.problem and "evaluation.json" in broken.problem


def test_planted_leak_stops_at_the_data_gate(tmp_path, write_config, mlflow_server, isolated_state):
    files = demo_data.write_demo_data(tmp_path / "leaky", 3000, seed=11, leak_duplicates=400)
    config = write_config(files.data, registry={"tracking_uri": mlflow_server, "model_name": "leaky-credit"})
    run = run_local(config, isolated_state, show_progress=False)

    assert not run.registered
    assert run.ledger["outcome"] == "failed gate: data_gate"
    steps = [r["step"] for r in run.ledger["records"]]
    assert "train" not in steps and steps[-1] == "data_gate"
    gate = run.ledger["records"][-1]
    failed = [c["id"] for c in gate["checks"] if not c["passed"]]
    assert any(c.startswith("leakage.exact_duplicates.") for c in failed)
    assert verify(run.run_dir).ok
    with pytest.raises(mlflow.exceptions.MlflowException):
        MlflowClient(mlflow_server).get_registered_model("leaky-credit")


def test_a_crashed_step_still_leaves_a_sealed_ledger(small_data, write_config, isolated_state, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the snapshots should go")
    config = write_config(small_data.data, training={"checkpoint_dir": str(blocker)})
    with pytest.raises(PipelineFailed, match=r"training workers failed .*sealed evidence: "):
        run_local(config, isolated_state, show_progress=False)
    run_dir = max((isolated_state / "runs").glob("local-*"), key=lambda p: p.stat().st_mtime)
    ledger = json.loads((run_dir / "ledger.json").read_bytes())
    assert ledger["outcome"].startswith("error at train: training workers failed")
    last = ledger["records"][-1]
    assert (last["step"], last["decision"], last["details"]["failed_step"]) == ("seal", "error", "train")
    assert {"prepare", "validate", "leakage", "data_gate"} <= {r["step"] for r in ledger["records"]}
    result = verify(run_dir)
    assert result.ok, result.problem
    # The train step had opened the run's MLflow run; the crash ends it FAILED, not RUNNING forever.
    [mlflow_run] = MlflowClient(config.tracking_uri).search_runs(
        [MlflowClient(config.tracking_uri).get_experiment_by_name("govtrain").experiment_id],
        filter_string=f"tags.`govtrain.run_id` = '{ledger['run_id']}'")
    assert mlflow_run.info.status == "FAILED"
    assert mlflow_run.data.tags["govtrain.outcome"].startswith("error: training workers failed")


def test_a_run_stopped_at_the_model_gate_ends_its_mlflow_run_failed(small_data, write_config, mlflow_server,
                                                                      isolated_state):
    config = write_config(small_data.data, gates={"min_auc": 0.999},
                          registry={"tracking_uri": mlflow_server, "model_name": "gated-credit"})
    run = run_local(config, isolated_state, show_progress=False)
    assert not run.registered and run.ledger["outcome"] == "failed gate: evaluate"
    client = MlflowClient(mlflow_server)
    [mlflow_run] = client.search_runs([client.get_experiment_by_name("govtrain").experiment_id],
                                      filter_string=f"tags.`govtrain.run_id` = '{run.run_id}'")
    assert (mlflow_run.info.status, mlflow_run.data.tags["govtrain.outcome"]) == ("FAILED", "failed gate: evaluate")
