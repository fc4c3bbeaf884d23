"""Every tabular task (issue 15, items 1-2): the task rule, label maps, stratified splits, per-task leakage and
model gates with a planted problem each, and real tables shipped inside scikit-learn through the whole
pipeline, served over REST where govtrain is not installed.

Measured before: any target other than 0/1 was refused ("target must be 0/1, found '2' in row 131")."""
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import assert_streamed_agrees

from govtrain.components.evaluation import evaluate, fairness
from govtrain.components.evaluation import task_metrics as tm
from govtrain.components.leakage.step import leakage
from govtrain.components.prepare import prepare
from govtrain.core.config import load_config
from govtrain.model.features import FeatureSpec
from govtrain.model.network import LoadedModel, build_model, save_model
from govtrain.model.task import MAX_CLASSES, Task, TaskError
from tests.test_cli import govtrain


@pytest.mark.parametrize("values, kind, classes", [
    ([0, 1, 1, 0], "binary", ["0", "1"]),
    ([True, False, True], "binary", ["false", "true"]),
    (["yes", "no", "yes"], "binary", ["no", "yes"]),  # a positive word wins over the larger value
    (["bad", "good", "bad"], "binary", ["bad", "good"]),  # no positive word: the larger value
    ([3, 7, 7, 3], "binary", ["3", "7"]),
    ([0, 1, 2, 10, 2], "multiclass", ["0", "1", "2", "10"]),  # numeric order, not string order
    (["setosa", "virginica", "versicolor"], "multiclass", ["setosa", "versicolor", "virginica"]),
    ([1.5, 2.25, 3.0, 4.0], "regression", []),
    (list(range(25)), "regression", []),  # more than 20 whole numbers: a count, not classes
])
def test_the_task_rule(values, kind, classes):
    task = Task.fit(pd.Series(values, name="y"))
    assert (task.kind, task.classes, task.inferred) == (kind, classes, True)


def test_labels_map_to_indices_and_back_in_their_own_type():
    for values in ([0, 2, 1, 2], [True, False, False], ["b", "a", "c"]):
        series = pd.Series(values, name="y")
        task = Task.fit(series)
        assert task.decode(task.encode(series)).tolist() == values
    task = Task.fit(pd.Series(["no", "yes", "no"]), "binary", positive_label="no")
    assert task.classes == ["yes", "no"] and task.encode(pd.Series(["no", "yes"])).tolist() == [1, 0]
    with pytest.raises(TaskError, match=r"positive_label 'maybe' is not a value of target 'y' \(values: no, yes\)"):
        Task.fit(pd.Series(["no", "yes"], name="y"), positive_label="maybe")
    with pytest.raises(TaskError, match=r"target 'y' holds 'c' in row 2, a class the train split does not have"):
        Task.fit(pd.Series(["a", "b"], name="y")).encode(pd.Series(["a", "c"]))
    with pytest.raises(TaskError, match=rf"{MAX_CLASSES + 1} distinct values, more than {MAX_CLASSES} classes"):
        Task.fit(pd.Series([f"id{i}" for i in range(MAX_CLASSES + 1)], name="y"))
    regression = Task.fit(pd.Series([10.0, 20.0, 30.5], name="y"))
    assert regression.unscale(regression.encode(pd.Series([20.0, 30.5]))).tolist() == pytest.approx([20.0, 30.5])


def wine(tmp_path):
    from sklearn.datasets import load_wine

    frame = load_wine(as_frame=True).frame  # 178 rows, 13 numbers, 3 cultivars; read from the package
    frame["cultivar"] = frame.pop("target").map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    frame.to_csv(tmp_path / "wine.csv", index=False)
    return frame


def diabetes(tmp_path):
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame  # 442 rows, disease progression after a year
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    return frame


def wine_config(tmp_path, **sections):
    frame = wine(tmp_path)
    raw = {"dataset": {"path": "wine.csv", "target": "cultivar", "numeric": [c for c in frame if c != "cultivar"]},
           # Real wine is this easy: flavanoids alone tell barolo from the rest (one-vs-rest AUC 0.988).
           "leakage": {"target": {"threshold": 0.995}},
           # the settings its assertions were set with (the defaults are measured by benchmarks/real_tables.py)
           "training": {"epochs": 30, "batch_size": 32, "lr": 0.01, "early_stopping_patience": 3},
           "evaluation": {"compare_with_champion": False}, **sections}
    (tmp_path / "wine.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / "wine.yaml")


def diabetes_config(tmp_path, **sections):
    frame = diabetes(tmp_path)
    raw = {"dataset": {"path": "diabetes.csv", "target": "target", "categorical": ["sex"],
                       "numeric": [c for c in frame if c not in ("target", "sex")]},
           # 309 train rows: a small network for few epochs. This test is about the regression path and serving;
           # on 66 test rows R^2 moves by +-0.07 with the initial weights (0.28-0.35 across the issue-20
           # defaults), so it pins the settings its 0.3 gate was set with. benchmarks/model_quality.py
           # measures the defaults on this table over three seeds.
           "training": {"epochs": 8, "batch_size": 32, "lr": 0.01, "hidden": [64, 64], "embedding_dim": 8,
                        "lr_schedule": "constant", "min_steps_per_epoch": 1},
           "evaluation": {"compare_with_champion": False}, **sections}
    (tmp_path / "diabetes.yaml").write_text(yaml.safe_dump(raw))
    return load_config(tmp_path / "diabetes.yaml")


def run_prepare(config, tmp_path):
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    return paths, prepare(config, paths, tmp_path / "ev-prepare", "t1")


def test_a_random_split_keeps_each_class_share(tmp_path):
    config = wine_config(tmp_path)
    paths, record = run_prepare(config, tmp_path)
    assert record["details"]["task"]["kind"] == "multiclass" and record["details"]["task"]["inferred"]
    shares = {s: pd.read_parquet(p)["cultivar"].value_counts(normalize=True) for s, p in paths.items()}
    for name in ("val", "test"):  # within one row of the train shares (27 rows per split)
        assert (shares[name] - shares["train"]).abs().max() < 1 / 27 + 1e-9, shares
    assert record["metrics"]["test_share_barolo"] == pytest.approx(shares["test"]["barolo"], abs=1e-6)


def test_planted_target_leakage_in_regression(tmp_path):
    config = diabetes_config(tmp_path)
    paths, _ = run_prepare(config, tmp_path)
    clean = leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-clean", "t1")
    check = next(c for c in clean["checks"] if c["id"] == "leakage.target.single_feature_r2")
    assert check["passed"] and 0.2 < check["value"] < 0.6  # bmi or s5 alone explain a third
    for path in paths.values():  # a column computed from the label: a nonlinear copy, as leaks are
        frame = pd.read_parquet(path)
        frame["bmi"] = np.log(frame["target"]) + 0.01 * np.arange(len(frame)) % 0.03
        frame.to_parquet(path, index=False)
    leaky = leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-leaky", "t1")
    assert_streamed_agrees(config, paths, tmp_path, "ev-leaky", leaky)
    check = next(c for c in leaky["checks"] if c["id"] == "leakage.target.single_feature_r2")
    assert not check["passed"] and check["value"] > 0.95 and leaky["decision"] == "fail"
    report = json.loads((tmp_path / "ev-leaky" / "files" / "leakage" / "leakage.json").read_text())
    assert report["target"]["worst_feature"] == "bmi"
    assert any("class balance (a regression target" in n for n in leaky["not_measured"])


def test_natural_leaks_a_monotone_map_and_a_sum_are_caught_where_binned_r2_misses_them(tmp_path):
    """The two leaks real tables carry: a log of the target (a wage table's logwage: binned R^2 0.94, under
    the 0.95 limit), and two columns that add up to it (a bike table's casual + registered). Clean diabetes
    passes both new gates; each plant fails the gate meant for it, named with its score."""
    config = diabetes_config(tmp_path)
    paths, _ = run_prepare(config, tmp_path)
    clean = {c["id"]: c for c in leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-clean", "t1")["checks"]}
    assert clean["leakage.target.single_feature_rank"]["passed"] and clean["leakage.target.feature_pair_r2"]["passed"]
    assert clean["leakage.target.single_feature_rank"]["value"] < 0.7  # bmi and s5: about 0.56
    assert clean["leakage.target.feature_pair_r2"]["value"] < 0.6
    rng = np.random.default_rng(0)
    for path in paths.values():
        frame = pd.read_parquet(path)
        share = rng.uniform(0.2, 0.8, len(frame))
        frame["bmi"] = np.log(frame["target"])  # a monotone map
        frame["s1"], frame["s2"] = frame["target"] * share, frame["target"] * (1 - share)  # they add up to it
        frame.to_parquet(path, index=False)
    record = leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-leaky", "t1")
    checks = {c["id"]: c for c in record["checks"]}
    rank, pair = checks["leakage.target.single_feature_rank"], checks["leakage.target.feature_pair_r2"]
    assert not rank["passed"] and rank["value"] == 1.0 and rank["reference"].startswith("bmi: 1.0000")
    assert not pair["passed"] and pair["value"] > 0.999
    assert record["decision"] == "fail"
    report = json.loads((tmp_path / "ev-leaky" / "files" / "leakage" / "leakage.json").read_text())
    assert report["target"]["pair_r2"]["s1 & s2"] > 0.999 and report["target"]["rank_correlation"]["s1"] < 0.99


def test_planted_target_leakage_of_one_class(tmp_path):
    config = wine_config(tmp_path, leakage={"target": {"threshold": 0.999}})
    paths, _ = run_prepare(config, tmp_path)
    for path in paths.values():  # a column that is 1 exactly for grignolino: singles out one class of three
        frame = pd.read_parquet(path)
        frame["hue"] = (frame["cultivar"] == "grignolino").astype(float) + 0.001 * np.arange(len(frame)) % 0.01
        frame.to_parquet(path, index=False)
    record = leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-leak", "t1")
    assert_streamed_agrees(config, paths, tmp_path, "ev-leak", record)
    check = next(c for c in record["checks"] if c["id"] == "leakage.target.single_feature_auc")
    assert check["value"] == 1.0 and not check["passed"]


def hand_regressor(features: FeatureSpec, task: Task, weight_column: str) -> torch.nn.Module:
    """A one-layer network that predicts y = the named column exactly (weights set by hand, not trained)."""
    model = build_model(features, 4, [], outputs=1)
    j = features.numeric.index(weight_column)
    with torch.no_grad():
        model.mlp[0].weight.zero_()
        model.mlp[0].bias.fill_((features.means[j] - task.mean) / task.std)
        model.mlp[0].weight[0, j] = features.stds[j] / task.std
    return model


def test_a_group_biased_regressor_fails_the_error_gap_gate_and_its_interval_covers(tmp_path):
    rng = np.random.default_rng(0)
    n = 3000
    group = rng.choice(["a", "b"], n)
    x = rng.normal(50, 10, n)
    noise = rng.normal(0, 1, n) * np.where(group == "b", 6.0, 1.0)  # the model errs 6x more for group b
    pd.DataFrame({"x": x, "other": rng.normal(size=n), "group": group, "y": x + noise}).to_csv(
        tmp_path / "biased.csv", index=False)
    (tmp_path / "biased.yaml").write_text(yaml.safe_dump({
        "dataset": {"path": "biased.csv", "target": "y", "numeric": ["x", "other"], "sensitive": ["group"]},
        "evaluation": {"compare_with_champion": False}}))
    config = load_config(tmp_path / "biased.yaml")
    paths, _ = run_prepare(config, tmp_path)
    train = pd.read_parquet(paths["train"])
    features, task = FeatureSpec.fit(train, ["x", "other"], []), Task.fit(train["y"])
    save_model(hand_regressor(features, task, "x"), features, tmp_path / "model", embedding_dim=4, hidden=[],
               task=task)
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-prepare", tmp_path / "ev-eval", "t1",
                      calibrated_dir=tmp_path / "shipped")
    checks = {c["id"]: c for c in record["checks"]}
    gap = checks["evaluate.fairness.group.error_ratio"]
    assert not gap["passed"] and 4.0 < gap["value"] < 8.0 and record["decision"] == "fail"
    floor = checks["evaluate.beats_trivial"]  # no min_r2 set: the lower end of R^2's interval against train's mean
    assert floor["passed"] and record["metrics"]["r2"] > 0.8 and floor["value"] == floor["interval"][0]
    assert floor["threshold"] <= 0.0 and "evaluate.r2" not in checks
    coverage = checks["evaluate.interval_coverage"]
    # split conformal at 0.9 on 450 test rows; the gate reads the upper end of its Wilson interval
    assert coverage["passed"] and 0.85 < record["metrics"]["interval_coverage"] < 0.95
    assert coverage["value"] == coverage["interval"][1] and coverage["reference"].startswith(
        f"{record['metrics']['interval_coverage']:.4f} of")
    # Every gate states its sample; intervals where one is computed (Wilson for coverage, bootstrap for R^2).
    test_rows = len(pd.read_parquet(paths["test"]))
    assert coverage["rows"] == test_rows and coverage["interval"][0] < record["metrics"]["interval_coverage"] < \
        coverage["interval"][1]
    assert floor["interval"][0] < record["metrics"]["r2"] < floor["interval"][1]
    assert gap["rows"] == test_rows and checks["evaluate.mia_auc"]["rows"] > 0
    shipped = LoadedModel(tmp_path / "shipped").predict(pd.read_parquet(paths["test"]).head(3))
    assert list(shipped.columns) == ["prediction", "lower", "upper"]
    assert (shipped["upper"] - shipped["lower"]).round(6).nunique() == 1
    assert (shipped["upper"] - shipped["prediction"]).iloc[0] == pytest.approx(record["metrics"]["interval_half_width"])


def test_a_numeric_slice_is_cut_into_quartiles_not_one_group_per_value():
    ages = pd.Series(np.arange(18, 98), name="age")  # 80 ages: 80 groups of one row before
    groups = fairness.grouping(ages)
    assert groups.nunique() == 4 and groups.value_counts().tolist() == [20, 20, 20, 20]
    assert fairness.grouping(pd.Series([1, 2, 1, 3])).nunique() == 3  # few values: each its own group


def test_a_multiclass_model_miscalibrated_beyond_temperature_scaling_fails_the_ece_gate(tmp_path):
    """Where x > 0 the truth is a coin flip between a and b, yet the model is sure of a; where x < 0 it is
    rightly sure of c. One temperature cannot fix both, so the top-label ECE stays above its noise floor."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=3000)
    label = np.where(x > 0, rng.choice(["a", "b"], 3000), "c")
    pd.DataFrame({"x": x, "other": rng.normal(size=3000), "y": label}).to_csv(tmp_path / "m.csv", index=False)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({
        "dataset": {"path": "m.csv", "target": "y", "numeric": ["x", "other"]},
        "evaluation": {"compare_with_champion": False}}))
    config = load_config(tmp_path / "m.yaml")
    paths, _ = run_prepare(config, tmp_path)
    train = pd.read_parquet(paths["train"])
    features, task = FeatureSpec.fit(train, ["x", "other"], []), Task.fit(train["y"])
    assert task.kind == "multiclass" and task.classes == ["a", "b", "c"]
    model = build_model(features, 4, [], outputs=3)
    with torch.no_grad():
        model.mlp[0].weight.zero_()
        model.mlp[0].bias.zero_()
        model.mlp[0].weight[0, 0], model.mlp[0].weight[2, 0] = 8.0, -8.0  # sure of a for x > 0, of c below
    save_model(model, features, tmp_path / "model", embedding_dim=4, hidden=[], task=task)
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-prepare", tmp_path / "ev-eval", "t1")
    checks = {c["id"]: c for c in record["checks"]}
    assert not checks["evaluate.ece"]["passed"] and checks["evaluate.ece"]["value"] > 0.1
    assert record["metrics"]["accuracy"] == pytest.approx(0.75, abs=0.05) and record["decision"] == "fail"


def test_error_gaps_ignore_groups_too_small_to_judge():
    frame = pd.DataFrame({"g": ["a"] * 100 + ["b"] * 100 + ["c"] * 5})
    errors = np.r_[np.full(100, 1.0), np.full(100, 1.2), np.full(5, 50.0)]
    found = fairness.error_gaps(frame, "g", errors, min_group=30)
    assert found["groups_judged"] == 2 and found["error_ratio"] == pytest.approx(1.2)


@pytest.mark.slow  # 100 seeded draws at each size
@pytest.mark.parametrize("rows", [100, 300, 1000])
def test_top_label_calibration_holds_for_a_calibrated_multiclass_model_and_fails_a_miscalibrated_one(rows):
    passed, failed = 0, 0
    for seed in range(100):
        rng = np.random.default_rng(seed)
        proba = rng.dirichlet([0.6, 0.6, 0.6, 0.6], size=rows)
        y = np.array([rng.choice(4, p=p) for p in proba])  # labels drawn from the model's own probabilities
        passed += tm.multiclass_calibration(y, proba, seed)["ece_excess"] <= 0.05
        sharp = proba ** 3 / (proba ** 3).sum(axis=1, keepdims=True)  # the same ranking, overconfident
        failed += tm.multiclass_calibration(y, sharp, seed)["ece_excess"] > 0.05
    assert passed >= 95, passed
    assert failed >= 95, failed


def test_split_conformal_covers_at_its_level():
    """Over calibration sets, coverage is at least the level and at most level + 1/(n+1) (Lei et al. 2018)."""
    from govtrain.model.interval import conformal_quantile

    rng = np.random.default_rng(1)
    found = [tm.interval_coverage(np.zeros(2000), rng.normal(size=2000),
                                  conformal_quantile(np.abs(rng.normal(size=200)), 0.9), 0.9) for _ in range(200)]
    assert 0.897 < np.mean([f["coverage"] for f in found]) < 0.9 + 1 / 201 + 0.003
    assert all(f["coverage_ci"][0] < f["coverage"] < f["coverage_ci"][1] for f in found)


def run_through_cli(config_file, state, summary_line):
    """`govtrain run` as a user types it: exit 0 and the task line; returns the run folder and evaluate's metrics."""
    result = govtrain("run", "--config", config_file, cwd=config_file.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert summary_line in result.stdout
    run_dir = sorted((state / "runs").iterdir())[-1]
    ledger = json.loads((run_dir / "ledger.json").read_text())
    return run_dir, next(r for r in ledger["records"] if r["step"] == "evaluate")["metrics"]


@pytest.mark.slow
def test_a_multiclass_table_runs_serves_and_monitors(tmp_path, mlflow_server, isolated_state, monkeypatch):
    from tests.test_serving import ask_served

    config = wine_config(tmp_path, registry={"tracking_uri": mlflow_server, "model_name": "wine-cultivar"})
    run_dir, metrics = run_through_cli(tmp_path / "wine.yaml", isolated_state,
                                       "task: multiclass (3 classes), inferred from the target")
    assert {"accuracy", "macro_f1", "log_loss", "classwise_ece", "baseline_macro_f1"} <= set(metrics)
    assert metrics["macro_f1"] > 0.85 and metrics["baseline_macro_f1"] > 0.85
    report = json.loads((run_dir / "files" / "evaluate" / "evaluation.json").read_text())
    assert set(report["per_class"]) >= {"barolo", "grignolino", "barbera"}
    linear = report["baseline"]["linear"]
    assert linear["macro_f1"] == pytest.approx(metrics["linear_macro_f1"], abs=1e-6) and linear["macro_f1"] > 0.85
    assert linear["gap"] == pytest.approx(linear["macro_f1"] - metrics["macro_f1"], abs=1e-6)
    line = f"- linear model {linear['model']}: macro_f1 {linear['macro_f1']:.4f}"
    assert linear["model"].startswith("sklearn LogisticRegression")
    assert line in (run_dir / "files" / "evaluate" / "evaluation.md").read_text()
    assert sum(report["per_class"][c]["support"] for c in ("barolo", "grignolino", "barbera")) == report["rows"]["test"]
    rows = pd.read_parquet(run_dir / "data" / "test.parquet").head(10)
    answer = ask_served(mlflow_server, "wine-cultivar/1", rows.drop(columns="cultivar"), tmp_path)
    assert {p["label"] for p in answer} <= {"barolo", "grignolino", "barbera"}
    assert all(abs(sum(p[f"probability_{c}"] for c in ("barbera", "barolo", "grignolino")) - 1) < 1e-6
               for p in answer)
    assert np.mean([p["label"] == y for p, y in zip(answer, rows["cultivar"], strict=True)]) >= 0.8
    # Model commands from another folder with no config: the version's stored config (issue 15, item 7).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    drift = govtrain("drift", "--model", "wine-cultivar/1", "--current", tmp_path / "wine.csv", "--out",
                     tmp_path / "drift", cwd=elsewhere)
    assert drift.returncode == 0, drift.stderr
    assert "labelled batch: accuracy" in drift.stdout
    verified = govtrain("audit", "verify", "--model", "wine-cultivar/1", cwd=elsewhere)
    assert verified.returncode == 0 and verified.stdout.startswith("OK: wine-cultivar version 1"), verified.stderr
    diabetes(tmp_path)
    (tmp_path / "other.yaml").write_text(yaml.safe_dump({
        "dataset": {"path": "diabetes.csv", "target": "target", "numeric": ["age", "bmi"]},
        "registry": {"tracking_uri": mlflow_server}}))
    mismatch = govtrain("history", "--model", "wine-cultivar", "--config", tmp_path / "other.yaml", cwd=elsewhere)
    assert mismatch.returncode == 2 and "does not describe model wine-cultivar/1: dataset.target is 'target' here " \
        "and 'cultivar' in the model" in mismatch.stderr
    assert config.dataset.task is None


@pytest.mark.slow
def test_a_regression_table_runs_and_serves_predictions_with_an_interval(tmp_path, mlflow_server, isolated_state,
                                                                        monkeypatch):
    from tests.test_serving import ask_served

    diabetes_config(tmp_path, registry={"tracking_uri": mlflow_server, "model_name": "diabetes-progression"})
    run_dir, metrics = run_through_cli(tmp_path / "diabetes.yaml", isolated_state,
                                       "task: regression, inferred from the target")
    assert {"rmse", "mae", "r2", "interval_coverage", "baseline_rmse"} <= set(metrics)
    assert metrics["r2"] > 0.3 and 0.75 < metrics["interval_coverage"] <= 1.0
    linear = json.loads((run_dir / "files" / "evaluate" / "evaluation.json").read_text())["baseline"]["linear"]
    assert linear["model"].startswith("sklearn Ridge")
    assert linear["rmse"] == pytest.approx(metrics["linear_rmse"], abs=1e-5)
    assert linear["gap"] == pytest.approx(metrics["rmse"] / linear["rmse"] - 1, rel=1e-4)
    rows = pd.read_parquet(run_dir / "data" / "test.parquet").head(10)
    answer = ask_served(mlflow_server, "diabetes-progression/1", rows.drop(columns="target"), tmp_path)
    assert all(p["lower"] < p["prediction"] < p["upper"] for p in answer)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)  # no config: the version's own
    # each served half-width is the registered model's own for that row, where govtrain is not installed
    import mlflow.artifacts
    import mlflow.pyfunc
    from mlflow import MlflowClient

    # by this server's address, not the process's tracking URI (another test may have set it)
    source = MlflowClient(mlflow_server, mlflow_server).get_model_version_download_uri("diabetes-progression", "1")
    copy = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(tmp_path / "copy"),
                                               tracking_uri=mlflow_server)
    local = mlflow.pyfunc.load_model(copy).predict(rows.drop(columns="target"))
    widths = [p["upper"] - p["prediction"] for p in answer]
    assert widths == pytest.approx((local["upper"] - local["prediction"]).tolist(), rel=1e-4)
    if metrics["interval_follows_row"]:  # sigma(x) tracked the error on held-out train rows (model/interval.py)
        assert len({round(w, 6) for w in widths}) > 1
    else:  # it did not: one width for all
        assert widths == pytest.approx([metrics["interval_half_width"]] * len(widths), rel=1e-4)
    report = govtrain("audit", "report", "--model", "diabetes-progression/1", "--out", tmp_path / "audit",
                      cwd=tmp_path / "hide")
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "audit" / "audit_report.md").read_text()
    assert "- task: regression, inferred from the target" in text and f"r2 {metrics['r2']}" in text
    assert "evaluate.interval_coverage" in text


@pytest.mark.slow
def test_a_real_table_with_a_missing_category_goes_through_evaluate(tmp_path):
    """What crashed after training (issue 35): the Palmer penguins (palmerpenguins ships them) hold 11 rows
    with no sex, so the simple models saw a categorical mixing NA with strings (the pooling past 255 categories:
    test_evaluation's test of the simple models)."""
    import palmerpenguins

    from govtrain.components.train.step import train

    frame = palmerpenguins.load_penguins()
    assert frame["sex"].isna().sum() == 11
    frame.to_csv(tmp_path / "penguins.csv", index=False)
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
    (tmp_path / "penguins.yaml").write_text(yaml.safe_dump({
        "dataset": {"path": "penguins.csv", "target": "species", "numeric": numeric,
                    "categorical": ["island", "sex"]},
        "training": {"epochs": 3, "workers": 1}, "evaluation": {"compare_with_champion": False}}))
    config = load_config(tmp_path / "penguins.yaml")
    paths, _ = run_prepare(config, tmp_path)
    train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-train", "t1")
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-train", tmp_path / "ev-eval", "t1")
    report = json.loads((tmp_path / "ev-eval" / "files" / "evaluate" / "evaluation.json").read_text())
    trees = report["baseline"]
    assert trees["macro_f1"] > 0.9 and trees["linear"]["macro_f1"] > 0.9  # both fitted, with the NA category
    assert {c["id"] for c in record["checks"]} >= {"evaluate.beats_trivial", "evaluate.baseline_gap",
                                                   "evaluate.noise_metric_ratio"}
