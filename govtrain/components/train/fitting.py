"""What the training job needs from the train split, read FIT_ROWS rows at a time, never the split whole.

- feature statistics (FeatureTally): per numeric its count, mean, variance, smallest and largest value, per
  category its row count. Batches are merged with Chan et al.'s pairwise update, exact up to rounding; one batch
  (a train split of FIT_ROWS rows or fewer, every table of the public corpus and the demo) gives exactly the
  figures FeatureSpec.fit gives on the split held whole;
- the value counts behind the code embedding (anchor_counts): per whole-number numeric, its counts while it
  holds at most max_code_values distinct values, dropped for good when it holds more;
- the task: Task.fit on the target column read alone (8 bytes a row for a number);
- the tensors, a batch at a time, for shards.write_chunks and the val file.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from govtrain.data import sources
from govtrain.model.features import FeatureSpec
from govtrain.model.task import Task

FIT_ROWS = 262_144  # about 60 MB of pandas at 30 columns


def batches(path: Path, columns: list[str], rows: int = FIT_ROWS) -> Iterator[pd.DataFrame]:
    """The split as frames, through the one Parquet batch reader (data/sources.py)."""
    for batch in sources.batches(path, columns, rows):
        yield batch.to_pandas()


def rows_of(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


class FeatureTally:
    """FeatureSpec.fit over batches."""

    def __init__(self, numeric: list[str], categorical: list[str], min_rows: int):
        self.numeric, self.categorical, self.min_rows = numeric, categorical, min_rows
        self.first: FeatureSpec | None = None  # one batch: FeatureSpec.fit's own figures
        self.n = self.mean = self.m2 = self.lows = self.highs = np.zeros(len(numeric))
        self.counts: dict[str, pd.Series] = {c: pd.Series(dtype="int64") for c in categorical}
        self.batches = 0

    def see(self, frame: pd.DataFrame) -> None:
        self.batches += 1
        if self.batches == 1:
            self.first = FeatureSpec.fit(frame, self.numeric, self.categorical, self.min_rows)
        values = frame[self.numeric].astype("float64")
        n, mean = values.count().to_numpy(dtype=float), values.mean().to_numpy(dtype=float)
        m2 = (values.var().to_numpy(dtype=float) * (n - 1)) if len(frame) else n
        mean, m2 = np.nan_to_num(mean), np.nan_to_num(m2)
        total = self.n + n
        delta = mean - self.mean
        with np.errstate(invalid="ignore", divide="ignore"):
            self.mean = np.where(total > 0, self.mean + delta * n / np.maximum(total, 1), 0.0)
            self.m2 = self.m2 + m2 + delta ** 2 * self.n * n / np.maximum(total, 1)
        low, high = values.min().to_numpy(dtype=float), values.max().to_numpy(dtype=float)
        self.lows = np.where(self.n > 0, np.fmin(self.lows, low), low)
        self.highs = np.where(self.n > 0, np.fmax(self.highs, high), high)
        self.n = total
        for column in self.categorical:
            counts = frame[column].dropna().astype(str).value_counts()
            self.counts[column] = self.counts[column].add(counts, fill_value=0).astype("int64")

    def spec(self) -> FeatureSpec:
        if self.batches == 1 and self.first is not None:
            return self.first
        with np.errstate(invalid="ignore", divide="ignore"):
            stds = np.sqrt(self.m2 / (self.n - 1))
        stds = np.where(np.isfinite(stds) & (stds != 0), stds, 1.0)
        means = np.where(self.n > 0, self.mean, 0.0)
        lows, highs = np.nan_to_num(self.lows), np.nan_to_num(self.highs)
        vocab = {c: sorted(counts.index[counts >= self.min_rows].tolist()) for c, counts in self.counts.items()}
        rare = {c: sorted(counts.index[counts < self.min_rows].tolist()) for c, counts in self.counts.items()}
        return FeatureSpec(self.numeric, self.categorical, means.tolist(), stds.tolist(), vocab, rare, lows.tolist(),
                           highs.tolist())


def anchor_counts(frame: pd.DataFrame, columns: list[str], max_values: int) -> dict[str, pd.Series | None]:
    """Each numeric's value counts, or None when it is not whole numbers or holds more than max_values values."""
    found: dict[str, pd.Series | None] = {}
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").dropna().astype("float64")
        counts = values.value_counts()
        found[column] = counts if len(counts) <= max_values and (values == values.round()).all() else None
    return found


def merge_counts(seen: dict[str, pd.Series | None], more: dict[str, pd.Series | None],
                 max_values: int) -> dict[str, pd.Series | None]:
    merged: dict[str, pd.Series | None] = {}
    for column, counts in seen.items():
        extra = more[column]
        both = None if counts is None or extra is None else counts.add(extra, fill_value=0)
        merged[column] = both if both is not None and len(both) <= max_values else None
    return merged


def anchors_from(counts: dict[str, pd.Series | None], features: FeatureSpec, min_rows: int) -> list[list]:
    """[numeric index, its anchors standardised] for each numeric of whole numbers with 3 to max_values distinct
    values in train: the anchors are the values held by min_rows rows or more (a rarer value is read as the
    nearest anchor, as a rare category shares the unknown embedding)."""
    codes: list[list] = []
    for j, column in enumerate(features.numeric):
        held = counts.get(column)
        if held is None or len(held) < 3:
            continue
        anchors = sorted(held.index[held >= min_rows])
        if len(anchors) >= 3:
            codes.append([j, [(float(a) - features.means[j]) / features.stds[j] for a in anchors]])
    return codes


def code_anchors(train: pd.DataFrame, features: FeatureSpec, max_values: int, min_rows: int) -> list[list]:
    return anchors_from(anchor_counts(train, features.numeric, max_values), features, min_rows)


def fit_train(path: Path, numeric: list[str], categorical: list[str], target: str, task_kind: str | None,
              positive_label, min_rows: int, max_code_values: int) -> tuple[FeatureSpec, Task, dict]:
    """The feature statistics, the task and the code-embedding counts, in one pass over the train split."""
    tally = FeatureTally(numeric, categorical, min_rows)
    counts: dict[str, pd.Series | None] | None = None
    for frame in batches(path, [*numeric, *categorical]):
        tally.see(frame)
        found = anchor_counts(frame, numeric, max_code_values)
        counts = found if counts is None else merge_counts(counts, found, max_code_values)
    task = Task.fit(pd.read_parquet(path, columns=[target])[target], task_kind, positive_label)
    return tally.spec(), task, counts or {}


def tensors(path: Path, features: FeatureSpec, task: Task, target: str, where: str
            ) -> Iterator[dict[str, torch.Tensor]]:
    """The split as (x_num, x_cat, y) a batch at a time, validated as it will be served (numerics clamped to
    train's range, a no-op on train)."""
    for frame in batches(path, [*features.numeric, *features.categorical, target]):
        x_num, x_cat = features.tensors(frame)
        y = torch.from_numpy(task.encode(frame[target], where))
        yield {"x_num": features.clamped(x_num), "x_cat": x_cat, "y": y}
