"""Great Expectations' column aggregates (min, max, mean, quantiles, distinct values...) computed with pandas,
as GE's pandas engine computes them; see native_checks for the contract."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from govtrain.data.native_checks import PARTIAL, Columns, metric_between, plain

# ---- column aggregates --------------------------------------------------------------------------------------

def aggregate(statistic: Callable[[pd.Series], Any]) -> Callable[[Columns, dict[str, Any]], dict]:
    """pandas decides the statistic of no values as GE's pandas engine does: NaN (a failed expectation) for
    min/max/mean/median/stdev, 0 for sum and counts."""
    def check(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
        return metric_between(statistic(c.nonnull(kw["column"])), kw)
    return check


def _in_range(value: Any, low: Any, high: Any) -> bool:
    """GE's _quantile_is_in_range: no value fails; a bound within 1e-4 relative counts as inside."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    low, high = -math.inf if low is None else low, math.inf if high is None else high
    return bool(math.isclose(value, low, rel_tol=1e-4) or math.isclose(value, high, rel_tol=1e-4)
                or low <= value <= high)


def quantiles(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    ranges = kw["quantile_ranges"]
    values = c.nonnull(kw["column"])
    method = kw.get("allow_relative_error") or "nearest"
    observed = values.quantile(ranges["quantiles"], interpolation=method).tolist()
    details = [_in_range(v, low, high) for v, (low, high) in zip(observed, ranges["value_ranges"], strict=True)]
    return {"success": all(details), "result": {"observed_value": {"quantiles": ranges["quantiles"],
                                                                   "values": [plain(v) for v in observed]},
                                                "details": {"success_details": details}}}


def _distinct(c: Columns, kw: dict[str, Any]) -> tuple[set, set]:
    present = set(c.nonnull(kw["column"]).unique().tolist())
    return present, set(kw.get("value_set") or [])


def _sorted(values: set) -> list:
    try:
        return sorted(values)
    except TypeError:
        return list(values)


def distinct_in_set(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    present, allowed = _distinct(c, kw)
    extra = _sorted(present - allowed)
    return {"success": not extra, "result": {"observed_value": None, "unexpected_count": len(extra),
                                             "partial_unexpected_list": [plain(v) for v in extra[:PARTIAL]]}}


def _absent(wanted: set, present: set) -> list:
    """GE lists the expected values a column lacks in set order, unsorted (so its order is not defined)."""
    return list(wanted - present)


def distinct_contain_set(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    present, wanted = _distinct(c, kw)
    absent = _absent(wanted, present)
    return {"success": not absent, "result": {"observed_value": None, "missing_count": len(absent),
                                              "partial_missing_list": [plain(v) for v in absent[:PARTIAL]]}}


def distinct_equal_set(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    present, wanted = _distinct(c, kw)
    extra, absent = _sorted(present - wanted), _absent(wanted, present)
    return {"success": not extra and not absent,
            "result": {"observed_value": None, "unexpected_count": len(extra), "missing_count": len(absent),
                       "partial_unexpected_list": [plain(v) for v in extra[:PARTIAL]],
                       "partial_missing_list": [plain(v) for v in absent[:PARTIAL]]}}
