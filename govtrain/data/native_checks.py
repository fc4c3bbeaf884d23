"""Great Expectations' verdicts computed with pandas and numpy: one function per expectation type.

Each function gets the table (through `Columns`, which computes a column's null mask once and shares it)
and the expectation's kwargs, and returns GE's result dict for its pandas engine ({"success", "result"}):
the same success, observed_value, element_count, missing and unexpected counts and partial lists, read
from GE 1.x's own code (great_expectations/expectations/core/*, metrics/*). `supported` says which
expectations this module answers; GE answers the rest (see native_suite). tests/test_native_engine.py
runs every type here through both engines on seeded random tables and asserts equal results.
"""
from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

PARTIAL = 20  # GE's partial_unexpected_count in its default SUMMARY result format (and MAX_DISTINCT_VALUES)


def plain(value: Any) -> Any:
    """A value as GE's JSON has it: numpy scalars as Python numbers, times as ISO strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


class Columns:
    """The table, with what several expectations read of a column (its null mask, its non-null values, its
    strings as Arrow) computed once."""

    def __init__(self, frame: pd.DataFrame, names: list[str] | None = None, rows: int | None = None) -> None:
        """`names` and `rows` describe the whole table when `frame` holds only some of its columns."""
        self.frame = frame
        self.names = [str(n) for n in (names if names is not None else frame.columns)]
        self.rows = len(frame) if rows is None else rows
        self._missing: dict[str, np.ndarray] = {}
        self._nonnull: dict[str, pd.Series] = {}
        self._strings: dict[str, pa.Array | None] = {}
        self._all_str: dict[str, bool] = {}

    def missing(self, column: str) -> np.ndarray:
        if column not in self._missing:
            self._missing[column] = self.frame[column].isna().to_numpy()
        return self._missing[column]

    def nonnull(self, column: str) -> pd.Series:
        if column not in self._nonnull:
            series, missing = self.frame[column], self.missing(column)
            self._nonnull[column] = series[~missing] if missing.any() else series
        return self._nonnull[column]

    def all_str(self, column: str) -> bool:
        """Whether every non-null value is a str (pandas' C type inference, not a Python call per value)."""
        if column not in self._all_str:
            values = self.nonnull(column)
            self._all_str[column] = values.dtype == object and pd.api.types.infer_dtype(values) in ("string",
                                                                                                   "empty")
        return self._all_str[column]

    def strings(self, column: str) -> pa.Array | None:
        """The non-null values as an Arrow string array when every one is a str (its lengths in one C pass
        instead of a Python call per value); None for any other column."""
        if column not in self._strings:
            values = self.nonnull(column)
            found = None
            if self.all_str(column):
                try:
                    found = pa.array(values.to_numpy(), type=pa.string(), from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                    found = None
            self._strings[column] = found
        return self._strings[column]


def map_result(columns: Columns, values: pd.Series, bad: Any, mostly: float | None,
               nonnull: int | None = None, missing: bool = True) -> dict[str, Any]:
    """GE's _format_map_output (SUMMARY) for a column map expectation: `bad` marks the unexpected values among
    `values` (the non-null ones, or every row where `missing` is False, as for not_be_null)."""
    bad = np.asarray(bad, dtype=bool)
    total = columns.rows
    considered = len(values) if nonnull is None else nonnull
    unexpected = int(bad.sum())
    positions = np.flatnonzero(bad)[:PARTIAL]
    raw = values.iloc[positions].tolist()
    partial = [plain(v) for v in raw]
    index = [plain(i) for i in values.index[positions].tolist()]
    base = considered if missing else total
    success = True if total == 0 or base == 0 else (base - unexpected) / base >= (1 if mostly is None else mostly)
    result: dict[str, Any] = {"element_count": total, "unexpected_count": unexpected,
                              "unexpected_percent": (unexpected / base * 100) if base else None,
                              "partial_unexpected_list": partial}
    if missing:
        result.update({"missing_count": total - considered,
                       "missing_percent": (total - considered) / total * 100 if total else None,
                       "unexpected_percent_total": unexpected / total * 100 if total else None,
                       "unexpected_percent_nonmissing": unexpected / considered * 100 if considered else None})
        if not total:
            result["unexpected_percent"] = None
    counts = _counts(raw)
    if counts is not None:
        result["partial_unexpected_counts"] = counts
    result["partial_unexpected_index_list"] = index
    return {"success": bool(success), "result": result}


def _counts(raw: list[Any]) -> list[dict[str, Any]] | None:
    """GE's partial_unexpected_counts: a Counter over the raw partial values (so each NaN, a new float object,
    counts once), ranked by count then value; None where the values do not sort, as GE then leaves it out."""
    hashable = [tuple(v.values()) if isinstance(v, dict) else v for v in raw]
    try:
        ranked = sorted(Counter(hashable).most_common(PARTIAL), key=lambda x: (-x[1], x[0]))
    except TypeError:
        return None
    return [{"value": list(map(plain, k)) if isinstance(k, tuple) else plain(k), "count": n} for k, n in ranked]


def between(value: Any, low: Any, high: Any, strict_low: bool | None = False, strict_high: bool | None = False
            ) -> bool:
    above = True if low is None else (value > low if strict_low else value >= low)
    below = True if high is None else (value < high if strict_high else value <= high)
    return bool(above and below)


def metric_between(observed: Any, kw: dict[str, Any]) -> dict[str, Any]:
    """GE's _validate_metric_value_between: a missing metric fails."""
    if observed is None or (not isinstance(observed, dt.datetime) and pd.isnull(observed)):
        return {"success": False, "result": {"observed_value": None}}
    ok = between(observed, kw.get("min_value"), kw.get("max_value"), kw.get("strict_min"), kw.get("strict_max"))
    return {"success": ok, "result": {"observed_value": plain(observed)}}


# ---- table-level --------------------------------------------------------------------------------------------

def table_columns_match_set(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    actual, expected = set(c.names), set(kw.get("column_set") or [])
    observed = sorted(actual)
    unexpected, missing = sorted(actual - expected), sorted(expected - actual)
    if not unexpected and not missing:
        return {"success": True, "result": {"observed_value": observed}}
    mismatched = {**({"unexpected": unexpected} if unexpected else {}), **({"missing": missing} if missing else {})}
    exact = kw.get("exact_match", True)
    return {"success": not exact and not missing,
            "result": {"observed_value": observed, "details": {"mismatched": mismatched}}}


def table_columns_match_ordered_list(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    actual, expected = list(c.names), kw.get("column_list")
    if expected is None or actual == list(expected):
        return {"success": True, "result": {"observed_value": actual}}
    width = max(len(expected), len(actual))
    pad = lambda xs: list(xs) + [None] * (width - len(xs))  # noqa: E731
    mismatched = [{"Expected Column Position": i, "Expected": e, "Found": f}
                  for i, (e, f) in enumerate(zip(pad(expected), pad(actual), strict=True)) if e != f]
    return {"success": False, "result": {"observed_value": actual, "details": {"mismatched": mismatched}}}


def column_to_exist(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    columns, index = c.names, kw.get("column_index")
    if index:
        return {"success": index < len(columns) and columns[index] == kw["column"]}
    return {"success": kw["column"] in columns}


def count_equal(observed: int, kw: dict[str, Any]) -> dict[str, Any]:
    return {"success": observed == kw["value"], "result": {"observed_value": observed}}


# ---- column map ---------------------------------------------------------------------------------------------

def not_be_null(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    return map_result(c, c.frame[kw["column"]], c.missing(kw["column"]), kw.get("mostly"), missing=False)


def be_null(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    return map_result(c, c.frame[kw["column"]], ~c.missing(kw["column"]), kw.get("mostly"), missing=False)


def column_map(condition: Callable[..., Any], with_columns: bool = False) -> Callable[[Columns, dict[str, Any]], dict]:
    """A column map expectation whose `condition` says which non-null values are expected (given the Columns
    too where it reads their cached forms)."""
    def check(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
        values = c.nonnull(kw["column"])
        good = condition(c, values, kw) if with_columns else condition(values, kw)
        return map_result(c, values, ~np.asarray(good, dtype=bool), kw.get("mostly"))
    return check


def values_between(values: pd.Series, kw: dict[str, Any]) -> Any:
    low, high = kw.get("min_value"), kw.get("max_value")
    if low is None and high is None:
        raise ValueError("min_value and max_value cannot both be None")
    if low is not None and high is not None and low > high:
        raise ValueError("min_value cannot be greater than max_value")
    good = np.ones(len(values), dtype=bool)
    if low is not None:
        good &= (values > low if kw.get("strict_min") else values >= low).to_numpy()
    if high is not None:
        good &= (values < high if kw.get("strict_max") else values <= high).to_numpy()
    return good


def lengths(c: Columns, values: pd.Series, column: str) -> pd.Series:
    """GE's str(value) lengths; for a column of strings, Arrow counts the code points (= Python's len)."""
    strings = c.strings(column)
    if strings is None:
        return values.astype(str).str.len()
    return pd.Series(pc.utf8_length(strings).to_numpy(zero_copy_only=False), index=values.index)


def lengths_equal(c: Columns, values: pd.Series, kw: dict[str, Any]) -> Any:
    return (lengths(c, values, kw["column"]) == kw["value"]).to_numpy()


def unique(values: pd.Series, kw: dict[str, Any]) -> Any:
    return ~values.duplicated(keep=False).to_numpy()  # GE: every copy of a repeated value is unexpected


def in_set(values: pd.Series, kw: dict[str, Any]) -> Any:
    """GE: a value_set of None admits everything."""
    if kw.get("value_set") is None:
        return np.ones(len(values), dtype=bool)
    return values.isin(kw["value_set"]).to_numpy()


def matches(values: pd.Series, kw: dict[str, Any]) -> Any:
    return values.astype(str).str.contains(kw["regex"]).to_numpy()  # GE: re.search on str(value)


def lengths_between(c: Columns, values: pd.Series, kw: dict[str, Any]) -> Any:
    return values_between(lengths(c, values, kw["column"]), kw)


def _type_in(c: Columns, values: pd.Series, column: str, names: list[str]) -> np.ndarray:
    """Which values' Python type names are in `names` (GE's per-value check of an object column)."""
    if c.all_str(column):
        return np.full(len(values), "str" in names, dtype=bool)
    return pd.Series([type(v).__name__ for v in values.tolist()]).isin(names).to_numpy()


def type_list(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    """An object column is checked value by value (a map expectation); any other dtype by its name."""
    series, types = c.frame[kw["column"]], kw.get("type_list")
    if series.dtype == object and types is not None:
        return column_map(lambda c, v, k: _type_in(c, v, k["column"], list(k["type_list"])), True)(c, kw)
    return {"success": types is None or any(series.dtype == np.dtype(t) for t in types),
            "result": {"observed_value": series.dtype.type.__name__}}


def of_type(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    series = c.frame[kw["column"]]
    if series.dtype == object:
        return column_map(lambda c, v, k: _type_in(c, v, k["column"], [k["type_"]]), True)(c, kw)
    return {"success": series.dtype == np.dtype(kw["type_"]), "result": {"observed_value": series.dtype.type.__name__}}


# ---- multicolumn map ----------------------------------------------------------------------------------------

def _rows_result(c: Columns, keep: pd.Series, bad: np.ndarray, names: list[str], mostly: float | None,
                 as_dicts: bool = True) -> dict:
    """A multicolumn map result: GE gives a compound expectation's unexpected rows as dicts of the row's
    columns and a column pair's as [A, B] lists."""
    rows = c.frame.loc[keep, names]
    positions = np.flatnonzero(bad)[:PARTIAL]
    records: list[Any] = [{k: plain(v) for k, v in zip(names, row, strict=True)} if as_dicts else
                          [plain(v) for v in row] for row in rows.iloc[positions].itertuples(index=False, name=None)]
    values = pd.Series(records, index=rows.index[positions], dtype=object)
    partial = map_result(c, rows.iloc[:, 0], bad, mostly)
    partial["result"]["partial_unexpected_list"] = records
    counts = _counts([tuple(r) if isinstance(r, list) else r for r in records])
    partial["result"].pop("partial_unexpected_counts", None)
    if counts is not None:
        partial["result"]["partial_unexpected_counts"] = counts
    partial["result"]["partial_unexpected_index_list"] = [plain(i) for i in values.index.tolist()]
    return partial


def compound_unique(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
    names = list(kw["column_list"])
    keep = _kept_rows(c.frame[names], kw.get("ignore_row_if", "all_values_are_missing"))
    rows = c.frame.loc[keep, names]
    return _rows_result(c, keep, rows.duplicated(keep=False).to_numpy(), names, kw.get("mostly"))


def _kept_rows(frame: pd.DataFrame, rule: str) -> pd.Series:
    missing = frame.isna()
    if rule in ("all_values_are_missing", "both_values_are_missing"):
        return ~missing.all(axis=1)
    if rule in ("any_value_is_missing", "either_value_is_missing"):
        return ~missing.any(axis=1)
    return pd.Series(True, index=frame.index)


def pair(compare: Callable[[pd.Series, pd.Series, dict[str, Any]], pd.Series]) -> Callable:
    def check(c: Columns, kw: dict[str, Any]) -> dict[str, Any]:
        names = [kw["column_A"], kw["column_B"]]
        keep = _kept_rows(c.frame[names], kw.get("ignore_row_if", "both_values_are_missing"))
        a, b = c.frame.loc[keep, names[0]], c.frame.loc[keep, names[1]]
        return _rows_result(c, keep, ~compare(a, b, kw).to_numpy(dtype=bool), names, kw.get("mostly"), False)
    return check
