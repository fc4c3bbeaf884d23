"""Checks on how the rows were split: shared entities, time order, class balance, unseen categories."""
from __future__ import annotations

import numpy as np
import pandas as pd

from govtrain.components.leakage.duplicates import MAX_EXAMPLES, pairs
from govtrain.components.leakage.encode import MISSING, EncodedSplits
from govtrain.data import sources


def entity_overlap(data: EncodedSplits, column: str) -> dict[str, dict]:
    """Entity ids (customers, patients...) with rows in two splits; count of ids and of the later split's rows."""
    present = {s: data.present(s, column) for s in data.rows}
    found = {}
    for first, second in pairs(list(data.rows)):
        both = present[first] & present[second]
        shared = np.flatnonzero(both)
        codes = data.codes[second][column]
        rows = int(both[codes[codes != MISSING]].sum())
        found[f"{first}_{second}"] = {"count": int(len(shared)), "rows": rows,
                                      "fraction": rows / data.rows[second] if data.rows[second] else 0.0,
                                      "examples": data.names(column, shared[:MAX_EXAMPLES])}
    return found


def temporal(paths: dict, column: str, min_gap: str) -> dict[str, dict]:
    """Val/test rows dated at or before the newest train row plus min_gap: the model would be scored on a
    past it was trained alongside. Returns per later split: count, fraction, examples, the cut-off. Read a batch at
    a time (the timestamp column alone)."""
    newest = pd.NaT
    for times in _times(paths["train"], column):
        top = times.max()
        if pd.notna(top) and (pd.isna(newest) or top > newest):
            newest = top
    cutoff = newest + pd.Timedelta(min_gap)
    found = {}
    for split in ("val", "test"):
        count, rows, examples = 0, 0, list[dict]()
        for times in _times(paths[split], column):
            early = np.flatnonzero((times <= cutoff).to_numpy())
            examples += [{f"{split}_row": int(rows + r), column: str(times.iloc[r])}
                         for r in early[:MAX_EXAMPLES - len(examples)]]
            count, rows = count + len(early), rows + len(times)
        found[split] = {"count": count, "fraction": count / rows if rows else 0.0, "newest_train": str(newest),
                        "cutoff": str(cutoff), "examples": examples}
    return found


def _times(path, column: str):
    for batch in sources.batches(path, [column], 262_144):
        yield pd.Series(batch.column(0).to_pandas())


def class_balance(data: EncodedSplits, label: str, classes: list[str]) -> dict:
    """Each class's share per split and the largest gap between two splits (binary: the positive rate)."""
    return class_balance_of({s: np.bincount(data.numeric[s][label].astype(int), minlength=len(classes))
                             for s in data.rows}, classes)


def class_balance_of(counts: dict[str, np.ndarray], classes: list[str]) -> dict:
    """class_balance from each split's class counts."""
    shares = {s: c / max(int(c.sum()), 1) for s, c in counts.items()}
    gaps = {name: float(max(v[k] for v in shares.values()) - min(v[k] for v in shares.values()))
            for k, name in enumerate(classes)}
    found = {"share": {s: dict(zip(classes, map(float, v), strict=True)) for s, v in shares.items()},
             "gap_by_class": gaps, "gap": max(gaps.values())}
    if len(classes) == 2:
        found["positive_rate"] = {s: float(v[1]) for s, v in shares.items()}
    return found


ID_LIKE = 0.5  # a column with more distinct train values than this share of train rows names rows, not kinds


def id_like(data: EncodedSplits, column: str) -> bool:
    """Mostly unique in train (77 genera in 83 mammals, 320 counties in 437): no category the model could learn,
    so its unseen values say nothing about coverage."""
    return int(data.present("train", column).sum()) > ID_LIKE * max(data.rows["train"], 1)


def unseen_by_chance(data: EncodedSplits, columns: list[str]) -> float:
    """The share of a new row expected to hold a category train never saw, from train alone (Good-Turing: per
    column, the categories train holds exactly once / train rows; over columns as if independent). A table of
    32 car makers in 65 rows leaves many unseen in any random split; a split that moves a new category into
    test leaves more than this."""
    kept = 1.0
    rows = max(data.rows["train"], 1)
    for column in columns:
        codes = data.codes["train"][column]
        once = int((np.bincount(codes[codes >= 0]) == 1).sum()) if (codes >= 0).any() else 0
        kept *= 1 - min(once / rows, 1.0)
    return 1 - kept


def unseen_categories(data: EncodedSplits, columns: list[str]) -> dict[str, dict]:
    """Per later split: rows holding a category that train never had, and which categories. Id-like columns
    (id_like) are listed with their counts but left out of the share."""
    found = {}
    skipped = [c for c in columns if id_like(data, c)]
    for split in [s for s in data.rows if s != "train"]:
        any_unseen = np.zeros(data.rows[split], bool)
        per_column: dict[str, dict] = {}
        for column in columns:
            seen = np.r_[(data.codes["train"][column] == MISSING).any(), data.present("train", column)]
            codes = data.codes[split][column]  # seen[codes + 1]: MISSING (-1) lands at 0
            unseen = ~seen[codes + 1]
            if unseen.any():
                values, counts = np.unique(codes[unseen], return_counts=True)
                top = np.argsort(-counts)[:MAX_EXAMPLES]
                names = data.names(column, np.maximum(values[top], 0))
                per_column[column] = {"rows": int(unseen.sum()),
                                      "examples": [{"value": "<null>" if values[i] == MISSING else name,
                                                    "rows": int(counts[i])}
                                                   for i, name in zip(top, names, strict=True)]}
                per_column[column]["id_like"] = column in skipped
            if column not in skipped:
                any_unseen |= unseen
        share = float(any_unseen.mean()) if len(any_unseen) else 0.0
        found[split] = {"count": int(any_unseen.sum()), "fraction": share, "columns": per_column,
                        "id_like_columns": skipped}
    return found
