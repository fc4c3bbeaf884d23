"""leakage for a table of split.stream_from_rows rows or more: the same checks and gates as the held path
(step.py), with memory bounded by a batch, a hash partition and what the checks find.

The passes, each a batch at a time (stream_read.BATCH_ROWS rows):
1. the task, from the target's distinct values;
2. tallies, train first: the numeric features' deviations, class counts, train's categories with their counts,
   and the val and test rows holding a category train never saw (stream_tally.py);
3. every row's feature, content, near-duplicate grid and entity hashes, spilled in hash partitions to a folder
   in the step's output folder (spill.py), then matched one partition at a time (stream_twins.py);
4. what the found rows need: their values for the chance rule and for confirming near-duplicate candidates, and
   the seeded train sample for the model-based checks (the same rows the held path samples).

Why hash partitions and not an embedded engine (DuckDB's out-of-core joins): the checks are already hash
lookups on 64-bit row hashes, so partitioning those hashes keeps the held path's hashing and rules, with no second
query language to keep in step with them, and no new dependency in the pipeline's image.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from govtrain.components.leakage import stream_twins, target
from govtrain.components.leakage.checks import (
    Checks,
    Columns,
    beyond_chance,
    duplicate_checks,
    finish,
    model_checks,
    near_duplicates_method,
    split_checks,
    train_conflicts,
)
from govtrain.components.leakage.encode import EncodedSplits
from govtrain.components.leakage.spill import Spill
from govtrain.components.leakage.splits import class_balance_of
from govtrain.components.leakage.stream_read import StreamedSplits
from govtrain.components.leakage.stream_tally import Tallies, fit_task
from govtrain.governance.evidence import Record


class StreamedMeasures:
    """The checks over the whole table, from the spill and the tallies (checks.Checks.measure)."""

    def __init__(self, data: StreamedSplits, spill: Spill, tallies: Tallies, std: dict[str, float]):
        self.data, self.spill, self.tallies, self.rows, self.std = data, spill, tallies, data.rows, std
        self._conflicts: tuple[dict, dict] | None = None

    def chance_twins(self, first: str, second: str, rows: np.ndarray, columns: list[str],
                     tolerance: float | None = None) -> np.ndarray:
        return stream_twins.chance_twins(self.data, first, second, rows, columns, self.std, tolerance)

    def recurring(self, kind: str, split: str, rows: np.ndarray) -> np.ndarray:
        return self.spill.recurring(kind, split, rows)

    def exact_duplicates(self) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
        return stream_twins.exact_duplicates(self.data, self.spill)

    def _label_conflicts(self) -> tuple[dict, dict]:
        if self._conflicts is None:  # one pass of the feature partitions answers both checks
            self._conflicts = stream_twins.label_conflicts(self.data, self.spill)
        return self._conflicts

    def conflicting_labels(self) -> dict[str, dict]:
        return self._label_conflicts()[0]

    def train_conflicts(self) -> dict:
        return self._label_conflicts()[1]

    def entity_overlap(self, column: str) -> dict[str, dict]:
        return stream_twins.entity_overlap(self.data, self.spill, column)

    def class_balance(self, label: str, classes: list[str]) -> dict:
        return class_balance_of(self.tallies.class_counts, classes)

    def unseen_categories(self, columns: list[str]) -> dict[str, dict]:
        return self.tallies.unseen_categories(columns)

    def unseen_by_chance(self, columns: list[str]) -> float:
        return self.tallies.unseen_by_chance(columns)

    def id_like(self, column: str) -> bool:
        return self.tallies.id_like(column)


def train_sample(data: StreamedSplits, tallies: Tallies, numeric: list[str], categorical: list[str], size: int,
                 seed: int) -> tuple[EncodedSplits, np.ndarray]:
    """The seeded train sample the model-based checks read (target.sample_rows: the held path's rows), as a
    one-split EncodedSplits with the categories numbered in the held path's order, and the sample's rows in
    train."""
    rows = target.sample_rows(data.rows["train"], size, seed)
    values = data.gather("train", [*numeric, *categorical, data.target], rows)
    sample = EncodedSplits({"train": len(rows)}, {"train": {c: values[c] for c in [*numeric, data.target]}},
                           {"train": {c: tallies.train[c].in_order(values[c]) for c in categorical}}, {"train": {}})
    return sample, rows


def leakage_streamed(checks: Checks, paths: dict[str, Path], columns: Columns, spill_beside: Path) -> Record:
    """The streamed leakage step; the spill is a folder in `spill_beside` (the step's own output folder: writable
    wherever the step runs, where a cluster's input artifacts may not be), removed however the step ends."""
    config = checks.config
    spec, settings, near = config.dataset, config.leakage, config.leakage.near_duplicates
    features_num, features_cat = columns.features_num, columns.features_cat
    started = time.perf_counter()
    task = fit_task(paths["train"], spec.target, spec.task, spec.positive_label)
    data = StreamedSplits(paths, columns.numeric, spec.target, task)
    tallies = Tallies(data, features_num, features_cat, 0 if task.kind == "regression" else len(task.classes))
    checks.timings["tallies"] = time.perf_counter() - started

    tick = time.perf_counter()
    std = tallies.std()
    scale = {c: std[c] * near.tolerance for c in features_num}
    shifts = np.random.default_rng(config.split.seed).uniform(0, 1, size=(near.tables, len(features_num)))
    spill_beside.mkdir(parents=True, exist_ok=True)
    spill = Spill(Path(tempfile.mkdtemp(prefix=".leakage-spill-", dir=spill_beside)), list(data.rows), data.total)
    try:
        stream_twins.spill_rows(data, spill, spec.features, columns.others, features_num, features_cat,
                                [scale[c] * near.cell_width for c in features_num], shifts, spec.entity_id)
        checks.measure = StreamedMeasures(data, spill, tallies, std)
        checks.timings["row_hashes"] = time.perf_counter() - tick
        exact_masks = duplicate_checks(checks, [*spec.features, *columns.others, spec.target], task)
        found = checks.run("near_duplicates", near, lambda: stream_twins.near_duplicates(
            data, stream_twins.near_candidates(data, spill, near.tables, exact_masks, task.kind != "regression"),
            features_num, features_cat, scale))
        split_checks(checks, paths, features_cat, task)
        train_conflicts(checks)
        sample, rows = train_sample(data, tallies, features_num, features_cat, settings.sample_rows, config.split.seed)
        sample_rows = model_checks(checks, sample, features_num, features_cat, task)
        for example in (checks.report.get("label_errors") or {}).get("examples", []):
            example["train_row"] = int(rows[example["train_row"]])  # the sample's row -> the row in train
        if found is not None:
            beyond_chance(checks, "near_duplicates", found, [*features_num, *features_cat], near.threshold,
                          near.tolerance, recurring=lambda split, at: spill.recurring("features", split, at))
            checks.report["near_duplicates_method"] = near_duplicates_method(near, features_num)
    finally:
        spill.close()
    streamed: dict[str, Any] = {"rows": data.total, "from_rows": config.split.stream_from_rows,
                                "hash_partitions": spill.parts}
    checks.report["streamed"] = streamed
    return finish(checks, sample_rows, streamed=streamed)
