"""The train step reads its splits a batch at a time (components/train/fitting.py, shards.write_chunks): many
small batches must give what one batch gives, which is what the split held whole gives."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from govtrain.components.prepare import prepare
from govtrain.components.train import fitting
from govtrain.components.train.step import write_job
from govtrain.model.features import FeatureSpec
from govtrain.model.task import Task
from govtrain.pipelines import demo_data


@pytest.fixture
def splits(small_data, write_config, tmp_path):
    # a column of codes (0..5) for the code embedding, and a category with rare values, across batches
    frame = pd.read_parquet(small_data.data)
    frame["open_accounts"] = (np.arange(len(frame)) % 6).astype(float)
    frame.loc[frame.index[-3:], "region"] = "tiny"
    frame.to_parquet(tmp_path / "credit.parquet", index=False)
    config = write_config(tmp_path / "credit.parquet", training={"workers": 2, "seed": 3, "min_category_rows": 5,
                                                                 "numeric_embedding": {"kind": "periodic"}})
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev", "t1")
    return config, paths


def job_files(config, paths, folder):
    write_job(config, paths, folder, folder / "ckpt")
    return {p.name: p for p in folder.iterdir() if p.is_file()}


def test_many_batches_give_the_one_batch_figures(splits, tmp_path, monkeypatch):
    config, paths = splits
    one = job_files(config, paths, tmp_path / "one")
    monkeypatch.setattr(fitting, "FIT_ROWS", 333)  # 2,100-odd train rows: seven batches, the last one short
    many = job_files(config, paths, tmp_path / "many")
    assert not (tmp_path / "many" / "train-spill").exists()

    a, b = (json.loads(files["features.json"].read_text()) for files in (one, many))
    train = pd.read_parquet(paths["train"])
    held = FeatureSpec.fit(train, config.dataset.numeric, config.dataset.categorical, 5).to_dict()
    assert a == held  # one batch: FeatureSpec.fit's own figures, to the bit
    assert b["vocab"] == a["vocab"] and b["rare"] == a["rare"] == {**{c: [] for c in a["rare"]}, "region": ["tiny"]}
    assert b["lows"] == a["lows"] and b["highs"] == a["highs"]
    assert np.allclose(b["means"], a["means"], rtol=1e-12) and np.allclose(b["stds"], a["stds"], rtol=1e-12)
    assert one["task.json"].read_text() == many["task.json"].read_text() == json.dumps(
        Task.fit(train[demo_data.TARGET], None).to_dict())

    codes = [json.loads(files["job.json"].read_text())["numeric_embedding"]["codes"] for files in (one, many)]
    coded = [config.dataset.numeric[c[0]] for c in codes[0]]
    assert [c[0] for c in codes[0]] == [c[0] for c in codes[1]] and "open_accounts" in coded
    assert "credit_score" not in coded  # more than 255 values in train, though no batch of 333 rows holds 255
    for first, second in zip(codes[0], codes[1], strict=True):
        assert np.allclose(first[1], second[1])

    manifest = [json.loads(files["train-chunks.json"].read_text()) for files in (one, many)]
    assert [c["rows"] for c in manifest[0]["chunks"]] == [c["rows"] for c in manifest[1]["chunks"]]
    assert sum(c["rows"] for c in manifest[0]["chunks"]) == len(train)
    for first, second in zip(manifest[0]["chunks"], manifest[1]["chunks"], strict=True):
        x, y = load_file(str(one[first["file"]])), load_file(str(many[second["file"]]))
        # the same rows in the same places: labels and category codes exact, numerics to rounding
        assert x["y"].equal(y["y"]) and x["x_cat"].equal(y["x_cat"])
        assert np.allclose(x["x_num"].numpy(), y["x_num"].numpy(), atol=1e-6)


def test_every_train_row_lands_in_exactly_one_chunk(splits, tmp_path, monkeypatch):
    config, paths = splits
    monkeypatch.setattr(fitting, "FIT_ROWS", 500)
    files = job_files(config, paths, tmp_path / "job")
    manifest = json.loads(files["train-chunks.json"].read_text())
    spec = FeatureSpec(**json.loads(files["features.json"].read_text()))
    train = pd.read_parquet(paths["train"])
    expected = np.sort(spec.category_array(train)[:, 0])
    held = np.concatenate([load_file(str(files[c["file"]]))["x_cat"][:, 0].numpy() for c in manifest["chunks"]])
    assert np.array_equal(np.sort(held), expected)
    order = np.random.default_rng(config.training.seed).permutation(len(train))
    first = load_file(str(files[manifest["chunks"][0]["file"]]))["x_cat"].numpy()
    assert np.array_equal(first, spec.category_array(train.iloc[order[:len(first)]]))  # one seeded shuffle


def test_chunks_of_a_table_without_categoricals_or_numerics(tmp_path):
    """A tensor of no columns (x_cat of a table with numerics only) is written as rows x 0, in every chunk."""
    from govtrain.components.train.shards import write_chunks

    rows = 1000
    full = {"x_num": torch.arange(rows * 3, dtype=torch.float32).reshape(rows, 3),
            "x_cat": torch.zeros((rows, 0), dtype=torch.int64), "y": torch.arange(rows) % 2}
    batches = [{k: v[s:s + 300] for k, v in full.items()} for s in range(0, rows, 300)]
    manifest = write_chunks(tmp_path, batches, rows, workers=2, seed=1)
    order = np.random.default_rng(1).permutation(rows)
    start = 0
    for chunk in manifest["chunks"]:
        got = load_file(str(tmp_path / chunk["file"]))
        picked = order[start:start + chunk["rows"]]
        assert got["x_cat"].shape == (chunk["rows"], 0)
        assert got["x_num"].equal(full["x_num"][picked]) and got["y"].equal(full["y"][picked])
        start += chunk["rows"]
    assert start == rows
