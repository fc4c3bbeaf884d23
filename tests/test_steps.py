"""Each step function on small data, asserting on values; and checks of the checks."""

import pandas as pd
import pytest
import torch

from govtrain.components.evaluation import evaluate
from govtrain.components.prepare import prepare, split_labels
from govtrain.components.train.step import train
from govtrain.data.io import DataError
from govtrain.model.features import FeatureSpec
from govtrain.model.network import LoadedModel, build_model, save_model
from govtrain.model.task import Task
from govtrain.pipelines import demo_data


def run_prepare(config, tmp_path):
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    record = prepare(config, paths, tmp_path / "ev-prepare", "t1")
    return paths, record


def test_prepare_group_split_keeps_customers_apart(small_data, write_config, tmp_path):
    config = write_config(small_data.data)
    paths, record = run_prepare(config, tmp_path)
    frames = {s: pd.read_parquet(p) for s, p in paths.items()}
    assert sum(len(f) for f in frames.values()) == small_data.rows
    ids = {s: set(f[demo_data.ENTITY]) for s, f in frames.items()}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"]
    assert 0.6 < len(frames["train"]) / small_data.rows < 0.8
    assert record["metrics"]["train_rows"] == len(frames["train"])
    assert [o["name"] for o in record["outputs"]] == ["data/train.parquet", "data/val.parquet", "data/test.parquet"]
    # Deterministic: the same config gives the same bytes, so the same digests.
    _, again = run_prepare(config, tmp_path / "again")
    assert [o["sha256"] for o in again["outputs"]] == [o["sha256"] for o in record["outputs"]]


def test_time_split_puts_the_newest_rows_in_test(small_data, write_config):
    config = write_config(small_data.data, split={"strategy": "time"})
    frame = pd.read_parquet(small_data.data)
    labels = split_labels(frame, config)
    times = frame[demo_data.TIMESTAMP]
    assert times[labels == "train"].max() <= times[labels == "val"].min()
    assert times[labels == "val"].max() <= times[labels == "test"].min()


def test_a_random_split_keeps_each_copied_pair_in_one_split_and_patterns_spread(tmp_path, write_config):
    """A record held twice is a copy: both rows land in one split, so no copy of a test row is in train. Content
    held three times or more (a kind of row, as in Titanic) is split like any row, or whole kinds would vanish
    from test. The fractions hold in rows, and a table without copies splits exactly as a plain permutation."""
    import numpy as np

    rng = np.random.default_rng(3)
    rows = 3000
    frame = pd.DataFrame({"x": rng.normal(size=rows), "y": rng.integers(0, 2, rows)})
    frame.loc[:9, ["x", "y"]] = [0.5, 1]  # one kind of row, ten times
    copies = frame.iloc[100:400]
    table = pd.concat([frame, copies]).sample(frac=1.0, random_state=0).reset_index(drop=True)
    for stratify in (True, False):
        config = write_config(tmp_path / "t.csv", dataset={"numeric": ["x"], "categorical": [], "target": "y",
                                                           "entity_id": None, "timestamp": None, "sensitive": []},
                              split={"strategy": "random", "stratify": stratify})
        labels = split_labels(table, config)
        key = table["x"].astype(str) + "/" + table["y"].astype(str)
        per_copy = pd.Series(labels).groupby(key.to_numpy()).nunique()
        held = key.value_counts()
        assert (per_copy[held[held == 2].index] == 1).all() and len(held[held == 2]) == 300
        assert per_copy[held[held == 10].index].iloc[0] > 1  # the kind of row is in more than one split
        shares = pd.Series(labels).value_counts(normalize=True)
        assert abs(shares["train"] - 0.7) < 0.01 and abs(shares["test"] - 0.15) < 0.01
    plain = write_config(tmp_path / "t.csv", dataset={"numeric": ["x"], "categorical": [], "target": "y",
                                                      "entity_id": None, "timestamp": None, "sensitive": []},
                         split={"strategy": "random", "stratify": False})
    distinct = frame.assign(x=rng.normal(size=rows))  # no two rows alike
    order = np.random.default_rng(plain.split.seed).permutation(rows)
    position = np.empty(rows)
    position[order] = np.arange(rows) / rows
    expected = np.where(position < 0.7, "train", np.where(position < 0.85, "val", "test"))
    assert (split_labels(distinct, plain) == expected).all()


def test_prepare_rejects_a_class_too_rare_to_learn_and_test(tmp_path, write_config):
    """A third label in one row makes the target multiclass (inferred); that class cannot be in train and test."""
    frame = pd.read_parquet(demo_data.write_demo_data(tmp_path / "d", 200).data)
    frame.loc[17, demo_data.TARGET] = 2
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"bad\.csv: (target 'default' holds '2' in row 18, a class of 1 row\(s\) "
                                        r"none of which is in the train split|the (val|test) split has)"):
        run_prepare(write_config(bad), tmp_path)
    with pytest.raises(DataError, match=r"bad\.csv: target 'default' has 3 classes, but dataset.task is binary"):
        run_prepare(write_config(bad, dataset={"task": "binary"}), tmp_path)


def test_features_map_unseen_and_missing_categories_to_unknown():
    train = pd.DataFrame({"x": [1.0, 3.0], "c": ["a", "b"]})
    spec = FeatureSpec.fit(train, ["x"], ["c"])
    x_num, x_cat = spec.tensors(pd.DataFrame({"x": [2.0, None], "c": ["b", "zzz"]}))
    assert x_cat.tolist() == [[2], [0]]
    assert x_num[:, 0].tolist() == pytest.approx([0.0, 0.0])


def test_known_bad_model_fails_the_gate(small_data, write_config, tmp_path):
    """An untrained network must not pass the evaluation gate (a check of the check)."""
    config = write_config(small_data.data)
    paths, _ = run_prepare(config, tmp_path)
    train_frame = pd.read_parquet(paths["train"])
    features = FeatureSpec.fit(train_frame, config.dataset.numeric, config.dataset.categorical)
    torch.manual_seed(0)
    model = build_model(features, 8, [16])
    save_model(model, features, tmp_path / "model", embedding_dim=8, hidden=[16],
               task=Task.fit(train_frame[demo_data.TARGET]))
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-prepare", tmp_path / "ev-eval", "t1")
    assert record["decision"] == "fail"
    auc = next(c for c in record["checks"] if c["id"] == "evaluate.roc_auc")
    assert not auc["passed"] and auc["value"] < 0.6


@pytest.mark.slow
def test_ddp_training_on_two_workers_learns_and_evaluates(small_data, write_config, tmp_path):
    config = write_config(small_data.data)
    paths, _ = run_prepare(config, tmp_path)
    record = train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-train", "t1")
    assert record["metrics"]["world_size"] == 2 and record["metrics"]["epochs"] == 3
    history = record["details"]["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {o["name"] for o in record["outputs"]} >= {"files/train/model.safetensors", "files/train/model.json"}
    model = LoadedModel(tmp_path / "model")
    proba = model.predict_proba(pd.read_parquet(paths["test"]))
    assert proba.shape == (len(pd.read_parquet(paths["test"])),) and ((0 <= proba) & (proba <= 1)).all()
    result = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-train", tmp_path / "ev-eval", "t1")
    assert result["metrics"]["roc_auc"] > 0.62, result["metrics"]
