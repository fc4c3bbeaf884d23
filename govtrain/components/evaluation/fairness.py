"""Metrics per group of each sensitive attribute and slice; demographic-parity and equalized-odds
differences across the groups large enough to judge."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score


def group_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float | None]:
    pred = proba >= 0.5
    pos, neg = y == 1, y == 0
    return {"rows": int(len(y)), "positive_rate": float(pred.mean()),
            "tpr": float(pred[pos].mean()) if pos.any() else None,
            "fpr": float(pred[neg].mean()) if neg.any() else None,
            "accuracy": float((pred == y).mean()),
            "roc_auc": float(roc_auc_score(y, proba)) if pos.any() and neg.any() else None}


MAX_NUMERIC_GROUPS = 10  # a numeric column with more distinct values is cut into quartiles


def grouping(values: pd.Series) -> pd.Series:
    """The group of each row: the value, or for a numeric column of many values its quartile, named by its
    range (an age column would otherwise give one group per age, each too small to judge)."""
    if (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            and values.nunique() > MAX_NUMERIC_GROUPS):
        bins = pd.qcut(values, 4, duplicates="drop")
        return bins.astype("string").fillna("<missing>")
    return values.astype("string").fillna("<missing>")


def by_attribute(frame: pd.DataFrame, column: str, y: np.ndarray, proba: np.ndarray, min_group: int) -> dict:
    groups = {}
    for value, index in frame.groupby(grouping(frame[column])).indices.items():
        groups[str(value)] = {**group_metrics(y[index], proba[index]), "gated": len(index) >= min_group}
    judged = [g for g in groups.values() if g["gated"]]
    rates = [g["positive_rate"] for g in judged if g["positive_rate"] is not None]
    dp = max(rates) - min(rates) if len(judged) > 1 else 0.0
    tprs = [g["tpr"] for g in judged if g["tpr"] is not None]
    fprs = [g["fpr"] for g in judged if g["fpr"] is not None]
    eo = max((max(tprs) - min(tprs)) if len(tprs) > 1 else 0.0, (max(fprs) - min(fprs)) if len(fprs) > 1 else 0.0)
    return {"groups": groups, "demographic_parity_difference": float(dp), "equalized_odds_difference": float(eo),
            "groups_judged": len(judged)}


def error_gaps(frame: pd.DataFrame, column: str, errors: np.ndarray, min_group: int) -> dict:
    """Multiclass and regression: the mean per-row error of each group (error rate, or absolute error), and
    across the groups large enough to judge, the largest difference and the ratio of the worst to the best."""
    groups = {}
    for value, index in frame.groupby(grouping(frame[column])).indices.items():
        groups[str(value)] = {"rows": int(len(index)), "mean_error": float(errors[index].mean()),
                              "gated": len(index) >= min_group}
    judged = [g["mean_error"] for g in groups.values() if g["gated"]]
    worst, best = (max(judged), min(judged)) if len(judged) > 1 else (0.0, 0.0)
    return {"groups": groups, "groups_judged": len(judged), "error_difference": float(worst - best),
            "error_ratio": float(worst / best) if best > 0 else (1.0 if worst == 0 else float("inf"))}


def judged(results: dict[str, dict], sensitive: list[str]) -> tuple[dict[str, dict], list[str]]:
    """For the evaluate record (MEASURE 2.11): each sensitive attribute's gaps where at least two groups were
    large enough to judge, without the per-group rows (those are in evaluation.json); and what was not judged."""
    found, not_judged = {}, []
    for column in sensitive:
        result = results[column]
        if result["groups_judged"] > 1:
            found[column] = {k: v for k, v in result.items() if k != "groups"}
        else:
            not_judged.append(f"fairness for {column}: {result['groups_judged']} group(s) of at least the minimum "
                              f"size (evaluation.fairness_min_group), two are needed to compare (MEASURE 2.11)")
    return found, not_judged
