"""Performance of a classifier on unlabelled traffic, from its calibrated probabilities (CBPE).

NannyML's confidence-based performance estimation reads a calibrated model's probabilities as the chance
that each row's label is each class: the expected confusion matrix, and from it the expected metric. Here
the same assumption is followed to the end by simulation: labels are drawn from the probabilities, `draws`
times, and the metric is computed on each draw. The mean is the estimate; the 2.5th and 97.5th percentiles
are the interval a realised value falls in when the probabilities are right. When labels arrive later and
the realised value falls outside it, the probabilities no longer describe the world: concept shift.

The served model's probabilities are temperature-scaled on val at evaluation (MEASURE 2.5), and evaluation
gates their calibration error, which is what this estimate rests on.

Regression, from the normalised conformal model (model/interval.py): a row's error is its scale sigma(x)
times a score drawn from the scores val gave (their percentiles ship in model.json), so the expected RMSE and
MAE move with the rows served. A model whose interval has one width is estimated the same way, with one
sigma for every row.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

DRAWS = 400
CHUNK = 50  # draws simulated at once: memory CHUNK x rows booleans


def _interval(values: np.ndarray) -> dict:
    return {"expected": float(values.mean()), "interval": [float(np.percentile(values, 2.5)),
                                                           float(np.percentile(values, 97.5))]}


def binary(probability: np.ndarray, draws: int = DRAWS, seed: int = 0) -> dict:
    """Expected ROC AUC, accuracy and F1 (at the served threshold 0.5) with their 95% intervals."""
    p = np.clip(np.asarray(probability, float), 0.0, 1.0)
    n, rng = len(p), np.random.default_rng(seed)
    ranks = rankdata(p)  # ties averaged, as roc_auc_score counts them
    predicted = p >= 0.5
    auc, accuracy, f1 = [], [], []
    for start in range(0, draws, CHUNK):
        y = rng.random((min(CHUNK, draws - start), n)) < p
        positives = y.sum(axis=1)
        negatives = n - positives
        with np.errstate(invalid="ignore", divide="ignore"):
            auc.append((y @ ranks - positives * (positives + 1) / 2) / (positives * negatives))
        tp = (y & predicted).sum(axis=1)
        fp, fn = predicted.sum() - tp, positives - tp
        accuracy.append((tp + (n - predicted.sum() - fn)) / n)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1.append(np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0))
    aucs = np.concatenate(auc)
    aucs = aucs[np.isfinite(aucs)]  # a draw with one class has no AUC
    out = {"rows": n, "draws": draws, "accuracy": _interval(np.concatenate(accuracy)),
           "f1": _interval(np.concatenate(f1))}
    if len(aucs) >= draws // 2:
        out["roc_auc"] = _interval(aucs)
    return out


def multiclass(probabilities: np.ndarray, draws: int = DRAWS, seed: int = 0) -> dict:
    """Expected accuracy and macro-F1 (of the served label, the most probable class) with their 95% intervals."""
    p = np.asarray(probabilities, float)
    n, k = p.shape
    rng = np.random.default_rng(seed)
    predicted = p.argmax(axis=1)
    edges = np.cumsum(p, axis=1)
    edges[:, -1] = 1.0
    accuracy, macro = [], []
    for start in range(0, draws, CHUNK):
        u = rng.random((min(CHUNK, draws - start), n, 1))
        y = (u > edges[None, :, :]).sum(axis=2)  # the class each draw gives each row
        accuracy.append((y == predicted).mean(axis=1))
        scores = []
        for c in range(k):
            truth, said = y == c, predicted == c
            tp = (truth & said).sum(axis=1)
            fp, fn = said.sum() - tp, truth.sum(axis=1) - tp
            with np.errstate(invalid="ignore", divide="ignore"):
                scores.append(np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0))
        macro.append(np.mean(scores, axis=0))
    return {"rows": n, "draws": draws, "accuracy": _interval(np.concatenate(accuracy)),
            "macro_f1": _interval(np.concatenate(macro))}


def realised_binary(y: np.ndarray, probability: np.ndarray) -> dict:
    """The same metrics on labelled rows, for reconciling with the estimate."""
    from sklearn.metrics import f1_score, roc_auc_score

    y, predicted = np.asarray(y).astype(int), np.asarray(probability) >= 0.5
    out = {"rows": len(y), "accuracy": float((predicted == y).mean()), "f1": float(f1_score(y, predicted,
                                                                                          zero_division=0))}
    if len(set(y.tolist())) == 2:
        out["roc_auc"] = float(roc_auc_score(y, probability))
    return out


def realised_multiclass(y: np.ndarray, probabilities: np.ndarray) -> dict:
    from sklearn.metrics import f1_score

    predicted = np.asarray(probabilities).argmax(axis=1)
    return {"rows": len(y), "accuracy": float((predicted == y).mean()),
            "macro_f1": float(f1_score(y, predicted, average="macro", labels=list(range(probabilities.shape[1])),
                                       zero_division=0))}


def regression(sigma: np.ndarray, score_quantiles: list[float], draws: int = DRAWS, seed: int = 0) -> dict:
    """Expected RMSE and MAE with their 95% intervals: errors drawn as sigma(x) x a val score (inverse CDF of
    the shipped percentiles) with a random sign, per row, `draws` times."""
    sigma = np.asarray(sigma, float)
    n, rng = len(sigma), np.random.default_rng(seed)
    grid = np.linspace(0, 1, len(score_quantiles))
    rmse, mae = [], []
    for start in range(0, draws, CHUNK):
        scores = np.interp(rng.random((min(CHUNK, draws - start), n)), grid, score_quantiles)
        errors = scores * sigma
        rmse.append(np.sqrt((errors ** 2).mean(axis=1)))
        mae.append(errors.mean(axis=1))
    return {"rows": n, "draws": draws, "rmse": _interval(np.concatenate(rmse)), "mae": _interval(np.concatenate(mae))}


def realised_regression(y: np.ndarray, prediction: np.ndarray) -> dict:
    error = np.asarray(y, float) - np.asarray(prediction, float)
    return {"rows": len(error), "rmse": float(np.sqrt(np.mean(error ** 2))), "mae": float(np.mean(np.abs(error)))}
