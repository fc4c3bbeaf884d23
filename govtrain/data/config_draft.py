"""`govtrain init`: a first config from a table, for a person to read before the first run. Every column is
placed: a feature (numeric or categorical, as the reader types it), the target, or left out with the reason
(an identifier, a date, a constant, an empty column). The rest of the config keeps its defaults, which the
model gate measures against references, not constants (docs/evaluation.md)."""
from __future__ import annotations

import difflib
import os
from pathlib import Path

import pandas as pd
import yaml

from govtrain.data.io import DataError, read_table

ID_SHARE = 0.95  # a text column this unique is an identifier, not a category


def place(frame: pd.DataFrame, column: str) -> tuple[str, str]:
    """("numeric" | "categorical" | "left out", why)."""
    values = frame[column]
    present = values.dropna()
    if present.empty:
        return "left out", "empty in every row"
    if present.nunique() == 1:
        return "left out", f"holds one value ({present.iloc[0]!r}) in every row"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "left out", "a date or time: name it dataset.timestamp for a time split"
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return "numeric", ""
    if len(present) >= 20 and present.nunique() >= ID_SHARE * len(present):
        return "left out", "an identifier (almost every value unique): name it dataset.entity_id if rows share one"
    return "categorical", ""


def draft_config(data: Path, target: str, out: Path) -> dict[str, list[str]]:
    """Write the config; returns what was placed where."""
    frame = read_table(data)
    if target not in frame.columns:
        near = difflib.get_close_matches(target, [str(c) for c in frame.columns], n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"its columns: {', '.join(map(str, frame.columns[:20]))}"
        raise DataError(f"{data}: no column {target!r} for --target; {hint}")
    placed: dict[str, list[str]] = {"numeric": [], "categorical": [], "left out": []}
    reasons = []
    for column in frame.columns:
        if column == target:
            continue
        kind, why = place(frame, column)
        placed[kind].append(str(column))
        if why:
            reasons.append(f"#   {column}: {why}")
    if not placed["numeric"] and not placed["categorical"]:
        raise DataError(f"{data}: no column besides {target!r} can be a feature ({'; '.join(reasons)[:300]})")
    dataset = {"path": os.path.relpath(data.resolve(), out.resolve().parent), "target": target,
               "numeric": placed["numeric"], "categorical": placed["categorical"]}
    header = [f"# govtrain config drafted from {data.name} ({len(frame)} rows): read it before the first run.",
              "# Every key and its default: README, \"The config\". Paths are relative to this file.",
              "# Add dataset.sensitive: [column, ...] to measure and gate fairness on those attributes.",
              "# Left out of the features:" if reasons else "# Every column but the target is a feature.",
              *reasons]
    body = yaml.safe_dump({"dataset": dataset}, sort_keys=False, default_flow_style=None, width=110)
    out.write_text("\n".join(header) + "\n" + body)
    return placed
