"""`govtrain init`: every column of the table is a feature, the target, or left out with its reason, and the
written config loads and names the table relative to itself."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from govtrain.core.config import load_config
from govtrain.data.config_draft import draft_config
from govtrain.data.io import DataError


def test_each_column_is_placed_or_left_out_with_its_reason(tmp_path):
    rng = np.random.default_rng(0)
    rows = 200
    frame = pd.DataFrame({"customer": [f"c{i}" for i in range(rows)], "income": rng.normal(size=rows),
                          "region": rng.choice(["n", "s"], rows), "country": "fr", "blank": np.nan,
                          "opened": pd.date_range("2020-01-01", periods=rows), "churned": rng.integers(0, 2, rows)})
    (tmp_path / "data").mkdir()
    frame.to_parquet(tmp_path / "data" / "churn.parquet")
    out = tmp_path / "configs" / "churn.yaml"
    out.parent.mkdir()
    placed = draft_config(tmp_path / "data" / "churn.parquet", "churned", out)
    assert placed == {"numeric": ["income"], "categorical": ["region"],
                      "left out": ["customer", "country", "blank", "opened"]}
    text = out.read_text()
    assert "#   customer: an identifier (almost every value unique)" in text
    assert "#   country: holds one value ('fr') in every row" in text and "#   blank: empty in every row" in text
    assert "#   opened: a date or time: name it dataset.timestamp for a time split" in text
    config = load_config(out)
    assert config.dataset.path == tmp_path / "data" / "churn.parquet"  # relative to the config's folder
    assert config.dataset.target == "churned" and config.registry.model_name == "churn"


def test_a_target_typo_names_the_column_it_was_probably_meant_to_be(tmp_path):
    pd.DataFrame({"income": [1.0, 2.0], "defaulted": [0, 1]}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match=r"t\.csv: no column 'defualted' for --target; did you mean 'defaulted'\?"):
        draft_config(tmp_path / "t.csv", "defualted", tmp_path / "t.yaml")
    assert not (tmp_path / "t.yaml").exists()
