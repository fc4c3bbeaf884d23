"""Which NIST AI RMF 1.0 subcategories a step's record may claim, and what the record must hold for the claim
to stand (the catalogue, rmf_catalogue.yaml, says which steps *can* evidence a subcategory; a test keeps the
two consistent).

A claim is read from the record's content, not from its step: one table, subcategory -> the fields that must
be present and non-empty. The writer (evidence.finish, records.append) claims only what the table grants, and
the audit reads the same table again, so a record written before this rule claims no more than it holds. An
unmet claim is a gap with its reason ("no sensitive attribute stated: fairness not measured").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Need:
    """fields: dotted paths into the record ("details.fairness"), each present and non-empty; "a|b" is either.
    gap: what the report says when they are not."""
    fields: tuple[str, ...]
    gap: str


_GATED = Need(("checks",), "no check was recorded")
_DRIFT = Need(("checks", "details.summary"), "no drift measurement in the record")
_APPROVAL = Need(("details.approver", "details.reason", "details.approver_identity"),
                 "no approver, reason or identity in the record")

CLAIMS: dict[str, dict[str, Need]] = {
    "prepare": {"MAP 2.3": Need(("outputs", "details.task"), "no split digests or task recorded"),
                "MEASURE 2.1": Need(("outputs", "metrics.test_rows"), "no test split recorded")},
    "validate": {"MAP 2.3": _GATED, "MEASURE 2.1": Need(("details.suite_sha256",), "no suite digest recorded"),
                 "MEASURE 2.5": _GATED},
    "leakage": {"MAP 2.3": _GATED, "MEASURE 2.1": _GATED, "MEASURE 2.5": _GATED, "MEASURE 2.13": _GATED},
    "data_gate": {"MANAGE 1.1": _GATED, "MANAGE 1.3": _GATED, "GOVERN 1.4": _GATED},
    "train": {"MEASURE 2.12": Need(("metrics.worker_seconds",), "no compute measured")},
    "evaluate": {
        "MEASURE 1.1": Need(("checks", "not_measured"), "no checks, or what was not measured is not listed"),
        "MEASURE 2.3": Need(("metrics.test_rows", "details.confidence_intervals"),
                            "no test-split performance with intervals"),
        "MEASURE 2.5": _GATED,
        "MEASURE 2.6": Need(("metrics.noise_auc_ratio|metrics.noise_metric_ratio",), "robustness not measured"),
        "MEASURE 2.7": Need(("metrics.pgd_auc|metrics.pgd_macro_f1|metrics.pgd_rmse",),
                            "no adversarial attack measured"),
        "MEASURE 2.9": Need(("details.importance.features",),
                            "no explanation computed (permutation importance missing from the evaluate record)"),
        "MEASURE 2.10": Need(("metrics.mia_auc",), "membership inference not measured"),
        "MEASURE 2.11": Need(("details.fairness",),
                             "no sensitive attribute stated (dataset.sensitive): fairness not measured"),
        "MANAGE 1.1": _GATED, "MANAGE 1.3": _GATED, "GOVERN 1.4": _GATED,
        "MAP 2.2": Need(("not_measured",), "knowledge limits not listed"),
    },
    "register": {"GOVERN 1.6": Need(("details.model_name", "details.model_id"), "no registry entry recorded"),
                 "MAP 2.2": Need(("details.alias",), "no oversight alias recorded"),
                 "MEASURE 2.8": Need(("details.registered_by", "outputs"), "no registrant or model files recorded")},
    "seal": {"MANAGE 4.3": Need(("details.failed_step|details.step",), "no failure recorded"),
             "MEASURE 2.7": Need(("details.failed_step|details.step",), "no failure recorded"),
             "MEASURE 2.8": Need(("details.failed_step|details.step",), "no failure recorded"),
             "GOVERN 4.3": Need(("details.failed_step|details.step",), "no failure recorded")},
    "drift": {"MEASURE 2.4": _DRIFT, "MEASURE 3.1": _DRIFT, "MANAGE 2.2": _DRIFT, "MANAGE 4.1": _DRIFT,
              "GOVERN 4.3": _DRIFT},
    "promote": {"MANAGE 1.1": _APPROVAL, "MANAGE 2.4": _APPROVAL, "GOVERN 2.1": _APPROVAL, "MAP 3.5": _APPROVAL},
    "rollback": {"MANAGE 2.3": _APPROVAL, "MANAGE 2.4": _APPROVAL, "GOVERN 2.1": _APPROVAL, "MAP 3.5": _APPROVAL},
}
# repair, reconcile and retire records claim no subcategory: they record what went wrong with the records.

STEP_RMF: dict[str, list[str]] = {step: list(needs) for step, needs in CLAIMS.items()}

# Statements a person wrote in the config, recorded with their digest by the register step: they count as the
# human artefact the subcategory needs, linked, never as evidence the pipeline produced.
STATEMENTS: dict[str, str] = {"intended_use": "MAP 1.1", "limitations": "MANAGE 1.4"}


def _present(record: dict[str, Any], path: str) -> bool:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return value is not None and value != "" and value != [] and value != {}


def holds(record: dict[str, Any], need: Need) -> bool:
    return all(any(_present(record, p) for p in field.split("|")) for field in need.fields)


def claims(step: str, record: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """(the subcategories this record's content supports, {subcategory: why not} for the rest of its step's)."""
    held, gaps = [], {}
    for sid, need in CLAIMS.get(step, {}).items():
        if holds(record, need):
            held.append(sid)
        else:
            gaps[sid] = need.gap
    return held, gaps


def standing(record: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """What a written record's claims are worth: those its content supports, and {subcategory: reason} for the
    ones it claims without the content (a record from before claims were read from content)."""
    held, gaps = claims(record.get("step", ""), record)
    claimed = record.get("rmf", [])
    return [s for s in claimed if s in held], {s: gaps.get(s, "not a claim its step can make")
                                                for s in claimed if s not in held}


# What the evaluation does not measure; recorded so an auditor sees the gap (MEASURE 1.1).
NOT_MEASURED_BY_EVALUATE = [
    "fairness for attributes not listed in dataset.sensitive (MEASURE 2.11)",
    "robustness to shifts other than the stated out-of-distribution batch (MEASURE 2.6)",
    "attacks beyond L-inf FGSM/PGD on numeric features, e.g. on categories or the training data (MEASURE 2.7)",
    "privacy attacks stronger than a loss-threshold membership inference (MEASURE 2.10)",
]
