"""What the streamed leakage checks learn in one pass of the splits, train first: the task, the numeric features'
deviations (the near-duplicate scale), each split's class counts, and per categorical feature the categories
train holds and how often, so val and test rows holding a category train never saw are counted as they pass
(splits.unseen_categories, class_balance and unseen_by_chance, without holding a column).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from govtrain.components.leakage.duplicates import MAX_EXAMPLES
from govtrain.components.leakage.encode import MISSING
from govtrain.components.leakage.splits import ID_LIKE
from govtrain.components.leakage.stream_read import BATCH_ROWS, Moments, StreamedSplits
from govtrain.data import sources
from govtrain.model.task import MAX_CLASSES, Task

DISTINCT_CAP = 1_000_000  # categories of one column kept with their counts; a column past it is id-like


def fit_task(path: Path, target: str, kind: str | None, positive_label) -> Task:
    """Task.fit on the target's distinct values, read a batch at a time: the kind, the classes and their order
    come from the distinct values alone (a regression target is known by having more than MAX_CLASSES)."""
    distinct: pd.Series | None = None
    for batch in sources.batches(path, [target], BATCH_ROWS):
        values = batch.column(0).to_pandas()
        distinct = (values if distinct is None else pd.concat([distinct, values])).drop_duplicates()
        if len(distinct) > MAX_CLASSES:
            kind = kind or ("regression" if pd.api.types.is_numeric_dtype(distinct) else "multiclass")
            break
    return Task.fit((distinct if distinct is not None else pd.Series([], dtype=float)).rename(target), kind,
                    positive_label)


class CodeTally:
    """The distinct codes of a column, how often each occurs and the first row holding it, up to `cap` distinct
    (then `over`)."""

    def __init__(self, cap: int | None = None):
        self.cap, self.over, self.missing = cap or DISTINCT_CAP, False, False
        self.keys, self.counts, self.first = (np.empty(0, np.int64) for _ in range(3))

    def add(self, codes: np.ndarray, offset: int = 0) -> None:
        self.missing |= bool((codes == MISSING).any())
        if self.over:
            return
        present = np.flatnonzero(codes != MISSING)
        batch, index, counts = np.unique(codes[present], return_index=True, return_counts=True)
        keys, inverse = np.unique(np.concatenate([self.keys, batch]), return_inverse=True)
        first = np.full(len(keys), np.iinfo(np.int64).max)
        np.minimum.at(first, inverse, np.concatenate([self.first, present[index] + offset]))
        self.keys, self.first = keys, first
        self.counts = np.bincount(inverse, np.concatenate([self.counts, counts]), minlength=len(keys)).astype(np.int64)
        if len(self.keys) > self.cap:
            self.over = True
            self.keys, self.counts, self.first = (np.empty(0, np.int64) for _ in range(3))

    def in_order(self, codes: np.ndarray) -> np.ndarray:
        """Codes renumbered as the held path numbers them (encode.read_encoded: a category's place in order of
        first appearance), so a sample's one-hot columns come in its order: the row that first holds each code.
        A column past the cap keeps its hashes, made non-negative (the order of its levels is then the hashes')."""
        if self.over or not len(self.keys):
            return np.where(codes == MISSING, MISSING, (codes.view(np.uint64) >> np.uint64(1)).view(np.int64))
        at = np.searchsorted(self.keys, codes).clip(max=len(self.keys) - 1)
        return np.where(codes == MISSING, MISSING, self.first[at])

    def holds(self, codes: np.ndarray) -> np.ndarray:
        at = np.searchsorted(self.keys, codes).clip(max=max(len(self.keys) - 1, 0))
        seen = self.keys[at] == codes if len(self.keys) else np.zeros(len(codes), bool)
        return seen | ((codes == MISSING) & self.missing)


class Tallies:
    """One pass of the splits, train first (see the module's docstring)."""

    def __init__(self, data: StreamedSplits, numeric: list[str], categorical: list[str], classes: int):
        self.data, self.categorical = data, categorical
        self.moments = {c: Moments() for c in numeric}
        self.train = {c: CodeTally() for c in categorical}
        self.class_counts = {s: np.zeros(max(classes, 1), np.int64) for s in data.rows}
        self.unseen: dict[str, dict[str, CodeTally]] = {}  # per later split and column: the unseen codes
        self.unseen_rows: dict[str, dict[str, int]] = {}  # ... and the rows holding one
        self.any_unseen = {s: 0 for s in data.rows if s != "train"}
        for split in data.rows:
            self._read(split, numeric if split == "train" else [], classes)

    def _read(self, split: str, numeric: list[str], classes: int) -> None:
        target = self.data.target
        unseen = self.unseen.setdefault(split, {c: CodeTally(100_000) for c in self.categorical})
        unseen_rows = self.unseen_rows.setdefault(split, {c: 0 for c in self.categorical})
        for offset, values, _ in self.data.batches(split, [target, *numeric, *self.categorical]):
            if classes:
                self.class_counts[split] += np.bincount(values[target].astype(int), minlength=classes)
            for column in numeric:
                self.moments[column].add(values[column])
            if split == "train":
                for column in self.categorical:
                    self.train[column].add(values[column], offset)
                continue
            counted = np.zeros(len(values[target]), bool)
            for column in self.categorical:
                if self.train[column].over:
                    continue
                new = ~self.train[column].holds(values[column])
                unseen[column].add(values[column][new])
                unseen_rows[column] += int(new.sum())
                if not self.id_like(column):
                    counted |= new
            self.any_unseen[split] += int(counted.sum())

    def std(self) -> dict[str, float]:
        return {c: m.std() for c, m in self.moments.items()}

    def id_like(self, column: str) -> bool:
        """splits.id_like: mostly unique in train; or more categories than DISTINCT_CAP, where counting stopped."""
        tally = self.train[column]
        return tally.over or len(tally.keys) > ID_LIKE * max(self.data.rows["train"], 1)

    def unseen_by_chance(self, columns: list[str]) -> float:
        kept, rows = 1.0, max(self.data.rows["train"], 1)
        for column in columns:
            kept *= 1 - min(int((self.train[column].counts == 1).sum()) / rows, 1.0)
        return 1 - kept

    def unseen_categories(self, columns: list[str]) -> dict[str, dict]:
        """splits.unseen_categories' report, from the tallies (a column past DISTINCT_CAP is left out as id-like)."""
        found = {}
        skipped = [c for c in columns if self.id_like(c)]
        for split in [s for s in self.data.rows if s != "train"]:
            per_column = {}
            for column in columns:
                tally, rows = self.unseen[split][column], self.unseen_rows[split][column]
                if not rows:
                    continue
                top = np.argsort(-tally.counts, kind="stable")[:MAX_EXAMPLES]
                names = self.data.names(split, column, tally.keys[top])
                examples = [(names.get(int(tally.keys[i]), "?"), int(tally.counts[i])) for i in top]
                if tally.missing and not tally.over:  # nulls train never held: not kept among the codes, counted apart
                    examples = sorted([*examples, ("<null>", rows - int(tally.counts.sum()))],
                                      key=lambda e: -e[1])[:MAX_EXAMPLES]
                per_column[column] = {"rows": rows, "examples": [{"value": v, "rows": n} for v, n in examples],
                                      "id_like": column in skipped}
            total, count = self.data.rows[split], self.any_unseen[split]
            found[split] = {"count": count, "fraction": count / total if total else 0.0, "columns": per_column,
                            "id_like_columns": skipped}
        return found
