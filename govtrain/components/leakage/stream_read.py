"""The splits read a batch at a time, encoded as the leakage checks compare them, for a table too large to hold.

Where the held path (encode.py) gives a category the number of its string in a vocabulary of every split, a batch
cannot see the other batches' strings: here a category's code is a 64-bit hash of its string (pandas' siphash,
seeded the same in every process), and its folded code a hash of the trimmed, case-folded string. Equal strings
get equal codes, which is all the checks ask; two strings share a code with probability about 2^-64 a pair.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from govtrain.components.leakage.encode import MISSING
from govtrain.data import sources
from govtrain.model.task import Task

BATCH_ROWS = 131_072  # 30 columns of float64: 31 MB a batch


def string_codes(array: pa.Array | pa.ChunkedArray, fold: bool = False) -> np.ndarray:
    """int64 codes of a text column's values (MISSING for null): a hash of each distinct string in the batch."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if not pa.types.is_dictionary(array.type):  # an integer id or a bool is compared as its text, as held
        array = pc.dictionary_encode(array.cast(pa.large_string()))
    words = pd.Index(array.dictionary.cast(pa.large_string()).to_numpy(zero_copy_only=False), dtype=object)
    if fold:  # the held path's normalise(): trim, collapse inner whitespace, case-fold
        words = words.str.strip().str.replace(r"\s+", " ", regex=True).str.casefold()
    hashed = pd.util.hash_array(words.to_numpy(dtype=object)).view(np.int64)
    indices = array.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return np.append(hashed, MISSING)[indices]


@dataclass
class Moments:
    """Count, mean and sum of squared deviations of a column's finite values, merged a batch at a time (Chan et
    al.'s pairwise update: exact to rounding in any batch order)."""
    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, values: np.ndarray) -> None:
        finite = values[np.isfinite(values)]
        if not finite.size:
            return
        b_n, b_mean = finite.size, float(finite.mean())
        b_m2 = float(((finite - b_mean) ** 2).sum())
        total, delta = self.n + b_n, b_mean - self.mean
        self.mean, self.m2 = self.mean + delta * b_n / total, self.m2 + b_m2 + delta ** 2 * self.n * b_n / total
        self.n = total

    def std(self) -> float:
        """The population deviation (numpy's std), 1 where it is 0 or there are no values (duplicates._std)."""
        std = float(np.sqrt(self.m2 / self.n)) if self.n else 0.0
        return std if std > 0 else 1.0


@dataclass
class StreamedSplits:
    """The three split files, with what every streamed check asks of them."""
    paths: dict[str, Path]
    numeric: list[str]  # read as float64
    target: str
    task: Task
    rows: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = {name: pq.read_metadata(path).num_rows for name, path in self.paths.items()}

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def encode(self, array: pa.Array, column: str, fold: bool = False) -> np.ndarray:
        if column == self.target:
            return self.task.numbers(array.to_pandas(), column).astype(np.float64)
        if column in self.numeric:
            return array.to_numpy(zero_copy_only=False).astype(np.float64)
        return string_codes(array, fold)

    def batches(self, split: str, columns: list[str], folded: list[str] = ()  # type: ignore[assignment]
                ) -> Iterator[tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]]]:
        """(the batch's first row in the split, its columns encoded, the folded codes of `folded`)."""
        wanted = list(dict.fromkeys([*columns, *folded]))
        offset = 0
        for batch in sources.batches(self.paths[split], wanted, BATCH_ROWS):
            yield (offset, {c: self.encode(batch.column(c), c) for c in columns},
                   {c: self.encode(batch.column(c), c, fold=True) for c in folded})
            offset += len(batch)

    def gather(self, split: str, columns: list[str], rows: np.ndarray, folded: bool = False) -> dict[str, np.ndarray]:
        """The columns' values at some rows of the split (any order), in one pass that keeps only those rows."""
        order = np.argsort(rows, kind="stable")
        ordered = rows[order]
        out: dict[str, np.ndarray] = {}
        for offset, values, fold in self.batches(split, [] if folded else columns, columns if folded else []):
            got = fold if folded else values
            low, high = np.searchsorted(ordered, [offset, offset + len(next(iter(got.values())))])
            for column, array in got.items():
                if column not in out:
                    out[column] = np.empty(len(rows), array.dtype)
                out[column][order[low:high]] = array[ordered[low:high] - offset]
        return {c: out.get(c, np.empty(0)) for c in columns}

    def names(self, split: str, column: str, codes: np.ndarray) -> dict[int, str]:
        """The strings of some codes of a text column, read from the split until each is found."""
        wanted, found = {int(c) for c in codes}, dict[int, str]()
        for batch in sources.batches(self.paths[split], [column], BATCH_ROWS):
            array = batch.column(0)
            hashed = string_codes(array)
            for at in np.flatnonzero(np.isin(hashed, list(wanted - found.keys()))):
                found.setdefault(int(hashed[at]), str(array[int(at)].as_py()))
            if len(found) == len(wanted):
                break
        return found
