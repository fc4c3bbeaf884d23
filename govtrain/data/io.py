"""Reading the user's table: one place that turns file problems into one-line errors naming the file
and, where there is one, the column, line or row."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Bad input data, phrased as one line naming the file, column or row."""


# Untrusted tables are checked against these before they are read whole (memory stays bounded):
# a header wider than MAX_COLUMNS or a CSV line longer than MAX_LINE_BYTES is refused.
MAX_COLUMNS_ENV, MAX_LINE_ENV = "GOVTRAIN_MAX_COLUMNS", "GOVTRAIN_MAX_LINE_BYTES"


def limits() -> tuple[int, int]:
    return int(os.environ.get(MAX_COLUMNS_ENV, 10_000)), int(os.environ.get(MAX_LINE_ENV, 1 << 20))


def check_line_lengths(path: Path, limit: int) -> None:
    """One streaming pass in 1 MiB chunks (numpy finds the newlines): the first line longer than limit
    bytes is named."""
    carry, line = 0, 1  # bytes of the current line seen in earlier chunks, its number
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            ends = np.flatnonzero(np.frombuffer(chunk, dtype=np.uint8) == 10)
            lengths = np.diff(ends, prepend=-1) - 1  # each complete line in this chunk
            if len(ends):
                lengths[0] += carry
            too_long = np.flatnonzero(lengths > limit)
            if len(too_long):
                raise DataError(f"{path}: line {line + int(too_long[0])} is longer than {limit} bytes "
                                f"(${MAX_LINE_ENV}); not reading it")
            line += len(ends)
            carry = (len(chunk) - int(ends[-1]) - 1) if len(ends) else carry + len(chunk)
            if carry > limit:
                raise DataError(f"{path}: line {line} is longer than {limit} bytes (${MAX_LINE_ENV}); not reading it")


def format_of(path: str | Path) -> str:
    return "csv" if Path(path).suffix.lower() == ".csv" else "parquet"


def check_readable(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: no permission to read it")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


def read_table(path: str | Path, fmt: str | None = None, columns: list[str] | None = None) -> pd.DataFrame:
    """Read CSV or Parquet (fmt None: by suffix); problems become one-line DataErrors."""
    path = Path(path)
    fmt = fmt or format_of(path)
    table_columns(path, fmt)  # the header's problems first: they explain everything after them
    if fmt == "csv":
        check_line_lengths(path, limits()[1])  # before pandas holds a line of any length in memory
    try:
        if fmt == "csv":  # all columns: with usecols pandas would let a row with extra fields pass
            frame = pd.read_csv(path, encoding="utf-8")
            if len(frame.columns) and frame.iloc[:, -1].isna().any():  # short rows read as empty last cells
                short = first_short_line(path, len(frame.columns))
                if short:
                    raise DataError(f"{path}: line {short[0]} has {short[1]} fields; the header has "
                                    f"{len(frame.columns)}")
            missing = [c for c in columns or [] if c not in frame.columns]
            if missing:
                raise DataError(f"{path}: column {missing[0]!r} not found")
            return frame[columns] if columns else frame
        return pd.read_parquet(path, columns=columns)
    except DataError:
        raise
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line {first_undecodable_line(path)} is not UTF-8 ({exc.reason}); "
                        "save the file as UTF-8") from exc
    except PermissionError as exc:
        raise DataError(f"{path}: no permission to read it") from exc
    except ValueError as exc:  # pandas says which columns are missing, or which line is ragged
        raise DataError(f"{path}: {str(exc).splitlines()[0].removeprefix('Error tokenizing data. C error: ')}") from exc
    except Exception as exc:  # pyarrow/pandas parser errors: keep their message, name the file
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def first_undecodable_line(path: Path) -> int:
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def first_short_line(path: Path, fields: int) -> tuple[int, int] | None:
    """(line number, field count) of the first row with fewer fields than the header, or None."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        for row in reader:
            if 0 < len(row) < fields:
                return reader.line_num, len(row)
    return None


def read_splits(split_paths: dict, evidence) -> dict[str, pd.DataFrame]:
    """Read each split's Parquet file and record it, with its digest and rows, as an input of the step."""
    frames = {}
    for name, path in split_paths.items():
        frames[name] = pd.read_parquet(path)
        evidence.add_input(f"data/{name}.parquet", path, rows=len(frames[name]))
    return frames


def table_columns(path: str | Path, fmt: str) -> list[str]:
    """Column names without reading the data (a cheap pre-flight check): the header must be readable,
    comma-separated, with unique names and, in Parquet, flat columns."""
    path = Path(path)
    check_readable(path)
    try:
        max_columns, max_line = limits()
        if fmt == "csv":
            with open(path, "rb") as handle:
                header = handle.readline(max_line + 1)
            if len(header.rstrip(b"\r\n")) > max_line:
                raise DataError(f"{path}: line 1 is longer than {max_line} bytes (${MAX_LINE_ENV}); not reading it")
            names = next(csv.reader([header.decode("utf-8")]), [])
        else:
            schema = pq.read_schema(path)
            names = schema.names
            nested = [f for f in schema if pa.types.is_nested(f.type)]
            if nested:
                raise DataError(f"{path}: column {nested[0].name!r} is nested ({nested[0].type}); "
                                "flatten it into plain columns")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line 1 is not UTF-8 ({exc.reason}); save the file as UTF-8") from exc
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
    if len(names) > max_columns:
        raise DataError(f"{path}: {len(names)} columns, more than {max_columns} (${MAX_COLUMNS_ENV}); not reading it")
    sep = next((s for s in (";", "\t", "|") if s in names[0]), None) if fmt == "csv" and len(names) == 1 else None
    if sep:
        raise DataError(f"{path}: the header is one column holding {sep!r}: govtrain reads comma-separated CSV")
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears twice (columns {seen[name]} and {position})")
        seen[name] = position
    return list(names)
