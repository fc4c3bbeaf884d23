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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from govtrain.core.config import COMPRESSED_SUFFIXES, CsvOptions, format_by_suffix
from govtrain.data import sources
from govtrain.data.errors import DataError

SPLITS = ("train", "val", "test")


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


def check_line_lengths(path: Path, limit: int, needles: tuple[bytes, ...] = ()) -> bool:
    """One streaming pass in 1 MiB chunks (numpy finds the newlines): the first line longer than limit
    bytes is named. Returns whether any of `needles` occurs in the bytes (False when none is given)."""
    carry, line = 0, 1  # bytes of the current line seen in earlier chunks, its number
    found, tail, overlap = False, b"", max(map(len, needles), default=1) - 1
    with opened(path) as handle:
        while chunk := handle.read(1 << 20):
            if needles and not found:
                window = tail + chunk
                found = any(needle in window for needle in needles)
                tail = window[-overlap:] if overlap else b""
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
    return found


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


# pandas' default missing-value list (read_csv's docs, pandas 2), less the empty cell. The reader does not apply it
# to every column: a text category "None" or "NA" is a value (see NA_RULE).
PANDAS_NA_TOKENS = ("#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
                    "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
NA_RULE = ("CSV: a cell is missing when it is empty or equals one of dataset.csv.na_values. A column whose other "
           "cells are all numbers or all booleans (as pandas parses them; at least one) except cells equal to one of "
           f"pandas' default missing-value tokens ({', '.join(PANDAS_NA_TOKENS)}) is numeric (or boolean), and those "
           "cells are missing too; in any other column those tokens are text and stay text. Parquet: a null is "
           "missing, nothing else is.")
CHUNK_CELLS = 250_000  # cells of text restore_tokens holds at once (some 15-30 MB of Python strings)


@dataclass
class MissingTokens:
    """What the reader read as missing, per column and token ("" is the empty cell), and which of pandas' default
    tokens it kept as text (they would have been missing under pandas' defaults)."""
    missing: dict[str, dict[str, int]] = field(default_factory=dict)
    kept_as_text: dict[str, dict[str, int]] = field(default_factory=dict)
    rule: str = NA_RULE


def read_table(path: str | Path, fmt: str | None = None, columns: list[str] | None = None,
               options: CsvOptions | None = None) -> pd.DataFrame:
    """Read CSV (plain or compressed, as `options` say it is written) or Parquet (fmt None: by suffix);
    problems become one-line DataErrors. Which CSV cells are missing: NA_RULE (read_table_counted also says
    which tokens were read as missing and how many cells each)."""
    return read_table_counted(path, fmt, columns, options)[0]


def read_table_counted(path: str | Path, fmt: str | None = None, columns: list[str] | None = None,
                       options: CsvOptions | None = None) -> tuple[pd.DataFrame, MissingTokens]:
    """read_table, and the MissingTokens of the columns returned (empty for Parquet: nulls are nulls).

    The rule (NA_RULE): only the empty cell and dataset.csv.na_values are missing in every column, so a text
    category "None", "NA" or "null" stays a category. A column R or pandas wrote as numbers with "NA" (or another
    of pandas' default tokens) in it still comes out numeric: when every other non-empty cell of a column is a
    number (or every one a boolean, as R writes TRUE/FALSE/NA), those tokens are read as missing. How: pandas reads
    the table with its default tokens as missing (so numbers are parsed exactly as pandas parses them, and the frame
    is as compact as pandas makes it); then one streaming pass over the columns holding missing cells reads the text
    of each missing cell, counts it, and puts pandas' default tokens back into the text columns (restore_tokens).
    Memory: the frame, plus one chunk of text (CHUNK_CELLS) at a time."""
    fmt = fmt or format_of(path)
    if sources.is_parquet_set(path):  # a folder or an object store: pyarrow's dataset reads it
        sources.columns(path, fmt, limits()[0])
        try:
            return sources.open_parquet(path).to_table(columns=columns).to_pandas(), MissingTokens(rule=NA_RULE)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: cannot read as parquet: {str(exc).splitlines()[0]}") from exc
    path, options = Path(path), options or CsvOptions()
    table_columns(path, fmt, options)  # the header's problems first: they explain everything after them
    tokens_possible = True
    if fmt == "csv":
        # before pandas holds a line of any length in memory; and whether a missing-value token may be in it
        needles = token_needles(options)
        tokens_possible = check_line_lengths(path, limits()[1], needles) or not needles
    try:
        if fmt == "csv":  # all columns: with usecols pandas would let a row with extra fields pass
            configured, defaults = na_tokens(options)
            frame = pd.read_csv(path, keep_default_na=False, na_values=["", *configured, *defaults],
                                **csv_arguments(path, options))
            if len(frame.columns) and frame.iloc[:, -1].isna().any():  # short rows read as empty last cells
                short = first_short_line(path, len(frame.columns), options)
                if short:
                    raise DataError(f"{path}: line {short[0]} has {short[1]} fields; the header has "
                                    f"{len(frame.columns)}")
            missing = [c for c in columns or [] if c not in frame.columns]
            if missing:
                raise DataError(f"{path}: column {missing[0]!r} not found")
            # reindex, not frame[columns]: a new frame, not a slice pandas warns about writing to
            return restore_tokens(frame.reindex(columns=columns) if columns else frame, path, options,
                                  tokens_possible)
        return pd.read_parquet(path, columns=columns), MissingTokens(rule=NA_RULE)
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


def csv_arguments(path: Path, options: CsvOptions) -> dict[str, Any]:
    return {"sep": options.delimiter, "decimal": options.decimal, "encoding": text_encoding(options),
            "compression": compression_of(path)}


def na_tokens(options: CsvOptions) -> tuple[list[str], list[str]]:
    """(the configured tokens, missing in every column; pandas' default tokens not among them, missing only in a
    column of numbers or booleans)."""
    configured = [t for t in dict.fromkeys(options.na_values) if t != ""]
    return configured, [t for t in PANDAS_NA_TOKENS if t not in configured]


# Every default token holds one of these; a file with none of them (and none of the configured tokens) has no token
# cell, so its missing cells are all empty and restore_tokens needs no second pass.
TOKEN_PARTS = ("NA", "N/A", "NaN", "nan", "NULL", "null", "None", "n/a", "#IND", "#QNAN")


def token_needles(options: CsvOptions) -> tuple[bytes, ...]:
    """The bytes whose absence proves the file holds no token cell; () where bytes cannot prove it: an encoding
    that does not write these letters as ASCII (UTF-16), or a configured number, which pandas also matches by value
    ("1e3" matches 1000)."""
    configured, _ = na_tokens(options)
    if any(pd.notna(pd.to_numeric(t, errors="coerce")) for t in configured):
        return ()
    try:
        needles = tuple(dict.fromkeys(t.encode(text_encoding(options)).removeprefix(b"\xef\xbb\xbf")
                                      for t in (*TOKEN_PARTS, *configured)))
    except (UnicodeEncodeError, LookupError):
        return ()
    ascii_ok = all(n == t.encode("ascii") for n, t in zip(needles, TOKEN_PARTS, strict=False))
    return needles if ascii_ok else ()


def is_text(series: pd.Series) -> bool:
    """Not numbers or booleans: an object column of anything but booleans, or a column with no value at all."""
    values = series.dropna()
    if values.empty:
        return True
    return series.dtype == object and pd.api.types.infer_dtype(values, skipna=False) != "boolean"


def restore_tokens(frame: pd.DataFrame, path: Path, options: CsvOptions, tokens_possible: bool = True
                   ) -> tuple[pd.DataFrame, MissingTokens]:
    """NA_RULE on a frame pandas read with the empty cell, the configured tokens and its default tokens as missing:
    reads the text of every missing cell again (a streaming pass over the columns that have one, about CHUNK_CELLS
    cells at a time, each chunk handled in a few vectorised steps), counts each token, and puts pandas' default
    tokens back where the column is text. tokens_possible False (no token in the file's bytes): every missing cell
    is empty, and is counted so without the pass."""
    configured, defaults = na_tokens(options)
    report = MissingTokens()
    holes = [c for c in frame.columns if frame[c].hasnans]
    if not tokens_possible:
        report.missing = {str(c): {"": int(frame[c].isna().sum())} for c in holes}
        return frame, report
    if not holes:
        return frame, report
    positions = [frame.columns.get_loc(c) for c in holes]
    text = np.array([is_text(frame[c]) for c in holes])
    counts: dict[tuple[int, str], int] = {}
    put_back: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (rows, hole index, token) to write back
    start = 0
    chunks = pd.read_csv(path, usecols=holes, dtype=str, keep_default_na=False, na_filter=False,
                         chunksize=max(1_000, CHUNK_CELLS // len(holes)), **csv_arguments(path, options))
    with chunks:
        for chunk in chunks:
            stop = start + len(chunk)
            rows, cols = np.nonzero(frame.iloc[start:stop, positions].isna().to_numpy())
            if len(rows):
                cells = chunk[holes].to_numpy(dtype=object)[rows, cols]
                for (col, token), n in pd.DataFrame({"c": cols, "t": cells}).value_counts(sort=False).items():
                    counts[col, token] = counts.get((col, token), 0) + int(n)
                back = text[cols] & np.isin(cells, defaults)
                if back.any():
                    put_back.append((rows[back] + start, cols[back], cells[back]))
            start = stop
    if start != len(frame):  # the same parser read both: this would be a bug, not the file
        raise DataError(f"{path}: read {len(frame)} rows, then {start} when counting missing cells")
    for index, column in enumerate(holes):
        found = dict(sorted((token, n) for (col, token), n in counts.items() if col == index))
        kept = {t: n for t, n in found.items() if text[index] and t in defaults}
        if kept:
            report.kept_as_text[str(column)] = kept
            values = frame[column].to_numpy(dtype=object, copy=True)
            for rows, cols, tokens in put_back:
                mine = cols == index
                values[rows[mine]] = tokens[mine]
            frame[column] = values
        read_as_missing = {t: n for t, n in found.items() if t not in kept}
        if read_as_missing:
            report.missing[str(column)] = read_as_missing
    return frame, report


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
    if sources.is_parquet_set(path):
        return sources.columns(path, fmt, limits()[0])
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
            names = sources.flat_names(path, pq.read_schema(path))
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
