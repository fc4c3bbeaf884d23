"""The leakage checks' gates, shared by the held path (step.py) and the streamed one (stream_step.py): each check
measured by the run's `measure` (the encoded splits held, or the splits streamed), gated here the same way.

Every check is configured under config.leakage (enabled, threshold, gate) and reports counts, ratios
and up to 20 examples in leakage.json. Poisoning signals (train_conflicts, label_errors) are reported
but do not gate unless configured to.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from scipy.stats import binom, binomtest

from govtrain.components.leakage import duplicates, splits, target
from govtrain.core.config import Config
from govtrain.core.leakage_config import LeakCheck
from govtrain.governance.evidence import Record, StepEvidence
from govtrain.model.task import Task


def column_kinds(schema: pa.Schema, columns: list[str]) -> tuple[list[str], list[str]]:
    """(numeric, categorical) by the Parquet types: numbers and booleans vs everything else."""
    numeric = [c for c in columns if pa.types.is_integer(schema.field(c).type) or pa.types.is_floating(
        schema.field(c).type) or pa.types.is_boolean(schema.field(c).type)]
    return numeric, [c for c in columns if c not in numeric]


@dataclass
class Columns:
    """Which columns each check reads. Content: every column but the entity id and the timestamp (they differ
    between copies of a row); others: content that is neither a feature nor the label (sensitive attributes)."""
    content: list[str]
    numeric: list[str]
    categorical: list[str]
    features_num: list[str]
    features_cat: list[str]
    others: list[str]

    @classmethod
    def of(cls, schema: pa.Schema, config: Config) -> Columns:
        spec = config.dataset
        content = [c for c in schema.names if c not in {spec.entity_id, spec.timestamp}]
        numeric, categorical = column_kinds(schema, content)
        return cls(content, numeric, categorical, [c for c in spec.numeric if c in numeric],
                   [c for c in spec.categorical if c in categorical],
                   [c for c in content if c not in spec.features and c != spec.target])


class Checks:
    """One leakage run: runs each enabled check, times it, keeps its result for leakage.json, and
    records its gates through the evidence (governance.gates.GATES holds their thresholds' paths)."""

    def __init__(self, config: Config, evidence: StepEvidence):
        self.config, self.evidence = config, evidence
        # What measures the checks over the whole table (step.HeldMeasures, stream_step.StreamedMeasures): rows,
        # chance_twins, recurring, exact_duplicates, conflicting_labels, train_conflicts, entity_overlap,
        # class_balance, unseen_categories, unseen_by_chance, id_like
        self.measure: Any = None
        self.report: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self.not_measured: list[str] = []

    def run(self, name: str, check: LeakCheck, fn: Callable[[], Any]) -> Any:
        if not check.enabled:
            self.not_measured.append(f"{name} (disabled in config.leakage)")
            return None
        tick = time.perf_counter()
        result = fn()
        self.timings[name] = time.perf_counter() - tick
        self.report[name] = result
        return result

    def gate(self, name: str, value: float, key: str | None = None, rows: int | None = None,
             threshold: float | None = None, reference: str | None = None) -> None:
        self.evidence.gate(f"leakage.{name}", value, self.config, key=key, rows=rows, threshold=threshold,
                           reference=reference)

    def gate_each(self, name: str, found: dict[str, Any] | None, field: str) -> None:
        """A check with one result per split pair or split: one gate each."""
        for key, result in (found or {}).items():
            self.gate(name, result[field], key)


def beyond_chance(checks: Checks, name: str, found: dict[str, Any] | None, columns: list[str], margin: float,
                  tolerance: float | None = None, recurring: Callable[[str, Any], Any] | None = None) -> None:
    """A twin check gated on its effect: the share of a later split's rows with a twin in an earlier one that
    chance does not explain (duplicates.chance_twins under PLAUSIBLE, and, for exact twins, not a row the table
    holds three times: independence under-counts twins of correlated columns) may be at most `margin`, the
    check's threshold. Beyond it, a memorising model answers that share of the test rows from memory. Twins chance
    explains are counted and stated, not gated. Near twins are also gated once over val and test together against
    train (key "held_out"): both splits' rows are held out alike, and twice the rows narrow the interval that a
    small table's per-split share is read through (greene: 3 of 65 val and 3 of 61 test rows have a near copy
    in train; lower ends 0.016 and 0.017, together 0.022, limit 0.02)."""
    held_out = [0, 0]  # near twins: rows of val and test with a twin in train that chance does not explain; rows
    for pair, result in (found or {}).items():
        first, second = pair.split("_")
        rows = result.pop("_rows")
        expected = checks.measure.chance_twins(first, second, rows, columns, tolerance)
        explained = expected >= duplicates.PLAUSIBLE
        if recurring is not None:
            explained |= recurring(second, rows)
        plausible = int(explained.sum())
        total = checks.measure.rows[second]
        share = (len(rows) - plausible) / total if total else 0.0
        result["explained_by_chance"] = plausible
        # An exact twin of a row chance does not explain is a copy: its share is gated as it is. A near twin of
        # discrete or correlated measurements (a catalogue's configurations, heights in whole units) can be a
        # coincidence the independence rule under-counts: its share is gated by the lower end of its 95% Wilson
        # interval, so a few such rows in a small split never refuse, while 10% planted near copies do.
        value, stated = share, ""
        if tolerance is not None and total:
            low, high = binomtest(len(rows) - plausible, total).proportion_ci(0.95, method="wilson")
            value, stated = float(low), f" (share {share:.4f}, 95% Wilson interval {low:.4f} to {high:.4f}: " \
                                        f"its lower end is gated)"
            result["unexplained_share_ci"] = [round(float(low), 6), round(float(high), 6)]
        checks.gate(name, value, pair, threshold=round(margin, 6),
                    reference=f"{len(rows)} of {total} {second} rows have a twin in {first}; {plausible} of them are "
                              f"common enough to have one by chance (the columns' value frequencies, or a row the "
                              f"table holds three times), the rest are gated{stated}; limit {margin:.4f}")
        if tolerance is not None and first == "train":
            held_out[0], held_out[1] = held_out[0] + len(rows) - plausible, held_out[1] + total
    if tolerance is not None and held_out[1]:
        low, high = binomtest(held_out[0], held_out[1]).proportion_ci(0.95, method="wilson")
        checks.gate(name, float(low), "held_out", rows=held_out[1], threshold=round(margin, 6),
                    reference=f"{held_out[0]} of {held_out[1]} val and test rows have a near twin in train that "
                              f"chance does not explain (share {held_out[0] / held_out[1]:.4f}, 95% Wilson interval "
                              f"{low:.4f} to {high:.4f}: its lower end is gated); limit {margin:.4f}")


def duplicate_checks(checks: Checks, content: list[str], task: Task) -> dict[str, Any]:
    """Exact duplicates and conflicting labels across splits, each against the twins chance makes; returns the
    exact-duplicate masks. Conflicting labels (same features, another label) make a test score lower, not
    higher: in a regression they are noise and reported only."""
    settings, exact_masks = checks.config.leakage, {}
    features = checks.config.dataset.features

    def exact() -> dict[str, Any]:
        found, masks = checks.measure.exact_duplicates()
        exact_masks.update(masks)
        return found

    found = checks.run("exact_duplicates", settings.exact_duplicates, exact)
    beyond_chance(checks, "exact_duplicates", found, content, settings.exact_duplicates.threshold,
                  recurring=lambda split, rows: checks.measure.recurring("content", split, rows))
    found = checks.run("conflicting_labels", settings.conflicting_labels, checks.measure.conflicting_labels)
    if task.kind == "regression":
        for pair, result in (found or {}).items():
            result.pop("_rows")
            checks.evidence.check(f"leakage.conflicting_labels.{pair}", round(result["fraction"], 6),
                                  settings.conflicting_labels.threshold, True, gated=False)
    else:
        beyond_chance(checks, "conflicting_labels", found, features, settings.conflicting_labels.threshold,
                      recurring=lambda split, rows: checks.measure.recurring("features", split, rows))
    return exact_masks


def train_conflicts(checks: Checks) -> None:
    """A poisoning signal: train rows sharing features with a differing label (reported; gated if asked)."""
    found = checks.run("train_conflicts", checks.config.leakage.train_conflicts, checks.measure.train_conflicts)
    if found is not None:
        checks.gate("train_conflicts", found["fraction"])


def split_checks(checks: Checks, paths: dict[str, Path], features_cat: list[str], task: Task) -> None:
    """Entity overlap, temporal order, class balance and unseen categories between the splits."""
    config, settings, spec, data = checks.config, checks.config.leakage, checks.config.dataset, checks.measure
    entity_id, timestamp = spec.entity_id, spec.timestamp
    if entity_id:
        found = checks.run("entity_overlap", settings.entity_overlap, lambda: data.entity_overlap(entity_id))
        checks.gate_each("entity_overlap", found, "count")
    else:
        checks.not_measured.append("entity overlap (no dataset.entity_id)")
    temporal = settings.temporal
    if timestamp and (config.split.strategy == "time" or temporal.always):
        found = checks.run("temporal", temporal, lambda: splits.temporal(paths, timestamp, temporal.min_gap))
        checks.gate_each("temporal", found, "fraction")
    else:
        checks.not_measured.append("temporal leakage (not a time split; set leakage.temporal.always to check anyway)")
    if task.kind == "regression":
        checks.not_measured.append("class balance (a regression target has no classes; drift compares its "
                                   "distribution)")
    else:
        found = checks.run("class_balance", settings.class_balance,
                           lambda: data.class_balance(spec.target, task.classes))
        if found is not None:
            checks.gate("class_balance", found["gap"])
    found = checks.run("unseen_categories", settings.unseen_categories,
                       lambda: data.unseen_categories(features_cat))
    chance = data.unseen_by_chance([c for c in features_cat if not data.id_like(c)])
    for split, result in (found or {}).items():
        # What a random split of this table makes (Good-Turing), at its 99% bound on this split's rows, and two
        # rows' worth at least: in a 14-row test split one unseen value is 7% and says nothing.
        rows_here = data.rows[split]
        bound = (binom.ppf(0.99, rows_here, chance) + 0.5) / rows_here if rows_here else 0.0
        limit = max(settings.unseen_categories.threshold, 2.5 / rows_here if rows_here else 0.0, bound)
        named = "; ".join(f"{column}: " + ", ".join(f"{e['value']!r} ({e['rows']} rows)" for e in seen["examples"][:3])
                          for column, seen in result["columns"].items() if not seen["id_like"])
        if result["id_like_columns"]:
            named += ("; " if named else "") + "left out as id-like (mostly unique in train): " + ", ".join(
                result["id_like_columns"])
        checks.gate("unseen_categories", result["fraction"], split, threshold=round(limit, 6),
                    reference=f"{result['count']} of {data.rows[split]} {split} rows; a random split of this table "
                              f"leaves {chance:.4f} unseen (Good-Turing), limit its 99% bound, the configured share "
                              f"{settings.unseen_categories.threshold} or two rows' worth, the largest"
                              + (f"; {named}" if named else ""))


def model_checks(checks: Checks, data: Any, features_num: list[str], features_cat: list[str], task: Task) -> int:
    """Target leakage and label errors, on a seeded sample of train rows; returns the sample size."""
    config, settings = checks.config, checks.config.leakage
    rows = target.sample_rows(data.rows["train"], settings.sample_rows, config.split.seed)
    label = data.numeric["train"][config.dataset.target][rows]
    tgt = settings.target
    if task.kind == "regression":
        regression_target_check(checks, data, rows, label, features_num, features_cat)
        checks.not_measured.append("label errors (regression: no class to doubt)")
        return len(rows)
    found = checks.run("target", tgt, lambda: {
        "sample_rows": len(rows), "classes": len(task.classes),
        "auc": target.single_feature_auc(data, rows, label, features_num, features_cat, tgt.min_category_rows),
        "whole_label": target.whole_label(data, rows, label, features_num),
        "category_determinism": target.category_determinism(data, rows, label, features_cat, tgt.min_category_rows)})
    if found is not None:
        worst = max(found["auc"], key=found["auc"].get)
        found["worst_feature"] = worst
        single_feature_gate(checks, data, rows, label, features_num, features_cat, found)
        checks.evidence.metrics["worst_single_feature_auc"] = round(found["auc"][worst], 6)
        whole = found["whole_label"]
        if whole:  # a copy of the label reconstructs every class, wherever the rest of the table stands
            column = max(whole, key=whole.get)
            checks.gate("target.whole_label", whole[column], rows=len(rows),
                        reference=f"{column}: balanced accuracy {whole[column]:.4f} alone")
        if found["category_determinism"]:
            column = max(found["category_determinism"], key=found["category_determinism"].get)
            found["most_deterministic_category"] = column
            checks.gate("target.category_determinism", found["category_determinism"][column], rows=len(rows))
    errors = settings.label_errors
    found = checks.run("label_errors", errors, lambda: {"sample_rows": len(rows), **target.label_errors(
        data, rows, label, features_num, features_cat, confidence=errors.confidence, folds=errors.folds,
        min_category_rows=tgt.min_category_rows, seed=config.split.seed)})
    if found is not None:
        checks.gate("label_errors", found["fraction"], rows=len(rows),
                    reference=f"{found['expected_if_calibrated']:.4f} would be flagged if the labels followed the "
                              f"model's own probabilities; {found['count']} of {len(rows)} sampled rows flagged")
    return len(rows)


def single_feature_gate(checks: Checks, data: Any, rows: Any, label: Any, features_num: list[str],
                        features_cat: list[str], found: dict[str, Any]) -> None:
    """The best single feature's ROC AUC against a person's threshold, or, by default, against what the rest of
    the table reaches for the same class without it (error_ratio times fewer errors, never under auc_floor):
    each feature at the floor (the five best) is compared, for the class where it adds most, and the largest
    excess gated."""
    tgt, worst = checks.config.leakage.target, found["worst_feature"]
    value = found["auc"][worst]
    if tgt.threshold is not None or value < tgt.auc_floor:
        checks.gate("target.single_feature_auc", value, rows=len(rows), threshold=tgt.threshold or tgt.auc_floor,
                    reference=None if tgt.threshold is not None else
                    f"{worst}: {value:.4f}, under the floor {tgt.auc_floor} (leakage.target.auc_floor)")
        return
    compared = []
    for column in sorted(found["auc"], key=lambda c: -found["auc"][c])[:5]:
        if found["auc"][column] < tgt.auc_floor:
            break
        for klass, auc in target.per_class_auc(data, rows, label, column, features_num,
                                               tgt.min_category_rows).items():
            if auc >= tgt.auc_floor:
                rest = target.rest_of_table_auc(data, rows, label, features_num, features_cat, column, klass,
                                                folds=3, min_category_rows=tgt.min_category_rows,
                                                seed=checks.config.split.seed)
                compared.append({"feature": column, "class": klass, "auc": auc, "rest_auc": rest})
    found["rest_of_table"] = compared
    chosen = max(compared, key=lambda c: c["auc"] - (c["rest_auc"] if c["rest_auc"] is not None else 0.0))
    rest = chosen["rest_auc"]
    limit = tgt.auc_floor if rest is None else max(tgt.auc_floor, 1 - (1 - rest) / tgt.error_ratio)
    rest_said = "nothing to compare with" if rest is None else f"the other features together reach {rest:.4f}"
    checks.gate("target.single_feature_auc", chosen["auc"], rows=len(rows), threshold=round(limit, 6),
                reference=f"{chosen['feature']}: {chosen['auc']:.4f} for class {chosen['class']} against the rest; "
                          f"{rest_said} out of fold; a leak makes {tgt.error_ratio:g}x fewer errors than they do "
                          f"(never under {tgt.auc_floor})")


def regression_target_check(checks: Checks, data: Any, rows: Any, label: Any, features_num: list[str],
                            features_cat: list[str]) -> None:
    """Target leakage for a number: the R^2 one feature alone reaches (its binned or per-category mean)."""
    tgt, seed = checks.config.leakage.target, checks.config.split.seed

    def measure() -> dict[str, Any]:
        ranked = target.rank_correlation(data, rows, label, features_num)
        return {"sample_rows": len(rows), "r2": target.single_feature_r2(data, rows, label, features_num,
                                                                          features_cat, tgt.min_category_rows),
                "rank_correlation": ranked,
                "pair_r2": target.pair_reconstruction(data, rows, label, features_num, ranked, seed)}

    found = checks.run("target", tgt, measure)
    if found is not None:
        worst = max(found["r2"], key=found["r2"].get)
        found["worst_feature"] = worst
        checks.gate("target.single_feature_r2", found["r2"][worst], rows=len(rows))
        checks.evidence.metrics["worst_single_feature_r2"] = round(found["r2"][worst], 6)
        for key, gate_id in (("rank_correlation", "target.single_feature_rank"), ("pair_r2", "target.feature_pair_r2")):
            if found[key]:  # a monotone map of one feature; a simple function of two
                name = max(found[key], key=found[key].get)
                found[f"worst_{key}"] = name
                checks.gate(gate_id, found[key][name], rows=len(rows),
                            reference=f"{name}: {found[key][name]:.4f}, out of {len(found[key])} measured")


def near_duplicates_method(near: Any, features_num: list[str]) -> dict[str, Any]:
    """The stated rule, and the recall of the grid hash at the configured tables and cell width."""
    return {"rule": f"equal categories after trim/case-fold; every numeric within {near.tolerance} x train std",
            "tables": near.tables, "cell_width_tolerances": near.cell_width,
            "recall_if_k_columns_differ_by_full_tolerance": {
                k: round(duplicates.stated_recall(near.tables, near.cell_width, k), 4)
                for k in sorted({1, 2, 3, 5, len(features_num)}) if 0 < k <= max(len(features_num), 1)},
            "precision": 1.0}




def finish(checks: Checks, sample_rows: int, **details: Any) -> Record:
    """leakage.json (counts and examples; every row a check found served the chance rule and is dropped) and the
    step's record."""
    report, evidence = checks.report, checks.evidence
    for found in report.values():
        for result in (found.values() if isinstance(found, dict) else []):
            if isinstance(result, dict):
                result.pop("_rows", None)
        if isinstance(found, dict):
            found.pop("_rows", None)
    report["seconds"] = {k: round(v, 3) for k, v in checks.timings.items()}
    report["thresholds"] = checks.config.leakage.model_dump(mode="json")
    evidence.write_json("leakage.json", report)
    evidence.metrics["duplicate_rows_total"] = sum(r["count"] for r in (report.get("exact_duplicates") or {}).values())
    evidence.details = {"sample_rows": sample_rows, "seconds": report["seconds"], **details}
    return evidence.finish(not_measured=checks.not_measured)
