"""leakage: evidence that the test score is not inflated by rows, customers, dates or columns that leak.

Every check is configured under config.leakage (enabled, threshold, gate) and reports counts, ratios
and up to 20 examples in leakage.json. Poisoning signals (train_conflicts, label_errors) are reported
but do not gate unless configured to.
"""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from components.io import SPLITS
from components.leakage import duplicates, splits, target
from components.leakage.encode import read_encoded
from governance.evidence import StepEvidence
from pipelines.config import Config, LeakCheck


def column_kinds(schema: pa.Schema, columns: list[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) by the Parquet types: numbers and booleans vs everything else."""
    numeric = [c for c in columns if pa.types.is_integer(schema.field(c).type) or pa.types.is_floating(
        schema.field(c).type) or pa.types.is_boolean(schema.field(c).type)]
    return numeric, [c for c in columns if c not in numeric]


def leakage(config: Config, split_paths: dict[str, Path], parent_evidence: Path, evidence_dir: Path,
            run_id: str) -> dict:
    spec, settings = config.dataset, config.leakage
    evidence = StepEvidence("leakage", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    paths = {name: Path(split_paths[name]) for name in SPLITS}
    for name, path in paths.items():
        evidence.add_input(f"data/{name}.parquet", path, rows=pq.read_metadata(path).num_rows)

    # Content: every column but the entity id and the timestamp (they differ between copies of a row).
    schema = pq.read_schema(paths["train"])
    content = [c for c in schema.names if c not in {spec.entity_id, spec.timestamp}]
    numeric, categorical = column_kinds(schema, content)
    features_num = [c for c in spec.numeric if c in numeric]
    features_cat = [c for c in spec.categorical if c in categorical]
    timings: dict[str, float] = {}
    started = time.perf_counter()
    data = read_encoded(paths, numeric, categorical, ids=[spec.entity_id] if spec.entity_id else [])
    timings["read_and_encode"] = time.perf_counter() - started

    report: dict = {"columns": {"content": content, "features": spec.features, "label": spec.target}}
    not_measured: list[str] = []

    def gate(name: str, check: LeakCheck, value: float, key: str | None = None) -> None:
        evidence.check(f"leakage.{name}" + (f".{key}" if key else ""), round(float(value), 6), check.threshold,
                       value <= check.threshold, gated=check.gate)

    def run(name: str, check: LeakCheck, fn) -> object | None:
        if not check.enabled:
            not_measured.append(f"{name} (disabled in config.leakage)")
            return None
        tick = time.perf_counter()
        result = fn()
        timings[name] = time.perf_counter() - tick
        report[name] = result
        return result

    tick = time.perf_counter()
    others = [c for c in content if c not in spec.features and c != spec.target]  # sensitive attributes
    hashes = duplicates.RowHashes(data, spec.features, others, spec.target)
    timings["row_hashes"] = time.perf_counter() - tick
    exact_masks: dict = {}

    def exact():
        found, masks = duplicates.exact_duplicates(hashes)
        exact_masks.update(masks)
        return found

    for name, fn in (("exact_duplicates", exact),
                     ("conflicting_labels", lambda: duplicates.conflicting_labels(hashes))):
        found = run(name, getattr(settings, name), fn)
        for pair, result in (found or {}).items():
            gate(name, getattr(settings, name), result["fraction"], pair)

    # The longest check runs on a second core beside the others: numpy releases the GIL in its loops.
    near = settings.near_duplicates
    background = ThreadPoolExecutor(max_workers=1)
    near_job = background.submit(run, "near_duplicates", near, lambda: duplicates.near_duplicates(
        data, features_num, features_cat, tolerance=near.tolerance, tables=near.tables, cell_width=near.cell_width,
        exclude=exact_masks, seed=config.split.seed))

    if spec.entity_id:
        found = run("entity_overlap", settings.entity_overlap, lambda: splits.entity_overlap(data, spec.entity_id))
        for pair, result in (found or {}).items():
            gate("entity_overlap", settings.entity_overlap, result["count"], pair)
    else:
        not_measured.append("entity overlap (no dataset.entity_id)")

    temporal = settings.temporal
    if spec.timestamp and (config.split.strategy == "time" or temporal.always):
        found = run("temporal", temporal, lambda: splits.temporal(paths, spec.timestamp, temporal.min_gap))
        for split, result in (found or {}).items():
            gate("temporal", temporal, result["fraction"], split)
    else:
        not_measured.append("temporal leakage (not a time split; set leakage.temporal.always to check anyway)")

    found = run("class_balance", settings.class_balance, lambda: splits.class_balance(data, spec.target))
    if found is not None:
        gate("class_balance", settings.class_balance, found["gap"])
    found = run("unseen_categories", settings.unseen_categories, lambda: splits.unseen_categories(data, features_cat))
    for split, result in (found or {}).items():
        gate("unseen_categories", settings.unseen_categories, result["fraction"], split)

    found = run("train_conflicts", settings.train_conflicts,
                lambda: duplicates.train_conflicts(hashes))
    if found is not None:
        gate("train_conflicts", settings.train_conflicts, found["fraction"])

    rows = target.sample_rows(data.rows["train"], settings.sample_rows, config.split.seed)
    label = data.numeric["train"][spec.target][rows]
    tgt = settings.target
    found = run("target", tgt, lambda: {
        "sample_rows": len(rows),
        "auc": target.single_feature_auc(data, rows, label, features_num, features_cat, tgt.min_category_rows),
        "category_determinism": target.category_determinism(data, rows, label, features_cat, tgt.min_category_rows)})
    if found is not None:
        worst = max(found["auc"], key=found["auc"].get)
        found["worst_feature"] = worst
        gate("target.single_feature_auc", tgt, found["auc"][worst])
        evidence.metrics["worst_single_feature_auc"] = round(found["auc"][worst], 6)
        if found["category_determinism"]:
            column = max(found["category_determinism"], key=found["category_determinism"].get)
            value = found["category_determinism"][column]
            found["most_deterministic_category"] = column
            evidence.check("leakage.target.category_determinism", round(value, 6), tgt.max_category_determinism,
                           value <= tgt.max_category_determinism, gated=tgt.gate)

    errors = settings.label_errors
    found = run("label_errors", errors, lambda: {"sample_rows": len(rows), **target.label_errors(
        data, rows, label, features_num, features_cat, confidence=errors.confidence, folds=errors.folds,
        min_category_rows=tgt.min_category_rows, seed=config.split.seed)})
    if found is not None:
        gate("label_errors", errors, found["fraction"])

    found = near_job.result()
    background.shutdown()
    if found is not None:
        for pair, result in found.items():
            gate("near_duplicates", near, result["fraction"], pair)
        report["near_duplicates_method"] = {
            "rule": f"equal categories after trim/case-fold; every numeric within {near.tolerance} x train std",
            "tables": near.tables, "cell_width_tolerances": near.cell_width,
            "recall_if_k_columns_differ_by_full_tolerance": {
                k: round(duplicates.stated_recall(near.tables, near.cell_width, k), 4)
                for k in sorted({1, 2, 3, 5, len(features_num)}) if 0 < k <= max(len(features_num), 1)},
            "precision": 1.0}

    report["seconds"] = {k: round(v, 3) for k, v in timings.items()}
    report["thresholds"] = settings.model_dump(mode="json")
    evidence.write_json("leakage.json", report)
    evidence.metrics["duplicate_rows_total"] = sum(r["count"] for r in (report.get("exact_duplicates") or {}).values())
    evidence.details = {"sample_rows": len(rows), "seconds": report["seconds"]}
    return evidence.finish(not_measured=not_measured)
