"""An ensemble of MLP networks (training.members): each member learns on its own loss, the served answer is the
mean of their outputs, and the saved model reloads as the same ensemble where govtrain is not installed."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

from govtrain.components.train.step import AUTO_MEMBERS, AUTO_MEMBERS_ROWS, members
from govtrain.core.config import TrainingSpec
from govtrain.model.features import FeatureSpec
from govtrain.model.network import Ensemble, LoadedModel, build_model, save_model
from govtrain.model.task import Task


def small_table(rows: int = 64) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"x": rng.normal(size=rows), "c": rng.choice(["a", "b", "c"], size=rows),
                         "y": rng.integers(0, 2, size=rows)})


def test_auto_trains_four_members_below_ten_thousand_train_rows_and_one_above():
    auto = TrainingSpec()
    assert auto.members == "auto" and (AUTO_MEMBERS, AUTO_MEMBERS_ROWS) == (4, 10_000)
    assert members(auto, 9_999) == 4  # cowles' 1,000 rows, diabetes' 309
    assert members(auto, 10_000) == 1  # the demo's 700,000 train rows: one network
    assert members(TrainingSpec(members=2), 1_000_000) == 2  # a person's number stands
    assert members(TrainingSpec(model="mypkg.nets:make"), 100) == 1  # a user's factory is one network
    with pytest.raises(ValueError):
        TrainingSpec(members=0)


def test_each_member_answers_for_itself_in_training_and_the_ensemble_answers_their_mean_in_evaluation():
    frame = small_table()
    features, task = FeatureSpec.fit(frame, ["x"], ["c"]), Task.fit(frame["y"], "binary")
    torch.manual_seed(0)
    model = build_model(features, 4, [8], outputs=2, members=3)
    assert isinstance(model, Ensemble) and len(model.members) == 3
    x_num, x_cat = features.tensors(frame)
    y = torch.from_numpy(task.encode(frame["y"]))
    out = model.train()(x_num, x_cat)
    assert out.shape == (3, len(frame), 2)
    assert not torch.allclose(out[0], out[1])  # each member from its own initial weights
    # the loss is the mean of the members' own losses, not the loss of their mean
    own = torch.stack([task.loss(member, y) for member in out]).mean()
    assert task.loss(out, y).item() == pytest.approx(own.item())
    assert abs(task.loss(out.mean(dim=0), y).item() - own.item()) > 1e-4
    model.eval()
    with torch.no_grad():
        assert torch.allclose(model(x_num, x_cat), torch.stack([m(x_num, x_cat) for m in model.members]).mean(0))
    assert not isinstance(build_model(features, 4, [8], outputs=2), Ensemble)  # one member: the plain MLP


def test_a_saved_ensemble_reloads_with_every_member_and_serves_their_mean(tmp_path):
    frame = small_table()
    features, task = FeatureSpec.fit(frame, ["x"], ["c"]), Task.fit(frame["y"], "binary")
    torch.manual_seed(1)
    model = build_model(features, 4, [8], outputs=2, members=3).eval()
    save_model(model, features, tmp_path / "m", embedding_dim=4, hidden=[8], task=task, members=3)
    assert json.loads((tmp_path / "m" / "model.json").read_text())["members"] == 3
    loaded = LoadedModel(tmp_path / "m")
    x_num, x_cat = features.tensors(frame)
    with torch.no_grad():
        expected = torch.softmax(model(x_num, x_cat), dim=1)[:, 1].numpy()
    assert np.allclose(loaded.predict_proba(frame), expected, atol=1e-6)
    # a model.json that understates its members does not load into a smaller network quietly
    config = json.loads((tmp_path / "m" / "model.json").read_text())
    config["members"] = 1
    (tmp_path / "m" / "model.json").write_text(json.dumps(config))
    with pytest.raises(RuntimeError, match="state_dict"):
        LoadedModel(tmp_path / "m")
