"""How a table becomes tensors, and what the model does with values train never held: rare categories share the
unknown embedding (a row's own embedding can only memorise it), and a number beyond train's range is answered as
at its edge (a ReLU network would go on in a straight line)."""
import json

import numpy as np
import pandas as pd
import torch

from govtrain.components.evaluation import robustness
from govtrain.model.features import UNKNOWN, FeatureSpec
from govtrain.model.network import LoadedModel, build_model, save_model
from govtrain.model.task import Task
from govtrain.serving.checks import RowChecks


def frame_with_rare_counties() -> pd.DataFrame:
    # 6 rows of "big", 5 of "mid", 1 each of three rare counties and 2 missing values
    county = ["big"] * 6 + ["mid"] * 5 + ["r1", "r2", "r3", None, None]
    return pd.DataFrame({"x": np.arange(len(county), dtype=float), "county": county})


def test_a_category_on_fewer_than_min_rows_shares_the_unknown_embedding_with_missing_and_unseen_values():
    frame = frame_with_rare_counties()
    spec = FeatureSpec.fit(frame, ["x"], ["county"], min_rows=5)
    assert spec.vocab == {"county": ["big", "mid"]}
    assert spec.rare == {"county": ["r1", "r2", "r3"]}
    assert spec.cardinalities() == [3]  # unknown, big, mid
    codes = spec.category_array(pd.DataFrame({"x": [0.0] * 5, "county": ["big", "mid", "r2", None, "never"]}))
    assert codes[:, 0].tolist() == [1, 2, UNKNOWN, UNKNOWN, UNKNOWN]
    # without pooling every seen county has its own index, as before
    assert FeatureSpec.fit(frame, ["x"], ["county"]).cardinalities() == [6]
    # serving still knows a pooled county as seen: it is not refused as a category the model never saw
    checks = RowChecks.of(spec, frame)
    _, refusal = checks.check(pd.DataFrame({"x": [1.0], "county": ["r3"]}))
    assert refusal is None
    _, refusal = checks.check(pd.DataFrame({"x": [1.0], "county": ["never"]}))
    assert refusal is not None and "never" in refusal.cause


def test_a_value_beyond_train_range_is_answered_as_at_its_edge(tmp_path):
    train = pd.DataFrame({"x": np.linspace(0.0, 10.0, 50), "y": np.linspace(0.0, 10.0, 50)})
    features, task = FeatureSpec.fit(train, ["x"], []), Task.fit(train["y"], "regression")
    model = build_model(features, 4, [], outputs=1)
    with torch.no_grad():  # a straight line through the standardised x
        model.mlp[0].weight.fill_(1.0)
        model.mlp[0].bias.zero_()
    save_model(model, features, tmp_path / "m", embedding_dim=4, hidden=[], task=task)
    loaded = LoadedModel(tmp_path / "m")
    out = loaded.outputs(pd.DataFrame({"x": [5.0, 10.0, 25.0, 1e6, -40.0, 0.0]}))
    assert out[2] == out[1] and out[3] == out[1]  # 25 and a million: as at 10, train's largest x
    assert out[4] == out[5]  # -40: as at 0, train's smallest
    assert out[0] < out[1]  # inside the range the line is untouched
    # a model saved before ranges were kept (no lows/highs) is not clamped
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    del config["features"]["lows"], config["features"]["highs"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(config))
    old = LoadedModel(tmp_path / "m").outputs(pd.DataFrame({"x": [10.0, 25.0]}))
    assert old[1] > old[0]


def test_category_swaps_leave_a_column_whose_every_value_is_pooled(tmp_path):
    """msleep: every value of `vore` was rare in 59 train rows, so its only index is unknown; the swap used to
    draw index 1 and crashed evaluate after training (IndexError)."""
    frame = pd.DataFrame({"x": np.arange(12, dtype=float), "vore": list("abcdefghijkl"), "y": np.arange(12.0)})
    features, task = FeatureSpec.fit(frame, ["x"], ["vore"], min_rows=5), Task.fit(frame["y"], "regression")
    assert features.cardinalities() == [1]
    save_model(build_model(features, 4, [8], outputs=1), features, tmp_path / "m", embedding_dim=4, hidden=[8],
               task=task)
    model = LoadedModel(tmp_path / "m")
    x_num, x_cat = features.tensors(frame)
    found = robustness.category_swaps(model, x_num, x_cat, frame["y"].to_numpy(), 0.5, features.cardinalities(), 0)
    assert found["rate"] == 0.5 and np.isfinite(found["rmse"])


def test_a_numeric_of_whole_numbers_gets_an_embedding_per_value_looked_up_from_the_number(tmp_path):
    """vietnam_i's commune is a 194-value code the config lists as numeric: its periodic embedding could not tell
    neighbouring codes apart. Whole-number columns of at most max_code_values values get an embedding per value
    held by min_category_rows rows; a float column, a rarer value and a 2-value column get none."""
    from govtrain.components.train.fitting import code_anchors
    from govtrain.model.network import CodeEmbedding

    rng = np.random.default_rng(0)
    train = pd.DataFrame({"code": np.repeat([10, 11, 12, 13, 40], [6, 6, 6, 6, 2]).astype(float),
                          "flag": np.tile([0.0, 1.0], 13), "real": rng.normal(size=26)})
    features = FeatureSpec.fit(train, ["code", "flag", "real"], [])
    codes = code_anchors(train, features, max_values=255, min_rows=5)
    assert [column for column, _ in codes] == [0]  # only code: flag has 2 values, real is not whole
    anchors = np.asarray(codes[0][1]) * features.stds[0] + features.means[0]
    assert np.allclose(anchors, [10, 11, 12, 13])  # 40 is held by 2 rows: read as its nearest anchor, 13
    assert code_anchors(train, features, max_values=4, min_rows=5) == []  # 5 distinct values > 4
    layer = CodeEmbedding(codes, 4)
    with torch.no_grad():
        for i, emb in enumerate(layer.embeddings[0].weight):
            emb.fill_(float(i))
    raw = torch.tensor([10.0, 11.0, 11.4, 11.6, 13.0, 40.0, -99.0])
    standard = ((raw - features.means[0]) / features.stds[0]).reshape(-1, 1).repeat(1, 3)
    assert layer(standard)[:, 0].tolist() == [0.0, 1.0, 1.0, 2.0, 3.0, 3.0, 0.0]
    # it ships in model.json and is rebuilt from it: the same answers after loading
    task = Task.fit(pd.Series(rng.normal(size=26)), "regression")
    embedding = {"kind": "periodic", "frequencies": 4, "sigma": 0.3, "dim": 4, "codes": codes}
    model = build_model(features, 4, [8], outputs=1, numeric_embedding=embedding)
    save_model(model, features, tmp_path / "m", embedding_dim=4, hidden=[8], task=task, numeric_embedding=embedding)
    loaded = LoadedModel(tmp_path / "m")
    x_num, x_cat = features.tensors(train)
    with torch.no_grad():
        assert torch.equal(loaded.model(x_num, x_cat), model(x_num, x_cat))
