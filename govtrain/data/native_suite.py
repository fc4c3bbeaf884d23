"""Validate a table against a Great Expectations suite: our column engine where it gives GE's verdicts, GE
itself for anything else, one result in GE's own JSON shape (ExpectationSuiteValidationResult.to_json_dict).

Why: GE spends ~48 s on a 1M x 30 table with the drafted suite because it walks a metric graph per
expectation; the same answers are one vectorised pass per column (benchmarks/validate_speed.py). GE stays
the reference: tests/test_native_engine.py runs every supported type through both and compares.
"""
from __future__ import annotations

import traceback
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from govtrain.data import native_checks as nc
from govtrain.data import native_stats as ns
from govtrain.data.io import DataError
from govtrain.data.native_checks import Columns

BATCH_ID = "govtrain-split"

CHECKS: dict[str, Callable[[Columns, dict[str, Any]], dict[str, Any]]] = {
    "expect_table_columns_to_match_set": nc.table_columns_match_set,
    "expect_table_columns_to_match_ordered_list": nc.table_columns_match_ordered_list,
    "expect_column_to_exist": nc.column_to_exist,
    "expect_table_row_count_to_be_between": lambda c, kw: nc.metric_between(c.rows, kw),
    "expect_table_row_count_to_equal": lambda c, kw: nc.count_equal(c.rows, kw),
    "expect_table_column_count_to_be_between": lambda c, kw: nc.metric_between(len(c.names), kw),
    "expect_table_column_count_to_equal": lambda c, kw: nc.count_equal(len(c.names), kw),
    "expect_column_values_to_not_be_null": nc.not_be_null,
    "expect_column_values_to_be_null": nc.be_null,
    "expect_column_values_to_be_in_type_list": nc.type_list,
    "expect_column_values_to_be_of_type": nc.of_type,
    "expect_column_values_to_be_unique": nc.column_map(nc.unique),
    "expect_column_values_to_be_between": nc.column_map(nc.values_between),
    "expect_column_values_to_be_in_set": nc.column_map(nc.in_set),
    "expect_column_values_to_not_be_in_set": nc.column_map(lambda v, kw: ~nc.in_set(v, kw)),
    "expect_column_values_to_match_regex": nc.column_map(nc.matches),
    "expect_column_values_to_not_match_regex": nc.column_map(lambda v, kw: ~nc.matches(v, kw)),
    "expect_column_value_lengths_to_be_between": nc.column_map(nc.lengths_between, True),
    "expect_column_value_lengths_to_equal": nc.column_map(nc.lengths_equal, True),
    "expect_compound_columns_to_be_unique": nc.compound_unique,
    "expect_column_pair_values_a_to_be_greater_than_b": nc.pair(lambda a, b, kw: a >= b if kw.get("or_equal")
                                                                 else a > b),
    "expect_column_pair_values_to_be_equal": nc.pair(lambda a, b, kw: a == b),
    "expect_column_min_to_be_between": ns.aggregate(lambda v: v.min()),
    "expect_column_max_to_be_between": ns.aggregate(lambda v: v.max()),
    "expect_column_mean_to_be_between": ns.aggregate(lambda v: v.mean()),
    "expect_column_median_to_be_between": ns.aggregate(lambda v: v.median()),
    "expect_column_stdev_to_be_between": ns.aggregate(lambda v: v.std()),
    "expect_column_sum_to_be_between": ns.aggregate(lambda v: v.sum()),
    "expect_column_unique_value_count_to_be_between": ns.aggregate(lambda v: v.nunique()),
    "expect_column_proportion_of_unique_values_to_be_between": ns.aggregate(lambda v: v.nunique() / len(v)
                                                                            if len(v) else 0),
    "expect_column_quantile_values_to_be_between": ns.quantiles,
    "expect_column_distinct_values_to_be_in_set": ns.distinct_in_set,
    "expect_column_distinct_values_to_contain_set": ns.distinct_contain_set,
    "expect_column_distinct_values_to_equal_set": ns.distinct_equal_set,
}

NUMERIC_ONLY = {"expect_column_values_to_be_between", "expect_column_min_to_be_between",
                "expect_column_max_to_be_between", "expect_column_mean_to_be_between",
                "expect_column_median_to_be_between", "expect_column_stdev_to_be_between",
                "expect_column_sum_to_be_between", "expect_column_quantile_values_to_be_between"}
WHOLE_BELOW_CELLS = 10_000_000  # a Parquet table this small is read whole (~100 MB), bigger a column group at a time
# read only nulls, the dtype or equality: the same for any dtype (datetimes included)
ANY_DTYPE = {"expect_column_values_to_not_be_null", "expect_column_values_to_be_null",
             "expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type",
             "expect_column_values_to_be_unique"}
# kwargs our checks read; an expectation with any other (row_condition, result_format, ...) goes to GE
KNOWN_KWARGS = {"column", "column_A", "column_B", "column_list", "column_set", "column_index", "exact_match",
                "min_value", "max_value", "strict_min", "strict_max", "mostly", "value_set", "type_list", "type_",
                "regex", "value", "quantile_ranges", "allow_relative_error", "or_equal", "ignore_row_if",
                "batch_id"}


def _plain_number(dtype: Any) -> bool:
    """GE's pandas engine compares int64/float64 columns vectorised; other dtypes take its per-value paths."""
    return dtype in (int, float) or dtype.name in ("int64", "float64")


def _numpy_types(names: list[Any]) -> bool:
    try:
        return all(np.dtype(n) is not None for n in names if n is not None)
    except TypeError:
        return False


def supported(expectation: dict[str, Any], frame: pd.DataFrame) -> bool:
    """True when CHECKS answers this expectation on this table exactly as GE would."""
    kind, kwargs = expectation.get("type"), expectation.get("kwargs") or {}
    if kind not in CHECKS or set(kwargs) - KNOWN_KWARGS:
        return False
    named = columns_named(expectation)
    if kind == "expect_column_to_exist":
        return True
    if any(c not in frame.columns for c in named):
        return False  # GE's own error message says which column
    typed = kind in ("expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type")
    if typed and frame[kwargs["column"]].dtype != object and not _numpy_types(kwargs.get("type_list")
                                                                             or [kwargs.get("type_")]):
        return False  # GE also matches pandas and Python type names; numpy's are the ones we compare
    dtypes = [frame[c].dtype for c in named]
    if kind in NUMERIC_ONLY and not all(_plain_number(d) for d in dtypes):
        return False
    if kind in ANY_DTYPE:
        return True
    # datetimes, categoricals and pandas extension types take GE's coercions, which we do not copy
    return all(d.kind in "OifbU" and (d.kind != "f" or _plain_number(d)) and (d.kind != "i" or _plain_number(d))
               for d in dtypes)


def _item(expectation: dict[str, Any], outcome: dict[str, Any], error: str | None = None,
          trace: str | None = None) -> dict[str, Any]:
    config = {"type": expectation["type"], "kwargs": {"batch_id": BATCH_ID, **(expectation.get("kwargs") or {})},
              "meta": expectation.get("meta") or {}, "id": expectation.get("id"),
              "severity": expectation.get("severity", "critical")}
    return {"success": outcome.get("success", False), "expectation_config": config,
            "result": outcome.get("result", {}), "meta": {},
            "exception_info": {"raised_exception": error is not None, "exception_traceback": trace,
                               "exception_message": error}}


def _by_ge(frame: pd.DataFrame, suite: dict[str, Any], positions: list[int]) -> dict[int, dict[str, Any]]:
    """GE's results for the expectations at `positions`, run as one sub-suite (GE reorders its results, so each
    carries its position in meta until it is matched back)."""
    from govtrain.data.ge_engine import run_ge

    marked = []
    for position in positions:
        expectation = dict(suite["expectations"][position])
        expectation["meta"] = {**(expectation.get("meta") or {}), "govtrain_position": position}
        marked.append(expectation)
    result = run_ge(frame, {"name": suite.get("name", "suite"), "expectations": marked})
    answered = {}
    for item in result["results"]:
        position = item["expectation_config"]["meta"].pop("govtrain_position")
        answered[position] = item
    for position in positions:  # GE drops an expectation it cannot build, with a log line: we refuse the suite
        if position not in answered:
            raise DataError(f"expectations[{position}] ({suite['expectations'][position].get('type')}): Great "
                            "Expectations could not build this expectation (unknown type or invalid kwargs)")
    return answered


def _answer(frame: pd.DataFrame, suite: dict[str, Any], positions: list[int], engine: str,
            columns: Columns) -> tuple[dict[int, dict[str, Any]], int]:
    """Results for the expectations at `positions` on `frame`, and how many the native engine answered."""
    expectations = suite["expectations"]
    native = [i for i in positions if engine == "native" and supported(expectations[i], frame)]
    others = [i for i in positions if i not in set(native)]
    items: dict[int, dict[str, Any]] = {}
    for position in native:
        expectation = expectations[position]
        try:
            items[position] = _item(expectation, CHECKS[expectation["type"]](columns, expectation.get("kwargs") or {}))
        except Exception as exc:  # GE reports an expectation that raised as failed, with the exception; so do we
            items[position] = _item(expectation, {"success": False, "result": {}}, str(exc), traceback.format_exc())
    if others:
        items.update(_by_ge(frame, suite, others))
    return items, len(native)


def _suite_result(suite: dict[str, Any], items: dict[int, dict[str, Any]], engine: str, native: int
                  ) -> dict[str, Any]:
    results = [items[i] for i in range(len(suite["expectations"]))]
    passed = sum(1 for r in results if r["success"])
    return {"success": passed == len(results), "results": results, "suite_name": suite.get("name"),
            "suite_parameters": {},
            "statistics": {"evaluated_expectations": len(results), "successful_expectations": passed,
                           "unsuccessful_expectations": len(results) - passed,
                           "success_percent": passed / len(results) * 100 if results else None},
            "meta": {"great_expectations_version": metadata.version("great_expectations"),
                     "engine": {"name": engine, "native": native, "great_expectations": len(results) - native},
                     "batch_spec": {"batch_data": "PandasDataFrame"},
                     "active_batch_definition": {"datasource_name": "govtrain", "data_connector_name": "fluent",
                                                 "data_asset_name": "split",
                                                 "batch_identifiers": {"dataframe": "<DATAFRAME>"}}},
            "id": None}


def validate_frame(frame: pd.DataFrame, suite: dict[str, Any], engine: str = "native") -> dict[str, Any]:
    """GE's validation result for `frame`, as plain JSON. engine "native" answers what CHECKS supports and
    sends the rest to GE; engine "ge" sends everything to GE (the reference, and `--engine ge`)."""
    positions = list(range(len(suite["expectations"])))
    items, native = _answer(frame, suite, positions, engine, Columns(frame))
    return _suite_result(suite, items, engine, native)


def columns_named(expectation: dict[str, Any]) -> tuple[str, ...]:
    """The columns an expectation reads (column, column_A/B, column_list), each once."""
    kwargs = expectation.get("kwargs") or {}
    named = [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return tuple(dict.fromkeys(named + list(kwargs.get("column_list") or [])))


def validate_parquet(path: Path, suite: dict[str, Any], engine: str = "native") -> dict[str, Any]:
    """validate_frame for a Parquet file too big to hold whole: the expectations are grouped by the columns
    they read and each group reads only its columns, so memory holds one group's columns (usually one),
    not the table. Table-level expectations read the schema and row count from the file's footer."""
    from govtrain.data.io import read_table

    file = pq.ParquetFile(path)
    names, rows = file.schema_arrow.names, file.metadata.num_rows
    if rows * len(names) <= WHOLE_BELOW_CELLS:  # small: one read beats a read per column group
        return validate_frame(read_table(path), suite, engine)
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, expectation in enumerate(suite["expectations"]):
        wanted = columns_named(expectation)
        key = wanted if wanted and expectation.get("type") != "expect_column_to_exist" else ()
        groups.setdefault(key if all(c in names for c in key) else (), []).append(position)
    items: dict[int, dict[str, Any]] = {}
    native = 0
    for key, positions in groups.items():
        frame = read_table(path, columns=list(key)) if key else pd.DataFrame(
            {name: pd.Series([], dtype=object) for name in names})
        answered, count = _answer(frame, suite, positions, engine, Columns(frame, names=names, rows=rows))
        items.update(answered)
        native += count
        del frame
    return _suite_result(suite, items, engine, native)


def exception_message(item: dict[str, Any]) -> str | None:
    """The error an expectation raised, if any. GE keys exception_info by metric id when a metric failed;
    otherwise (and in our results) it is one {raised_exception, exception_message, ...} dict."""
    info = item.get("exception_info") or {}
    entries = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, dict)]
    messages = [e.get("exception_message") for e in entries if e.get("raised_exception")]
    return "; ".join(str(m) for m in messages) or None
