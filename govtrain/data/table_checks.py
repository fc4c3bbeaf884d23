"""What a table must hold before it can be split and trained on. Each problem is one DataError naming
the file, the column and the first offending row (1-based, the header not counted).

These are the problems that would crash training or silently corrupt it; what is merely unusual
(ranges, value sets, null rates) is the expectation suite's business, gated by severity.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from govtrain.core.config import Config
from govtrain.data.io import DataError
from govtrain.model.task import Task, TaskError

MAX_STRING_LENGTH = 1000  # longer categorical values are pasted documents or corrupt exports


def first_row(mask: np.ndarray | pd.Series) -> int:
    return int(np.flatnonzero(np.asarray(mask))[0]) + 1


def check_target(frame: pd.DataFrame, config: Config, offset: int = 0, whole: bool = True) -> Task | None:
    """The target is filled in every row and fits its task (stated or inferred); returns the task. `offset`: the
    rows before this frame (a batch of a stream); whole False: a batch, whose values say nothing of the table's."""
    spec = config.dataset
    path, target = spec.path, frame[spec.target]
    if target.isna().any():
        raise DataError(f"{path}: target {target.name!r} is empty in row {first_row(target.isna()) + offset}")
    if spec.task == "regression" and not pd.api.types.is_numeric_dtype(target):
        bad = pd.to_numeric(target, errors="coerce").isna()
        if bad.any():
            row = first_row(bad)
            raise DataError(f"{path}: target {target.name!r} holds {str(target.iloc[row - 1])[:40]!r} in row "
                            f"{row + offset}; a regression target must be a number")
        target = pd.to_numeric(target)
    if not whole:
        return None
    if target.nunique() < 2:
        raise DataError(f"{path}: target {target.name!r} has a single value ({str(target.iloc[0])[:40]!r} in every "
                        "row)")
    try:
        return Task.fit(target, spec.task, spec.positive_label)
    except TaskError as exc:
        raise DataError(f"{path}: {exc}") from exc


def check_numeric(frame: pd.DataFrame, column: str, path, offset: int = 0) -> pd.Series:
    """A numeric feature as float64: every value a number (or empty), none infinite."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    converted = pd.to_numeric(values, errors="coerce")
    not_numbers = converted.isna() & values.notna()
    if not_numbers.any():
        row = first_row(not_numbers)
        raise DataError(f"{path}: numeric feature {column!r} holds {str(values.iloc[row - 1])[:40]!r} in row "
                        f"{row + offset}; mixed types (list the column under dataset.categorical if it is a category)")
    infinite = np.isinf(converted.to_numpy(dtype=float, na_value=np.nan))
    if infinite.any():
        raise DataError(f"{path}: numeric feature {column!r} is infinite in row {first_row(infinite) + offset}")
    return converted.astype(float)


def uninformative(values: pd.Series) -> str | None:
    """Why a feature cannot inform a model (empty, or one value in every row), or None."""
    present = values.dropna()
    if present.empty:
        return "is empty in every row"
    if present.nunique() == 1 and present.size == len(values):
        return f"holds the same value {str(present.iloc[0])[:40]!r} in every row"
    return None


def check_informative(problems: list[tuple[str, str, str]], path) -> None:
    """Every feature that cannot inform a model, in one line (fixing one must not reveal the next)."""
    if len(problems) == 1:
        column, section, reason = problems[0]
        raise DataError(f"{path}: feature {column!r} {reason} (remove it from dataset.{section})")
    if problems:
        listed = "; ".join(f"{column!r} {reason}" for column, _, reason in problems)
        sections = " and ".join(sorted({f"dataset.{section}" for _, section, _ in problems}))
        raise DataError(f"{path}: {len(problems)} features cannot inform a model: {listed} (remove them from "
                        f"{sections})")


def check_table(frame: pd.DataFrame, config: Config, offset: int = 0, kind: str | None = None) -> pd.DataFrame:
    """Check every configured column; returns the frame with numerics as float64 and the timestamp parsed.
    For a batch of a stream (data/stream_split.py): `offset`, the rows before it, and `kind`, the task's kind
    (known from the whole target); then what only the whole table can say (a single-valued target, an
    uninformative feature) is left to the stream's tallies."""
    spec, path = config.dataset, config.dataset.path
    frame = frame.copy()
    task = check_target(frame, config, offset, whole=kind is None)
    if (kind or (task and task.kind)) == "regression":
        frame[spec.target] = pd.to_numeric(frame[spec.target]).astype(float)
    problems: list[tuple[str, str, str]] = []
    for column in spec.numeric:
        frame[column] = check_numeric(frame, column, path, offset)
        problems += [(column, "numeric", why) for why in [uninformative(frame[column])] if why and kind is None]
    for column in spec.categorical:
        problems += [(column, "categorical", why) for why in [uninformative(frame[column])] if why and kind is None]
    check_informative(problems, path)
    for column in spec.categorical:
        lengths = frame[column].astype("string").str.len()
        too_long = lengths > MAX_STRING_LENGTH
        if too_long.any():
            row = first_row(too_long.fillna(False))
            raise DataError(f"{path}: categorical feature {column!r} has a {int(lengths.iloc[row - 1])}-character "
                            f"value in row {row + offset} (more than {MAX_STRING_LENGTH})")
    roles = [(spec.entity_id, "entity_id"), *[(c, "sensitive attribute") for c in spec.sensitive]]
    for name, role in roles:
        if name and frame[name].isna().any():
            raise DataError(f"{path}: {role} {name!r} is empty in row {first_row(frame[name].isna()) + offset}")
    if spec.timestamp:
        raw = frame[spec.timestamp]
        parsed = raw if pd.api.types.is_datetime64_any_dtype(raw) else pd.to_datetime(raw, errors="coerce", utc=True,
                                                                                        format="mixed")
        bad = parsed.isna()
        if bad.any():
            row = first_row(bad)
            shown = "empty" if pd.isna(raw.iloc[row - 1]) else f"{str(raw.iloc[row - 1])[:40]!r}, not a date"
            raise DataError(f"{path}: timestamp {spec.timestamp!r} is {shown} in row {row + offset}")
        frame[spec.timestamp] = parsed
    return frame
