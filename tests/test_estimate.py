"""Performance estimated without labels (CBPE, monitoring/estimate.py) in a seeded simulation, and the rows a
served model refuses (serving/checks.py), each cause planted."""
import numpy as np
import pandas as pd
import pytest

from govtrain.model.features import FeatureSpec
from govtrain.monitoring import estimate
from govtrain.serving.checks import RowChecks


def windows(count: int, rows: int, seed: int = 0):
    """Windows of a calibrated model's traffic: probabilities, and labels drawn from them."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        p = rng.beta(1.5, 4, size=rows)
        yield p, (rng.random(rows) < p).astype(int)


def test_the_estimate_holds_the_realised_value_in_nine_windows_of_ten_without_concept_shift():
    held = {"roc_auc": 0, "accuracy": 0, "f1": 0}
    for i, (p, y) in enumerate(windows(200, 500)):
        found, real = estimate.binary(p, seed=i), estimate.realised_binary(y, p)
        for metric in held:
            low, high = found[metric]["interval"]
            held[metric] += low <= real[metric] <= high
    assert all(count >= 180 for count in held.values()), held


def test_flipped_labels_in_a_segment_fall_outside_the_estimate_that_does_not_move():
    """Concept shift: the same inputs (so the same estimate), 40% of the labels flipped."""
    outside = 0
    for i, (p, y) in enumerate(windows(50, 800, seed=1)):
        found = estimate.binary(p, seed=i)
        segment = np.arange(len(y)) % 5 < 2
        real = estimate.realised_binary(np.where(segment, 1 - y, y), p)
        outside += not found["roc_auc"]["interval"][0] <= real["roc_auc"] <= found["roc_auc"]["interval"][1]
    assert outside >= 48, outside


def test_the_multiclass_estimate_holds_its_realised_accuracy_and_macro_f1():
    rng = np.random.default_rng(2)
    held = {"accuracy": 0, "macro_f1": 0}
    for i in range(60):
        logits = rng.normal(size=(400, 3)) * 1.5
        p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        y = (rng.random((400, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
        found, real = estimate.multiclass(p, seed=i), estimate.realised_multiclass(y, p)
        for metric in held:
            held[metric] += found[metric]["interval"][0] <= real[metric] <= found[metric]["interval"][1]
    assert all(count >= 54 for count in held.values()), held


@pytest.fixture
def checks():
    train = pd.DataFrame({"age": [20.0, 30.0, 40.0, 60.0], "income": [1.0, np.nan, 3.0, 4.0],
                          "city": ["a", "b", "a", "c"]})
    return RowChecks.of(FeatureSpec.fit(train, ["age", "income"], ["city"]), train)


@pytest.mark.parametrize("rows, status, column, words", [
    ({"income": [1.0]}, 400, "age", "column 'age' is missing"),
    ({"age": ["old"], "income": [1.0]}, 400, "age", "row 0: 'old' is not a number"),
    ({"age": [None], "income": [1.0]}, 422, "age", "row 0: missing, and the training data never left it empty"),
    ({"age": [30.0, 35.0], "income": [1.0, 2.0], "city": ["a", "zz"]}, 422, "city",
     "row 1: 'zz' is a category the model never saw (3 known)"),
    ({"age": [30.0, 99.0], "income": [1.0, 2.0]}, 422, "age", "row 1: 99 is outside the range the model was trained "
                                                               "on, widened by 10% (16 to 64)"),
])
def test_a_row_the_model_should_not_answer_is_refused_naming_its_column_and_cause(checks, rows, status, column,
                                                                                  words):
    frame = pd.DataFrame({"city": ["a"] * len(next(iter(rows.values()))), **rows})
    _, refusal = checks.check(frame)
    assert refusal is not None and (refusal.status, refusal.column) == (status, column)
    assert words in refusal.cause, refusal.cause


def test_a_missing_value_where_train_had_them_is_answered(checks):
    typed, refusal = checks.check(pd.DataFrame({"age": ["25"], "income": [None], "city": ["b"]}))
    assert refusal is None and typed["age"].dtype == "float64" and typed["age"].iloc[0] == 25.0


def test_the_regression_interval_follows_the_row_and_keeps_its_coverage():
    """A planted problem: errors that grow with the row, as a price's do (sd 0.2 x e^(0.9 z)). One width for
    every row under-covers the dear rows and over-covers the cheap ones; the normalised interval covers both
    near the level and is narrow where the error is small."""
    from govtrain.model.interval import conformal, fit_scale

    rng = np.random.default_rng(0)

    def rows(n):
        x, z, city = rng.normal(size=n), rng.normal(size=n), rng.integers(1, 4, n)
        noise = rng.normal(size=n) * 0.2 * np.exp(0.9 * z) * np.where(city == 3, 2.0, 1.0)
        return np.c_[x, z].astype(np.float32), city[:, None], noise  # the "model" predicts the mean: residual = noise

    train, val, test = rows(5000), rows(2000), rows(4000)
    scale = fit_scale(train[0], train[1], [4], train[2])
    q = conformal(scale, val[0], val[1], val[2], 0.9)
    widths = q * scale.sigma(test[0], test[1])
    dear, cheap = test[0][:, 1] > 0.5, test[0][:, 1] < -0.5
    covered = np.abs(test[2]) <= widths
    constant = np.abs(test[2]) <= np.quantile(np.abs(val[2]), 0.9)
    assert 0.87 <= covered.mean() <= 0.93, covered.mean()
    assert covered[dear].mean() >= 0.85 and covered[cheap].mean() >= 0.85, (covered[dear].mean(),
                                                                            covered[cheap].mean())
    assert constant[dear].mean() < 0.8 and constant[cheap].mean() > 0.98, (constant[dear].mean(),
                                                                           constant[cheap].mean())
    assert np.median(widths[cheap]) < 0.3 * np.median(widths[dear])
    assert len(scale.score_quantiles) == 101 and scale.low <= scale.high and scale.follows_row and scale.spearman > 0.3


def test_the_regression_estimate_holds_the_realised_rmse_and_moves_with_the_rows():
    """Errors sigma(x) x a standard normal; the model ships the percentiles of |error| / sigma from val. Windows of
    quiet rows and of noisy rows: the estimate follows them and holds the realised RMSE in nine of ten."""
    rng = np.random.default_rng(3)
    quantiles = np.quantile(np.abs(rng.normal(size=5000)), np.linspace(0, 1, 101)).tolist()
    held, estimates = 0, []
    for i in range(100):
        sigma = rng.lognormal(0.0 if i % 2 else 1.0, 0.3, size=400)
        found = estimate.regression(sigma, quantiles, seed=i)
        real = estimate.realised_regression(sigma * rng.normal(size=400), np.zeros(400))
        held += found["rmse"]["interval"][0] <= real["rmse"] <= found["rmse"]["interval"][1]
        estimates.append(found["rmse"]["expected"])
    assert held >= 90, held
    assert np.mean(estimates[0::2]) > 2 * np.mean(estimates[1::2])  # the noisy windows are estimated worse


def test_a_window_start_that_is_not_a_time_is_one_line_naming_the_option(tmp_path):
    from tests.test_cli import assert_one_line_error, govtrain

    assert_one_line_error(govtrain("monitor", "--model", "credit/1", "--since", "yesterday", cwd=tmp_path),
                          "--since: 'yesterday' is not an ISO time")
