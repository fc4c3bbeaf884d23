"""Drift: the engine's statistics equal Evidently's on both of its regimes, and every kind of bad
current batch gets a clear finding or a one-line error."""
import numpy as np
import pandas as pd
import pytest

from govtrain.data.io import DataError
from govtrain.monitoring.drift import run_drift
from govtrain.monitoring.engine import dataset_drift
from govtrain.pipelines import demo_data

FEATURES = demo_data.NUMERIC + demo_data.CATEGORICAL


def evidently_values(reference, current):
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=demo_data.NUMERIC, categorical_columns=demo_data.CATEGORICAL)
    snapshot = Report([DataDriftPreset()]).run(Dataset.from_pandas(current[FEATURES], data_definition=definition),
                                               Dataset.from_pandas(reference[FEATURES], data_definition=definition))
    return {m["config"]["column"]: (m["config"]["method"], float(m["value"]))
            for m in snapshot.dict()["metrics"] if m["config"]["type"].endswith("ValueDrift")}


@pytest.mark.parametrize("reference_rows", [800, 2500])  # <= 1000: p-value tests; > 1000: distances
def test_engine_matches_evidently_column_by_column(small_data, reference_rows):
    reference = pd.read_parquet(small_data.data).iloc[:reference_rows]
    current = pd.read_parquet(small_data.current)
    ours, _, _ = dataset_drift(reference, current, demo_data.NUMERIC, demo_data.CATEGORICAL, 0.5)
    theirs = evidently_values(reference, current)
    assert sum(c["drifted"] for c in ours) >= 3  # the demo's drift is there to find
    for column in ours:
        method, value = theirs[column["column"]]
        assert column["value"] == pytest.approx(value, rel=1e-6, abs=1e-9), (column, method)
        assert column["drifted"] == (value < column["threshold"] if "p_value" in column["method"]
                                     else value >= column["threshold"])


@pytest.fixture
def batches(small_data, write_config, tmp_path):
    config = write_config(small_data.data)
    current = pd.read_parquet(small_data.current)

    def run(spoil):
        frame = spoil(current.copy())
        path = tmp_path / "current.parquet"
        frame.to_parquet(path)
        return run_drift(config, path, small_data.data, tmp_path / "out")
    return run


@pytest.mark.slow  # multi-second: make test and CI run it, make test-fast does not
def test_bad_current_batches_get_a_finding_or_a_one_line_error(batches):
    with pytest.raises(DataError, match="column 'income' not found"):
        batches(lambda f: f.drop(columns=["income"]))
    with pytest.raises(DataError, match="has no rows"):
        batches(lambda f: f.iloc[:0])
    with pytest.raises(DataError, match=r"column 'age' row \d+: 'forty' is not a number"):
        batches(lambda f: f.assign(age=f["age"].astype(str).where(f.index != 5, "forty")))

    extra = batches(lambda f: f.assign(new_column=1))
    assert "new_column" in {c for c in extra_columns(extra)}
    empty = batches(lambda f: f.assign(income=np.nan))
    income = next(c for c in empty.columns if c["column"] == "income")
    assert income["drifted"] and "no non-missing values in the current batch" in income["finding"]
    novel = batches(lambda f: f.assign(region="atlantis"))
    assert next(c for c in novel.columns if c["column"] == "region")["drifted"]
    as_text = batches(lambda f: f.assign(age=f["age"].astype(str)))  # numbers stored as text still compare
    assert next(c for c in as_text.columns if c["column"] == "age")["value"] is not None


def extra_columns(result):
    import json

    return json.loads(result.summary.read_text())["extra_columns_ignored"]


@pytest.mark.parametrize("sizes", [(5000, 5000), (5000, 3001), (17, 1000)])
def test_wasserstein_equals_scipy(sizes):
    from scipy import stats

    from govtrain.monitoring.engine import wasserstein

    rng = np.random.default_rng(sizes[1])
    u, v = rng.normal(0, 1, sizes[0]), rng.gamma(2, 1, sizes[1])
    assert wasserstein(u, v) == pytest.approx(stats.wasserstein_distance(u, v), rel=1e-9)


def test_a_configured_column_test_replaces_evidentlys_choice(small_data, write_config, tmp_path):
    config = write_config(small_data.data, monitoring={"column_tests": {
        "income": {"method": "ks", "threshold": 1e-300}, "region": {"method": "chisquare", "threshold": 0.05}}})
    result = run_drift(config, small_data.current, small_data.data, tmp_path / "out")
    income = next(c for c in result.columns if c["column"] == "income")
    assert income["method"] == "K-S p_value" and income["configured"] and not income["drifted"]  # an absurd threshold
    region = next(c for c in result.columns if c["column"] == "region")
    assert region["method"] == "chisquare p_value".replace("chisquare", "chi-square")
    age = next(c for c in result.columns if c["column"] == "age")
    assert age["method"] == "Wasserstein distance (normed)" and "configured" not in age
