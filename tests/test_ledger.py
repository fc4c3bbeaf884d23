"""The ledger must notice any change: a record, a file, the order, the root."""
import json

import pytest

from govtrain.governance.evidence import StepEvidence
from govtrain.governance.hashing import canonical_json, record_hash
from govtrain.governance.ledger import seal, verify


@pytest.fixture
def bundle(tmp_path):
    first = StepEvidence("prepare", tmp_path / "e1", run_id="r1", config_digest="c" * 64)
    first.write_json("facts.json", {"rows": 10})
    first.check("prepare.rows", 10, 5, True)
    first.finish()
    second = StepEvidence("evaluate", tmp_path / "e2", run_id="r1", config_digest="c" * 64, parents=[tmp_path / "e1"])
    second.write_json("metrics.json", {"auc": 0.8})
    second.check("evaluate.roc_auc", 0.8, 0.9, False)
    record = second.finish()
    assert record["decision"] == "fail" and record["parents"] == [(tmp_path / "e1" / "HEAD").read_text().strip()]
    ledger = seal(tmp_path / "e2", tmp_path / "bundle", run_id="r1", outcome="failed gate: evaluate")
    assert [r["step"] for r in ledger["records"]] == ["prepare", "evaluate"]
    return tmp_path / "bundle"


def test_intact_bundle_verifies(bundle):
    result = verify(bundle)
    assert result.ok, result.problem
    assert (result.records, result.files_checked) == (2, 2)


def test_canonical_json_is_stable():
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'.encode()


def test_flipped_byte_in_a_file_names_the_record(bundle):
    path = bundle / "files" / "evaluate" / "metrics.json"
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify(bundle)
    assert not result.ok
    assert result.problem.startswith("record 1 (evaluate")
    assert "metrics.json does not match its sha256" in result.problem


def test_edited_record_is_caught_even_with_a_recomputed_root(bundle):
    ledger = json.loads((bundle / "ledger.json").read_bytes())
    ledger["records"][1]["checks"][0]["passed"] = True  # someone "fixes" the failed gate
    (bundle / "ledger.json").write_bytes(canonical_json(ledger))
    result = verify(bundle)
    assert not result.ok and "record 1 (evaluate" in result.problem and "does not match its hash" in result.problem


def test_rehashed_record_breaks_the_parent_link_or_root(bundle):
    ledger = json.loads((bundle / "ledger.json").read_bytes())
    first = ledger["records"][0]
    first["metrics"] = {"rows": 11}
    first["hash"] = record_hash(first)
    (bundle / "ledger.json").write_bytes(canonical_json(ledger))
    result = verify(bundle)
    assert not result.ok and "parent" in result.problem and "record 1" in result.problem


def test_dropped_record_changes_the_root(bundle):
    ledger = json.loads((bundle / "ledger.json").read_bytes())
    ledger["outcome"] = "registered"
    (bundle / "ledger.json").write_bytes(canonical_json(ledger))
    result = verify(bundle)
    assert not result.ok and result.problem == "ledger root does not match its records"


def test_missing_evidence_file_fails_but_missing_data_is_counted(bundle, tmp_path):
    (bundle / "files" / "prepare" / "facts.json").unlink()
    result = verify(bundle)
    assert not result.ok and "facts.json is missing" in result.problem
