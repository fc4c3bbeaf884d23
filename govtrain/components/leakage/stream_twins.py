"""The twin checks for a table too large to hold: exact duplicates, conflicting labels, train conflicts, near
duplicates and entity overlap, from row hashes spilled in hash partitions (spill.py), one partition in memory at a
time. Each gives what its held form in duplicates.py or splits.py gives (the same rows; where several rows of the
earlier split are twins, the one named in an example may differ).
"""
from __future__ import annotations

import numpy as np

from govtrain.components.leakage.duplicates import MAX_EXAMPLES, cells_hash, pairs, result
from govtrain.components.leakage.encode import MISSING, Lookup, as_words, hash_rows
from govtrain.components.leakage.spill import Spill
from govtrain.components.leakage.stream_read import StreamedSplits


def spill_rows(data: StreamedSplits, spill: Spill, features: list[str], others: list[str],
               near_num: list[str], near_cat: list[str], widths: list[float], shifts: np.ndarray,
               entity: str | None) -> None:
    """One pass over every split: the feature hash, the content hash (features, other content, label), a grid
    hash per near-duplicate table and the entity's code of each row, spilled with its row and label."""
    target = data.target
    columns = list(dict.fromkeys([*features, *others, target, *near_num, *([entity] if entity else [])]))
    for split in data.rows:
        for offset, values, folded in data.batches(split, columns, near_cat):
            label = values[target]
            rows = np.arange(offset, offset + len(label))
            features_hash = hash_rows([values[c] for c in features])
            spill.add("features", split, features_hash, rows, label)
            spill.add("content", split, hash_rows([features_hash, *[values[c] for c in others], label]), rows, label)
            base = hash_rows([folded[c] for c in near_cat]) if near_cat else None
            for t, shift in enumerate(shifts):
                spill.add(f"near{t}", split, cells_hash([values[c] for c in near_num], widths, shift, base), rows,
                          label)
            if entity:
                codes = values[entity]
                kept = codes != MISSING
                spill.add("entity", split, codes[kept].view(np.uint64), rows[kept], label[kept])


def _finish(parts: list[tuple], total: int, example) -> dict:
    """One pair's (or train's) arrays found partition by partition, joined and sorted by the later split's row, as
    duplicates.result; `example` makes an example from one row's values."""
    joined = [np.concatenate(p) for p in zip(*parts, strict=True)] if parts else [np.empty(0, np.int64)]
    order = np.argsort(joined[0], kind="stable")
    joined = [j[order] for j in joined]
    rows = joined[0].astype(np.int64)
    return result(rows, total, [example(*(j[i] for j in joined)) for i in range(min(MAX_EXAMPLES, len(rows)))])


def exact_duplicates(data: StreamedSplits, spill: Spill) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Rows whose whole content equals a row of the earlier split; also, per pair, those rows (sorted)."""
    found: dict[str, list] = {f"{a}_{b}": [] for a, b in pairs(list(data.rows))}
    for part in spill.partitions("content"):
        lookups = {s: Lookup(part[s]["key"]) for s in ("train", "val") if len(part[s])}
        for first, second in pairs(list(data.rows)):
            if first in lookups and len(part[second]):
                hit, where = lookups[first].find(part[second]["key"])
                found[f"{first}_{second}"].append((part[second]["row"][hit], part[first]["row"][where[hit]]))
    done = {}
    for pair in found:
        first, second = pair.split("_")
        done[pair] = _finish(found[pair], data.rows[second], lambda r, w, f=first, s=second: {
            f"{s}_row": int(r), f"{f}_row": int(w)})
    return done, {pair: np.sort(r["_rows"]) for pair, r in done.items()}


def label_conflicts(data: StreamedSplits, spill: Spill) -> tuple[dict[str, dict], dict]:
    """(rows whose features equal a row of the earlier split with another label, per pair; train rows sharing
    features with a row of another label): duplicates.conflicting_labels and train_conflicts."""
    found: dict[str, list] = {f"{a}_{b}": [] for a, b in pairs(list(data.rows))}
    inside: list = []
    for part in spill.partitions("features"):
        ranges = {}
        for s in ("train", "val"):
            if len(part[s]):
                lookup = Lookup(part[s]["key"])
                ranges[s] = (lookup, *lookup.label_range(part[s]["label"]))
        if "train" in ranges:
            low, high = ranges["train"][1:]
            differ = low != high
            inside.append((part["train"]["row"][differ], part["train"]["label"][differ]))
        for first, second in pairs(list(data.rows)):
            if first not in ranges or not len(part[second]):
                continue
            lookup, low, high = ranges[first]
            hit, where = lookup.find(part[second]["key"])
            ours, twin = part[second]["label"], where.clip(0)
            chosen = hit & ((low[twin] != ours) | (high[twin] != ours))
            found[f"{first}_{second}"].append((part[second]["row"][chosen], part[first]["row"][where[chosen]],
                                               ours[chosen], part[first]["label"][where[chosen]]))
    out = {}
    for pair, parts in found.items():
        first, second = pair.split("_")
        out[pair] = _finish(parts, data.rows[second], lambda r, w, lab, other, f=first, s=second: {
            f"{s}_row": int(r), f"{f}_row": int(w), "label": float(lab), f"{f}_label": float(other)})
    return out, _finish(inside, data.rows["train"], lambda r, lab: {"train_row": int(r), "label": float(lab)})


def near_candidates(data: StreamedSplits, spill: Spill, tables: int, exclude: dict[str, np.ndarray],
                    same_label: bool) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per pair: (later row, earlier row) of every row sharing all grid cells with an earlier-split row in some
    table (one such row per table), less the exact duplicates; with same_label, only twins of the same label."""
    found: dict[str, list] = {f"{a}_{b}": [] for a, b in pairs(list(data.rows))}
    for t in range(tables):
        for part in spill.partitions(f"near{t}"):
            # stable: the first row of a cell in row order, as the held path chooses (records are in row order)
            lookups = {s: Lookup(part[s]["key"], stable=True) for s in ("train", "val") if len(part[s])}
            for first, second in pairs(list(data.rows)):
                if first not in lookups or not len(part[second]):
                    continue
                hit, where = lookups[first].find(part[second]["key"])
                if same_label:
                    hit &= part[first]["label"][where.clip(0)] == part[second]["label"]
                rows, twins = part[second]["row"][hit], part[first]["row"][where[hit]]
                keep = ~np.isin(rows, exclude.get(f"{first}_{second}", np.empty(0, np.int64)))
                found[f"{first}_{second}"].append((rows[keep], twins[keep]))
    out = {}
    for pair, parts in found.items():
        rows = np.concatenate([p[0] for p in parts]) if parts else np.empty(0, np.int64)
        twins = np.concatenate([p[1] for p in parts]) if parts else np.empty(0, np.int64)
        both = np.unique(np.stack([rows, twins], axis=1), axis=0) if len(rows) else np.empty((0, 2), np.int64)
        out[pair] = (both[:, 0], both[:, 1])
    return out


def near_duplicates(data: StreamedSplits, candidates: dict[str, tuple[np.ndarray, np.ndarray]],
                    numeric: list[str], categorical: list[str], scale: dict[str, float]) -> dict[str, dict]:
    """Confirm the candidates against the rule, a column at a time (duplicates._near), reading only the rows
    still standing; a later row is a near duplicate when any of its candidates holds."""
    alive = dict(candidates)
    for column in [*categorical, *numeric]:
        folded = column in categorical
        needed: dict[str, list] = {}
        for pair, (rows, twins) in alive.items():
            first, second = pair.split("_")
            needed.setdefault(first, []).append(twins)
            needed.setdefault(second, []).append(rows)
        at = {s: np.unique(np.concatenate(parts)) for s, parts in needed.items()}
        values = {s: data.gather(s, [column], rows, folded=folded)[column] for s, rows in at.items() if len(rows)}
        for pair, (rows, twins) in alive.items():
            if not len(rows):
                continue
            first, second = pair.split("_")
            a = values[first][np.searchsorted(at[first], twins)]
            b = values[second][np.searchsorted(at[second], rows)]
            ok = (a == b) if folded else ((np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= scale[column] * (1 + 1e-9)))
            alive[pair] = (rows[ok], twins[ok])
    out = {}
    for pair, (rows, twins) in alive.items():
        first, second = pair.split("_")
        rows, first_at = np.unique(rows, return_index=True)
        out[pair] = result(rows, data.rows[second], [{f"{second}_row": int(r), f"{first}_row": int(twins[i])}
                                                     for r, i in zip(rows[:MAX_EXAMPLES], first_at, strict=False)])
    return out


def entity_overlap(data: StreamedSplits, spill: Spill, column: str) -> dict[str, dict]:
    """Entity ids with rows in two splits (splits.entity_overlap), matched partition by partition."""
    ids = {f"{a}_{b}": 0 for a, b in pairs(list(data.rows))}
    rows = dict(ids)
    shown: dict[str, list[int]] = {pair: [] for pair in ids}
    for part in spill.partitions("entity"):
        present = {s: np.unique(part[s]["key"]) for s in data.rows}
        for first, second in pairs(list(data.rows)):
            pair = f"{first}_{second}"
            shared = np.intersect1d(present[first], present[second])
            ids[pair] += len(shared)
            rows[pair] += int(np.isin(part[second]["key"], shared).sum())
            shown[pair].extend(shared[:MAX_EXAMPLES - len(shown[pair])].view(np.int64).tolist())
    found = {}
    for pair, examples in shown.items():
        second = pair.split("_")[1]
        names = data.names(second, column, np.asarray(examples, np.int64)) if examples else {}
        found[pair] = {"count": ids[pair], "rows": rows[pair],
                       "fraction": rows[pair] / data.rows[second] if data.rows[second] else 0.0,
                       "examples": [names.get(code, "?") for code in examples]}
    return found


def chance_twins(data: StreamedSplits, first: str, second: str, rows: np.ndarray, columns: list[str],
                 std: dict[str, float], tolerance: float | None = None) -> np.ndarray:
    """duplicates.chance_twins for a table too large to hold: the found rows' own values are gathered, then one
    pass over train counts how often each occurs there (numerics cut into cells 2 x tolerance x std wide)."""
    if not len(rows):
        return np.zeros(0)
    later = data.gather(second, columns, rows)
    words, targets = {}, {}
    for column in columns:
        words[column] = as_words(_cells(later[column], column, data, std, tolerance))
        targets[column] = np.unique(words[column])
    counts = {c: np.zeros(len(t), np.int64) for c, t in targets.items()}
    for _, values, _ in data.batches("train", columns):
        for column in columns:
            seen = as_words(_cells(values[column], column, data, std, tolerance))
            at = np.searchsorted(targets[column], seen).clip(max=len(targets[column]) - 1)
            counts[column] += np.bincount(at[targets[column][at] == seen], minlength=len(targets[column]))
    log_p = np.zeros(len(rows))
    for column in columns:
        mine = counts[column][np.searchsorted(targets[column], words[column])]
        log_p += np.log(np.where(mine > 0, mine, 1) / max(data.rows["train"], 1))
    return data.rows[first] * np.exp(log_p)


def _cells(values: np.ndarray, column: str, data: StreamedSplits, std: dict[str, float],
           tolerance: float | None) -> np.ndarray:
    if tolerance is None or column not in data.numeric or column == data.target:
        return values
    with np.errstate(invalid="ignore"):
        return np.floor(values / (2 * tolerance * std[column]))
