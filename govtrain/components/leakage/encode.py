"""The splits as numbers, encoded once for every leakage check: categorical and text columns as codes
shared across the splits, numerics as float64, and 64-bit row hashes over any set of those columns.

Hashing integer codes instead of strings is what makes the checks fast at a million rows: the strings
are read once, dictionary-encoded by Arrow, and never touched again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

MISSING = -1  # the code of a null category


@dataclass
class EncodedSplits:
    rows: dict[str, int]
    numeric: dict[str, dict[str, np.ndarray]]  # split -> column -> float64 values
    codes: dict[str, dict[str, np.ndarray]]  # split -> column -> int64 codes, equal strings equal codes
    folded: dict[str, dict[str, np.ndarray]]  # the same after trimming and case-folding (near-duplicates)
    categories: dict[str, pa.Array] = field(default_factory=dict)  # column -> the string of each code

    def names(self, column: str, codes) -> list[str]:
        """The strings of some codes (for examples in reports)."""
        return [str(v) for v in self.categories[column].take(pa.array(np.asarray(codes, np.int64))).to_pylist()]

    def present(self, split: str, column: str) -> np.ndarray:
        """Which codes of the column occur in the split (a mask over the column's categories)."""
        codes = self.codes[split][column]
        return np.bincount(codes[codes >= 0], minlength=len(self.categories[column])) > 0

    def columns(self, split: str, names: list[str]) -> list[np.ndarray]:
        return [self.codes[split][n] if n in self.codes[split] else self.numeric[split][n] for n in names]


def read_encoded(paths: dict[str, Path], numeric: list[str], categorical: list[str],
                 ids: list[str] = ()) -> EncodedSplits:  # type: ignore[assignment]
    """Read the split files (Parquet) and encode them; categorical columns are read dictionary-encoded,
    so each string is handled once per distinct value, not once per row. Id columns get codes only
    (no case-folded form: ids are compared exactly)."""
    categorical = [*categorical, *ids]
    # A column at a time: the Arrow copy of one column lives beside the numpy arrays, never the whole table's.
    rows = {name: pq.read_metadata(path).num_rows for name, path in paths.items()}
    numeric_values: dict[str, dict[str, np.ndarray]] = {name: {} for name in paths}
    for column in numeric:
        for name, path in paths.items():
            values = pq.read_table(path, columns=[column]).column(0)
            numeric_values[name][column] = values.to_numpy().astype(np.float64, copy=False)
    codes: dict[str, dict[str, np.ndarray]] = {name: {} for name in paths}
    folded: dict[str, dict[str, np.ndarray]] = {name: {} for name in paths}
    categories = {}
    for column in categorical:
        arrays = {name: _dictionary(pq.read_table(path, columns=[column], read_dictionary=[column])
                                    .unify_dictionaries().column(0))  # row groups now share one dictionary
                  for name, path in paths.items()}
        # Arrow's hash kernels, not Python strings: an id column has a distinct value per row.
        vocabulary = pc.unique(pa.concat_arrays([words for _, words in arrays.values()]))
        categories[column] = vocabulary
        for name, (local, words) in arrays.items():
            remap = np.append(pc.index_in(words, value_set=vocabulary).to_numpy(zero_copy_only=False), MISSING)
            codes[name][column] = remap[local]  # local -1 (null) -> MISSING
        if column not in ids:
            folded_codes = np.append(normalise(pd.Index(vocabulary.to_pylist())), MISSING)
            for name in arrays:
                folded[name][column] = folded_codes[codes[name][column]]
    return EncodedSplits(rows, numeric_values, codes, folded, categories)


def _dictionary(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(codes with -1 for null, the distinct values as strings) of a dictionary-encoded column whose
    chunks share one dictionary."""
    if not column.num_chunks:
        return np.zeros(0, np.int32), pa.array([], pa.large_string())
    if not pa.types.is_dictionary(column.type):  # Parquet keeps a dictionary for text only: an integer id, a bool
        column = pc.dictionary_encode(column.cast(pa.large_string())).unify_dictionaries()
    codes = [chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False) for chunk in column.chunks]
    return np.concatenate(codes), column.chunk(0).dictionary.cast(pa.large_string())


def normalise(vocabulary: pd.Index) -> np.ndarray:
    """Trim, collapse inner whitespace and case-fold each distinct string; the codes of the folded forms
    (strings that differ only in case or spacing share one)."""
    folded = vocabulary.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
    return pd.factorize(folded)[0].astype(np.int64)


def mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit flips about half the output bits."""
    z = values  # mixed in place: callers pass a temporary
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


def as_words(values: np.ndarray) -> np.ndarray:
    """64-bit words that are equal exactly when the values are: floats by bit pattern (NaNs made one, -0.0 == 0.0)."""
    if values.dtype.kind == "f":
        clean = values.astype(np.float64) + 0.0  # + 0.0 turns -0.0 into 0.0
        clean[np.isnan(clean)] = np.nan
        return clean.view(np.uint64)
    return values.astype(np.int64, copy=False).view(np.uint64)


_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


def hash_rows(columns: list[np.ndarray]) -> np.ndarray:
    """One 64-bit hash per row over the columns (order matters): each value mixed, then folded in.
    Two different rows collide with probability about 2^-64 per pair: at 10^6 x 2.5 x 10^5 row pairs,
    about 10^-8 in all."""
    with np.errstate(over="ignore"):
        h = np.full(len(columns[0]), 0x2545F4914F6CDD1D, dtype=np.uint64)
        for position, values in enumerate(columns):
            h ^= mix(as_words(values) + np.uint64(position + 1))
            h *= _MULTIPLIER
        return mix(h)


def hash_cells_into(h: np.ndarray, cells: np.ndarray) -> None:
    """Fold one column of small integers (grid cells) into running row hashes h, in place: a cheap
    polynomial step. Near-duplicate candidates are confirmed against the data afterwards, so a rare
    collision costs a comparison, never a wrong finding (finish with mix)."""
    with np.errstate(over="ignore"):
        h *= _MULTIPLIER
        h += cells.view(np.uint64)


class Lookup:
    """A sorted copy of one split's hashes, to find another split's rows in it (sorted once, used for
    every pair and check that searches this split)."""

    def __init__(self, hashes: np.ndarray, stable: bool = False):
        # Introsort is 3-4x faster than a stable sort on 64-bit keys; `stable` makes a found row the first of its
        # hash in the haystack's order, where the choice matters (a near-duplicate candidate is confirmed against
        # that row alone), so the streamed path's partitions, in row order, choose the same row.
        self.order = np.argsort(hashes, kind="stable" if stable else None)
        self.sorted = hashes[self.order]

    def find(self, needles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each needle: whether it occurs, and the row of one occurrence (or -1)."""
        if not len(self.sorted):
            return np.zeros(len(needles), bool), np.full(len(needles), -1)
        # Searching in needle order walks the haystack forward (cache-friendly): about 5x faster.
        needle_order = np.argsort(needles)
        at = np.empty(len(needles), np.int64)
        at[needle_order] = np.searchsorted(self.sorted, needles[needle_order])
        at = at.clip(max=len(self.sorted) - 1)
        found = self.sorted[at] == needles
        return found, np.where(found, self.order[at], -1)

    def label_range(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row of the haystack: the smallest and largest label among rows with its hash."""
        if not len(self.sorted):
            return labels.copy(), labels.copy()
        ordered = labels[self.order]
        starts = np.flatnonzero(np.r_[True, self.sorted[1:] != self.sorted[:-1]])
        sizes = np.diff(np.r_[starts, len(ordered)])
        low = np.repeat(np.minimum.reduceat(ordered, starts), sizes)
        high = np.repeat(np.maximum.reduceat(ordered, starts), sizes)
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        return low[inverse], high[inverse]
