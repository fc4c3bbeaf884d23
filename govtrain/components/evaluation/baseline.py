"""The auditor's first question: is the network better than the simple models? scikit-learn's
HistGradientBoosting and a linear model (logistic regression or ridge), fitted with their defaults on the
same train split and features and scored on the same test rows, and the trivial predictor (always the
most frequent class, or train's mean). They are the references the default model gate measures against
(governance/gates.py): the network must beat the trivial predictor beyond its interval, stay within a
margin of the best simple model, and keep under noise what the trees keep under the same noise.

Any table the reader produces goes through: missing categories are a category of their own, and a
categorical with more values than HistGradientBoosting takes (255) keeps its most frequent values and
pools the rest, stated in the result.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from govtrain.components.evaluation.privacy import attack_rows, membership_inference
from govtrain.components.evaluation.task_metrics import (
    PRIMARY,
    headline_metric,
    per_row_loss,
    performance,
)

MISSING, OTHER = "(missing)", "(other)"
MAX_TREE_CATEGORIES = 254  # HistGradientBoosting takes at most 255 categories; one is left for the pool


def gap(kind: str, baseline_value: float, network_value: float) -> float:
    """How much better the baseline does, in the task's headline metric: a difference of ROC AUC or macro-F1,
    or the network's RMSE over the baseline's - 1. Positive: the baseline does better."""
    return network_value / baseline_value - 1.0 if kind == "regression" else baseline_value - network_value


def as_text(series: pd.Series) -> pd.Series:
    """A categorical column of any dtype as Python strings, missing cells as MISSING (a category of its own)."""
    text = series.astype(object).map(str)
    return text.where(series.notna().to_numpy(), MISSING)


class Columns:
    """How the simple models see the features: numerics as float, categoricals as train's categories (the most
    frequent MAX_TREE_CATEGORIES; the rest pooled as OTHER, and so is a value train never saw)."""

    def __init__(self, train: pd.DataFrame, numeric: list[str], categorical: list[str]):
        self.numeric, self.categorical = numeric, categorical
        self.categories: dict[str, pd.Index] = {}
        self.pooled: dict[str, int] = {}
        for column in categorical:
            counts = as_text(train[column]).value_counts()
            keep = counts.index[:MAX_TREE_CATEGORIES]
            if len(counts) > len(keep):
                self.pooled[column] = len(counts) - len(keep)
            self.categories[column] = pd.Index([*keep, OTHER])

    def text(self, frame: pd.DataFrame, column: str) -> pd.Series:
        values = as_text(frame[column])
        return values.where(values.isin(self.categories[column]), OTHER)

    def for_trees(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[self.numeric].astype(float)
        for column in self.categorical:
            out[column] = pd.Categorical(self.text(frame, column), categories=self.categories[column])
        return out

    def for_linear(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = frame[self.numeric].astype(float)
        for column in self.categorical:
            out[column] = self.text(frame, column).to_numpy(dtype=object)
        return out

    def noisy(self, frame: pd.DataFrame, severity: float, scale: pd.Series, seed: int) -> pd.DataFrame:
        """The numerics plus severity x each feature's train std of seeded Gaussian noise: what the network's
        robustness check adds in its standardised units."""
        out = frame.copy()
        noise = np.random.default_rng(seed).standard_normal((len(frame), len(self.numeric)))
        for j, column in enumerate(self.numeric):
            out[column] = frame[column].astype(float) + severity * float(scale[column]) * noise[:, j]
        return out


def trivial(kind: str, classes: int, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, Any]:
    """The trivial predictor on the test rows, in the metric the default gate reads: ROC AUC 0.5 (a constant
    score) and train's class shares (the mean one-against-the-rest AUC: 0.5), R^2 of always train's mean."""
    if kind == "binary":
        return {"model": "a constant score", "metric": "roc_auc", "value": 0.5}
    if kind == "multiclass":  # a ranking measure, not macro-F1: a model whose argmax is always the majority may
        # still know more than the class shares (heating: 5 systems, 60% gas), and macro-F1 cannot say so
        return {"model": "train's class shares as probabilities", "metric": "macro_auc", "value": 0.5}
    return {"model": "always train's mean", "metric": "r2",
            "value": performance(kind, y_test, np.full(len(y_test), float(np.mean(y_train))))["r2"]}


def _outputs(kind: str, classes: int, model: Any, x: pd.DataFrame) -> np.ndarray:
    """A fitted scikit-learn model's predictions, or its probability of every class (train's classes placed)."""
    if kind == "regression":
        return model.predict(x)
    proba = np.zeros((len(x), classes))
    proba[:, model.classes_] = model.predict_proba(x)
    return proba


def _membership(kind: str, classes: int, model: Any, x_train: pd.DataFrame, y_train: np.ndarray,
                x_test: pd.DataFrame, y_test: np.ndarray, seed: int, rows: int = 2000) -> float:
    """The same loss-threshold membership-inference attack the network faces, on the trees: what a default
    simple model fitted on these rows leaks about them (iris: 105 train rows that any model fits exactly)."""
    members, others = attack_rows(len(y_train), len(y_test), rows, seed)  # the rows the network's attack uses
    loss_kind = "regression" if kind == "regression" else "multiclass"  # binary: the 2-column log loss
    loss = [per_row_loss(loss_kind, y[rows_].astype(int) if kind != "regression" else y[rows_],
                         _outputs(kind, classes, model, x.iloc[rows_]))
            for x, y, rows_ in ((x_train, y_train, members), (x_test, y_test, others))]
    return float(membership_inference(loss[0], loss[1])["mia_auc"])


def gap_interval(kind: str, y: np.ndarray, network: np.ndarray, simple: np.ndarray, seed: int, samples: int = 100,
                 rows: int = 20_000) -> list[float]:
    """The 95% interval of gap() over paired resamples of the test rows (both models scored on the same draw),
    on at most `rows` seeded rows: who is better on this split, and by how much, as far as these rows can say."""
    rng = np.random.default_rng(seed)
    if len(y) > rows:
        keep = rng.choice(len(y), rows, replace=False)
        y, network, simple = y[keep], network[keep], simple[keep]
    draws = []
    for _ in range(samples):
        idx = rng.integers(0, len(y), len(y))
        draws.append(gap(kind, headline_metric(kind, y[idx], simple[idx]), headline_metric(kind, y[idx], network[idx])))
    return [round(float(np.percentile(draws, 2.5)), 6), round(float(np.percentile(draws, 97.5)), 6)]


NOISE_DRAWS = 5  # noise draws per model: one draw on a few dozen rows decided a verdict by luck


def kept_of(kind: str, y: np.ndarray, clean: np.ndarray, noisy: list[np.ndarray]) -> float:
    """The share of the headline metric kept under noise, the mean over the draws (RMSE: clean / noisy)."""
    base = headline_metric(kind, y, clean)
    shares = []
    for out in noisy:
        value = headline_metric(kind, y, out)
        shares.append((base / value if value > 0 else 1.0) if kind == "regression" else
                      (value / base if base > 0 else 0.0))
    return float(np.mean(shares))


def kept_gap_interval(kind: str, y: np.ndarray, network: tuple[np.ndarray, list[np.ndarray]],
                      trees_out: tuple[np.ndarray, list[np.ndarray]], seed: int, samples: int = 100,
                      rows: int = 5_000) -> list[float]:
    """The 95% interval of (what the trees keep under noise, at most 1) minus (what the network keeps), over
    paired resamples of the test rows: both models, clean and every noise draw, scored on the same rows."""
    rng = np.random.default_rng(seed)
    keep = rng.choice(len(y), rows, replace=False) if len(y) > rows else np.arange(len(y))
    draws = []
    for _ in range(samples):
        idx = keep[rng.integers(0, len(keep), len(keep))]
        ours = kept_of(kind, y[idx], network[0][idx], [n[idx] for n in network[1]])
        theirs = kept_of(kind, y[idx], trees_out[0][idx], [n[idx] for n in trees_out[1]])
        draws.append(min(theirs, 1.0) - ours)
    return [round(float(np.percentile(draws, 2.5)), 6), round(float(np.percentile(draws, 97.5)), 6)]


def _scores(kind: str, classes: int, model: Any, x: pd.DataFrame, y: np.ndarray,
            outputs: np.ndarray | None = None) -> dict[str, float]:
    """The task's metrics of a fitted scikit-learn model (binary: ROC AUC beside the rest)."""
    out = _outputs(kind, classes, model, x) if outputs is None else outputs
    if kind == "binary":
        return {"roc_auc": headline_metric(kind, y, out)}
    return performance(kind, y, out)


def trees(kind: str, classes: int, columns: Columns, train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
          y_test: np.ndarray, network_value: float, seed: int, severity: float, mia_rows: int = 2000) -> dict[str, Any]:
    """HistGradientBoosting with its defaults; its headline metric, its gap to the network, and what it keeps
    under the robustness gate's noise (severity x each feature's train std) on the same test rows."""
    started = time.perf_counter()
    estimator = HistGradientBoostingRegressor if kind == "regression" else HistGradientBoostingClassifier
    model = estimator(categorical_features="from_dtype", random_state=seed)
    # One OpenMP thread: on a busy node its spinning threads made a 3,500-row multiclass fit take 28 s, not 1 s.
    x_train, x_test = columns.for_trees(train), columns.for_trees(test)  # encoded once: fit, score and attack
    with threadpool_limits(1):
        model.fit(x_train, y_train)
        outputs = _outputs(kind, classes, model, x_test)
        found = _scores(kind, classes, model, x_test, y_test, outputs)
        scale = train[columns.numeric].astype(float).std().fillna(0.0)
        noisy = [_outputs(kind, classes, model, columns.for_trees(columns.noisy(test, severity, scale, seed + draw)))
                 for draw in range(NOISE_DRAWS)]
        mia = _membership(kind, classes, model, x_train, y_train, x_test, y_test, seed, mia_rows)
    name = PRIMARY[kind]
    return {"model": f"sklearn {estimator.__name__} (defaults)", "metric": name, **found,
            f"network_{name}": network_value, "gap": float(gap(kind, found[name], network_value)),
            "noise_severity": severity, "noise_kept": kept_of(kind, y_test, outputs, noisy),
            "noise_draws": NOISE_DRAWS, "mia_auc": mia, "pooled_categories": columns.pooled,
            "seconds": time.perf_counter() - started, "outputs": outputs, "noise_outputs": noisy}


def linear(kind: str, classes: int, columns: Columns, train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
           y_test: np.ndarray, network_value: float) -> dict[str, Any]:
    """Logistic regression (binary, multiclass) or ridge (regression) with scikit-learn's defaults, on the
    standardised numerics (median-imputed) and one-hot categories of the same split; the gap is signed as
    the trees': positive when the linear model does better."""
    started = time.perf_counter()
    parts: list[tuple[str, Any, list[str]]] = []
    if columns.numeric:
        parts.append(("numeric", make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                                               StandardScaler()), columns.numeric))
    if columns.categorical:
        parts.append(("categorical", OneHotEncoder(handle_unknown="ignore"), columns.categorical))
    estimator = Ridge() if kind == "regression" else LogisticRegression(max_iter=1000)
    model = make_pipeline(ColumnTransformer(parts), estimator)
    with threadpool_limits(1):  # as for the trees
        model.fit(columns.for_linear(train), y_train)
        outputs = _outputs(kind, classes, model, columns.for_linear(test))
        found = _scores(kind, classes, model, columns.for_linear(test), y_test, outputs)
    name = PRIMARY[kind]
    return {"model": f"sklearn {type(estimator).__name__} (defaults, one-hot categories)", "metric": name,
            **{k: float(v) for k, v in found.items()}, f"network_{name}": network_value,
            "gap": float(gap(kind, found[name], network_value)), "seconds": time.perf_counter() - started,
            "outputs": outputs}


def simple_models(kind: str, classes: int, train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame,
                  y_test: np.ndarray, numeric: list[str], categorical: list[str], network_value: float, seed: int,
                  severity: float, network_out: np.ndarray | None = None, mia_rows: int = 2000,
                  network_noisy: list[np.ndarray] | None = None) -> dict[str, Any]:
    """The trees' result (the evaluate record's `baseline`), with the linear model and the trivial predictor
    beside it: the references of the model gate (evaluation/model_gate.py). With the network's outputs on the
    test rows, each simple model's gap carries its paired 95% interval; with its outputs under the noise draws
    too, so does the gap between what the trees and the network keep under noise."""
    columns = Columns(train, numeric, categorical)
    found = trees(kind, classes, columns, train, y_train, test, y_test, network_value, seed, severity, mia_rows)
    noisy = found.pop("noise_outputs")
    if network_out is not None and network_noisy:
        found["noise_gap_interval"] = kept_gap_interval(kind, y_test, (network_out, network_noisy),
                                                        (found["outputs"], noisy), seed)
    found["linear"] = linear(kind, classes, columns, train, y_train, test, y_test, network_value)
    found["trivial"] = trivial(kind, classes, y_train, y_test)
    for result in (found, found["linear"]):
        outputs = result.pop("outputs")  # kept only for the paired interval, not in the record
        if network_out is not None:
            result["gap_interval"] = gap_interval(kind, y_test, network_out, outputs, seed)
    return found


def comparison(found: dict) -> list[dict]:
    """The trees and the linear model beside the network, one row each: what the model card shows."""
    rows = []
    for base in (found, found.get("linear")):
        if base:
            name = base["metric"]
            rows.append({"model": base["model"], "metric": name, "value": round(base[name], 6),
                         "network": round(base[f"network_{name}"], 6), "gap": round(base["gap"], 6),
                         **({"gap_interval": base["gap_interval"]} if "gap_interval" in base else {})})
    return rows
