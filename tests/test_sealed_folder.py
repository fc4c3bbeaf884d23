"""Nothing in a sealed run folder goes unchecked: pipeline.log and registration.json, made after the ledger was
sealed, are listed with their sha256 in a signed unsealed.json, and verify fails on a changed byte in them,
a file added, a listed file deleted, or a manifest edited, re-signed, swapped or removed.

The folder is built as `govtrain run` builds it (pipelines/run.py close_folder over a sealed ledger), without
running the pipeline."""
import json
import shutil

import pytest

from govtrain.core.files import write_durably
from govtrain.governance import signing
from govtrain.governance.evidence import StepEvidence
from govtrain.governance.hashing import canonical_json, sha256_bytes
from govtrain.governance.ledger import seal, verify
from govtrain.governance.unsealed import MANIFEST_FILE, REASONS
from govtrain.pipelines.run import close_folder, seal_rejected
from tests.test_cli import govtrain


@pytest.fixture
def key(monkeypatch):
    seed, public = signing.new_key()
    monkeypatch.setenv(signing.KEY_ENV, seed)
    return public


def sealed_run(tmp_path, run_id="local-1"):
    """A registered run's folder: ledger.json and files/ from seal, the data split, registration.json, then
    the log and unsealed.json, in run_local's order."""
    prepare = StepEvidence("prepare", tmp_path / f"{run_id}-e1", run_id=run_id, config_digest="c" * 64)
    split = tmp_path / f"{run_id}-train.parquet"
    split.write_bytes(b"PAR1 rows PAR1")
    prepare.add_data_output("data/train.parquet", split, rows=2)
    prepare.finish()
    evaluate = StepEvidence("evaluate", tmp_path / f"{run_id}-e2", run_id=run_id, config_digest="c" * 64,
                            parents=[tmp_path / f"{run_id}-e1"])
    evaluate.write_json("evaluation.json", {"roc_auc": 0.72})
    evaluate.finish("pass")
    run_dir = tmp_path / "runs" / run_id
    ledger = seal(tmp_path / f"{run_id}-e2", run_dir, run_id=run_id, outcome="registered")
    write_durably(run_dir / "registration.json", json.dumps({"model_name": "credit", "version": "3",
                                                             "ledger_root": ledger["root"]}, indent=2))
    (run_dir / "data").mkdir()
    shutil.copyfile(split, run_dir / "data" / "train.parquet")
    log = tmp_path / f"{run_id}.log"
    log.write_text("Executing task 'prepare-op'\nTask 'prepare-op' finished with status SUCCESS\n")
    return close_folder(run_dir, log)


@pytest.fixture
def run_dir(tmp_path, key):
    return sealed_run(tmp_path)


def flip(path, at=3):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def manifest_of(run_dir):
    return json.loads((run_dir / MANIFEST_FILE).read_bytes())


def test_the_clean_folder_verifies_and_lists_what_the_ledger_cannot_hold(run_dir, key):
    result = verify(run_dir, trusted_keys=[key])
    assert result.ok, result.problem
    assert (result.records, result.files_checked, result.unsealed_checked) == (2, 2, 2)
    manifest = manifest_of(run_dir)
    assert [f["name"] for f in manifest["files"]] == ["pipeline.log", "registration.json"]
    for entry in manifest["files"]:
        assert entry["sha256"] == sha256_bytes((run_dir / entry["name"]).read_bytes())
        assert entry["bytes"] == (run_dir / entry["name"]).stat().st_size
        assert entry["reason"] == REASONS[entry["name"]]
    assert manifest["ledger_root"] == json.loads((run_dir / "ledger.json").read_bytes())["root"]
    assert manifest["signature"]["public_key"] == key
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.parametrize("name", ["pipeline.log", "registration.json"])
def test_a_changed_byte_in_an_unsealed_file_fails_naming_it(run_dir, key, name):
    flip(run_dir / name)
    result = verify(run_dir, trusted_keys=[key])
    assert not result.ok
    assert result.problem == f"file {name} does not match its sha256 in unsealed.json"


def test_an_appended_line_in_the_log_fails_too(run_dir, key):
    with open(run_dir / "pipeline.log", "a") as log:
        log.write("Task 'evaluate-op' finished with status SUCCESS\n")
    assert verify(run_dir, trusted_keys=[key]).problem == "file pipeline.log does not match its sha256 in unsealed.json"


@pytest.mark.parametrize("stray", ["notes.txt", ".hidden", "files/evaluate/extra.json", "data/val.parquet"])
def test_a_stray_file_fails_naming_it(run_dir, key, stray):
    (run_dir / stray).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / stray).write_text("planted\n")
    result = verify(run_dir, trusted_keys=[key])
    assert not result.ok
    assert result.problem == f"file {stray} is neither in the ledger nor in unsealed.json"


@pytest.mark.parametrize("name", ["pipeline.log", "registration.json"])
def test_a_deleted_listed_file_fails_naming_it(run_dir, key, name):
    (run_dir / name).unlink()
    result = verify(run_dir, trusted_keys=[key])
    assert not result.ok and result.problem == f"file {name}, listed in unsealed.json, is missing"


def test_a_deleted_sealed_file_is_still_the_ledgers_to_name(run_dir, key):
    (run_dir / "files" / "evaluate" / "evaluation.json").unlink()
    assert verify(run_dir, trusted_keys=[key]).problem.endswith("file files/evaluate/evaluation.json is missing")


def test_an_edited_manifest_fails_on_its_digest(run_dir, key):
    flip(run_dir / "pipeline.log")
    manifest = manifest_of(run_dir)
    manifest["files"][0]["sha256"] = sha256_bytes((run_dir / "pipeline.log").read_bytes())
    (run_dir / MANIFEST_FILE).write_text(json.dumps(manifest))
    assert verify(run_dir, trusted_keys=[key]).problem == "unsealed.json does not match its digest"


def rehashed(run_dir, resign_with=None, strip=False):
    """The insider's edit: the log changed, its sha256 and size in the manifest and the manifest's digest redone."""
    flip(run_dir / "pipeline.log")
    manifest = manifest_of(run_dir)
    manifest["files"][0]["sha256"] = sha256_bytes((run_dir / "pipeline.log").read_bytes())
    body = {k: manifest[k] for k in ("run_id", "ledger_root", "written", "files")}
    manifest["digest"] = sha256_bytes(canonical_json(body))
    if strip:
        manifest.pop("signature")
    if resign_with:
        manifest["signature"] = signing.sign(manifest["digest"], resign_with)
    (run_dir / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_a_rehashed_manifest_fails_on_its_signature(run_dir, key):
    rehashed(run_dir)
    assert verify(run_dir, trusted_keys=[key]).problem == "unsealed.json signature does not verify"


def test_a_manifest_resigned_with_another_key_is_not_trusted(run_dir, key):
    attacker_seed, attacker = signing.new_key()
    rehashed(run_dir, resign_with=attacker_seed)
    assert verify(run_dir, trusted_keys=[key]).problem == (
        f"unsealed.json is signed by {signing.short(attacker)}, which is not a trusted key")


def test_an_unsigned_manifest_passes_only_with_allow_unsigned(run_dir, key):
    rehashed(run_dir, strip=True)
    assert verify(run_dir, trusted_keys=[key]).problem == (
        "unsealed.json is not signed (--allow-unsigned checks hashes only)")
    assert verify(run_dir, trusted_keys=[key], allow_unsigned=True).ok


def test_a_manifest_taken_from_another_run_fails(tmp_path, run_dir, key):
    other = sealed_run(tmp_path, run_id="local-2")
    for name in ("pipeline.log", "registration.json", MANIFEST_FILE):
        shutil.copyfile(other / name, run_dir / name)
    problem = verify(run_dir, trusted_keys=[key]).problem
    assert problem.startswith("unsealed.json lists the unsealed files of ledger root ")
    assert problem.endswith("not of this folder's ledger")


def test_a_folder_without_its_manifest_fails_naming_the_unlisted_file(run_dir, key):
    (run_dir / MANIFEST_FILE).unlink()  # also how a run folder sealed before unsealed.json existed looks
    result = verify(run_dir, trusted_keys=[key])
    assert not result.ok
    assert result.problem == ("file pipeline.log is not in the ledger, and this folder has no unsealed.json to list "
                              "it (sealed before govtrain listed unsealed files, or the list was deleted): nothing "
                              "vouches for it")


def test_a_bundle_the_ledger_covers_whole_needs_no_manifest(tmp_path, key):
    """A bundle as MLflow keeps it and an export carries it: ledger.json and files/ only."""
    evidence = StepEvidence("evaluate", tmp_path / "ev", run_id="r1", config_digest="c" * 64)
    evidence.write_json("evaluation.json", {"roc_auc": 0.72})
    evidence.finish()
    bundle = tmp_path / "bundle"
    seal(tmp_path / "ev", bundle, run_id="r1", outcome="registered")
    result = verify(bundle, trusted_keys=[key])
    assert result.ok and result.unsealed_checked == 0, result.problem
    (bundle / "registration.json").write_text("{}")
    assert verify(bundle, trusted_keys=[key]).problem.startswith("file registration.json is not in the ledger")


def test_an_unexplained_file_is_never_listed_so_verify_names_it(tmp_path, key):
    run_dir = sealed_run(tmp_path)
    (run_dir / "scratch.txt").write_text("left by someone\n")
    close_folder(run_dir, None)  # the manifest rewritten with the stray file present
    assert [f["name"] for f in manifest_of(run_dir)["files"]] == ["pipeline.log", "registration.json"]
    problem = verify(run_dir, trusted_keys=[key]).problem
    assert problem == "file scratch.txt is neither in the ledger nor in unsealed.json"


def test_a_refused_run_has_an_empty_manifest_and_verifies(tmp_path, key):
    run_dir = seal_rejected(tmp_path / "state", "preflight", "no column 'income'", tmp_path / "chains")
    assert manifest_of(run_dir)["files"] == []
    assert verify(run_dir, trusted_keys=[key]).ok
    (run_dir / "pipeline.log").write_text("planted\n")
    problem = verify(run_dir, trusted_keys=[key]).problem
    assert problem == "file pipeline.log is neither in the ledger nor in unsealed.json"


def test_audit_verify_names_the_changed_file_and_counts_the_listed_ones(run_dir, key, tmp_path):
    out = govtrain("audit", "verify", run_dir, "--public-key", key, "--config", tmp_path / "none.yaml")
    assert out.returncode == 0, out.stderr
    assert "2 unsealed files matched unsealed.json" in out.stdout
    flip(run_dir / "registration.json")
    out = govtrain("audit", "verify", run_dir, "--public-key", key, "--config", tmp_path / "none.yaml")
    assert out.returncode == 1
    assert "FAILED: file registration.json does not match its sha256 in unsealed.json" in out.stderr


def test_deleting_the_manifest_with_the_files_it_lists_shows_in_the_chain_of_runs(tmp_path, key):
    """The one way around the manifest: delete it and the log and registration.json together; the folder then
    verifies on its ledger alone, but the chain of runs recorded the manifest's digest."""
    from govtrain.governance.sealed_runs import missing_runs, record_run

    run_dir = sealed_run(tmp_path)
    record_run(tmp_path / "chains", run_dir, json.loads((run_dir / "ledger.json").read_bytes()))
    assert missing_runs(tmp_path / "chains", run_dir.parent) == (1, [])
    for name in (MANIFEST_FILE, "pipeline.log", "registration.json"):
        (run_dir / name).unlink()
    assert verify(run_dir, trusted_keys=[key]).ok  # the ledger covers what is left
    count, problems = missing_runs(tmp_path / "chains", run_dir.parent)
    assert count == 1 and len(problems) == 1
    assert problems[0].endswith(f"{run_dir / MANIFEST_FILE} is gone (the list of the folder's files outside the "
                                f"ledger, recorded {manifest_digest_prefix(tmp_path)}…)")


def manifest_digest_prefix(tmp_path):
    from govtrain.governance.chain import read_chain
    from govtrain.governance.sealed_runs import RUNS

    return read_chain(tmp_path / "chains", RUNS)[-1]["details"]["unsealed_sha256"][:12]
