"""evaluate on splits larger than evaluation.max_rows: a seeded sample of each, read a batch at a time, and the
headline metric on every test row, streamed (components/evaluation/sampled.py)."""
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from sklearn.metrics import roc_auc_score

from govtrain.components.evaluation import evaluate, sampled
from govtrain.components.evaluation.common import sample
from govtrain.components.prepare import prepare
from govtrain.model.features import FeatureSpec
from govtrain.model.network import LoadedModel, build_model, save_model
from govtrain.model.task import Task
from govtrain.pipelines import demo_data
from govtrain.registry.model_card import sampled_lines


def test_a_split_over_the_cap_is_read_as_a_seeded_sample_in_row_order(tmp_path, monkeypatch):
    frame = pd.DataFrame({"a": np.arange(5000), "b": np.arange(5000) % 7 == 0})
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "s.parquet", row_group_size=600)
    monkeypatch.setattr(sampled, "BATCH_ROWS", 450)  # batches cross row groups
    got, rows = sampled.read_split(tmp_path / "s.parquet", 1000, seed=4)
    assert rows == 5000 and len(got) == 1000
    pd.testing.assert_frame_equal(got, frame.iloc[sample(5000, 1000, 4)].reset_index(drop=True))
    whole, rows = sampled.read_split(tmp_path / "s.parquet", 5000, seed=4)
    assert rows == 5000 and whole.equals(frame)


@pytest.mark.slow
def test_evaluate_states_the_sample_and_the_headline_on_every_test_row(write_config, tmp_path):
    files = demo_data.write_demo_data(tmp_path / "demo", 9000, seed=5)
    config = write_config(files.data, evaluation={"max_rows": 1000})
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "p")
    train = pd.read_parquet(paths["train"])
    features = FeatureSpec.fit(train, config.dataset.numeric, config.dataset.categorical)
    task = Task.fit(train[config.dataset.target])
    torch.manual_seed(0)
    save_model(build_model(features, 8, [16]), features, tmp_path / "model", embedding_dim=8, hidden=[16], task=task)
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-prepare", tmp_path / "ev", "e")

    test = pd.read_parquet(paths["test"])
    assert len(test) > 1000
    expected = roc_auc_score(task.numbers(test[config.dataset.target]),
                             LoadedModel(tmp_path / "model").outputs(test)[:, 1])
    said = record["details"]["sampled"]
    assert said["headline_on_every_test_row"] == {"metric": "roc_auc", "value": round(expected, 6), "rows": len(test)}
    assert record["metrics"]["roc_auc_every_test_row"] == round(expected, 6)
    assert said["splits"]["test"] == {"rows": len(test), "measured": 1000}
    assert said["splits"]["train"] == {"rows": len(train), "measured": 1000}
    assert record["metrics"]["test_rows"] == 1000  # the gates' rows: the sample's
    assert {i["name"]: i["rows"] for i in record["inputs"]}["data/test.parquet"] == len(test)
    lines = sampled_lines(said)
    assert f"1,000 of the test split's {len(test):,} rows" in lines[-2]
    assert lines[-1] == f"- roc_auc on every one of the {len(test):,} test rows: {round(expected, 6)}"
