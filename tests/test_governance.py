"""Governance: the RMF catalogue, signed roots, 1000 seeded tamper attempts, the model chain under
concurrent writers."""
import json
import multiprocessing as mp
import random
import re
import shutil

import pytest

from govtrain.core.catalogue import by_id, subcategories
from govtrain.governance import chain, signing
from govtrain.governance.evidence import StepEvidence
from govtrain.governance.hashing import canonical_json, record_hash
from govtrain.governance.ledger import root_hash, seal, verify
from govtrain.governance.rmf import STEP_RMF


def test_catalogue_has_the_whole_rmf_and_agrees_with_what_steps_claim():
    subs = subcategories()
    assert len(subs) == 72
    assert len({s.function for s in subs}) == 4 and len({s.category for s in subs}) == 19
    assert {s.function: sum(1 for x in subs if x.function == s.function) for s in subs} == \
        {"GOVERN": 19, "MAP": 18, "MEASURE": 22, "MANAGE": 13}
    for sub in subs:
        assert re.fullmatch(rf"{sub.function} \d\.\d{{1,2}}", sub.id) and sub.id.startswith(sub.category + ".")
        assert sub.evidence or sub.human, sub.id  # evidenced by the pipeline, or a named human artefact
    catalogue = by_id()
    for step, claimed in STEP_RMF.items():
        for sid in claimed:
            assert step in catalogue[sid].evidence, f"{step} claims {sid}, which the catalogue does not map to it"


@pytest.fixture
def keys():
    return signing.new_key(), signing.new_key()


@pytest.fixture
def signed_bundle(tmp_path, keys, monkeypatch):
    (seed, _), _ = keys
    monkeypatch.setenv(signing.KEY_ENV, seed)
    parents = []
    for index, step in enumerate(("prepare", "validate", "train", "evaluate")):
        evidence = StepEvidence(step, tmp_path / f"e{index}", run_id="r1", config_digest="c" * 64, parents=parents)
        evidence.write_json(f"{step}.json", {"step": step, "values": list(range(index * 7, index * 7 + 20))})
        evidence.check(f"{step}.ok", index, 0, True)
        evidence.finish()
        parents = [tmp_path / f"e{index}"]
    seal(parents[0], tmp_path / "bundle", run_id="r1", outcome="registered")
    return tmp_path / "bundle"


def test_signed_root_verifies_only_against_a_trusted_key(signed_bundle, keys):
    (_, public), (_, other_public) = keys
    assert verify(signed_bundle).signed_by == public
    assert verify(signed_bundle, trusted_keys=[public]).ok
    untrusted = verify(signed_bundle, trusted_keys=[other_public])
    assert not untrusted.ok and "not a trusted key" in untrusted.problem


def _ledger(bundle):
    return json.loads((bundle / "ledger.json").read_bytes())


def _write(bundle, ledger):
    (bundle / "ledger.json").write_bytes(canonical_json(ledger))


def mutate(bundle, kind: str, rng: random.Random, attacker_seed: str) -> None:
    if kind == "ledger_byte":  # any byte of ledger.json: records, order, root, seal time, signature
        path = bundle / "ledger.json"
        data = bytearray(path.read_bytes())
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
    elif kind == "file_byte":
        files = sorted(p for p in (bundle / "files").rglob("*") if p.is_file())
        path = rng.choice(files)
        data = bytearray(path.read_bytes())
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(data))
    elif kind == "delete_record":
        ledger = _ledger(bundle)
        del ledger["records"][rng.randrange(len(ledger["records"]))]
        _write(bundle, ledger)
    elif kind == "swap_records":
        ledger = _ledger(bundle)
        i, j = rng.sample(range(len(ledger["records"])), 2)
        ledger["records"][i], ledger["records"][j] = ledger["records"][j], ledger["records"][i]
        _write(bundle, ledger)
    elif kind == "forge_and_resign":  # a consistent forgery: new content, rehashed, new root, attacker's key
        ledger = _ledger(bundle)
        last = ledger["records"][-1]
        last["metrics"] = {"roc_auc": rng.random()}
        last["hash"] = record_hash(last)
        ledger["root"] = root_hash(ledger["run_id"], ledger["outcome"], ledger["sealed"],
                                   [r["hash"] for r in ledger["records"]])
        ledger["signature"] = signing.sign(ledger["root"], attacker_seed)
        _write(bundle, ledger)


def test_a_thousand_seeded_tamperings_are_all_detected_and_no_untouched_bundle_is_flagged(signed_bundle, keys,
                                                                                          tmp_path):
    (_, public), (attacker_seed, _) = keys
    rng = random.Random(20261125)
    kinds = ["ledger_byte", "file_byte", "delete_record", "swap_records", "forge_and_resign"]
    missed, false_alarms = [], 0
    for trial in range(1000):
        kind = kinds[trial % len(kinds)]
        copy = tmp_path / "trial"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(signed_bundle, copy)
        if trial % 10 == 0:  # an untouched copy now and then: must verify
            false_alarms += not verify(copy, trusted_keys=[public]).ok
        mutate(copy, kind, rng, attacker_seed)
        if verify(copy, trusted_keys=[public]).ok:
            missed.append((trial, kind))
    assert missed == [] and false_alarms == 0


def _append_many(chain_dir: str, writer: str, count: int) -> None:
    for i in range(count):
        chain.append(chain_dir, "credit", "drift" if writer == "drift" else "register", version=str(i),
                     model_root=f"{writer}-{i}".ljust(64, "0"), details={"writer": writer})


def test_concurrent_writers_leave_one_intact_linear_chain(tmp_path):
    ctx = mp.get_context("spawn")
    writers = [ctx.Process(target=_append_many, args=(str(tmp_path), name, 40)) for name in ("run-a", "run-b", "drift")]
    for proc in writers:
        proc.start()
    for proc in writers:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    result = chain.verify_chain(tmp_path, "credit")
    assert result.ok, result.problem
    assert result.records == 120
    records = chain.read_chain(tmp_path, "credit")
    assert [r["seq"] for r in records] == list(range(1, 121))
    assert sorted({r["details"]["writer"] for r in records}) == ["drift", "run-a", "run-b"]


def test_chain_names_the_first_record_that_does_not_hold(tmp_path):
    for i in range(5):
        chain.append(tmp_path, "m", "register", version=str(i), model_root="a" * 64)
    files = sorted((tmp_path / "m" / "records").glob("*.json"))
    edited = json.loads(files[2].read_bytes())
    edited["details"] = {"approver": "mallory"}
    files[2].write_bytes(canonical_json(edited))
    broken = chain.verify_chain(tmp_path, "m")
    assert not broken.ok and broken.problem.startswith("chain record 000003 of m") and broken.records == 2

    files[2].unlink()  # dropping a record breaks the sequence at the next one
    dropped = chain.verify_chain(tmp_path, "m")
    assert not dropped.ok and "000004" in dropped.problem


def test_exit_handler_seals_a_failed_cluster_run_from_the_mirrored_evidence(tmp_path, monkeypatch):
    from govtrain.components.seal import seal_on_exit
    from govtrain.governance.evidence import MIRROR_ENV

    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "runs"))
    first = StepEvidence("prepare", tmp_path / "e1", run_id="job-7", config_digest="c" * 64)
    first.write_json("splits.json", {"rows": 100})
    first.finish()
    second = StepEvidence("validate", tmp_path / "e2", run_id="job-7", config_digest="c" * 64,
                          parents=[tmp_path / "e1"])
    second.write_json("ge.json", {"ok": True})
    head = second.finish()["hash"]
    # The train step crashed: no artifact reaches the exit handler, but the work volume has the records.
    assert seal_on_exit(tmp_path / "runs", tmp_path / "ok", "job-7", "SUCCEEDED", "", "") is None
    ledger = seal_on_exit(tmp_path / "runs", tmp_path / "bundle", "job-7", "FAILED", "train-op", "OOMKilled")
    assert ledger["outcome"] == "failed at train-op: OOMKilled"
    last = ledger["records"][-1]
    assert (last["step"], last["decision"], last["parents"]) == ("seal", "error", [head])
    assert [r["step"] for r in ledger["records"]] == ["prepare", "validate", "seal"]
    result = verify(tmp_path / "bundle")
    assert result.ok, result.problem
    assert result.files_checked == 2


def test_an_alias_moved_outside_govtrain_is_named():
    from govtrain.governance.chain import alias_discrepancy

    def move(seq, step, to, approver="alice"):
        return {"seq": seq, "step": step, "finished": f"2026-11-26T0{seq}:00:00Z",
                "details": {"alias": "champion", "to_version": to, "approver": approver}}

    chain = [{"seq": 1, "step": "register", "details": {}}, move(2, "promote", "1"), move(3, "promote", "2"),
             move(4, "rollback", "1", "bob")]
    assert alias_discrepancy(chain, "champion", "credit", "1") is None
    assert alias_discrepancy(chain, "champion", "credit", "2") == (
        "alias champion of credit points at version 2, but the chain's last move of it (record 4, rollback by "
        "bob at 2026-11-26T04:00:00Z) was to version 1: moved outside govtrain")
    assert "points at no version" in alias_discrepancy(chain, "champion", "credit", None)
    assert alias_discrepancy(chain[:1], "champion", "credit", "1") == (
        "alias champion of credit points at version 1, but the chain records no move of champion")
    assert alias_discrepancy(chain[:1], "champion", "credit", None) is None
