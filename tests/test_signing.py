"""Signed by default, as the insider would attack it: forge and re-hash, re-sign with a foreign key, strip the
signature, and rewrite or cut the model chain. No key in the environment: this machine's own key signs."""
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import stat

import pytest

from govtrain.governance import chain, keys, signing
from govtrain.governance.evidence import StepEvidence
from govtrain.governance.hashing import canonical_json, record_hash
from govtrain.governance.ledger import root_hash, seal, verify
from tests.test_cli import govtrain


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh state folder with no key yet, and no signing key in the environment."""
    monkeypatch.setenv("GOVTRAIN_HOME", str(tmp_path / "state"))
    monkeypatch.delenv(signing.KEY_ENV, raising=False)
    monkeypatch.delenv(signing.KEY_FILE_ENV, raising=False)
    return tmp_path / "state"


def sealed(tmp_path, name="bundle"):
    evidence = StepEvidence("evaluate", tmp_path / f"ev-{name}", run_id="r1", config_digest="c" * 64)
    evidence.write_json("evaluation.json", {"roc_auc": 0.72})
    evidence.metrics = {"roc_auc": 0.72}
    evidence.finish()
    seal(tmp_path / f"ev-{name}", tmp_path / name, run_id="r1", outcome="registered")
    return tmp_path / name


def forge(bundle, resign_with=None, strip=False):
    """The measured attack: the test AUC raised in the record and its file, every hash and the root redone."""
    ledger = json.loads((bundle / "ledger.json").read_bytes())
    record = ledger["records"][-1]
    record["metrics"]["roc_auc"] = 0.93
    path = bundle / record["outputs"][0]["name"]
    path.write_bytes(canonical_json({"roc_auc": 0.93}))
    record["outputs"][0]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    record["hash"] = record_hash(record)
    ledger["root"] = root_hash(ledger["run_id"], ledger["outcome"], ledger["sealed"], [record["hash"]])
    if strip:
        ledger.pop("signature")
    if resign_with:
        ledger["signature"] = signing.sign(ledger["root"], resign_with)
    (bundle / "ledger.json").write_bytes(canonical_json(ledger))


def test_the_first_seal_makes_a_private_0600_key_and_trusts_it(home, tmp_path):
    bundle = sealed(tmp_path)
    key_file = home / "keys" / "signing.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    public = signing.public_key_of(key_file.read_text())
    assert (home / "keys" / "trusted.pub").read_text().split() == [public]
    result = verify(bundle)
    assert result.ok and result.signed_by == public
    sealed(tmp_path, "second")  # the same key signs again: still one key, one trusted entry
    assert (home / "keys" / "trusted.pub").read_text().split() == [public]


def test_forged_and_rehashed_evidence_fails_unsigned_or_resigned(home, tmp_path):
    stripped, foreign = sealed(tmp_path, "a"), sealed(tmp_path, "b")
    forge(stripped, strip=True)
    forge(foreign, resign_with=signing.new_key()[0])
    assert verify(stripped).problem == "ledger root is not signed (--allow-unsigned checks hashes only)"
    assert verify(stripped, allow_unsigned=True).ok  # the hashes alone are consistent: that is why we sign
    problem = verify(foreign).problem
    assert problem.startswith("ledger root is signed by ed25519:") and problem.endswith("which is not a trusted key")
    assert not verify(foreign, allow_unsigned=True).ok  # a signature present is always checked


def test_the_cli_names_the_key_and_honours_configured_keys_for_a_run_folder(home, tmp_path, monkeypatch):
    team_seed, team_public = signing.new_key()
    monkeypatch.setenv(signing.KEY_ENV, team_seed)  # as on a cluster: the team key, not this machine's
    bundle = sealed(tmp_path)
    out = govtrain("audit", "verify", str(bundle), "--config", str(tmp_path / "none.yaml"))
    assert out.returncode == 1 and "not a trusted key" in out.stderr
    config = tmp_path / "team.yaml"
    config.write_text(f"dataset: {{path: x.csv, target: y, numeric: [a]}}\n"
                      f"governance: {{public_keys: ['{team_public}']}}\n")
    out = govtrain("audit", "verify", str(bundle), "--config", str(config))
    assert out.returncode == 0 and f"signed by ed25519:{team_public[:16]}" in out.stdout
    forge(bundle, strip=True)
    out = govtrain("audit", "verify", str(bundle), "--config", str(config))
    assert out.returncode == 1 and out.stderr.strip() == (
        "FAILED: ledger root is not signed (--allow-unsigned checks hashes only)")
    out = govtrain("audit", "verify", str(bundle), "--config", str(config), "--allow-unsigned")
    assert out.returncode == 0 and "NOT SIGNED (--allow-unsigned)" in out.stdout


def appended(home, n=4):
    for i in range(n):
        chain.append(home / "chains", "m", "promote", version=str(i + 1), model_root="r" * 64,
                     details={"alias": "champion", "to_version": str(i + 1)})
    return chain.chain_path(home / "chains", "m") / "records"


def relink(folder, records, seed=None):
    """Rewrite the chain as an insider would after deleting a record: renumber, re-link, re-hash (re-sign with
    seed when given, else drop the signatures)."""
    for path in folder.iterdir():
        path.unlink()
    previous = None
    for seq, record in enumerate(records, 1):
        record = {k: v for k, v in record.items() if k not in ("hash", "signature")}
        record["seq"], record["parents"] = seq, [previous["hash"]] if previous else []
        record["hash"] = record_hash(record)
        if seed:
            record["signature"] = signing.sign(record["hash"], seed)
        (folder / f"{seq:06d}-{record['hash']}.json").write_bytes(canonical_json(record))
        previous = record


def test_every_chain_record_is_signed_and_a_rewritten_chain_fails(home):
    folder = appended(home)
    records = chain.read_chain(home / "chains", "m")
    assert all(signing.check(r["hash"], r["signature"]) for r in records)
    check = chain.verify_chain(home / "chains", "m")
    assert check.ok and check.records == 4 and len(check.signed_by) == 1

    relink(folder, records[:1] + records[2:])  # record 2 deleted, the rest re-hashed and re-linked
    assert chain.verify_chain(home / "chains", "m").problem == (
        "chain record 000001 of m (promote) is not signed (--allow-unsigned checks hashes only)")
    relink(folder, records[:1] + records[2:], seed=signing.new_key()[0])
    assert "which is not a trusted key" in chain.verify_chain(home / "chains", "m").problem


def test_records_cut_off_the_end_are_caught_by_the_anchor(home):
    folder = appended(home)
    records = chain.read_chain(home / "chains", "m")
    anchor = chain.anchor_of(records[-1])
    assert chain.anchor_problem(records, "m", anchor) is None
    sorted(folder.iterdir())[-1].unlink()  # the last record cut: the rest still verifies on its own
    cut = chain.read_chain(home / "chains", "m")
    assert chain.verify_chain(home / "chains", "m").ok
    assert chain.anchor_problem(cut, "m", anchor) == (
        f"the chain of m ends at record 3, but the registry anchors record 4 ({records[-1]['hash'][:12]}…): "
        f"records were removed from the end")
    assert chain.anchor_problem(records, "m", chain.anchor_of(records[1])) is None  # anchor behind: a crash
    assert "the chain was rewritten" in chain.anchor_problem(records, "m", f"2:{'0' * 64}")
    assert "no anchor" in chain.anchor_problem(records, "m", None)


def _make_key(home: str, queue) -> None:
    os.environ["GOVTRAIN_HOME"] = home
    queue.put(keys.local_key())


def test_processes_racing_to_make_the_first_key_end_with_one(home):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_make_key, args=(str(home), queue)) for _ in range(4)]
    for proc in procs:
        proc.start()
    seeds = {queue.get(timeout=60) for _ in procs}
    for proc in procs:
        proc.join()
    assert len(seeds) == 1
    assert (home / "keys" / "trusted.pub").read_text().split() == [signing.public_key_of(seeds.pop())]
    assert [p.name for p in (home / "keys").iterdir() if p.name.startswith(".key-")] == []


def test_model_files_listed_in_the_ledger_are_checked_when_supplied(home, tmp_path):
    model = tmp_path / "logged"
    (model / "code").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "code" / "pyfunc.py").write_text("def load(): pass\n")
    evidence = StepEvidence("register", tmp_path / "ev", run_id="r1", config_digest="c" * 64)
    evidence.add_model_files([{"name": f"model/{p.relative_to(model).as_posix()}", "bytes": p.stat().st_size,
                               "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
                              for p in sorted(model.rglob("*")) if p.is_file()])
    evidence.finish()
    seal(tmp_path / "ev", tmp_path / "bundle", run_id="r1", outcome="registered")
    bundle = tmp_path / "bundle"
    assert verify(bundle).ok and verify(bundle).model_files_checked == 0  # not supplied: digests only
    shutil.copytree(model, bundle / "model")
    assert verify(bundle).model_files_checked == 2
    (bundle / "model" / "code" / "extra.py").write_text("import os\n")  # a file added beside the code
    assert verify(bundle).problem == "file model/code/extra.py is in the model but not in the ledger"
    (bundle / "model" / "code" / "extra.py").unlink()
    (bundle / "model" / "MLmodel").unlink()
    assert verify(bundle).problem.endswith("file model/MLmodel is missing")


def test_a_deleted_or_replaced_run_folder_shows_in_the_chain_of_runs(home, tmp_path):
    from govtrain.governance.sealed_runs import record_run

    runs = home / "runs"
    for name in ("local-1", "local-2", "local-3"):
        bundle = sealed(tmp_path, name)
        shutil.copytree(bundle, runs / name)
        record_run(home / "chains", runs / name, json.loads((bundle / "ledger.json").read_bytes()))
    out = govtrain("audit", "runs", "--config", tmp_path / "none.yaml")
    assert out.returncode == 0 and "OK: 3 sealed runs recorded" in out.stdout
    shutil.rmtree(runs / "local-2")  # the insider's cleanup of an embarrassing run
    shutil.copyfile(runs / "local-1" / "ledger.json", runs / "local-3" / "ledger.json")  # and a swap
    out = govtrain("audit", "runs", "--config", tmp_path / "none.yaml")
    assert out.returncode == 1
    assert out.stderr.strip().startswith("FAILED: run r1 (sealed ")
    assert f"{runs / 'local-2'} is gone (and 1 more)" in out.stderr


def test_a_run_folder_deleted_with_its_record_shows_against_the_anchor_beside_the_chains(home, tmp_path):
    """Before: delete the newest run folder and its .runs record, and `audit runs` said OK."""
    from govtrain.governance.sealed_runs import RUNS, record_run

    runs = home / "runs"
    for name in ("local-1", "local-2"):
        bundle = sealed(tmp_path, name)
        shutil.copytree(bundle, runs / name)
        record_run(home / "chains", runs / name, json.loads((bundle / "ledger.json").read_bytes()))
    shutil.rmtree(runs / "local-2")
    sorted((chain.chain_path(home / "chains", RUNS) / "records").iterdir())[-1].unlink()
    out = govtrain("audit", "runs", "--config", tmp_path / "none.yaml")
    assert out.returncode == 1 and out.stderr.strip() == (
        "FAILED: the chain of .runs ends at record 1, but its anchor file anchors record 2 "
        f"({chain.local_anchor(home / 'chains', RUNS).split(':')[1][:12]}…): records were removed from the end "
        "(`govtrain audit repair-chain --model .runs` records it)")
    chain.anchor_path(home / "chains", RUNS).unlink()  # and the anchor too
    out = govtrain("audit", "runs", "--config", tmp_path / "none.yaml")
    assert out.returncode == 1 and "has 1 records but no anchor in its anchor file" in out.stderr
    repaired = govtrain("audit", "repair-chain", "--model", ".runs", "--reason", "a run deleted by hand")
    assert repaired.returncode == 0, repaired.stderr
    out = govtrain("audit", "runs", "--config", tmp_path / "none.yaml")
    assert out.returncode == 0 and "OK: 1 sealed runs recorded" in out.stdout  # the cut is on the chain now
    repair = chain.read_chain(home / "chains", RUNS)[-1]
    assert repair["step"] == "repair" and "has 1 records but no anchor" in repair["details"]["problem"]
