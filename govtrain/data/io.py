"""Reading the user's table: one place that turns file problems into one-line errors naming the file
and, where there is one, the column, line or row."""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from govtrain.core.config import COMPRESSED_SUFFIXES, CsvOptions, format_by_suffix

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Bad input data, phrased as one line naming the file, column or row."""


# Untrusted tables are checked against these before they are read whole (memory stays bounded):
# a header wider than MAX_COLUMNS or a CSV line longer than MAX_LINE_BYTES is refused.
MAX_COLUMNS_ENV, MAX_LINE_ENV = "GOVTRAIN_MAX_COLUMNS", "GOVTRAIN_MAX_LINE_BYTES"


def limits() -> tuple[int, int]:
    return int(os.environ.get(MAX_COLUMNS_ENV, 10_000)), int(os.environ.get(MAX_LINE_ENV, 1 << 20))


# What a file is, by its first bytes: the name can lie (a gzip saved as data.csv), so both are checked.
MAGIC = {"gzip": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd"}
BY_SUFFIX = dict(zip(COMPRESSED_SUFFIXES, ("gzip", "bz2", "xz", "zstd"), strict=True))


def head_of(path: Path) -> tuple[bytes, str | None]:
    """(the first bytes, the compression they show or None)."""
    with open(path, "rb") as handle:
        head = handle.read(6)
    return head, next((kind for kind, magic in MAGIC.items() if head.startswith(magic)), None)


def compression_of(path: Path) -> str | None:
    """The CSV's compression, when its name and its first bytes agree; else a DataError with the real cause."""
    head, found = head_of(path)
    named = BY_SUFFIX.get(path.suffix.lower())
    if found and found != named:
        right = next(s for s, k in BY_SUFFIX.items() if k == found)
        raise DataError(f"{path}: {found}-compressed file: name it {path.name.removesuffix(path.suffix)}"
                        f"{path.suffix if named is None else ''}{right}")
    if named and not found:
        raise DataError(f"{path}: named {path.suffix} but not {named}-compressed (it starts with {head[:4]!r})")
    if found == "zstd":
        try:
            import zstandard  # noqa: F401 - pandas reads .zst through it
        except ImportError as exc:
            raise DataError(f"{path}: zstd-compressed, which needs the zstandard package (pip install zstandard), "
                            f"or decompress it") from exc
    return found


@contextmanager
def opened(path: Path) -> Iterator[IO[bytes]]:
    """The file's bytes, decompressed when it is compressed (streaming: memory stays bounded)."""
    kind = compression_of(path)
    if kind == "zstd":
        import zstandard
        with open(path, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as handle:
            yield io.BufferedReader(handle)
        return
    openers: dict[str, Callable[..., Any]] = {"gzip": gzip.open, "bz2": bz2.open, "xz": lzma.open}
    with (openers[kind](path, "rb") if kind else open(path, "rb")) as handle:
        yield handle


def text_encoding(options: CsvOptions) -> str:
    """UTF-8 files from Excel start with a byte-order mark: utf-8-sig reads them and plain UTF-8 alike."""
    return "utf-8-sig" if options.encoding.lower().replace("_", "-") in ("utf-8", "utf8") else options.encoding


def named(options: CsvOptions) -> str:
    return "UTF-8" if text_encoding(options) == "utf-8-sig" else options.encoding


def check_line_lengths(path: Path, limit: int) -> None:
    """One streaming pass in 1 MiB chunks (numpy finds the newlines): the first line longer than limit
    bytes is named."""
    carry, line = 0, 1  # bytes of the current line seen in earlier chunks, its number
    with opened(path) as handle:
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
    return format_by_suffix(Path(path))


def check_readable(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"{path}: is a directory, not a data file")
    if not path.exists():
        raise DataError(f"{path}: data file not found")
    if not os.access(path, os.R_OK):
        raise DataError(f"{path}: no permission to read it")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


def read_table(path: str | Path, fmt: str | None = None, columns: list[str] | None = None,
               options: CsvOptions | None = None) -> pd.DataFrame:
    """Read CSV (plain or compressed, as `options` say it is written) or Parquet (fmt None: by suffix);
    problems become one-line DataErrors."""
    path, options = Path(path), options or CsvOptions()
    fmt = fmt or format_of(path)
    table_columns(path, fmt, options)  # the header's problems first: they explain everything after them
    if fmt == "csv":
        check_line_lengths(path, limits()[1])  # before pandas holds a line of any length in memory
    try:
        if fmt == "csv":  # all columns: with usecols pandas would let a row with extra fields pass
            frame = pd.read_csv(path, sep=options.delimiter, decimal=options.decimal, encoding=text_encoding(options),
                                na_values=options.na_values or None, compression=compression_of(path))
            if len(frame.columns) and frame.iloc[:, -1].isna().any():  # short rows read as empty last cells
                short = first_short_line(path, len(frame.columns), options)
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
        raise DataError(f"{path}: line {first_undecodable_line(path, options)} is not {named(options)} "
                        f"({exc.reason}); save it as UTF-8 or set dataset.csv.encoding") from exc
    except PermissionError as exc:
        raise DataError(f"{path}: no permission to read it") from exc
    except ValueError as exc:  # pandas says which columns are missing, or which line is ragged
        raise DataError(f"{path}: {str(exc).splitlines()[0].removeprefix('Error tokenizing data. C error: ')}") from exc
    except Exception as exc:  # pyarrow/pandas parser errors: keep their message, name the file
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc


def first_undecodable_line(path: Path, options: CsvOptions) -> int:
    with opened(path) as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode(text_encoding(options))
            except UnicodeDecodeError:
                return number
    return 0


def first_short_line(path: Path, fields: int, options: CsvOptions) -> tuple[int, int] | None:
    """(line number, field count) of the first row with fewer fields than the header, or None."""
    with opened(path) as raw, io.TextIOWrapper(raw, encoding=text_encoding(options), newline="") as handle:
        reader = csv.reader(handle, delimiter=options.delimiter)
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


def table_columns(path: str | Path, fmt: str, options: CsvOptions | None = None) -> list[str]:
    """Column names without reading the data (a cheap pre-flight check): the header must be readable,
    split by the configured delimiter, with unique names and, in Parquet, flat columns."""
    path, options = Path(path), options or CsvOptions()
    check_readable(path)
    try:
        max_columns, max_line = limits()
        if fmt == "csv":
            with opened(path) as handle:
                header = handle.readline(max_line + 1)
            if len(header.rstrip(b"\r\n")) > max_line:
                raise DataError(f"{path}: line 1 is longer than {max_line} bytes (${MAX_LINE_ENV}); not reading it")
            names = next(csv.reader([header.decode(text_encoding(options))], delimiter=options.delimiter), [])
        else:
            head, kind = head_of(path)
            if kind and not head.startswith(b"PAR1"):
                raise DataError(f"{path}: {kind}-compressed; Parquet compresses itself: give the .parquet file")
            schema = pq.read_schema(path)
            names = schema.names
            nested = [f for f in schema if pa.types.is_nested(f.type)]
            if nested:
                raise DataError(f"{path}: column {nested[0].name!r} is nested ({nested[0].type}); "
                                "flatten it into plain columns")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: line 1 is not {named(options)} ({exc.reason}); save it as UTF-8 or set "
                        f"dataset.csv.encoding") from exc
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: cannot read as {fmt}: {str(exc).splitlines()[0]}") from exc
    if len(names) > max_columns:
        raise DataError(f"{path}: {len(names)} columns, more than {max_columns} (${MAX_COLUMNS_ENV}); not reading it")
    sep = next((s for s in (";", "\t", "|") if s in names[0]), None) if fmt == "csv" and len(names) == 1 else None
    if sep and sep != options.delimiter:
        raise DataError(f"{path}: the header is one column holding {sep!r}: set dataset.csv.delimiter to {sep!r}")
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{path}: column {name!r} appears twice (columns {seen[name]} and {position})")
        seen[name] = position
    return list(names)
