"""Reading the user's table: one place that turns file problems into one-line errors."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq


class DataError(ValueError):
    """Bad input data, phrased as one line naming the file, column or row."""


def read_table(path: str | Path, fmt: str, columns: list[str] | None = None) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        if fmt == "csv":
            return pd.read_csv(path, usecols=columns)
        return pd.read_parquet(path, columns=columns)
    except ValueError as exc:  # pandas says which columns are missing
        raise DataError(f"{path}: {exc}") from exc
    except Exception as exc:  # pyarrow/pandas parser errors: keep their message, name the file
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def table_columns(path: str | Path, fmt: str) -> list[str]:
    """Column names without reading the data (a cheap pre-flight check)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    try:
        if fmt == "csv":
            return list(pd.read_csv(path, nrows=0).columns)
        return list(pq.read_schema(path).names)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
