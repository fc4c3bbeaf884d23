"""The NIST AI RMF catalogue as NIST numbers it, with whole titles (issue 19: a YAML flow mapping cut
ten titles at their first comma), loaded through a strict model that refuses the trap's stray keys."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from govtrain.core import catalogue
from govtrain.core.catalogue import STEPS, by_id, function_titles, load, subcategories
from govtrain.governance.rmf import STEP_RMF

ROOT = Path(__file__).resolve().parents[1]

WHOLE_TITLES = {
    "GOVERN 4.3": "Practices enable testing, incident identification and information sharing",
    "MAP 1.1": "Intended purposes, settings, users and impacts are understood and documented",
    "MEASURE 2.1": "Test sets, metrics and tools used in evaluation are documented",
    "MEASURE 3.1": "Existing, unanticipated and emergent risks are tracked over time",
    "MANAGE 2.4": "Mechanisms supersede, disengage or deactivate systems that perform inconsistently",
    "MANAGE 4.1": "Post-deployment monitoring, including feedback capture and response, is implemented",
}
CUT_AT_A_COMMA = ["GOVERN 4.3", "MAP 1.1", "MAP 3.2", "MEASURE 1.1", "MEASURE 2.1", "MEASURE 2.5", "MEASURE 3.1",
                  "MANAGE 1.3", "MANAGE 2.4", "MANAGE 4.1"]


def test_the_catalogue_has_nists_shape():
    subs = subcategories()
    assert list(function_titles()) == ["GOVERN", "MAP", "MEASURE", "MANAGE"]
    assert len({s.category for s in subs}) == 19 and len(subs) == 72
    per_category = {c: sum(s.category == c for s in subs) for c in sorted({s.category for s in subs})}
    assert per_category["GOVERN 1"] == 7 and per_category["MAP 1"] == 6 and per_category["MEASURE 2"] == 13
    assert per_category["MANAGE 4"] == 3


def test_titles_are_whole_clauses():
    titles = {s.id: s.title for s in subcategories()}
    for sid, title in WHOLE_TITLES.items():
        assert titles[sid] == title
    for sid in CUT_AT_A_COMMA:
        assert "," in titles[sid] and len(titles[sid].split()) >= 6, (sid, titles[sid])
    assert all(len(t.split()) >= 4 for t in titles.values())


def test_evidence_names_only_steps_that_exist():
    assert STEPS == set(STEP_RMF)
    assert all(set(s.evidence) <= STEPS for s in subcategories())


@pytest.mark.parametrize("line, problem", [
    ("{title: Existing, unanticipated and emergent risks are tracked over time, evidence: [drift]}", "Extra inputs"),
    ("{title: A whole title with no evidence and no human artefact}", "needs evidence steps or a human artefact"),
    ("{title: A whole title naming an unknown step, evidence: [deploy]}", "unknown step 'deploy'"),
])
def test_a_malformed_entry_is_refused_at_load(tmp_path, line, problem):
    text = catalogue.CATALOGUE.read_text()
    start = text.index("          MEASURE 3.1:")
    end = text.index("          MEASURE 3.2:")
    planted = tmp_path / "catalogue.yaml"
    planted.write_text(text[:start] + f"          MEASURE 3.1: {line}\n" + text[end:])
    with pytest.raises(ValidationError, match=problem):
        load(planted)


def test_artefact_keys_are_checked_against_the_catalogue():
    assert "MEASURE 2.13" in by_id() and "MEASURE 2.14" not in by_id()


def shipped_yaml() -> list[Path]:
    found = [*ROOT.joinpath("configs").glob("*.yaml"), *ROOT.joinpath("govtrain").rglob("*.yaml"),
             *ROOT.joinpath("infra").rglob("*.yaml")]
    return sorted(p for p in found if "crds" not in p.parts)


def stray_keys(node, path=""):
    """The trap's signature: a key holding the rest of a sentence, with no value."""
    if isinstance(node, dict):
        for key, value in node.items():
            if value is None and isinstance(key, str) and " " in key:
                yield f"{path}.{key}"
            yield from stray_keys(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from stray_keys(item, f"{path}[{i}]")


def test_no_shipped_yaml_falls_into_the_flow_mapping_trap():
    files = shipped_yaml()
    assert len(files) > 5
    found = [f"{p.relative_to(ROOT)}: {k}" for p in files for doc in yaml.safe_load_all(p.read_text())
             for k in stray_keys(doc)]
    assert found == []
    assert list(stray_keys(yaml.safe_load("a: {title: One, two and three}"))) == [".a.two and three"]
