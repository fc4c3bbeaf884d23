"""Every gate of the pipeline in one declarative table (as TFX's Evaluator declares its thresholds):
which check it is, what it measures, where its threshold lives in the config, which way it passes,
and the NIST AI RMF subcategories it evidences. The steps record their checks through it
(StepEvidence.gate), and the run summary, the model card and the audit report read it to explain a
check. A threshold of None in the config means "measured and reported, not gated", except for a row
with a `reference`: there None means "no person set one", and the step derives the threshold from the
stated reference (the trivial predictor, the simple models on the same split, what HistGradientBoosting
keeps under the same noise) and records it beside the value. The run summary, the model card and the
audit report show that reference, so a refusal says what the reference achieved.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Literal

Direction = Literal["min", "max"]  # min: value >= threshold passes; max: value <= threshold passes


@dataclass(frozen=True)
class Gate:
    id: str  # the check id; a per-column/per-split check id adds ".<key>" after it
    metric: str  # what is measured, for people
    threshold: str | float | None  # dotted path of the threshold in the config, a fixed number, or None: the step
    # always derives it from `reference`
    direction: Direction
    rmf: tuple[str, ...]
    gated_by: str | None = None  # dotted path of a bool that turns gating off (poisoning signals)
    # What the threshold is measured against when no person set one (the step computes it); "" for a
    # threshold that is the config's number.
    reference: str = ""

    def threshold_in(self, config: Any) -> float | None:
        if self.threshold is None or not isinstance(self.threshold, str):
            return self.threshold
        return operator.attrgetter(self.threshold)(config)

    def gates_in(self, config: Any) -> bool:
        return True if self.gated_by is None else bool(operator.attrgetter(self.gated_by)(config))

    def passes(self, value: float, threshold: float) -> bool:
        return value >= threshold if self.direction == "min" else value <= threshold


_DATA = ("MAP 2.3", "MEASURE 2.1", "MEASURE 2.5")
_LEAK = ("MAP 2.3", "MEASURE 2.1", "MEASURE 2.5", "MEASURE 2.13")
_PERF = ("MEASURE 2.3", "MEASURE 2.5", "MANAGE 1.1")
_CHAMPION = ("MANAGE 1.1", "MEASURE 2.3")
_CHANCE = ("the share of rows that would have a twin by chance, from the columns' own value frequencies, plus "
           "the check's threshold as margin")
_NOISE_REFERENCE = ("what HistGradientBoosting, fitted on the same train split, keeps of its own headline metric "
                    "under the same noise on the same test rows (both the mean of 5 noise draws), less "
                    "gates.noise_ratio_margin or the half-width of the paired 95% interval of the gap, the wider")


def _leak(name: str, metric: str, threshold: str = "threshold", rmf: tuple[str, ...] = _LEAK,
          reference: str = "") -> Gate:
    check = name.split(".")[0]
    return Gate(f"leakage.{name}", metric, f"leakage.{check}.{threshold}", "max", rmf,
                gated_by=f"leakage.{check}.gate", reference=reference)


GATES: tuple[Gate, ...] = (
    # validate: a split fails on any failed expectation of severity "critical"
    *(Gate(f"validate.{split}.critical_failures", f"failed expectations of severity critical ({split})", 0, "max",
           _DATA) for split in ("train", "val", "test")),
    # leakage: one gate per check, per split pair or split where the check says so
    _leak("exact_duplicates", "share of a later split's rows found in an earlier one", reference=_CHANCE),
    _leak("conflicting_labels", "share of rows whose features appear in another split with another label "
          "(classification; a regression reports it, ungated)", reference=_CHANCE),
    _leak("near_duplicates", "share of a later split's rows near-duplicating an earlier one, the lower end of its "
          "95% Wilson interval; per split pair, and val and test together against train (held_out)",
          reference=_CHANCE),
    _leak("entity_overlap", "entity ids present in two splits (count)"),
    _leak("temporal", "share of val/test rows dated before the newest train row plus min_gap"),
    _leak("class_balance", "largest gap in a class's share (binary: the positive rate) between two splits"),
    _leak("unseen_categories", "share of val/test rows with a category train never saw",
          reference="the configured share or two rows' worth of the split, the larger; columns and values named"),
    _leak("train_conflicts", "share of train rows sharing features with a differing label", rmf=("MEASURE 2.7",)),
    _leak("label_errors", "share of sampled train rows whose label the model doubts", rmf=("MEASURE 2.7",)),
    _leak("target.single_feature_auc", "best single-feature ROC AUC (multiclass: one class against the rest)",
          reference="what the rest of the table reaches for the same class without the feature (logistic regression, "
                    "out of fold): a leak makes leakage.target.error_ratio times fewer errors, never under auc_floor"),
    _leak("target.single_feature_r2", "best single-feature R^2 of a regression target (binned or per-category "
          "means)", threshold="max_single_feature_r2"),
    _leak("target.whole_label", "how well one numeric feature alone reconstructs every class: balanced accuracy of "
          "a leave-one-out nearest neighbour on it (a copy or map of the label scores 1)", threshold="max_whole_label"),
    _leak("target.category_determinism", "largest uncertainty coefficient U(label | category)",
          threshold="max_category_determinism"),
    _leak("target.single_feature_rank", "largest |Spearman rank correlation| of one feature with a regression "
          "target: any monotone map of the target (its log) scores 1", threshold="max_rank_correlation"),
    _leak("target.feature_pair_r2", "best out-of-sample R^2 of two features together on a regression target (least "
          "squares on a, b, a x b and on their logs): a sum, difference, product or ratio scores 1",
          threshold="max_pair_r2"),
    # evaluate: the model gate on the test split
    # Absolute performance floors apply only when a person sets them; by default the model is measured
    # against the trivial predictor and the simple models fitted on the same split (the two rows after).
    Gate("evaluate.roc_auc", "test ROC AUC (binary)", "gates.min_auc", "min", _PERF),
    Gate("evaluate.macro_f1", "test macro-averaged F1 (multiclass)", "gates.min_macro_f1", "min", _PERF),
    Gate("evaluate.r2", "test R^2 (regression)", "gates.min_r2", "min", _PERF),
    Gate("evaluate.beats_trivial", "the lower end of a 95% bootstrap interval: ROC AUC (multiclass: the mean of "
         "the classes' one-against-the-rest AUCs) or R^2", None, "min", _PERF,
         reference="the trivial predictor on the same test rows: a constant score or train's class shares (AUC "
                   "0.5), train's mean (its R^2)"),
    Gate("evaluate.interval_coverage", "share of test rows inside the split-conformal prediction interval fitted on "
         "val (regression), the upper end of its 95% Wilson interval", "gates.min_interval_coverage", "min",
         ("MEASURE 2.5", "MEASURE 2.6")),
    Gate("evaluate.ece", "expected calibration error after temperature scaling (multiclass: top-label), beyond "
         "the 95th percentile of what a perfectly calibrated model shows on as many rows", "gates.max_ece", "max",
         ("MEASURE 2.5", "MEASURE 2.6")),
    Gate("evaluate.noise_auc_ratio", "AUC under Gaussian noise / clean AUC", "gates.min_noise_auc_ratio", "min",
         ("MEASURE 2.6", "MEASURE 2.7"), reference=_NOISE_REFERENCE),
    Gate("evaluate.noise_metric_ratio", "headline metric kept under Gaussian noise: macro-F1 noisy / clean, or "
         "RMSE clean / noisy", "gates.min_noise_auc_ratio", "min", ("MEASURE 2.6", "MEASURE 2.7"),
         reference=_NOISE_REFERENCE),
    Gate("evaluate.fairness.demographic_parity_difference", "demographic parity difference of a sensitive attribute",
         "gates.max_demographic_parity_difference", "max", ("MEASURE 2.11",)),
    Gate("evaluate.fairness.equalized_odds_difference", "equalized odds difference of a sensitive attribute",
         "gates.max_equalized_odds_difference", "max", ("MEASURE 2.11",)),
    Gate("evaluate.fairness.error_rate_difference", "error rate of the worst group minus the best (multiclass)",
         "gates.max_group_error_rate_difference", "max", ("MEASURE 2.11",)),
    Gate("evaluate.fairness.error_ratio", "mean absolute error of the worst group / the best (regression)",
         "gates.max_group_error_ratio", "max", ("MEASURE 2.11",)),
    Gate("evaluate.mia_auc", "membership-inference attack AUC, the lower end of its 95% interval (Hanley-McNeil)",
         "gates.max_mia_auc", "max", ("MEASURE 2.10",)),
    Gate("evaluate.ood_auroc", "out-of-distribution detection AUROC", "gates.min_ood_auroc", "min", ("MEASURE 2.6",)),
    Gate("evaluate.latency_p99_ms", "p99 latency at batch 1 (ms)", "gates.max_latency_p99_ms", "max",
         ("MEASURE 2.3",)),
    Gate("evaluate.baseline_gap", "how much better the best simple model (HistGradientBoosting or the linear "
         "model) does on the same split: its ROC AUC, macro-F1 or R^2 minus the network's",
         "gates.max_gap_to_baseline", "max", _PERF,
         reference="the simple models fitted on the same train split; the margin widens to the network's own 95% "
                   "interval half-width when that is wider (a small test split cannot resolve less)"),
    Gate("evaluate.champion_auc_drop", "champion AUC minus ours", "gates.max_champion_auc_drop", "max", _CHAMPION),
    Gate("evaluate.champion_auc_drop_relative", "(champion AUC minus ours) / champion AUC",
         "gates.max_champion_auc_drop_relative", "max", _CHAMPION),
    Gate("evaluate.champion_metric_drop_relative", "how much worse than the champion, relative: macro-F1 "
         "(champion - ours) / champion, or RMSE (ours - champion) / champion", "gates.max_champion_auc_drop_relative",
         "max", _CHAMPION),
)

BY_ID = {gate.id: gate for gate in GATES}


def gate_of(check_id: str) -> Gate | None:
    """The table row of a recorded check: its id, or its id less a per-column/per-split key.

    evaluate.fairness.<column>.<metric> names its column in the middle, the others at the end."""
    if check_id in BY_ID:
        return BY_ID[check_id]
    parts = check_id.split(".")
    if parts[:2] == ["evaluate", "fairness"] and len(parts) == 4:
        return BY_ID.get(f"evaluate.fairness.{parts[3]}")
    for cut in range(len(parts) - 1, 1, -1):
        if ".".join(parts[:cut]) in BY_ID:
            return BY_ID[".".join(parts[:cut])]
    return None


def describe(check_id: str) -> str:
    """What a check measures, for the summary, the model card and the audit report."""
    gate = gate_of(check_id)
    return gate.metric if gate else ""


def rmf_of(check_id: str) -> list[str]:
    gate = gate_of(check_id)
    return list(gate.rmf) if gate else []


def bound(check_id: str, threshold: Any) -> str:
    """The threshold with the way it passes: "≥ 0.7" or "≤ 0.05"."""
    gate = gate_of(check_id)
    sign = "" if gate is None else "≥ " if gate.direction == "min" else "≤ "
    return f"{sign}{threshold}"
