"""What a served model refuses before it answers, one cause per request, naming the column and row.

The model itself would answer anything: a missing column raises deep in pandas (HTTP 500 with no detail),
an unseen category becomes the "unknown" embedding silently. A refusal here is a 4xx a caller can act on,
and is counted in the capture (the monitor's input-problem rate).

- a feature column absent from the request;
- a number that does not parse;
- a missing value in a column the training data never left empty (the version's reference sample);
- a category the model never saw in train (its vocabulary);
- a number outside the reference sample's range widened by RANGE_MARGIN of that range on each side (the
  rule the drafted validation suite applies, data/suite_draft.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

RANGE_MARGIN = 0.1


@dataclass(frozen=True)
class Refusal:
    status: int
    column: str | None
    cause: str
    kind: str = "bad request"  # what the monitor counts: missing column, not a number, missing value, ...


@dataclass
class RowChecks:
    numeric: list[str]
    categorical: list[str]
    vocab: dict[str, set[str]]
    ranges: dict[str, tuple[float, float]]
    complete: set[str]  # columns with no missing value in the reference sample

    @classmethod
    def of(cls, features: object, reference: pd.DataFrame) -> RowChecks:
        numeric, categorical = list(features.numeric), list(features.categorical)  # type: ignore[attr-defined]
        ranges = {}
        for column in numeric:
            values = pd.to_numeric(reference[column], errors="coerce").dropna()
            if len(values):
                low, high = float(values.min()), float(values.max())
                pad = (high - low) * RANGE_MARGIN
                ranges[column] = (low - pad, high + pad)
        complete = {c for c in [*numeric, *categorical] if c in reference and reference[c].notna().all()}
        vocab = {c: features.seen(c) for c in categorical}  # type: ignore[attr-defined]
        return cls(numeric, categorical, vocab, ranges, complete)

    def check(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, Refusal | None]:
        """The rows typed as the model reads them, or the first refusal."""
        missing = [c for c in [*self.numeric, *self.categorical] if c not in frame.columns]
        if missing:
            return frame, Refusal(400, missing[0], f"column {missing[0]!r} is missing ({len(missing)} feature "
                                                   f"column(s) missing: {', '.join(missing[:5])})", "missing column")
        if len(frame) == 0:
            return frame, Refusal(400, None, "the request has no rows")
        typed = frame.copy()
        for column in self.numeric:
            raw = typed[column]
            parsed = pd.to_numeric(raw, errors="coerce")
            bad = np.flatnonzero(parsed.isna() & raw.notna())
            if len(bad):
                return frame, Refusal(400, column, f"column {column!r} row {bad[0]}: {raw.iloc[bad[0]]!r} is not a "
                                                   f"number", "not a number")
            typed[column] = parsed.astype("float64")
        for column in [*self.numeric, *self.categorical]:
            empty = np.flatnonzero(typed[column].isna())
            if len(empty) and column in self.complete:
                return frame, Refusal(422, column, f"column {column!r} row {empty[0]}: missing, and the training "
                                                   f"data never left it empty", "missing value")
        for column in self.categorical:
            values = typed[column].astype("string")
            unseen = np.flatnonzero(values.notna() & ~values.isin(self.vocab.get(column, set())))
            if len(unseen):
                return frame, Refusal(422, column, f"column {column!r} row {unseen[0]}: "
                                                   f"{values.iloc[unseen[0]]!r} is a category the model never saw "
                                                   f"({len(self.vocab.get(column, ()))} known)", "unseen category")
            typed[column] = values
        for column, (low, high) in self.ranges.items():
            values = typed[column].to_numpy()
            outside = np.flatnonzero((values < low) | (values > high))
            if len(outside):
                return frame, Refusal(422, column, f"column {column!r} row {outside[0]}: {values[outside[0]]:g} is "
                                                   f"outside the range the model was trained on, widened by "
                                                   f"{RANGE_MARGIN:.0%} ({low:g} to {high:g})", "out of range")
        return typed, None
