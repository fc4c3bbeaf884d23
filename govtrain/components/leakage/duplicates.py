"""Rows of a later split that also sit in an earlier one: exactly, with another label, or nearly; and,
inside train, identical features with differing labels.

Split pairs are (train, val), (train, test) and (val, test); counts and examples are rows of the second.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np

from govtrain.components.leakage.encode import EncodedSplits, Lookup, hash_cells_into, hash_rows, mix

MAX_EXAMPLES = 20


def pairs(splits: list[str]) -> list[tuple[str, str]]:
    return list(combinations(splits, 2))


def result(rows: np.ndarray, total: int, examples: list[dict]) -> dict:
    """A check's finding for one split pair; "_rows" (every row found, for the chance rule) is not reported."""
    return {"count": int(len(rows)), "fraction": float(len(rows) / total) if total else 0.0, "examples": examples,
            "_rows": rows}


class RowHashes:
    """Per split: a hash of the feature values, and one of the whole content (features, the other
    content columns such as sensitive attributes, and the label), each searchable."""

    def __init__(self, data: EncodedSplits, features: list[str], others: list[str], label: str):
        self.data, self.label = data, label
        self.features = {s: hash_rows(data.columns(s, features)) for s in data.rows}
        self.content = {s: hash_rows([self.features[s], *data.columns(s, others), data.numeric[s][label]])
                        for s in data.rows}
        self._lookups: dict[tuple[str, str], Lookup] = {}
        self._label_ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._table_counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def lookup(self, kind: str, split: str) -> Lookup:
        if (kind, split) not in self._lookups:
            self._lookups[kind, split] = Lookup(getattr(self, kind)[split])
        return self._lookups[kind, split]

    def recurring(self, kind: str, split: str, rows: np.ndarray) -> np.ndarray:
        """Which of these rows of the split hold a content (kind "content") or features ("features") that the
        table holds three times or more, over all splits: a pattern of the data (the all-ones row of a 1-10
        scale table), where a copied row or a duplicated record makes two."""
        if kind not in self._table_counts:  # once per kind: every split pair asks
            self._table_counts[kind] = np.unique(np.concatenate(list(getattr(self, kind).values())),
                                                 return_counts=True)
        values, counts = self._table_counts[kind]
        ours = getattr(self, kind)[split][rows]
        at = np.clip(np.searchsorted(values, ours), 0, max(len(values) - 1, 0))
        return (values[at] == ours) & (counts[at] >= 3) if len(values) else np.zeros(len(rows), bool)

    def label_range(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Per row of the split: the smallest and largest label among its rows with the same features."""
        if split not in self._label_ranges:
            self._label_ranges[split] = self.lookup("features", split).label_range(self.data.numeric[split][self.label])
        return self._label_ranges[split]


def exact_duplicates(hashes: RowHashes) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Rows whose whole content equals a row of the earlier split; also the masks of those rows per
    pair, so near_duplicates does not count them twice."""
    data = hashes.data
    found, masks = {}, {}
    for first, second in pairs(list(data.rows)):
        hit, where = hashes.lookup("content", first).find(hashes.content[second])
        rows = np.flatnonzero(hit)
        masks[f"{first}_{second}"] = hit
        found[f"{first}_{second}"] = result(rows, data.rows[second], [
            {f"{second}_row": int(r), f"{first}_row": int(where[r])} for r in rows[:MAX_EXAMPLES]])
    return found, masks


def conflicting_labels(hashes: RowHashes) -> dict[str, dict]:
    """Rows whose features equal a row of the earlier split that carries a different label."""
    data, label = hashes.data, hashes.label
    found = {}
    for first, second in pairs(list(data.rows)):
        low, high = hashes.label_range(first)
        hit, where = hashes.lookup("features", first).find(hashes.features[second])
        ours = data.numeric[second][label]
        twin = where.clip(0)
        rows = np.flatnonzero(hit & ((low[twin] != ours) | (high[twin] != ours)))
        found[f"{first}_{second}"] = result(rows, data.rows[second], [
            {f"{second}_row": int(r), f"{first}_row": int(where[r]), "label": float(ours[r]),
             f"{first}_label": float(data.numeric[first][label][where[r]])} for r in rows[:MAX_EXAMPLES]])
    return found


def train_conflicts(hashes: RowHashes) -> dict:
    """Inside train: rows sharing all features with another row of a different label (a poisoning
    signal, or noise in how the label was recorded)."""
    labels = hashes.data.numeric["train"][hashes.label]
    low, high = hashes.label_range("train")
    rows = np.flatnonzero(low != high)
    return result(rows, hashes.data.rows["train"], [{"train_row": int(r), "label": float(labels[r])}
                                                    for r in rows[:MAX_EXAMPLES]])


# --- near-duplicates ------------------------------------------------------------------------------
def near_duplicates(data: EncodedSplits, numeric: list[str], categorical: list[str], *, tolerance: float,
                    tables: int, cell_width: float, exclude: dict[str, np.ndarray], seed: int = 0,
                    labels: dict[str, np.ndarray] | None = None) -> dict[str, dict]:
    """Rows with a near twin in the earlier split, found by random-shift grid hashing (an LSH for
    per-column distance): each table cuts every standardised numeric into cells cell_width x tolerance
    wide at a random offset; rows in the same cells in any table become candidates, and each candidate
    is confirmed against the exact rule (so nothing reported is a false positive) using one earlier-split
    row of the shared cells per table. `exclude` holds the rows already counted as exact duplicates. With
    `labels` (classification), a twin must also hold the same label: one with another label is a conflicting
    label, which makes a test score lower, not higher (and has a check of its own)."""
    scale = {c: _std(data.numeric["train"][c]) * tolerance for c in numeric}
    shifts = np.random.default_rng(seed).uniform(0, 1, size=(tables, len(numeric)))
    keys = {}
    for s in data.rows:
        base = hash_rows([data.folded[s][c] for c in categorical]) if categorical else None
        values, widths = [data.numeric[s][c] for c in numeric], [scale[c] * cell_width for c in numeric]
        keys[s] = [cells_hash(values, widths, shifts[t], base) for t in range(tables)]
    lookups = {(s, t): Lookup(keys[s][t], stable=True) for s in ("train", "val") for t in range(tables)}
    found = {}
    for first, second in pairs(list(data.rows)):
        pair = f"{first}_{second}"
        confirmed = np.zeros(data.rows[second], bool)
        already = exclude.get(pair, np.zeros(data.rows[second], bool))
        twin = np.full(data.rows[second], -1)
        for t in range(tables):
            hit, where = lookups[first, t].find(keys[second][t])
            todo = np.flatnonzero(hit & ~confirmed & ~already)
            ok = _near(data, first, second, where[todo], todo, numeric, categorical, scale)
            if labels is not None:
                ok &= labels[first][where[todo]] == labels[second][todo]
            confirmed[todo[ok]] = True
            twin[todo[ok]] = where[todo[ok]]
        rows = np.flatnonzero(confirmed)
        found[pair] = result(rows, data.rows[second], [
            {f"{second}_row": int(r), f"{first}_row": int(twin[r])} for r in rows[:MAX_EXAMPLES]])
    return found


def stated_recall(tables: int, cell_width: float, columns_at_tolerance: int) -> float:
    """Chance that a true near-duplicate differing by the full tolerance in k numeric columns is found:
    per table it shares every cell with probability (1 - 1/cell_width)^k (others differ less)."""
    per_table = (1 - 1 / cell_width) ** columns_at_tolerance
    return 1 - (1 - per_table) ** tables


def _std(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    std = float(finite.std()) if finite.size else 0.0
    return std if std > 0 else 1.0


def cells_hash(columns: list[np.ndarray], widths: list[float], shifts: np.ndarray, start: np.ndarray | None
                ) -> np.ndarray:
    """Grid cell of every numeric (in cell widths, offset by this table's shifts), hashed per row; missing
    values all land in one cell of their own. One column's buffer at a time, not a copy of the table."""
    rows = len(columns[0]) if columns else (0 if start is None else len(start))
    h = np.zeros(rows, np.uint64) if start is None else start.copy()
    shifted, cell = np.empty(rows), np.empty(rows, np.int64)  # reused: a million-row column per pass
    with np.errstate(invalid="ignore"):
        for values, width, shift in zip(columns, widths, shifts, strict=True):
            np.divide(values, width, out=shifted)
            np.add(shifted, shift, out=shifted)
            np.floor(shifted, out=shifted)
            np.copyto(cell, shifted, casting="unsafe")
            hash_cells_into(h, cell)
    return mix(h)


def _near(data, first, second, first_rows, second_rows, numeric, categorical, scale) -> np.ndarray:
    """Confirm candidate pairs: equal folded categories, every numeric within tolerance (NaN pairs NaN)."""
    ok = np.ones(len(second_rows), bool)
    for column in categorical:
        ok &= data.folded[first][column][first_rows] == data.folded[second][column][second_rows]
    for column in numeric:
        a, b = data.numeric[first][column][first_rows], data.numeric[second][column][second_rows]
        ok &= (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= scale[column] * (1 + 1e-9))
    return ok


# --- the reference: which twins chance alone explains --------------------------------------------------
PLAUSIBLE = 0.01  # a row expected to have this many twins by chance, or more, may have one by coincidence


def chance_twins(data: EncodedSplits, first: str, second: str, rows: np.ndarray, columns: list[str],
                 tolerance: float | None = None) -> np.ndarray:
    """For some rows of `second`: how many rows of `first` are expected to equal each (tolerance None) or nearly
    equal it by chance, as if the columns were independent: rows of `first` x the product of the frequencies,
    in train (the largest sample), of the row's own values (numerics cut into cells 2 x tolerance x std wide
    for near twins).
    An all-ones row of a 1-10 scale table or a zero-income record is common: a twin of it is a coincidence.
    A copy of a row holding a measured amount is not."""
    total, train = data.rows[first], data.rows["train"]  # frequencies from train: the largest sample
    log_p = np.zeros(len(rows))
    for column in columns:
        coded = column in data.codes[first]
        earlier = data.codes["train"][column] if coded else data.numeric["train"][column]
        later = (data.codes[second][column] if coded else data.numeric[second][column])[rows]
        if tolerance is not None and not coded:
            width = 2 * tolerance * _std(data.numeric["train"][column])
            with np.errstate(invalid="ignore"):
                earlier, later = np.floor(earlier / width), np.floor(later / width)
        values, counts = np.unique(earlier, return_counts=True, equal_nan=True)
        at = np.clip(np.searchsorted(values, later), 0, max(len(values) - 1, 0))
        same = (values[at] == later) if len(values) else np.zeros(len(later), bool)
        if not coded:
            missing = np.isnan(later)
            same |= missing & np.isnan(values[at]) if len(values) else False
        log_p += np.log(np.where(same, counts[at] if len(values) else 1, 1) / max(train, 1))
    return total * np.exp(log_p)
