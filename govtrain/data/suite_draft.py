"""`govtrain expectations init`: profile a reference table into a draft Great Expectations suite for a
person to review and edit, like any other code in expectations/.

Structural expectations (columns, types, complete columns, label values) are "critical": the gate
fails on them. Expectations about ranges, value sets, null rates and row counts are "warning" until a
reviewer promotes them: a profile of one table is evidence of what it held, not of what is valid.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from govtrain.model.task import infer_kind

MAX_CATEGORIES = 50  # more distinct values than this: an identifier or free text, not a value set


def _expectation(kind: str, severity: str, note: str | None = None, **kwargs: Any) -> dict[str, Any]:
    meta = {"severity": severity, **({"notes": note} if note else {})}
    return {"type": kind, "kwargs": kwargs, "meta": meta}


def _type_names(series: pd.Series) -> list[str]:
    """What GE compares: the dtype, or for object columns the Python type of each value. An integer column
    also admits float64, the type prepare gives every numeric feature (so a suite drafted from the raw file
    passes the splits made of it)."""
    if series.dtype == object:
        return sorted({type(v).__name__ for v in series.dropna()}) or ["str"]
    if pd.api.types.is_integer_dtype(series) and not pd.api.types.is_bool_dtype(series):
        return sorted({str(series.dtype), "float64"})
    return [str(series.dtype)]


def structural_suite(frame: pd.DataFrame, name: str, *, source: str, target: str | None,
                     task: str | None = None) -> dict[str, Any]:
    """Only the critical part of a draft (column set, types, complete columns, label values): what a run with no
    reviewed suite (validation.suite unset) checks, drafted from its own train split."""
    draft = draft_suite(frame, name, source=source, target=target, task=task)
    draft["expectations"] = [e for e in draft["expectations"] if e["meta"]["severity"] == "critical"]
    draft["meta"] = {"description": f"Structural suite drafted from {source} ({len(frame)} rows) because no "
                                    "reviewed suite is configured (validation.suite)."}
    return draft


def draft_suite(frame: pd.DataFrame, name: str, *, source: str, target: str | None = None,
                margin: float = 0.1, task: str | None = None) -> dict[str, Any]:
    """A suite describing `frame`: numeric ranges widened by `margin` x the observed range on each side. A
    classification target's label set is critical; a regression target (stated, or inferred by
    govtrain.model.task's rule) gets a range like any number."""
    rows = len(frame)
    expectations = [_expectation("expect_table_columns_to_match_set", "critical",
                                 column_set=list(frame.columns), exact_match=False)]
    for column in frame.columns:
        series = frame[column]
        expectations.append(_expectation("expect_column_to_exist", "critical", column=column))
        expectations.append(_expectation("expect_column_values_to_be_in_type_list", "critical", column=column,
                                         type_list=_type_names(series)))
        nulls = float(series.isna().mean())
        if nulls == 0:
            expectations.append(_expectation("expect_column_values_to_not_be_null", "critical", column=column))
        elif nulls < 1:
            mostly = max(round(1 - nulls - margin * max(nulls, 0.01), 4), 0.0)
            expectations.append(_expectation("expect_column_values_to_not_be_null", "warning",
                                             f"{nulls:.2%} null in the profiled table", column=column, mostly=mostly))
        values = series.dropna()
        if values.empty:
            continue
        distinct = values.nunique()
        if column == target and (task or infer_kind(values)) != "regression":
            expectations.append(_expectation("expect_column_values_to_be_in_set", "critical", column=column,
                                             value_set=sorted(values.unique().tolist())))
        elif pd.api.types.is_bool_dtype(series) or (not pd.api.types.is_numeric_dtype(series)
                                                     and not pd.api.types.is_datetime64_any_dtype(series)):
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
    return {"name": name, "meta": {"description": f"Draft profiled from {source} ({rows} rows) by govtrain "
                                                  "expectations init. Review before use: a failed expectation with "
                                                  "meta.severity 'critical' fails the data gate, others warn."},
            "expectations": expectations}
