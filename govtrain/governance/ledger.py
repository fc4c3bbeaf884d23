"""Sealing an evidence folder into a ledger, and verifying a sealed bundle offline.

A sealed bundle is a folder:

    ledger.json      {run_id, outcome, sealed, records: [record, ...] in topological order, root}
    files/...        the evidence files the records name
    data/...         optionally, the data splits (kind "data"), checked when present
    unsealed.json    in a run folder: the files made after sealing (pipeline.log, registration.json), each
                     with its sha256 and why it is outside the ledger, signed (governance/unsealed.py)

root = sha256(canonical {run_id, outcome, sealed, records: [hash, ...]}), so changing, dropping or
reordering any record changes the root. The ledger carries an Ed25519 signature of the root (always: by the
key of governance/signing.py); verify requires it, by a trusted key, unless told to allow an unsigned one.
Every other file in the folder must be in the ledger or in unsealed.json: nothing in it goes unchecked.
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtrain.core.files import write_durably
from govtrain.governance import keys, signing, unsealed
from govtrain.governance.evidence import now
from govtrain.governance.hashing import canonical_json, record_hash, sha256_bytes, sha256_file
from govtrain.governance.keylog import KeyTrust

LEDGER_FILE = "ledger.json"
MODEL_DIR = "model"  # the registered model's files, listed by digest in the register record


def load_records(evidence_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in sorted((evidence_dir / "records").glob("*.json"))]


def topological(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parents before children; ties broken by start time so the order is stable."""
    by_hash = {r["hash"]: r for r in records}
    placed: set[str] = set()
    ordered: list[dict[str, Any]] = []
    pending = sorted(records, key=lambda r: (r["started"], r["hash"]))
    while pending:
        ready = [r for r in pending if all(p in placed or p not in by_hash for p in r["parents"])]
        if not ready:
            raise ValueError("evidence records form a cycle")
        for rec in ready:
            ordered.append(rec)
            placed.add(rec["hash"])
        pending = [r for r in pending if r["hash"] not in placed]
    return ordered


def root_hash(run_id: str, outcome: str, sealed: str, hashes: list[str]) -> str:
    return sha256_bytes(canonical_json({"run_id": run_id, "outcome": outcome, "sealed": sealed, "records": hashes}))


def seal(evidence_dir: str | Path, bundle_dir: str | Path, *, run_id: str, outcome: str) -> dict[str, Any]:
    """Write ledger.json and the evidence files into bundle_dir; return the ledger."""
    evidence_dir, bundle_dir = Path(evidence_dir), Path(bundle_dir)
    bundle_dir.mkdir(parents=True, exist_ok=True)
    records = topological(load_records(evidence_dir))
    hashes = [r["hash"] for r in records]
    sealed = now()
    ledger: dict[str, Any] = {
        "run_id": run_id,
        "outcome": outcome,
        "sealed": sealed,
        "records": records,
        "root": root_hash(run_id, outcome, sealed, hashes),
    }
    ledger["signature"] = signing.sign(ledger["root"], keys.signing_key())
    if (evidence_dir / "files").is_dir():
        shutil.copytree(evidence_dir / "files", bundle_dir / "files", dirs_exist_ok=True)
    write_durably(bundle_dir / LEDGER_FILE, canonical_json(ledger))
    return ledger


@dataclass
class Verification:
    ok: bool
    records: int = 0
    files_checked: int = 0
    data_not_supplied: int = 0
    model_files_checked: int = 0
    unsealed_checked: int = 0  # files outside the ledger that matched the signed unsealed.json
    problem: str | None = None
    root: str | None = None
    signed_by: str | None = None  # the public key whose signature of the root checked out
    trusted_by: str | None = None  # the key log entry that trusted it then (None: a configured key)
    details: list[str] = field(default_factory=list)


def verify(bundle_dir: str | Path, trusted_keys: list[str] | None = None,
           allow_unsigned: bool = False) -> Verification:
    """Recompute every record hash, parent link, artifact digest, the root and its signature; stop at
    the first fault. The root must be signed by one of trusted_keys (default: keys.trusted_keys());
    allow_unsigned accepts a root with no signature (a signature present must still check out)."""
    bundle_dir = Path(bundle_dir)
    ledger_path = bundle_dir / LEDGER_FILE
    if not ledger_path.is_file():
        return Verification(False, problem=f"{ledger_path}: no ledger here")
    try:
        ledger = json.loads(ledger_path.read_bytes())
        records = ledger["records"]
    except (ValueError, KeyError, TypeError) as exc:
        return Verification(False, problem=f"{ledger_path}: not a readable ledger ({exc})")

    seen: set[str] = set()
    result = Verification(True, root=ledger.get("root"))
    model_supplied = (bundle_dir / MODEL_DIR).is_dir()  # audit verify --model puts the registry's copy there
    for index, record in enumerate(records):
        name = f"record {index} ({record.get('step', '?')} {str(record.get('hash', ''))[:12]})"
        if record_hash(record) != record.get("hash"):
            return _fail(result, f"{name}: content does not match its hash")
        missing = [p for p in record.get("parents", []) if p not in seen]
        if missing:
            return _fail(result, f"{name}: parent {missing[0][:12]} is not earlier in the ledger")
        for out in record.get("outputs", []):
            path = bundle_dir / out["name"]
            if not path.is_file():
                if out.get("kind") == "data" or (out.get("kind") == "model" and not model_supplied):
                    result.data_not_supplied += out.get("kind") == "data"
                    continue
                return _fail(result, f"{name}: file {out['name']} is missing")
            if sha256_file(path) != out["sha256"]:
                return _fail(result, f"{name}: file {out['name']} does not match its sha256")
            result.files_checked += 1
            result.model_files_checked += out.get("kind") == "model"
        seen.add(record["hash"])
        result.records += 1
    if model_supplied:
        listed = {out["name"] for r in records for out in r.get("outputs", []) if out.get("kind") == "model"}
        extra = sorted(p.relative_to(bundle_dir).as_posix() for p in (bundle_dir / MODEL_DIR).rglob("*")
                       if p.is_file() and p.relative_to(bundle_dir).as_posix() not in listed)
        if extra:
            return _fail(result, f"file {extra[0]} is in the model but not in the ledger")
    expected = root_hash(ledger.get("run_id", ""), ledger.get("outcome", ""), ledger.get("sealed", ""),
                         [r["hash"] for r in records])
    if expected != ledger.get("root"):
        return _fail(result, "ledger root does not match its records")
    trusted_keys = keys.trusted_keys() if trusted_keys is None else trusted_keys
    problem, result.signed_by = keys.signature_problem(ledger["root"], ledger.get("signature"), trusted_keys,
                                                  allow_unsigned, "ledger root", at=ledger.get("sealed"))
    if isinstance(trusted_keys, KeyTrust) and result.signed_by:
        result.trusted_by = trusted_keys.entry(result.signed_by, ledger.get("sealed"))
    if problem:
        return _fail(result, problem)
    problem, result.unsealed_checked = unsealed.check(bundle_dir, ledger, covered_names(records), trusted_keys,
                                                      allow_unsigned)
    if problem:
        return _fail(result, problem)
    return result


def covered_names(records: list[dict[str, Any]]) -> set[str]:
    """The files of a folder the ledger accounts for: itself and every output its records name."""
    return {LEDGER_FILE, *(out["name"] for r in records for out in r.get("outputs", []))}


def list_unsealed(run_dir: str | Path) -> dict[str, Any]:
    """Last, once every file of a sealed run folder is in place: write its signed unsealed.json."""
    run_dir = Path(run_dir)
    ledger = json.loads((run_dir / LEDGER_FILE).read_bytes())
    return unsealed.write_manifest(run_dir, ledger, covered_names(ledger["records"]))


def _fail(result: Verification, problem: str) -> Verification:
    result.ok = False
    result.problem = problem
    return result
