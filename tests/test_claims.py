"""Issue 29: a record claims a NIST AI RMF subcategory only when it holds the measurement the subcategory names;
the audit reads the same table, so an empty measurement is a gap with its reason, never "evidenced"."""
from __future__ import annotations

import copy

import pytest

from govtrain.core.config import Config
from govtrain.governance import report
from govtrain.governance.audit import ModelAudit
from govtrain.governance.evidence import StepEvidence
from govtrain.governance.ledger import Verification
from govtrain.governance.rmf import CLAIMS, claims, standing
from govtrain.governance.verdict import comparison_words, paragraph


def _set(record: dict, path: str, value: object) -> None:
    *parents, last = path.split(".")
    for part in parents:
        record = record.setdefault(part, {})
    record[last] = value


def full_record(step: str) -> dict:
    """A record of the step holding every field any of its claims names."""
    record: dict = {"step": step, "checks": [], "outputs": [], "not_measured": [], "metrics": {}, "details": {}}
    for need in CLAIMS[step].values():
        for field in need.fields:
            _set(record, field.split("|")[0], ["something"])
    return record


CASES = [(step, sid, field) for step, needs in CLAIMS.items() for sid, need in needs.items() for field in need.fields]


@pytest.mark.parametrize(("step", "sid", "field"), CASES, ids=[f"{s}-{i}-{f}" for s, i, f in CASES])
def test_every_claim_falls_when_its_measurement_is_empty(step, sid, field):
    record = full_record(step)
    assert sid in claims(step, record)[0]
    for empty in (None, "", [], {}):
        planted = copy.deepcopy(record)
        for alternative in field.split("|"):
            _set(planted, alternative, empty)
        held, gaps = claims(step, planted)
        assert sid not in held and gaps[sid] == CLAIMS[step][sid].gap


def config(**dataset) -> Config:
    return Config.model_validate({"dataset": {"path": "x.csv", "target": "y", "numeric": ["x"], **dataset}})


def evaluate_record(tmp_path, fairness: dict) -> dict:
    evidence = StepEvidence("evaluate", tmp_path / "ev", run_id="r", config_digest="c")
    evidence.check("evaluate.roc_auc", 0.8, 0.7, True)
    evidence.metrics = {"roc_auc": 0.8, "test_rows": 1000, "noise_auc_ratio": 0.95, "pgd_auc": 0.7, "mia_auc": 0.51}
    evidence.details = {"confidence_intervals": {"roc_auc": [0.78, 0.82]}, "fairness": fairness,
                        "importance": {"features": [{"feature": "x", "drop": 0.2}]}}
    return evidence.finish(not_measured=["attacks beyond PGD"])


def test_no_sensitive_attribute_means_fairness_is_a_gap_with_its_reason(tmp_path):
    """The mortgage table's case: a race column, no dataset.sensitive, fairness {}: MEASURE 2.11 is not claimed,
    the record says why, the audit shows the gap with the reason, and the verdict names it."""
    record = evaluate_record(tmp_path, fairness={})
    assert "MEASURE 2.11" not in record["rmf"] and "MEASURE 2.9" in record["rmf"]
    reason = "MEASURE 2.11: no sensitive attribute stated (dataset.sensitive): fairness not measured"
    assert reason in record["not_measured"]
    ledger = {"records": [record], "outcome": "failed gate: x", "sealed": "2026-12-06T00:00:00+00:00"}
    rows = {r["id"]: r for r in report.coverage(config(), ledger, [], verified=True)}
    assert rows["MEASURE 2.11"]["status"] == "not evidenced"
    assert rows["MEASURE 2.11"]["detail"] == ("evaluate: no sensitive attribute stated (dataset.sensitive): "
                                              "fairness not measured")
    assert rows["MEASURE 2.9"]["status"] == "evidenced"
    assert reason in paragraph(ledger)

    measured = evaluate_record(tmp_path / "b", fairness={"race": {"demographic_parity_difference": 0.03}})
    assert "MEASURE 2.11" in measured["rmf"]
    rows = {r["id"]: r for r in report.coverage(config(), {"records": [measured]}, [], verified=True)}
    assert rows["MEASURE 2.11"]["status"] == "evidenced"


def test_a_record_written_with_static_claims_is_read_for_what_it_holds():
    """Records sealed before claims were read from content claimed MEASURE 2.9 on every register record and
    2.11 on every evaluate record: the audit counts only what the content supports, and says why."""
    old_register = {"step": "register", "hash": "a" * 64, "rmf": ["GOVERN 1.6", "MEASURE 2.9"], "outputs": [{}],
                    "details": {"model_name": "m", "model_id": "i", "alias": "challenger", "registered_by": {"u": 1}}}
    old_evaluate = {"step": "evaluate", "hash": "b" * 64, "rmf": ["MEASURE 2.11", "MEASURE 2.10"], "checks": [{}],
                    "metrics": {"mia_auc": 0.5}, "details": {}, "not_measured": []}
    assert standing(old_register) == (["GOVERN 1.6"], {"MEASURE 2.9": "not a claim its step can make"})
    assert standing(old_evaluate)[0] == ["MEASURE 2.10"]
    rows = {r["id"]: r for r in report.coverage(config(), {"records": [old_register, old_evaluate]}, [], True)}
    assert rows["MEASURE 2.9"]["status"] == rows["MEASURE 2.11"]["status"] == "not evidenced"
    assert rows["MEASURE 2.9"]["detail"] == "register: not a claim its step can make"
    assert rows["MEASURE 2.10"]["status"] == "evidenced"


def test_statements_from_the_config_are_linked_as_what_they_are_and_nothing_else_is():
    statement = {"text": "Rank applications for a human reviewer.", "sha256": "c" * 64}
    register = {"step": "register", "hash": "d" * 64, "rmf": [], "details": {"statements": {"intended_use": statement}}}
    rows = {r["id"]: r for r in report.coverage(config(), {"records": [register]}, [], verified=True)}
    assert rows["MAP 1.1"]["status"] == "artefact linked"
    assert rows["MAP 1.1"]["detail"] == ("statement in the config (registry.intended_use, sha256 cccccccccccc…), "
                                         "recorded by register dddddddddddd")
    assert rows["MANAGE 1.4"]["status"] == "document to attach"  # no limitations stated
    assert rows["GOVERN 1.2"]["status"] == "document to attach"
    assert rows["GOVERN 1.2"]["detail"].startswith("needs a human artefact: ")
    # An unverified ledger links nothing it holds.
    rows = {r["id"]: r for r in report.coverage(config(), {"records": [register]}, [], verified=False)}
    assert rows["MAP 1.1"]["status"] == "document to attach"


def test_the_comparison_reads_the_right_way_round():
    trees = {"model": "sklearn HistGradientBoostingClassifier (defaults)", "metric": "roc_auc", "gap": 0.013}
    assert comparison_words(trees) == "HistGradientBoostingClassifier does better than the network by 0.0130 roc_auc"
    assert comparison_words({**trees, "gap": -0.02}).startswith("the network does better than "
                                                                "HistGradientBoostingClassifier by 0.0200")
    level = comparison_words({**trees, "gap_interval": [-0.004, 0.03]})
    assert level.startswith("the network and HistGradientBoostingClassifier are level on this split "
                            "(HistGradientBoostingClassifier ahead by 0.0130 roc_auc")


def test_the_verdict_names_the_failed_gates_the_better_model_and_the_identity():
    ledger = {"outcome": "failed gate: evaluate", "sealed": "2026-12-06T10:00:00+00:00", "records": [
        {"step": "data_gate", "checks": [{"id": "leakage.x", "passed": True}], "rmf": []},
        {"step": "evaluate", "rmf": [], "metrics": {"test_rows": 500},
         "checks": [{"id": "evaluate.roc_auc", "passed": False}, {"id": "evaluate.ece", "passed": True}],
         "details": {"baselines": [{"model": "sklearn HistGradientBoostingClassifier (defaults)", "metric": "roc_auc",
                                    "gap": 0.05, "gap_interval": [0.03, 0.07]}]}}]}
    text = paragraph(ledger, verified=True)
    assert text.startswith("Not registered: failed gate: evaluate. 1 of 3 gated checks on the data and the model "
                           "failed: evaluate.roc_auc.")
    assert ("On the test split (500 rows), HistGradientBoostingClassifier does better than the network by 0.0500 "
            "roc_auc (95% interval of the difference +0.0300 to +0.0700).") in text
    assert text.endswith("Sealed 2026-12-06T10:00:00+00:00; the ledger verifies.")


def test_the_report_opens_with_the_verdict_and_groups_its_gaps():
    ledger = {"outcome": "registered", "sealed": "2026-12-06T10:00:00+00:00", "root": "r" * 64, "records": [
        {"step": "register", "hash": "e" * 64, "actor": "root", "rmf": [],
         "details": {"registered_by": {"user": "alice", "authenticated": True, "by": "MLflow basic-auth"}}}]}
    audit = ModelAudit(True, "m", "3", "r" * 64, Verification(True, records=1, root="r" * 64, signed_by="k"))
    data = report.report_data(config(), audit, ledger)
    md, html = report.render_markdown(data), report.render_html(data)
    assert md.index("## Verdict") < md.index("## Gate decisions") < md.index("## Subcategories")
    assert "Registered as m version 3" in md and "Registered by alice, authenticated (MLflow basic-auth)." in md
    assert "## Organisational documents to attach (governance.artefacts)" in md
    assert "## The pipeline could evidence these and did not" in md
    assert "<p class=\"verdict\" id=\"verdict\">Registered as m version 3" in html
    assert "Generated 20" in html
