"""Your own network (issue 15, item 8): training.model "package.module:function" is built by the same DDP
worker, snapshotted and evidenced like the default MLP (its source file's digest in the train record), and
ships inside the logged model, so it serves where neither govtrain nor the user's code is installed."""
import json

import pandas as pd
import pytest
import yaml

from govtrain.components.prepare import prepare
from govtrain.components.train.step import TrainingError, train
from govtrain.core.config import ConfigError, load_config
from govtrain.governance.hashing import sha256_file
from govtrain.registry.models import client_for, load_version_model, parse_ref, resolve
from tests.conftest import base_config

FACTORY = '''"""A user's tabular network: numerics and the mean of the category embeddings, through one hidden layer."""
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, n_numeric, cardinalities, outputs):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, 4) for c in cardinalities)
        self.body = nn.Sequential(nn.Linear(n_numeric + 4, 32), nn.GELU(), nn.Linear(32, outputs))

    def forward(self, x_num, x_cat):
        cats = torch.stack([e(x_cat[:, j]) for j, e in enumerate(self.embeddings)]).mean(0)
        return self.body(torch.cat([x_num, cats], dim=1))


def small(features, task):
    return Small(len(features.numeric), features.cardinalities(), task.outputs)
'''


@pytest.fixture
def user_code(tmp_path, monkeypatch):
    """The user's package on PYTHONPATH (the torchrun workers inherit it), as a user's checkout would be."""
    folder = tmp_path / "usercode"
    (folder / "mynets").mkdir(parents=True)
    (folder / "mynets" / "__init__.py").write_text("")
    (folder / "mynets" / "tabular.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", str(folder))
    return folder


def test_a_factory_reference_is_checked_when_the_config_loads(tmp_path, small_data):
    raw = base_config(small_data.data)
    raw["training"] = {**raw["training"], "model": "mynets/tabular.py"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"training.model: String should match pattern"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.slow  # prepares a split first
def test_a_factory_that_cannot_be_imported_is_one_line(tmp_path, small_data):
    raw = base_config(small_data.data)
    raw["training"] = {**raw["training"], "model": "nosuch.module:small"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "c.yaml")
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "t1")
    with pytest.raises(TrainingError, match=r"training.model 'nosuch.module:small' cannot be imported here: No module "
                                            r"named 'nosuch'"):
        train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-train", "t1")


@pytest.mark.slow
def test_a_custom_network_trains_under_ddp_is_evidenced_and_serves_without_its_code(
        tmp_path, small_data, user_code, mlflow_server, isolated_state):
    from govtrain.pipelines.run import run_local
    from tests.test_serving import ask_served

    raw = base_config(small_data.data)
    raw["training"] = {**raw["training"], "model": "mynets.tabular:small"}
    raw["registry"] = {"tracking_uri": mlflow_server, "model_name": "custom-net"}
    raw["gates"] = {"min_auc": 0.6, "max_gap_to_baseline": None}  # a tiny network: this test is about the plumbing
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw))
    run = run_local(load_config(tmp_path / "c.yaml"), isolated_state, show_progress=False)
    assert run.registered, run.ledger["outcome"]
    record = next(r for r in run.ledger["records"] if r["step"] == "train")
    source = user_code / "mynets" / "tabular.py"
    assert record["details"]["network"] == {"model": "mynets.tabular:small", "source_file": "tabular.py",
                                            "source_sha256": sha256_file(source)}
    assert {"name": "code/tabular.py", "sha256": sha256_file(source), "rows": None} in record["inputs"]
    assert record["metrics"]["world_size"] == 2
    shipped = json.loads((run.run_dir / "files" / "train" / "model.json").read_text())
    assert shipped["network"] == "mynets.tabular:small"

    rows = pd.read_parquet(run.run_dir / "data" / "test.parquet").head(10)
    elsewhere = tmp_path / "elsewhere"  # neither govtrain nor mynets importable from here
    elsewhere.mkdir()
    answer = ask_served(mlflow_server, f"custom-net/{run.registration['version']}", rows, elsewhere)
    ref = parse_ref(f"custom-net/{run.registration['version']}")
    local = load_version_model(resolve(client_for(mlflow_server), ref), tmp_path / "local")
    assert local.network == "mynets.tabular:small"
    assert [p["probability"] for p in answer] == pytest.approx(local.predict_proba(rows).tolist(), abs=1e-6)
