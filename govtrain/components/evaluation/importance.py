"""MEASURE 2.9: which features the model leans on. Permutation importance on the test split, in the task's
headline metric (ROC AUC, macro-F1, RMSE): how much worse the model gets when one feature's values are shuffled
across the rows, breaking its link with the target and leaving its distribution. Repeated with seeded
shuffles; the interval is the 95% t-interval of the mean over the repeats (the shuffles' own spread, not the
test rows' sampling, which the performance intervals state). Also within each group of every sensitive
attribute large enough to be gated, so a reviewer sees whether the model leans on other things for a group.

Shuffled in the encoded tensors the model reads, so a feature is shuffled exactly as the model sees it.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import t as student_t

from govtrain.components.evaluation.fairness import grouping
from govtrain.components.evaluation.task_metrics import LOWER_IS_BETTER, PRIMARY, headline_metric
from govtrain.model.network import LoadedModel


def _defined(kind: str, y: np.ndarray) -> bool:
    """A ranking metric needs both classes among the rows."""
    return kind == "regression" or len(np.unique(y)) > 1


def importances(model: LoadedModel, kind: str, x_num: torch.Tensor, x_cat: torch.Tensor, y: np.ndarray,
                repeats: int, seed: int) -> list[dict[str, Any]]:
    """One row per feature, largest drop first: the mean drop in the headline metric when the feature is
    shuffled (positive: the model needs it), its 95% interval over the repeats, and the repeats."""
    metric = PRIMARY[kind]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0  # a drop is positive either way
    base = headline_metric(kind, y, model.outputs_from_tensors(x_num, x_cat))
    rng = np.random.default_rng(seed)
    columns = [(name, x_num, j) for j, name in enumerate(model.features.numeric)]
    columns += [(name, x_cat, j) for j, name in enumerate(model.features.categorical)]
    rows = []
    for name, tensor, j in columns:
        kept = tensor[:, j].clone()
        drops = []
        for _ in range(repeats):
            tensor[:, j] = kept[torch.from_numpy(rng.permutation(len(kept)))]
            drops.append(sign * (base - headline_metric(kind, y, model.outputs_from_tensors(x_num, x_cat))))
        tensor[:, j] = kept
        mean = float(np.mean(drops))
        half = float(student_t.ppf(0.975, repeats - 1) * np.std(drops, ddof=1) / np.sqrt(repeats))
        rows.append({"feature": name, "drop": round(mean, 6),
                     "interval": [round(mean - half, 6), round(mean + half, 6)],
                     "repeats": [round(d, 6) for d in drops]})
    return sorted(rows, key=lambda row: -row["drop"])


def explain(model: LoadedModel, kind: str, test: pd.DataFrame, y: np.ndarray, sensitive: list[str],
            min_group: int, rows: int, repeats: int, seed: int) -> dict[str, Any]:
    """Overall and per sensitive group, on at most `rows` seeded test rows (stated in the result)."""
    picked = np.sort(np.random.default_rng(seed).choice(len(test), min(rows, len(test)), replace=False))
    frame, labels = test.iloc[picked], y[picked]
    x_num, x_cat = model.features.tensors(frame)
    found: dict[str, Any] = {"metric": PRIMARY[kind], "rows": len(frame), "repeats": repeats, "seed": seed,
                             "method": "permutation importance on the test split: the drop in the headline metric "
                                       "when one feature is shuffled; 95% t-interval over the repeats",
                             "features": importances(model, kind, x_num, x_cat, labels, repeats, seed)
                             if _defined(kind, labels) else [],
                             "groups": {}}
    for column in sensitive:
        values = grouping(frame[column]).astype(str).to_numpy()  # as the fairness check groups them
        for group in sorted(set(values)):
            mask = values == group
            if mask.sum() < min_group or not _defined(kind, labels[mask]):
                continue  # too few rows, or one class only: the metric says nothing there
            keep = torch.from_numpy(np.flatnonzero(mask))
            top = importances(model, kind, x_num[keep].clone(), x_cat[keep].clone(), labels[mask], repeats, seed)
            found["groups"].setdefault(column, {})[group] = {"rows": int(mask.sum()), "features": top[:10]}
    return found


def lines(found: dict[str, Any], top: int = 10) -> list[str]:
    """The card's and the report's words: the features the model leans on most, with intervals."""
    if not found.get("features"):
        return ["- not computed: the test rows hold one class only"]
    metric = found["metric"]
    out = [f"- {found['method']} ({found['rows']} test rows, {found['repeats']} repeats, {metric}):"]
    out += [f"  - {row['feature']}: {metric} drops {row['drop']:+.4f} (95% interval {row['interval'][0]:+.4f} to "
            f"{row['interval'][1]:+.4f})" for row in found["features"][:top]]
    for column, groups in found.get("groups", {}).items():
        for group, result in groups.items():
            leading = ", ".join(f"{r['feature']} {r['drop']:+.4f}" for r in result["features"][:3])
            out.append(f"- within {column} = {group} ({result['rows']} rows): {leading}")
    return out
