"""Per-column data drift with Evidently's default tests and thresholds, computed directly with
numpy/scipy on the full columns (no sampling), so the decisions are Evidently's and the time is ours.

Evidently's DataDriftPreset picks a test per column (legacy/calculations/stattests/registry.py):

    reference rows <= 1000: numeric with > 5 values: Kolmogorov-Smirnov p-value < 0.05
                            otherwise: chi-square p-value < 0.05 (> 2 values) or two-proportion Z-test
    reference rows  > 1000: numeric with > 5 values: Wasserstein distance / std(reference) >= 0.1
                            otherwise: Jensen-Shannon distance >= 0.1

where "values" counts distinct values over both batches, and missing values are dropped first.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

P_VALUE_THRESHOLD = 0.05
DISTANCE_THRESHOLD = 0.1


def _frequencies(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray, list]:
    ref_counts, cur_counts = reference.value_counts(), current.value_counts()
    keys = list(dict.fromkeys([*ref_counts.index, *cur_counts.index]))
    return (ref_counts.reindex(keys, fill_value=0).to_numpy(float),
            cur_counts.reindex(keys, fill_value=0).to_numpy(float), keys)


def _jensen_shannon(reference: pd.Series, current: pd.Series, numeric: bool) -> float:
    if numeric and reference.nunique() > 20:
        bins = np.histogram_bin_edges(np.concatenate([reference.to_numpy(), current.to_numpy()]), bins="sturges")
        ref = np.histogram(reference.to_numpy(), bins)[0] / len(reference)
        cur = np.histogram(current.to_numpy(), bins)[0] / len(current)
    else:
        ref, cur, _ = _frequencies(reference, current)
        ref, cur = ref / len(reference), cur / len(current)
    return float(distance.jensenshannon(ref, cur))


def _z_test(reference: pd.Series, current: pd.Series) -> float:
    keys = sorted(set(reference.unique()) | set(current.unique()), key=str)
    if len(keys) == 1:
        return 1.0
    p1, p2 = float((reference == keys[0]).mean()), float((current == keys[0]).mean())
    n1, n2 = len(reference), len(current)
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return 1.0 if se == 0 else float(2 * stats.norm.sf(abs(p1 - p2) / se))


def _chi_square(reference: pd.Series, current: pd.Series) -> float:
    ref, cur, _ = _frequencies(reference, current)
    expected = ref * len(current) / len(reference)
    with np.errstate(divide="ignore", invalid="ignore"):  # a category new in current: p = 0, as in Evidently
        return float(np.nan_to_num(stats.chisquare(cur, expected)[1], nan=0.0))


def wasserstein(u: np.ndarray, v: np.ndarray) -> float:
    """First Wasserstein distance between two samples, exactly as scipy.stats.wasserstein_distance
    computes it (the integral of |F_u - F_v|), with sorts instead of one argsort; equal sizes reduce to
    the mean absolute difference of the sorted samples. A test checks it against scipy."""
    u, v = np.sort(u), np.sort(v)
    if len(u) == len(v):
        return float(np.mean(np.abs(u - v)))
    values = np.sort(np.concatenate([u, v]), kind="mergesort")
    u_cdf = np.searchsorted(u, values[:-1], "right") / len(u)
    v_cdf = np.searchsorted(v, values[:-1], "right") / len(v)
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(values)))


def _distinct_up_to(reference: pd.Series, current: pd.Series, limit: int) -> int:
    """The number of distinct values over both batches, exact up to `limit` (the tests only ask "> 5?"):
    a prefix that already holds `limit` distinct values settles it without hashing millions of rows."""
    head = pd.concat([reference.iloc[:2000], current.iloc[:2000]]).nunique()
    return head if head >= limit else pd.concat([reference, current]).nunique()


CONFIGURED = {  # monitoring.column_tests methods: (name in reports, p-value test?)
    "wasserstein": ("Wasserstein distance (normed)", False), "jensenshannon": ("Jensen-Shannon distance", False),
    "ks": ("K-S p_value", True), "chisquare": ("chi-square p_value", True), "z": ("Z-test p_value", True)}


def _configured(reference: pd.Series, current: pd.Series, numeric: bool, method: str, threshold: float) -> dict:
    if method == "wasserstein":
        ref = reference.to_numpy(dtype=float)
        value = wasserstein(ref, current.to_numpy(dtype=float)) / max(float(np.std(ref)), 0.001)
    elif method == "jensenshannon":
        value = _jensen_shannon(reference, current, numeric)
    elif method == "ks":
        value = float(stats.ks_2samp(reference.to_numpy(), current.to_numpy())[1])
    elif method == "chisquare":
        value = _chi_square(reference, current)
    else:
        value = _z_test(reference, current)
    name, p_value = CONFIGURED[method]
    return {"method": name, "value": value, "threshold": threshold,
            "drifted": value < threshold if p_value else value >= threshold, "configured": True}


def column_drift(reference: pd.Series, current: pd.Series, numeric: bool, test=None) -> dict:
    """{method, value, threshold, drifted} for one column; missing values dropped as Evidently does.
    `test` (a monitoring.column_tests entry) replaces Evidently's automatic choice."""
    reference = reference.replace([np.inf, -np.inf], np.nan).dropna()
    current = current.replace([np.inf, -np.inf], np.nan).dropna()
    if len(reference) == 0 or len(current) == 0:
        side = "reference" if len(reference) == 0 else "current"
        return {"method": "none", "value": None, "threshold": None, "drifted": True,
                "finding": f"no non-missing values in the {side} batch"}
    if test is not None:
        return _configured(reference, current, numeric, test.method, test.threshold)
    distinct = _distinct_up_to(reference, current, 21)
    if len(reference) <= 1000:
        if numeric and distinct > 5:
            value, method = float(stats.ks_2samp(reference.to_numpy(), current.to_numpy())[1]), "K-S p_value"
        elif distinct > 2:
            value, method = _chi_square(reference, current), "chi-square p_value"
        else:
            value, method = _z_test(reference, current), "Z-test p_value"
        return {"method": method, "value": value, "threshold": P_VALUE_THRESHOLD, "drifted": value < P_VALUE_THRESHOLD}
    if numeric and distinct > 5:
        ref = reference.to_numpy(dtype=float)
        value = wasserstein(ref, current.to_numpy(dtype=float)) / max(float(np.std(ref)), 0.001)
        method = "Wasserstein distance (normed)"
    else:
        value, method = _jensen_shannon(reference, current, numeric), "Jensen-Shannon distance"
    return {"method": method, "value": value, "threshold": DISTANCE_THRESHOLD, "drifted": value >= DISTANCE_THRESHOLD}


def dataset_drift(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str],
                  drift_share: float, tests: dict | None = None) -> tuple[list[dict], float, bool]:
    """Columns in parallel threads: the heavy parts (sorting for Wasserstein, histograms) release the GIL."""
    from concurrent.futures import ThreadPoolExecutor

    names = [*numeric, *categorical]
    with ThreadPoolExecutor(max_workers=min(len(names), os.cpu_count() or 1)) as pool:
        results = list(pool.map(lambda c: column_drift(reference[c], current[c], c in numeric, (tests or {}).get(c)),
                                names))
    columns = [{"column": c, **r} for c, r in zip(names, results, strict=True)]
    share = sum(c["drifted"] for c in columns) / len(columns)
    return columns, share, share >= drift_share
