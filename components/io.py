"""Reading the user's table: one place that turns file problems into one-line errors."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq


SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Bad input data, phrased as one line naming the file, column or row."""


def format_of(path: str | Path) -> str:
    return "csv" if Path(path).suffix.lower() == ".csv" else "parquet"


def read_table(path: str | Path, fmt: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Read CSV or Parquet (fmt None: by suffix); problems become one-line DataErrors."""
    path = Path(path)
    fmt = fmt or format_of(path)
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


def read_splits(split_paths: dict, evidence) -> dict[str, pd.DataFrame]:
    """Read each split's Parquet file and record it, with its digest and rows, as an input of the step."""
    frames = {}
    for name, path in split_paths.items():
        frames[name] = pd.read_parquet(path)
        evidence.add_input(f"data/{name}.parquet", path, rows=len(frames[name]))
    return frames


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
