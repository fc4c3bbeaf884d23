"""Metrics of the multiclass and regression tasks: performance with bootstrap intervals, top-label and
classwise calibration, split-conformal intervals, and the per-row error and loss the fairness and
privacy checks compare. Binary keeps its own module (metrics.py), whose ROC-based gates predate these."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from govtrain.components.evaluation import metrics

# The headline metric of each task: what robustness, the champion and the baseline are compared on.
PRIMARY = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}
LOWER_IS_BETTER = {"rmse", "mae", "log_loss", "brier"}


def headline_metric(kind: str, y: np.ndarray, out: np.ndarray) -> float:
    """The task's headline metric (PRIMARY) of outputs: binary ROC AUC of the positive class's probability (a
    column of two, or one), 0.5 where the rows hold one class; else from performance()."""
    if kind == "binary":
        score = out[:, 1] if out.ndim == 2 else out
        return float(roc_auc_score(y, score)) if len(np.unique(y)) > 1 else 0.5
    return performance(kind, y, out)[PRIMARY[kind]]


def multiclass_performance(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    k = proba.shape[1]
    onehot = np.eye(k)[y]
    clipped = np.clip(proba, 1e-7, 1)
    clipped /= clipped.sum(axis=1, keepdims=True)
    return {"accuracy": float(np.mean(proba.argmax(axis=1) == y)),
            "macro_f1": float(f1_score(y, proba.argmax(axis=1), average="macro", labels=range(k), zero_division=0)),
            "log_loss": float(log_loss(y, clipped, labels=range(k))),
            "brier": float(np.mean(((proba - onehot) ** 2).sum(axis=1)))}


def regression_performance(y: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    return {"rmse": float(np.sqrt(np.mean((y - prediction) ** 2))), "mae": float(mean_absolute_error(y, prediction)),
            "r2": float(r2_score(y, prediction))}


def performance(kind: str, y: np.ndarray, out: np.ndarray) -> dict[str, float]:
    return multiclass_performance(y, out) if kind == "multiclass" else regression_performance(y, out)


def primary_ratio(kind: str, clean: dict[str, float], changed: dict[str, float]) -> float:
    """How much of the headline metric survives a change (1: all of it): higher-is-better metrics as
    changed / clean, RMSE as clean / changed."""
    name = PRIMARY[kind]
    if name in LOWER_IS_BETTER:
        return clean[name] / changed[name] if changed[name] > 0 else 1.0
    return changed[name] / clean[name] if clean[name] > 0 else 0.0


def bootstrap_ci(y: np.ndarray, out: np.ndarray, score: Callable[[np.ndarray, np.ndarray], dict[str, float]],
                 samples: int, seed: int) -> dict[str, list[float]]:
    """95% percentile intervals of every metric over seeded resamples of the test rows."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    for _ in range(samples):
        idx = rng.integers(0, len(y), len(y))
        for name, value in score(y[idx], out[idx]).items():
            draws.setdefault(name, []).append(value)
    return {name: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for name, v in draws.items()}


def classwise_ece(y: np.ndarray, proba: np.ndarray, bins: int = metrics.BINS) -> float:
    """The mean over classes of each class's one-vs-rest ECE (Kull et al., 2019)."""
    edges = np.linspace(0, 1, bins + 1)
    total = 0.0
    for k in range(proba.shape[1]):
        table = metrics._binned((y == k).astype(float), proba[:, k], edges)
        total += sum(b["count"] * abs(b["observed_rate"] - b["mean_predicted"]) for b in table) / len(y)
    return float(total / proba.shape[1])


def macro_auc(y: np.ndarray, proba: np.ndarray) -> float:
    """The mean over classes present (with both a row of theirs and one of another) of each class's ROC AUC
    against the rest: the trivial predictor, train's class shares for every row, scores 0.5. A ranking
    measure, so an over-confident small-table network is judged on what it knows, not on its temperature."""
    scores = []
    for k in range(proba.shape[1]):
        hit = y == k
        if 0 < hit.sum() < len(y):
            ranks = rankdata(proba[:, k])
            scores.append((ranks[hit].sum() - hit.sum() * (hit.sum() + 1) / 2) / (hit.sum() * (~hit).sum()))
    return float(np.mean(scores)) if scores else 0.5


def multiclass_calibration(y: np.ndarray, proba: np.ndarray, seed: int) -> dict:
    """Top-label calibration (is the model right as often as its top probability says?) with the same
    sampling-noise floor as binary's gate, plus classwise ECE, Brier and NLL over all classes."""
    confidence, correct = proba.max(axis=1), (proba.argmax(axis=1) == y).astype(float)
    top = metrics.calibration(correct, confidence, seed=seed)
    perf = multiclass_performance(y, proba)
    return {**top, "classwise_ece": classwise_ece(y, proba), "brier": perf["brier"], "nll": perf["log_loss"]}


def interval_coverage(y: np.ndarray, prediction: np.ndarray, half_width: float | np.ndarray, level: float) -> dict:
    """Coverage on the test rows with its Wilson 95% interval: the regression model's calibration. Half-widths
    one per row (the interval follows the row) are stated by their median and 10th and 90th percentiles."""
    n = len(y)
    widths = np.broadcast_to(np.asarray(half_width, float), np.shape(y))
    covered = float(np.mean(np.abs(y - prediction) <= widths))
    z = 1.959964
    centre = (covered + z * z / (2 * n)) / (1 + z * z / n)
    spread = z * np.sqrt(covered * (1 - covered) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return {"level": level, "coverage": covered, "coverage_ci": [float(centre - spread), float(centre + spread)],
            "half_width": float(np.median(widths)), "half_width_p10": float(np.percentile(widths, 10)),
            "half_width_p90": float(np.percentile(widths, 90)), "rows": n}


def per_row_error(kind: str, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """What fairness compares between groups: 1 for a wrong class, or the absolute error."""
    return (out.argmax(axis=1) != y).astype(float) if kind == "multiclass" else np.abs(y - out)


def per_row_loss(kind: str, y: np.ndarray, out: np.ndarray) -> np.ndarray:
    """What the membership-inference attack thresholds: the log loss of the row's class, or the squared error."""
    if kind == "multiclass":
        return -np.log(np.clip(out[np.arange(len(y)), y], 1e-7, 1.0))
    return (y - out) ** 2
