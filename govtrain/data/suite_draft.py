"""`govtrain expectations init`: profile a reference table into a draft Great Expectations suite for a
person to review and edit, like any other code in expectations/.

Structural expectations (columns, types, label values, and a complete target, entity id and timestamp) are
"critical": the gate fails on them. Expectations about ranges, value sets, null rates (of every other column) and
row counts are "warning" until a reviewer promotes them: a profile of one table is evidence of what it held, not of
what is valid.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from govtrain.model.task import infer_kind

MAX_CATEGORIES = 50  # more distinct values than this: an identifier or free text, not a value set
CONFIDENCE = 0.999  # of each of the two one-sided bounds behind a not-null expectation's `mostly` (null_allowance)


def _expectation(kind: str, severity: str, note: str | None = None, **kwargs: Any) -> dict[str, Any]:
    meta = {"severity": severity, **({"notes": note} if note else {})}
    return {"type": kind, "kwargs": kwargs, "meta": meta}


# Python types Great Expectations knows by name besides numpy's and pandas' (its type_comparison.native_type_type_map)
GE_PYTHON_NAMES = {"none": type(None), "bool": bool, "int": int, "long": int, "float": float, "bytes": bytes,
                   "complex": complex, "str": str, "string_types": str, "list": list, "dict": dict}


def _ge_value_types(name: str) -> tuple[type, ...]:
    """The Python types a name admits where GE checks an object column value by value (isinstance; its
    ColumnValuesInTypeList metric); () where GE does not know the name (it then raises)."""
    found: list[type] = []
    try:
        found.append(np.dtype(name).type)
    except TypeError:
        for module in (pd, pd.core.dtypes.dtypes):
            kind = getattr(module, name, None)
            if isinstance(kind, type):
                found.append(kind)
    if name.lower() in GE_PYTHON_NAMES:
        found.append(GE_PYTHON_NAMES[name.lower()])
    return tuple(found)


def _ge_admits_dtype(name: str, dtype: Any) -> bool:
    """Whether GE's pandas engine passes a column of `dtype` against type_list [name] (ExpectColumnValuesToBeIn
    TypeList._validate_pandas: the dtype must equal np.dtype(name), or an instance of the pandas dtype so named)."""
    candidates: list[Any] = []
    try:
        candidates.append(np.dtype(name))
    except TypeError:
        kind = getattr(pd, name, None)
        if isinstance(kind, type):
            try:
                candidates.append(kind())
            except TypeError:
                pass
    return any(dtype == c for c in candidates)


# What pandas makes of a split's logical (Arrow/Parquet) type when it reads it as an object column: the Python type
# of its values. Other logical types become numpy or pandas dtypes, named by the dtype.
OBJECT_VALUES = {"str": (pa.types.is_string, pa.types.is_large_string),
                 "bytes": (pa.types.is_binary, pa.types.is_large_binary, pa.types.is_fixed_size_binary),
                 "bool": (pa.types.is_boolean,)}


def _type_names(series: pd.Series, logical: pa.DataType | None = None) -> list[str] | None:
    """The type_list that Great Expectations (and the native engine, which gives its verdicts) passes on this column
    as the split holds it; None where GE has no name for the column's type (a zoned datetime, a category).

    The split's logical type decides. An object column (strings, binary, nullable booleans) is checked value by
    value: its Arrow type names the Python type of its values (str, bytes, bool), or, without a schema, the values
    seen do. Any other column is checked by its dtype, the one pandas reads the Arrow type as: a numpy dtype by its
    numpy name, a pandas extension dtype by the name GE resolves to it (Int64, BooleanDtype). An integer column also
    admits float64, the type prepare gives every numeric feature (so a suite drafted from the raw file passes the
    splits made of it)."""
    if series.dtype == object:
        named = next((name for name, tests in OBJECT_VALUES.items()
                      if logical is not None and any(test(logical) for test in tests)), None)
        names = [named] if named else sorted({type(v).__name__ for v in series.dropna()}) or ["str"]
        return names if all(_ge_value_types(n) for n in names) else None
    name = next((n for n in (str(series.dtype), type(series.dtype).__name__) if _ge_admits_dtype(n, series.dtype)),
                None)
    if name is None:
        return None
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return sorted({name, "float64"})
    return [name]


def null_allowance(nulls: int, rows: int, smallest: int) -> float:
    """The null share a split of `smallest` rows may hold before a not-null expectation drafted from `rows` rows
    with `nulls` empty fails: large enough that neither one empty cell nor sampling noise breaks it.

    Two one-sided bounds at CONFIDENCE (99.9%). First the column's null rate: the Clopper-Pearson upper bound
    p = Beta quantile(CONFIDENCE; nulls + 1, rows - nulls); with no nulls this is 1 - 0.001^(1/rows), about
    6.9 / rows (the "rule of three" at 99.9% instead of 95%). Then the split: at that rate its empty cells are
    Binomial(smallest, p), and their CONFIDENCE quantile q is allowed. The allowance is q / smallest, at least one
    cell (1 / smallest) and at least the rate seen (nulls / rows). So a split drawn like the profiled rows fails it
    with a chance of about 0.2% or less, and the smallest split (the others are larger) passes one empty cell."""
    from scipy.stats import beta, binom

    if rows <= 0 or smallest <= 0 or nulls >= rows:
        return 1.0
    rate = float(beta.ppf(CONFIDENCE, nulls + 1, rows - nulls))
    cells = float(binom.ppf(CONFIDENCE, smallest, rate))
    return min(1.0, max(cells / smallest, 1 / smallest, nulls / rows))


def not_null_mostly(nulls: int, rows: int, smallest: int) -> float:
    """1 - null_allowance, rounded down to 4 decimals (so rounding never tightens it)."""
    return max(math.floor((1 - null_allowance(nulls, rows, smallest)) * 10_000) / 10_000, 0.0)


def structural_suite(frame: pd.DataFrame, name: str, *, source: str, target: str | None, task: str | None = None,
                     entity_id: str | None = None, timestamp: str | None = None, schema: pa.Schema | None = None,
                     smallest_split: int | None = None) -> dict[str, Any]:
    """The critical part of a draft (column set, types, label values, a complete target, entity id and timestamp)
    and its not-null warnings (every other column, with draft_suite's `mostly`): what a run with no reviewed suite
    (validation.suite unset) checks, drafted from its own train split. `schema` is the split's Arrow schema (the
    logical types), `smallest_split` the rows of the smallest split the suite will validate."""
    draft = draft_suite(frame, name, source=source, target=target, task=task, entity_id=entity_id,
                        timestamp=timestamp, schema=schema, smallest_split=smallest_split)
    draft["expectations"] = [e for e in draft["expectations"] if e["meta"]["severity"] == "critical"
                             or e["type"] == "expect_column_values_to_not_be_null"]
    draft["meta"] = {"description": f"Structural suite drafted from {source} ({len(frame)} rows) because no "
                                    "reviewed suite is configured (validation.suite).",
                     **({"types_not_checked": draft["meta"]["types_not_checked"]}
                        if "types_not_checked" in draft["meta"] else {})}
    return draft


def draft_suite(frame: pd.DataFrame, name: str, *, source: str, target: str | None = None,
                margin: float = 0.1, task: str | None = None, entity_id: str | None = None,
                timestamp: str | None = None, schema: pa.Schema | None = None,
                smallest_split: int | None = None) -> dict[str, Any]:
    """A suite describing `frame`: numeric ranges widened by `margin` x the observed range on each side. A
    classification target's label set is critical; a regression target (stated, or inferred by
    govtrain.model.task's rule) gets a range like any number.

    Not-null: critical for the target, the entity id and the timestamp (the rows are useless without them); a
    warning for every other column that has a value, whose `mostly` (not_null_mostly) lets the smallest split the
    suite validates hold one empty cell, or the share sampling noise gives at the rate profiled, without failing.
    `smallest_split` defaults to a tenth of the profiled rows (as the row-count bounds below assume).
    Types: from `schema` (the table's Arrow schema, its logical types) where given (_type_names); a column whose type
    Great Expectations cannot name gets no type expectation, and meta.types_not_checked says so."""
    rows = len(frame)
    smallest = smallest_split or max(rows // 10, 1)
    required = {c for c in (target, entity_id, timestamp) if c}
    expectations = [_expectation("expect_table_columns_to_match_set", "critical",
                                 column_set=list(frame.columns), exact_match=False)]
    unnamed: dict[str, str] = {}
    for column in frame.columns:
        series = frame[column]
        expectations.append(_expectation("expect_column_to_exist", "critical", column=column))
        logical = schema.field(column).type if schema is not None and column in schema.names else None
        types = _type_names(series, logical)
        if column == timestamp and types is not None and not pd.api.types.is_datetime64_any_dtype(series):
            types = sorted({*types, "datetime64[ns]"})  # prepare stores a parsed timestamp so (UTC, zone dropped)
        if types is None:
            unnamed[str(column)] = (f"{series.dtype}: Great Expectations has no type name a column of this type "
                                    "passes, so no type expectation was drafted")
        else:
            expectations.append(_expectation("expect_column_values_to_be_in_type_list", "critical", column=column,
                                             type_list=types))
        nulls = int(series.isna().sum())
        if column in required:
            expectations.append(_expectation("expect_column_values_to_not_be_null", "critical", column=column))
        elif nulls < rows:
            mostly = not_null_mostly(nulls, rows, smallest)
            expectations.append(_expectation(
                "expect_column_values_to_not_be_null", "warning",
                f"{nulls} of {rows} null in the profiled table; mostly allows a {smallest}-row split a "
                f"{1 - mostly:.2%} null share (99.9% bounds on the rate and on the split's count, at least one "
                "cell)", column=column, mostly=mostly))
        values = series.dropna()
        if values.empty:
            continue
        distinct = values.nunique()
        if column == target and (task or infer_kind(values)) != "regression":
            expectations.append(_expectation("expect_column_values_to_be_in_set", "critical", column=column,
                                             value_set=sorted(values.unique().tolist())))
        elif pd.api.types.is_bool_dtype(series) or pd.api.types.infer_dtype(values) == "boolean":
            # the values themselves: GE compares True with True, never with "True"
            expectations.append(_expectation("expect_column_values_to_be_in_set", "warning", column=column,
                                             value_set=sorted({bool(v) for v in values.unique()})))
        elif not pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_datetime64_any_dtype(series):
            text = values.astype(str)
            if distinct <= MAX_CATEGORIES:
                expectations.append(_expectation("expect_column_values_to_be_in_set", "warning", column=column,
                                                 value_set=sorted(text.unique().tolist())))
            expectations.append(_expectation("expect_column_value_lengths_to_be_between", "warning",
                                             column=column, min_value=0, max_value=int(text.str.len().max()) * 2))
        elif pd.api.types.is_numeric_dtype(series):
            low, high = float(values.min()), float(values.max())
            pad = (high - low) * margin
            bounds = (low - pad, high + pad)
            if pd.api.types.is_integer_dtype(series) or (values == values.round()).all():
                bounds = (int(bounds[0] // 1), int(-(-bounds[1] // 1)))
            expectations.append(_expectation("expect_column_values_to_be_between", "warning",
                                             f"observed {low:g} to {high:g}, widened by {margin:.0%}",
                                             column=column, min_value=bounds[0], max_value=bounds[1]))
    # The suite validates each split, so the count bounds allow a 10% test split up to 10x growth.
    expectations.append(_expectation("expect_table_row_count_to_be_between", "warning",
                                     f"profiled table had {rows} rows", min_value=max(rows // 10, 1),
                                     max_value=rows * 10))
    meta: dict[str, Any] = {"description": f"Draft profiled from {source} ({rows} rows) by govtrain expectations "
                                           "init. Review before use: a failed expectation with meta.severity "
                                           "'critical' fails the data gate, others warn."}
    if unnamed:
        meta["types_not_checked"] = unnamed
    return {"name": name, "meta": meta, "expectations": expectations}
