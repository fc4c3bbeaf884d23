"""Seeded tables and one expectation list covering every type the native engine answers, at the edges GE's
own code treats specially (nulls, NaN, all-null, empty, mixed types, strings, `mostly` at its boundary)."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def table(seed: int, rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    f = rng.normal(10, 3, rows).round(2)
    f[rng.random(rows) < 0.1] = np.nan
    words = np.array(["alpha", "beta", "gamma", "delta", "Ω-omega", ""], dtype=object)
    s = words[rng.integers(0, len(words), rows)]
    s[rng.random(rows) < 0.15] = None
    mixed = np.array([1, "two", 3.5, None, "4"], dtype=object)[rng.integers(0, 5, rows)]
    when = pd.Series(pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 400, rows), unit="D"))
    when[rng.random(rows) < 0.05] = pd.NaT
    return pd.DataFrame({
        "f": f, "i": rng.integers(-5, 20, rows), "s": s, "mixed": mixed,
        "nulls": np.full(rows, np.nan), "flag": rng.random(rows) < 0.3,
        "when": when, "stamp": when.astype("datetime64[ms]"),
        "a": rng.integers(0, 10, rows), "b": rng.integers(0, 10, rows).astype(float),
        "code": [f"{c}{n:03d}" for c, n in zip(rng.choice(list("ABX"), rows), rng.integers(0, 1000, rows),
                                               strict=True)],
    })


def E(kind: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N802 - reads like GE's own suites
    return {"type": kind, "kwargs": kwargs, "meta": {"severity": "warning"}}


def mostly_edge(frame: pd.DataFrame, column: str, bad: pd.Series) -> float:
    """The `mostly` at which this expectation just passes: exactly the share of expected non-null values."""
    values = frame[column].notna()
    considered = int(values.sum())
    return 1.0 if considered == 0 else (considered - int((bad & values).sum())) / considered


def expectations(frame: pd.DataFrame) -> list[dict[str, Any]]:
    between_bad = (frame["f"] < 8) | (frame["f"] > 12)
    edge = mostly_edge(frame, "f", between_bad)
    found = []
    found += [E("expect_table_columns_to_match_set", column_set=list(frame.columns)),
              E("expect_table_columns_to_match_set", column_set=["f", "i", "zzz"], exact_match=False),
              E("expect_table_columns_to_match_set", column_set=["f", "i"], exact_match=False),
              E("expect_table_columns_to_match_set", column_set=["f", "i"], exact_match=True),
              E("expect_table_columns_to_match_ordered_list", column_list=list(frame.columns)),
              E("expect_table_columns_to_match_ordered_list", column_list=["i", "f", "extra"]),
              E("expect_column_to_exist", column="f"), E("expect_column_to_exist", column="absent"),
              E("expect_column_to_exist", column="i", column_index=1),
              E("expect_table_row_count_to_be_between", min_value=1, max_value=max(len(frame), 1)),
              E("expect_table_row_count_to_be_between", min_value=len(frame) + 1, max_value=None),
              E("expect_table_row_count_to_equal", value=len(frame)),
              E("expect_table_column_count_to_equal", value=3),
              E("expect_table_column_count_to_be_between", min_value=2, max_value=20)]
    for column in ("f", "s", "mixed", "nulls", "i", "when"):
        found += [E("expect_column_values_to_not_be_null", column=column),
                  E("expect_column_values_to_not_be_null", column=column, mostly=0.9),
                  E("expect_column_values_to_be_null", column=column, mostly=0.05)]
    for column, types in (("f", ["float64"]), ("i", ["int64", "float64"]), ("s", ["str"]), ("mixed", ["int", "str"]),
                          ("flag", ["bool"]), ("i", ["float64"]), ("when", ["datetime64[ns]"]), ("s", None),
                          ("stamp", ["datetime64[ms]"]), ("stamp", ["datetime64[ns]"])):
        found.append(E("expect_column_values_to_be_in_type_list", column=column, type_list=types))
    found += [E("expect_column_values_to_be_of_type", column="s", type_="str"),
              E("expect_column_values_to_be_of_type", column="f", type_="float64"),
              E("expect_column_values_to_be_of_type", column="i", type_="int32")]
    found += [E("expect_column_values_to_be_unique", column=c) for c in ("f", "code", "s", "nulls", "when")]
    found += [E("expect_column_values_to_be_between", column="f", min_value=8, max_value=12),
              E("expect_column_values_to_be_between", column="f", min_value=8, max_value=12, mostly=edge),
              E("expect_column_values_to_be_between", column="f", min_value=8, max_value=12,
                mostly=min(edge + 1e-9, 1.0)),
              E("expect_column_values_to_be_between", column="i", min_value=0, max_value=None, strict_min=True),
              E("expect_column_values_to_be_between", column="i", min_value=None, max_value=10, strict_max=True),
              E("expect_column_values_to_be_between", column="nulls", min_value=0, max_value=1),
              E("expect_column_values_to_be_between", column="when", min_value="2026-02-01", max_value="2026-12-01"),
              E("expect_column_values_to_be_between", column="mixed", min_value=0, max_value=5),
              E("expect_column_values_to_be_between", column="f", min_value=12, max_value=8)]
    found += [E("expect_column_values_to_be_in_set", column="s", value_set=["alpha", "beta", ""]),
              E("expect_column_values_to_be_in_set", column="i", value_set=[0, 1, 2.0, 3]),
              E("expect_column_values_to_be_in_set", column="flag", value_set=[True]),
              E("expect_column_values_to_be_in_set", column="s", value_set=["alpha"], mostly=0.1),
              E("expect_column_values_to_not_be_in_set", column="s", value_set=["gamma", "delta"]),
              E("expect_column_values_to_not_be_in_set", column="i", value_set=[19])]
    found += [E("expect_column_values_to_match_regex", column="code", regex=r"^[AB]\d{3}$"),
              E("expect_column_values_to_match_regex", column="s", regex="a$", mostly=0.5),
              E("expect_column_values_to_not_match_regex", column="code", regex="^X"),
              E("expect_column_values_to_match_regex", column="i", regex="1")]
    found += [E("expect_column_value_lengths_to_be_between", column="s", min_value=1, max_value=5),
              E("expect_column_value_lengths_to_be_between", column="code", min_value=4, max_value=None),
              E("expect_column_value_lengths_to_equal", column="code", value=4),
              E("expect_column_value_lengths_to_equal", column="s", value=5)]
    found += [E("expect_compound_columns_to_be_unique", column_list=["a", "b"]),
              E("expect_compound_columns_to_be_unique", column_list=["code", "i"]),
              E("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b"),
              E("expect_column_pair_values_a_to_be_greater_than_b", column_A="a", column_B="b", or_equal=True),
              E("expect_column_pair_values_to_be_equal", column_A="a", column_B="b", mostly=0.05)]
    for column in ("f", "i", "nulls"):
        for kind in ("min", "max", "mean", "median", "stdev", "sum"):
            found.append(E(f"expect_column_{kind}_to_be_between", column=column, min_value=0, max_value=50))
        found.append(E("expect_column_quantile_values_to_be_between", column=column,
                       quantile_ranges={"quantiles": [0.05, 0.25, 0.5, 0.75, 0.95],
                                        "value_ranges": [[0, 8], [None, 10], [9, 11], [10, None], [None, None]]}))
    found += [E("expect_column_unique_value_count_to_be_between", column=c, min_value=2, max_value=30)
              for c in ("s", "i", "nulls")]
    found += [E("expect_column_proportion_of_unique_values_to_be_between", column=c, min_value=0.0, max_value=0.5)
              for c in ("code", "i")]
    found += [E("expect_column_distinct_values_to_be_in_set", column="s", value_set=["alpha", "beta"]),
              E("expect_column_distinct_values_to_be_in_set", column="i", value_set=list(range(20))),
              E("expect_column_distinct_values_to_contain_set", column="s", value_set=["alpha", "zeta"]),
              E("expect_column_distinct_values_to_equal_set", column="i", value_set=list(range(-5, 20))),
              E("expect_column_distinct_values_to_equal_set", column="s", value_set=["alpha", "beta", "x"])]
    return found
