"""A dataset block alone runs the whole pipeline (issue 15, item 6): no demo suite, no demo model name. And a
suite drafted from a raw table with integer columns passes the splits prepare makes of it (float64).

Measured before: a config with only a dataset block failed on expectations/demo_credit.json, and the model
would have been named govtrain-credit; a drafted suite failed its own table on every integer feature."""
import numpy as np
import pandas as pd
import pytest
import yaml

from govtrain.components.validate import run_suite, summarize
from govtrain.core.config import load_config
from govtrain.data.suite_draft import draft_suite


def test_a_suite_drafted_from_integer_columns_passes_the_float_splits():
    raw = pd.DataFrame({"age": np.arange(40, dtype="int64") + 20, "city": ["a", "b"] * 20,
                        "default": [0, 1] * 20})
    suite = draft_suite(raw, "draft", source="raw.csv", target="default")
    prepared = raw.assign(age=raw["age"].astype("float64"))  # what prepare gives every numeric feature
    result = run_suite({"train": prepared}, suite)["train"]
    failed = [r for r in summarize({"train": result}) if not r["success"]]
    assert [r for r in failed if r["severity"] == "critical"] == []


@pytest.mark.slow
def test_a_dataset_block_alone_runs_the_whole_pipeline(tmp_path, isolated_state, monkeypatch):
    from sklearn.datasets import load_breast_cancer

    from govtrain.pipelines.run import run_local

    # A real table shipped inside scikit-learn (569 rows, 30 features; read from the package, no download).
    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    config_file = tmp_path / "cancer.yaml"
    config_file.write_text(yaml.safe_dump({"dataset": {
        "path": str(tmp_path / "cancer.csv"), "target": "target",
        "numeric": [c for c in frame.columns if c != "target"]}}))
    monkeypatch.setenv("GOVTRAIN_HOME", str(tmp_path / "state"))  # the embedded store of this test alone
    config = load_config(config_file)
    assert config.validation.suite is None and config.registry.model_name == "cancer"
    run = run_local(config, tmp_path / "state", show_progress=False)
    validate = next(r for r in run.ledger["records"] if r["step"] == "validate")
    assert validate["details"]["suite"] == "structural"
    assert any("validation.suite is unset" in n for n in validate["not_measured"])
    assert any(o["name"].endswith("structural_suite.json") for o in validate["outputs"])
    assert run.registration is not None, run.ledger["outcome"]
    assert run.registration["model_name"] == "cancer"  # registered under the file's name
    # Issue 29: no sensitive attribute, so fairness is a gap with its reason; the explanation was computed.
    evaluate = next(r for r in run.ledger["records"] if r["step"] == "evaluate")
    assert "MEASURE 2.11" not in evaluate["rmf"] and evaluate["details"]["fairness"] == {}
    assert ("MEASURE 2.11: no sensitive attribute stated (dataset.sensitive): fairness not measured"
            in evaluate["not_measured"])
    importance = evaluate["details"]["importance"]
    assert "MEASURE 2.9" in evaluate["rmf"] and len(importance["features"]) == 30
    assert importance["metric"] == "roc_auc" and importance["features"][0]["drop"] >= importance["features"][-1]["drop"]
    register = next(r for r in run.ledger["records"] if r["step"] == "register")
    assert "MEASURE 2.9" not in register["rmf"] and register["details"]["statements"] == {}
