"""leakage: evidence that the test score is not inflated by rows, customers, dates or columns that leak.

Below split.stream_from_rows rows (all splits together) the splits are encoded whole in memory (encode.py) and
measured here; from there they are streamed, their row hashes spilled in hash partitions (stream_step.py), so
memory holds a batch and a partition, not the table. Both are gated by checks.py the same way.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from govtrain.components.leakage import duplicates, splits
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
from govtrain.components.leakage.encode import EncodedSplits, read_encoded
from govtrain.components.leakage.stream_step import leakage_streamed
from govtrain.core.config import Config
from govtrain.data.io import SPLITS
from govtrain.governance.evidence import Record, StepEvidence
from govtrain.model.task import Task


class HeldMeasures:
    """The checks over the whole table, on the splits encoded in memory (checks.Checks.measure)."""

    def __init__(self, data: EncodedSplits, hashes: duplicates.RowHashes):
        self.data, self.hashes, self.rows = data, hashes, data.rows

    def chance_twins(self, first: str, second: str, rows: np.ndarray, columns: list[str],
                     tolerance: float | None = None) -> np.ndarray:
        return duplicates.chance_twins(self.data, first, second, rows, columns, tolerance)

    def recurring(self, kind: str, split: str, rows: np.ndarray) -> np.ndarray:
        return self.hashes.recurring(kind, split, rows)

    def exact_duplicates(self) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
        return duplicates.exact_duplicates(self.hashes)

    def conflicting_labels(self) -> dict[str, dict]:
        return duplicates.conflicting_labels(self.hashes)

    def train_conflicts(self) -> dict:
        return duplicates.train_conflicts(self.hashes)

    def entity_overlap(self, column: str) -> dict[str, dict]:
        return splits.entity_overlap(self.data, column)

    def class_balance(self, label: str, classes: list[str]) -> dict:
        return splits.class_balance(self.data, label, classes)

    def unseen_categories(self, columns: list[str]) -> dict[str, dict]:
        return splits.unseen_categories(self.data, columns)

    def unseen_by_chance(self, columns: list[str]) -> float:
        return splits.unseen_by_chance(self.data, columns)

    def id_like(self, column: str) -> bool:
        return splits.id_like(self.data, column)


def encode_labels(data: Any, paths: dict[str, Path], config: Config) -> Task:
    """The label of every split as numbers the checks compare: class indices of the task fitted on train
    (labels of any type), or the target itself for regression."""
    spec = config.dataset
    labels = {name: pd.read_parquet(path, columns=[spec.target])[spec.target] for name, path in paths.items()}
    task = Task.fit(labels["train"], spec.task, spec.positive_label)
    for name, values in labels.items():
        data.numeric[name][spec.target] = task.numbers(values).astype(np.float64)
    return task


def leakage(config: Config, split_paths: dict[str, Path], parent_evidence: Path, evidence_dir: Path,
            run_id: str) -> Record:
    spec, settings = config.dataset, config.leakage
    evidence = StepEvidence("leakage", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    paths = {name: Path(split_paths[name]) for name in SPLITS}
    rows = {name: pq.read_metadata(path).num_rows for name, path in paths.items()}
    for name, path in paths.items():
        evidence.add_input(f"data/{name}.parquet", path, rows=rows[name])
    columns = Columns.of(pq.read_schema(paths["train"]), config)
    checks = Checks(config, evidence)
    checks.report["columns"] = {"content": columns.content, "features": spec.features, "label": spec.target}
    if sum(rows.values()) >= config.split.stream_from_rows:
        return leakage_streamed(checks, paths, columns, evidence_dir)

    started = time.perf_counter()
    data = read_encoded(paths, columns.numeric, columns.categorical, ids=[spec.entity_id] if spec.entity_id else [])
    task = encode_labels(data, paths, config)
    checks.timings["read_and_encode"] = time.perf_counter() - started
    tick = time.perf_counter()
    hashes = duplicates.RowHashes(data, spec.features, columns.others, spec.target)
    checks.measure = HeldMeasures(data, hashes)
    checks.timings["row_hashes"] = time.perf_counter() - tick
    exact_masks = duplicate_checks(checks, [*spec.features, *columns.others, spec.target], task)

    # The longest check runs on a second core beside the others: numpy releases the GIL in its loops.
    near, features_num, features_cat = settings.near_duplicates, columns.features_num, columns.features_cat
    with ThreadPoolExecutor(max_workers=1) as background:
        near_job = background.submit(checks.run, "near_duplicates", near, lambda: duplicates.near_duplicates(
            data, features_num, features_cat, tolerance=near.tolerance, tables=near.tables,
            cell_width=near.cell_width, exclude=exact_masks, seed=config.split.seed,
            labels=None if task.kind == "regression" else {s: data.numeric[s][spec.target] for s in data.rows}))
        split_checks(checks, paths, features_cat, task)
        train_conflicts(checks)
        sample_rows = model_checks(checks, data, features_num, features_cat, task)
        found = near_job.result()
    if found is not None:
        # A near twin whose features the table holds three times exactly is a kind of row (a design's choice set,
        # a nation's fixed success rate), as for exact twins
        beyond_chance(checks, "near_duplicates", found, [*features_num, *features_cat], near.threshold, near.tolerance,
                      recurring=lambda split, rows: hashes.recurring("features", split, rows))
        checks.report["near_duplicates_method"] = near_duplicates_method(near, features_num)
    return finish(checks, sample_rows)
