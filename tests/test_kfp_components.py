"""The steps as KFP components, run through kfp.local the way a user tests them before a cluster.

kfp.local runs a single component only with parameter inputs, so components that take artifacts are
exercised inside a small pipeline.
"""
import json
from pathlib import Path

import pytest
from kfp import dsl, local
from kfp.dsl import Artifact

from govtrain.components.ops import leakage_op, prepare_op


@pytest.fixture
def kfp_local(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    return tmp_path / "kfp"


def head(evidence_path: str) -> dict:
    folder = Path(evidence_path)
    digest = (folder / "HEAD").read_text().strip()
    return json.loads((folder / "records" / f"{digest}.json").read_text())


def test_prepare_component_alone(small_data, write_config, kfp_local):
    config = write_config(small_data.data)
    task = prepare_op(config_json=config.to_json(), run_id="kfp-test")
    record = head(task.outputs["evidence"].path)
    assert record["step"] == "prepare" and record["run_id"] == "kfp-test"
    metrics = record["metrics"]
    assert metrics["train_rows"] + metrics["val_rows"] + metrics["test_rows"] == small_data.rows


@dsl.pipeline
def prepare_then_leakage(config_json: str) -> Artifact:
    prepared = prepare_op(config_json=config_json, run_id="kfp-test")
    checked = leakage_op(config_json=config_json, run_id="kfp-test", train=prepared.outputs["train"],
                         val=prepared.outputs["val"], test=prepared.outputs["test"],
                         parent_evidence=prepared.outputs["evidence"])
    return checked.outputs["evidence"]


@pytest.mark.slow  # multi-second: make test and CI run it, make test-fast does not
def test_leakage_component_chains_the_evidence(small_data, write_config, kfp_local):
    config = write_config(small_data.data)
    evidence = Path(prepare_then_leakage(config_json=config.to_json()).output.path)
    record = head(str(evidence))
    assert record["step"] == "leakage" and record["decision"] == "pass"
    parent = json.loads((evidence / "records" / f"{record['parents'][0]}.json").read_text())
    # The leakage evidence folder carries the prepare record too: the trail travels with the artifact.
    assert parent["step"] == "prepare" and parent["hash"] == record["parents"][0]
