"""The evaluation's checks are checked: metrics agree with scikit-learn and torchmetrics, and known-bad
models (random weights, shuffled labels, over-confident, biased, memorising) are caught."""
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from torchmetrics.classification import BinaryCalibrationError

from govtrain.components.evaluation import evaluate, metrics, privacy
from govtrain.components.prepare import prepare
from govtrain.components.train.step import train
from govtrain.governance.evidence import StepEvidence
from govtrain.model.features import FeatureSpec
from govtrain.model.network import build_model, save_model
from govtrain.model.task import Task
from govtrain.pipelines import demo_data


def test_metrics_agree_with_scikit_learn_and_torchmetrics():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    proba = np.clip(0.35 * y + rng.uniform(0, 0.65, 5000), 0, 1)
    perf = metrics.performance(y, proba)
    assert perf["roc_auc"] == pytest.approx(roc_auc_score(y, proba), abs=1e-12)
    assert perf["log_loss"] == pytest.approx(log_loss(y, np.clip(proba, 1e-7, 1 - 1e-7)), abs=1e-9)
    cal = metrics.calibration(y, proba)
    assert cal["brier"] == pytest.approx(brier_score_loss(y, proba), abs=1e-12)
    p, t = torch.tensor(proba), torch.tensor(y)
    assert cal["ece"] == pytest.approx(float(BinaryCalibrationError(n_bins=15, norm="l1")(p, t)), abs=1e-6)
    assert cal["mce"] == pytest.approx(float(BinaryCalibrationError(n_bins=15, norm="max")(p, t)), abs=1e-6)
    y4 = np.array([1, 0, 1, 0])
    assert metrics.calibration(y4, np.full(4, 0.9))["ece"] == pytest.approx(0.4)  # one bin, gap 0.4


def drawn(rows: int, seed: int, overconfidence: float = 1.0):
    """Test labels drawn from known probabilities; the model predicts them exactly (calibrated by construction)
    or with its logits stretched by `overconfidence`."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2, 3, rows)
    y = (rng.random(rows) < p).astype(float)
    return y, 1 / (1 + np.exp(-overconfidence * np.log(p / (1 - p))))


@pytest.mark.parametrize("rows", [100, 300, 1000])
def test_the_default_calibration_gate_holds_on_small_test_sets(rows):
    """Issue 15's measurement: a 15-bin ECE on a few hundred rows is inflated by its own sampling noise, so
    max_ece 0.05 stopped calibrated models (here: 0 % of draws pass the raw ECE at 100 rows, 8.5 % at 300).
    The gate now measures the ECE beyond the 95th percentile of what calibrated labels give by chance."""
    limit = 0.05  # gates.max_ece's default
    passed = [metrics.calibration(*drawn(rows, seed), seed=seed)["ece_excess"] <= limit for seed in range(100)]
    assert sum(passed) >= 95
    raw = [metrics.calibration(*drawn(rows, seed), seed=seed)["ece"] <= limit for seed in range(100)]
    if rows <= 300:
        assert sum(raw) < 50  # the old statistic fails most calibrated models at this size


def test_a_miscalibrated_model_still_fails_the_calibration_gate():
    failed = [metrics.calibration(*drawn(1000, seed, overconfidence=2.5), seed=seed)["ece_excess"] > 0.05
              for seed in range(50)]
    assert sum(failed) >= 48
    cal = metrics.calibration(*drawn(300, 0, overconfidence=4.0))
    assert cal["rows"] == 300 and cal["ece_excess"] > 0.05 and cal["ece"] > cal["ece_noise_q95"]


def prepared(config, tmp_path, name="r"):
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", name)
    return paths


def check(record, check_id):
    return next(c for c in record["checks"] if c["id"] == check_id)


@pytest.mark.slow
def test_random_weights_and_shuffled_labels_fail_the_gate(small_data, write_config, tmp_path):
    config = write_config(small_data.data)
    paths = prepared(config, tmp_path)
    features = FeatureSpec.fit(pd.read_parquet(paths["train"]), config.dataset.numeric, config.dataset.categorical)
    torch.manual_seed(0)
    save_model(build_model(features, 8, [16]), features, tmp_path / "random", embedding_dim=8, hidden=[16],
               task=Task.fit(pd.read_parquet(paths["train"])[config.dataset.target]))
    random_record = evaluate(config, tmp_path / "random", paths, tmp_path / "ev-prepare", tmp_path / "ev-r", "r")
    assert random_record["decision"] == "fail" and not check(random_record, "evaluate.roc_auc")["passed"]

    shuffled = pd.read_parquet(paths["train"])
    shuffled[config.dataset.target] = np.random.default_rng(1).permutation(shuffled[config.dataset.target].to_numpy())
    shuffled.to_parquet(tmp_path / "shuffled.parquet")
    train(config, {**paths, "train": tmp_path / "shuffled.parquet"}, tmp_path / "ev-prepare", tmp_path / "shuf",
          tmp_path / "ev-t", "s")
    record = evaluate(config, tmp_path / "shuf", paths, tmp_path / "ev-t", tmp_path / "ev-s", "s")
    assert record["decision"] == "fail" and check(record, "evaluate.roc_auc")["value"] < 0.6


@pytest.mark.slow
def test_an_over_confident_model_fails_calibration_and_passes_after_temperature_scaling(small_data, write_config,
                                                                                        tmp_path):
    config = write_config(small_data.data, gates={"max_ece": 0.08})
    paths = prepared(config, tmp_path)
    train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-t", "c")
    # Over-confidence: multiply each member's last layer by 6, so every logit (their mean) is six times too large.
    import re

    from safetensors.torch import load_file, save_file

    weights = load_file(str(tmp_path / "model" / "model.safetensors"))
    layers = [re.fullmatch(r"(members\.\d+\.)?mlp\.(\d+)\.weight", k) for k in weights]
    depth = max(int(m.group(2)) for m in layers if m)
    last = [m.group(0) for m in layers if m and int(m.group(2)) == depth]
    assert len(last) == 4  # 2,100 train rows: four networks (training.members auto)
    for key in [*last, *(k.replace("weight", "bias") for k in last)]:
        weights[key] = weights[key] * 6
    save_file(weights, str(tmp_path / "model" / "model.safetensors"))
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-t", tmp_path / "ev-c", "c",
                      calibrated_dir=tmp_path / "calibrated")
    assert record["metrics"]["ece_before_scaling"] > 0.08  # would fail the gate as trained
    assert check(record, "evaluate.ece")["passed"] and record["metrics"]["ece"] <= 0.08
    assert record["metrics"]["temperature"] > 3
    import json

    assert json.loads((tmp_path / "calibrated" / "model.json").read_text())["temperature"] == pytest.approx(
        record["metrics"]["temperature"], rel=1e-4)  # the temperature ships with the model


@pytest.mark.slow
def test_a_model_whose_label_follows_the_sensitive_attribute_fails_the_fairness_gate(write_config, tmp_path):
    files = demo_data.write_demo_data(tmp_path / "biased", 3000, seed=5)
    frame = pd.read_parquet(files.data)
    rng = np.random.default_rng(0)
    frame[demo_data.TARGET] = (rng.random(len(frame)) < np.where(frame["gender"] == "female", 0.75, 0.1)).astype(int)
    frame.to_parquet(files.data)
    config = write_config(files.data, dataset={"categorical": [*demo_data.CATEGORICAL, "gender"],
                                               "sensitive": ["gender"]},
                          gates={"min_auc": 0.5, "max_ece": 0.2, "min_noise_auc_ratio": 0.5})
    paths = prepared(config, tmp_path)
    train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-t", "f")
    record = evaluate(config, tmp_path / "model", paths, tmp_path / "ev-t", tmp_path / "ev-f", "f")
    dp = check(record, "evaluate.fairness.gender.demographic_parity_difference")
    assert not dp["passed"] and dp["value"] > 0.25 and record["decision"] == "fail"


def fit(features, frame, target, hidden, epochs, weight_decay):
    torch.manual_seed(0)
    model = build_model(features, 8, hidden)
    x_num, x_cat = features.tensors(frame)
    y = torch.tensor(frame[target].to_numpy(), dtype=torch.long)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(epochs):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x_num, x_cat), y).backward()
        optimizer.step()
    model.eval()

    @torch.no_grad()
    def predict(f):
        return torch.softmax(model(*features.tensors(f)), 1)[:, 1].numpy()
    return predict


@pytest.mark.slow  # multi-second: make test and CI run it, make test-fast does not
def test_a_memorising_model_shows_higher_membership_inference_auc(small_data):
    frame = pd.read_parquet(small_data.data)
    members, others = frame.iloc[:200], frame.iloc[1000:1200]
    features = FeatureSpec.fit(members, demo_data.NUMERIC, demo_data.CATEGORICAL)
    target = demo_data.TARGET

    def mia(predict):
        return privacy.membership_inference(
            privacy.per_row_loss(members[target].to_numpy(), predict(members)),
            privacy.per_row_loss(others[target].to_numpy(), predict(others)))["mia_auc"]

    memorising = mia(fit(features, members, target, [256, 256], 1500, 0.0))
    regularised = mia(fit(features, members, target, [8], 15, 0.1))
    assert memorising > 0.65 and memorising > regularised + 0.15, (memorising, regularised)


def test_the_membership_attack_draws_its_rows_at_random_not_the_first_of_the_file():
    """A planted problem: a train split sorted so that its first rows are the easiest (iris sorted by class,
    aids2 by state) and a model that memorises nothing (members' and others' losses from one distribution).
    The attack must see no membership; on the file's first rows it saw 0.9 (aids2's refusal at 0.71)."""
    rng = np.random.default_rng(0)
    train_loss, test_loss = np.sort(rng.exponential(size=1990)), rng.exponential(size=426)
    members, others = privacy.attack_rows(1990, 426, rows=2000, seed=0)
    assert len(members) == len(others) == 426 and members.max() > 1500 and members.min() < 500
    fair = privacy.membership_inference(train_loss[members], test_loss[others])
    assert fair["mia_auc_interval"][0] < 0.5 < fair["mia_auc_interval"][1], fair
    first_rows = privacy.membership_inference(train_loss[:426], test_loss)
    assert first_rows["mia_auc"] > 0.85, first_rows
    assert np.array_equal(privacy.attack_rows(1990, 426, 2000, 0)[0], members)  # seeded: the trees see these rows


def test_the_linear_baseline_catches_a_network_worse_than_a_straight_line():
    """A planted problem per task: a label linear in the features, a city column with an unseen value and
    missing numbers on test; the linear model fits it, and a 'network' credited with a poor score is behind."""
    from govtrain.components.evaluation.baseline import Columns, comparison, linear
    from govtrain.registry.model_card import baseline_rows

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=4000), "z": rng.normal(size=4000),
                          "city": rng.choice(["a", "b", "c"], 4000)})
    score = frame["x"] - 0.5 * frame["z"] + frame["city"].map({"a": 0.0, "b": 1.0, "c": -1.0})
    test = frame[3000:].assign(city=lambda f: f["city"].replace("a", "zz"), x=lambda f: f["x"].mask(f.index % 7 == 0))
    columns = Columns(frame[:3000], ["x", "z"], ["city"])
    binary = (score > 0).to_numpy().astype(int)
    found = linear("binary", 2, columns, frame[:3000], binary[:3000], test, binary[3000:], 0.6)
    assert found["roc_auc"] > 0.9 and found["gap"] == pytest.approx(found["roc_auc"] - 0.6)
    assert found["model"].startswith("sklearn LogisticRegression")
    grade = np.digitize(score, [-1, 0, 1])
    found = linear("multiclass", 4, columns, frame[:3000], grade[:3000], test, grade[3000:], 0.3)
    assert found["macro_f1"] > 0.6 and found["gap"] > 0.3
    amount = (10 * score + rng.normal(size=4000)).to_numpy()
    found = linear("regression", 0, columns, frame[:3000], amount[:3000], test, amount[3000:], network_value=20.0)
    assert found["rmse"] < 5 and found["gap"] == pytest.approx(20.0 / found["rmse"] - 1)
    rows = baseline_rows(comparison({**found, "linear": {**found, "model": "line", "network_rmse": 1.0,
                                                          "gap": 1.0 / found["rmse"] - 1}}))
    # The backwards row: a simple model that does better is named as the better one.
    assert rows[0][-1] == f"Ridge does better than the network by {found['gap']:.1%} rmse"
    assert rows[1][-1] == f"the network does better than line by {abs(1.0 / found['rmse'] - 1):.1%} rmse"


def gate_of(evidence, gate_id):
    return next(c for c in evidence.checks if c["id"] == gate_id)


def test_the_baseline_gap_catches_a_network_worse_than_the_simple_model(tmp_path):
    """A planted problem: the label is a threshold rule on one feature, which trees learn at once; a
    'network' credited with AUC 0.6 is 0.3+ behind, and the default gap gate fails it, saying what the
    trees reached; a network level with them passes."""
    from govtrain.components.evaluation import model_gate
    from govtrain.components.evaluation.baseline import simple_models
    from govtrain.core.config import Config
    from govtrain.governance.evidence import StepEvidence

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"x": rng.normal(size=4000), "noise": rng.normal(size=4000),
                          "city": rng.choice(["a", "b", "c"], 4000)})
    y = ((frame["x"] > 0.3) ^ (frame["city"] == "c")).to_numpy().astype(int)
    found = simple_models("binary", 2, frame[:3000], y[:3000], frame[3000:].assign(
        city=lambda f: f["city"].replace("a", "zz")), y[3000:], ["x", "noise"], ["city"], 0.6, 0, 0.5)
    assert found["roc_auc"] > 0.9 and found["gap"] == pytest.approx(found["roc_auc"] - 0.6)
    best, theirs, lead = model_gate.best_gap("binary", {"roc_auc": 0.6}, found)
    assert theirs == max(found["roc_auc"], found["linear"]["roc_auc"]) and lead == pytest.approx(theirs - 0.6)
    assert found["trivial"]["value"] == 0.5 and 0.5 < found["noise_kept"] < 1.0
    config = Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x"]}})
    evidence = StepEvidence("evaluate", tmp_path / "ev", run_id="r", config_digest="c")
    model_gate.record(evidence, config, "binary", {"roc_auc": 0.6}, {"roc_auc": [0.58, 0.62]}, found, 0.95, 1000)
    gap = gate_of(evidence, "evaluate.baseline_gap")
    assert not gap["passed"] and gap["threshold"] == 0.05  # the margin: wider than the interval's half-width 0.02
    assert gap["reference"].startswith(f"{best} on the same split: roc_auc {theirs:.4f}, the network 0.6000")
    trivial = gate_of(evidence, "evaluate.beats_trivial")
    assert trivial["passed"] and trivial["value"] == 0.58 and trivial["threshold"] == 0.5
    assert "no threshold was set by a person" in trivial["reference"]
    noise = gate_of(evidence, "evaluate.noise_auc_ratio")  # the trees' share less 0.05, not a constant
    assert noise["threshold"] == round(found["noise_kept"] - 0.05, 6) and noise["passed"]

    level = StepEvidence("evaluate", tmp_path / "ev2", run_id="r", config_digest="c")
    auc = theirs - 0.08  # behind by more than the margin, within a small split's interval
    found = simple_models("binary", 2, frame[:3000], y[:3000], frame[3000:].assign(
        city=lambda f: f["city"].replace("a", "zz")), y[3000:], ["x", "noise"], ["city"], auc, 0, 0.5)
    model_gate.record(level, config, "binary", {"roc_auc": auc}, {"roc_auc": [auc - 0.1, auc + 0.1]}, found,
                      found["noise_kept"] - 0.2, 1000)
    assert gate_of(level, "evaluate.baseline_gap")["passed"]
    assert gate_of(level, "evaluate.baseline_gap")["threshold"] == pytest.approx(0.1)  # a small split: its interval
    assert not gate_of(level, "evaluate.noise_auc_ratio")["passed"]  # lost 0.2 more than the trees under noise


def test_a_floor_set_by_a_person_replaces_the_trivial_reference_and_the_refusal_names_the_trees(tmp_path):
    """The issue's refusal: macro-F1 0.38 against a person's 0.50, with what the trees reached beside it."""
    from govtrain.components.evaluation import model_gate
    from govtrain.core.config import Config
    from govtrain.governance.evidence import StepEvidence

    simple = {"model": "sklearn HistGradientBoostingClassifier (defaults)", "metric": "macro_f1", "macro_f1": 0.40,
              "network_macro_f1": 0.38, "gap": 0.02, "noise_kept": 0.9, "noise_severity": 0.5,
              "linear": {"model": "sklearn LogisticRegression", "metric": "macro_f1", "macro_f1": 0.36},
              "trivial": {"model": "always the most frequent train class", "metric": "macro_f1", "value": 0.05}}
    config = Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x"]},
                                    "gates": {"min_macro_f1": 0.5}})
    evidence = StepEvidence("evaluate", tmp_path / "ev", run_id="r", config_digest="c")
    model_gate.record(evidence, config, "multiclass", {"macro_f1": 0.38}, {"macro_f1": [0.33, 0.43]}, simple, 0.9, 500)
    floor = gate_of(evidence, "evaluate.macro_f1")
    assert not floor["passed"] and floor["threshold"] == 0.5
    assert floor["reference"] == ("set by a person (gates.min_macro_f1); HistGradientBoostingClassifier (defaults) "
                                  "on the same split: macro_f1 0.4000")
    assert not any(c["id"] == "evaluate.beats_trivial" for c in evidence.checks)  # the person's floor held
    assert gate_of(evidence, "evaluate.baseline_gap")["passed"]  # 0.02 behind the trees: within the margin


def test_the_simple_models_take_missing_categories_and_any_cardinality():
    """What crashed after training on real tables: a categorical with missing values (the encoders refused a
    mix of NA and strings) and one with more than 255 values (HistGradientBoosting's limit). Both now fit, and
    the pooling is stated."""
    from govtrain.components.evaluation.baseline import MAX_TREE_CATEGORIES, OTHER, simple_models

    rng = np.random.default_rng(0)
    rows = 3000
    frame = pd.DataFrame({"x": rng.normal(size=rows), "id": [f"c{i}" for i in rng.integers(0, 1200, rows)],
                          "sex": pd.array(rng.choice(["f", "m", None], rows), dtype="string"),
                          "flag": pd.array(rng.choice([True, False, None], rows), dtype="boolean")})
    y = (frame["x"] + (frame["sex"] == "f").fillna(False) > 0).to_numpy().astype(int)
    for kind, target, classes in (("binary", y, 2), ("multiclass", np.digitize(frame["x"], [-1, 0, 1]), 4),
                                  ("regression", frame["x"].to_numpy() * 3, 0)):
        found = simple_models(kind, classes, frame[:2000], target[:2000], frame[2000:], target[2000:], ["x"],
                              ["id", "sex", "flag"], 0.5 if kind != "regression" else 1.0, 0, 0.5)
        assert found["pooled_categories"] == {"id": frame["id"][:2000].nunique() - MAX_TREE_CATEGORIES}
        assert found["linear"][found["metric"]] == pytest.approx(found["linear"][found["metric"]])  # a number
        assert np.isfinite(found[found["metric"]]) and np.isfinite(found["noise_kept"])
        assert 0.0 <= found["mia_auc"] <= 1.0
    assert OTHER == "(other)"


def test_the_privacy_gate_refuses_an_evident_attack_not_the_wobble_of_a_small_test_split(tmp_path):
    """breast_cancer (569 rows) was refused at attack AUC 0.637 measured on 85 members and 85 others, where
    chance alone moves it by 0.09; 0.75 on 2,000 each is evident."""
    from govtrain.components.evaluation import model_gate
    from govtrain.components.evaluation.privacy import auc_interval
    from govtrain.core.config import Config
    from govtrain.governance.evidence import StepEvidence

    low, high = auc_interval(0.637, 85, 85)
    assert 0.55 < low < 0.6 < 0.637 < high < 0.73
    assert auc_interval(0.75, 2000, 2000)[0] > 0.73
    config = Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x"]}})
    for auc, rows, passed in ((0.637, 85, True), (0.75, 2000, False)):
        evidence = StepEvidence("evaluate", tmp_path / f"ev{rows}", run_id="r", config_digest="c")
        model_gate.privacy_gate(evidence, config, {"mia_auc": auc, "mia_auc_interval": auc_interval(auc, rows, rows),
                                                   "rows_each": rows})
        check = evidence.checks[0]
        assert check["passed"] is passed and check["value"] == round(auc_interval(auc, rows, rows)[0], 6)
        assert check["reference"].startswith(f"attack AUC {auc:.4f} on {rows} members")


def test_a_multiclass_model_beats_the_class_shares_by_ranking_not_by_macro_f1(tmp_path):
    """heating (5 systems, 60% gas): a network whose argmax is always gas has the trivial macro-F1, yet ranks
    each class's rows above the rest better than the class shares do (mean one-against-the-rest AUC over 0.5);
    a model no better than the shares fails."""
    from govtrain.components.evaluation import model_gate
    from govtrain.components.evaluation import task_metrics as tm
    from govtrain.components.evaluation.baseline import trivial
    from govtrain.core.config import Config

    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(300), rng.integers(1, 5, 200)].astype(int)
    proba = np.full((500, 5), 0.1)
    proba[:, 0] = 0.6
    proba[np.arange(500), y] += 0.05  # a little signal, never enough to move the argmax off gas
    proba /= proba.sum(axis=1, keepdims=True)
    assert (proba.argmax(axis=1) == 0).all() and tm.macro_auc(y, proba) > 0.9
    assert tm.macro_auc(y, np.tile([0.6, 0.1, 0.1, 0.1, 0.1], (500, 1))) == 0.5
    shares = trivial("multiclass", 5, y, y)
    config = Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x"]}})
    for auc, interval, passed in ((0.93, [0.9, 0.95], True), (0.52, [0.47, 0.57], False)):
        evidence = StepEvidence("evaluate", tmp_path / f"ev{auc}", run_id="r", config_digest="c")
        model_gate.beats_trivial(evidence, config, "multiclass", {"macro_auc": auc}, {"macro_auc": interval}, shares,
                                 "(gates.min_macro_f1)", 500)
        check = evidence.checks[0]
        assert check["passed"] is passed and check["threshold"] == 0.5 and check["value"] == interval[0]


def test_the_privacy_limit_is_what_the_trees_leak_on_the_same_rows_when_that_is_higher(tmp_path):
    """iris: 105 train rows any model fits exactly, so the attack tells members apart whatever the model; the
    network is measured against what HistGradientBoosting leaks under the same attack. A person who wants an
    absolute limit sets gates.mia_against_trees false."""
    from govtrain.components.evaluation import model_gate
    from govtrain.components.evaluation.privacy import auc_interval
    from govtrain.core.config import Config

    found = {"mia_auc": 0.8, "mia_auc_interval": auc_interval(0.8, 2000, 2000), "rows_each": 2000}
    for trees, against, passed, limit in ((0.85, True, True, 0.85), (0.55, True, False, 0.6),
                                          (0.85, False, False, 0.6)):
        config = Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x"]},
                                        "gates": {"mia_against_trees": against}})
        evidence = StepEvidence("evaluate", tmp_path / f"ev{trees}{against}", run_id="r", config_digest="c")
        model_gate.privacy_gate(evidence, config, found, trees)
        assert evidence.checks[0]["passed"] is passed and evidence.checks[0]["threshold"] == limit


def test_the_noise_gate_compares_paired_shares_over_several_draws(tmp_path):
    """What the network keeps under noise is judged against what the trees keep on the same rows, both over
    5 noise draws, with the margin widened to the paired gap's 95% half-width: a network that loses its
    ranking under noise is refused on 1,000 rows; one that keeps it passes; 40 rows resolve the gap less
    finely than 1,000 (a wider half-width), so a verdict there is not one draw's luck."""
    from govtrain.components.evaluation import model_gate
    from govtrain.components.evaluation.baseline import NOISE_DRAWS, kept_of, simple_models
    from govtrain.core.config import Config
    from govtrain.governance.evidence import StepEvidence

    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=4000), "z": rng.normal(size=4000)})
    y = (frame["x"] + 0.3 * rng.normal(size=4000) > 0).to_numpy().astype(int)
    config = Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x", "z"]}})
    verdicts, halves = {}, {}
    for name, test_rows, fragile in (("fragile", 1000, True), ("robust", 1000, False), ("small", 40, False)):
        test = slice(3000, 3000 + test_rows)
        clean = 1 / (1 + np.exp(-4 * frame["x"].to_numpy()[test]))
        noisy = [rng.random(test_rows) if fragile else clean for _ in range(NOISE_DRAWS)]
        found = simple_models("binary", 2, frame[:3000], y[:3000], frame[test], y[test], ["x", "z"], [], 0.9, 0, 0.5,
                              network_out=clean, network_noisy=noisy)
        evidence = StepEvidence("evaluate", tmp_path / name, run_id="r", config_digest="c")
        model_gate.record(evidence, config, "binary", {"roc_auc": 0.9}, {"roc_auc": [0.88, 0.92]}, found,
                          kept_of("binary", y[test], clean, noisy), test_rows)
        gate = gate_of(evidence, "evaluate.noise_auc_ratio")
        verdicts[name], (low, high) = gate["passed"], found["noise_gap_interval"]
        halves[name] = (high - low) / 2
        assert gate["interval"] == [low, high] and "paired resamples of the test rows" in gate["reference"]
        assert f"each the mean of {NOISE_DRAWS} noise draws" in gate["reference"]
    assert verdicts == {"fragile": False, "robust": True, "small": True}
    assert halves["small"] > 2 * halves["robust"]


def test_a_perfectly_separated_validation_split_does_not_sharpen_the_temperature_to_its_clamp():
    """Against hard labels a separable split's NLL falls to 0 as T falls, and T went to its 0.05 clamp. Against
    Platt's targets (51/52 for each of 50 rows of a class) it stops where sigmoid(8 / T) = 51/52."""
    from govtrain.components.evaluation.metrics import fit_temperature, platt_targets

    logits = torch.tensor([[-4.0, 4.0]] * 50 + [[4.0, -4.0]] * 50)
    y = np.array([1] * 50 + [0] * 50)
    assert platt_targets(y, 2)[0].tolist() == pytest.approx([1 / 52, 51 / 52])
    assert fit_temperature(logits, y) == pytest.approx(8 / np.log(51), rel=1e-3)
    three = platt_targets(np.array([0, 0, 1, 2]), 3)  # class 0 held twice: 3/4 on it, 1/8 on each other class
    assert three[0].tolist() == pytest.approx([0.75, 0.125, 0.125]) and three[2].tolist() == pytest.approx(
        [1 / 6, 2 / 3, 1 / 6])
