"""A registered model's life as one hash chain: registrations, promotions, rollbacks and drift runs.

Each pipeline run seals its own ledger. After that, everything that happens to the model appends a
record here that names the model version's ledger root, and links to the record before it:

    <chain_dir>/<model>/records/<seq>-<hash>.json    canonical records, seq = 1, 2, 3, ...
    <chain_dir>/<model>/.lock                        appends hold an exclusive flock on it

Appends from concurrent processes (two pipeline runs and a drift job) are serialised by the flock, so
the chain stays linear; verify_chain names the first record that does not hold. Every record carries an
Ed25519 signature of its hash (governance/signing.py), so re-hashing after an edit or a deletion does not
verify without the key; cutting records off the end is caught by the anchor, the newest record's seq and
hash kept outside the chain (a registered-model tag in MLflow, set by registry/models.anchor_chain).
"""
from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtrain.core.files import write_durably
from govtrain.governance import signing
from govtrain.governance.evidence import actor, code_version, now
from govtrain.governance.hashing import canonical_json, jsonable, record_hash
from govtrain.governance.rmf import STEP_RMF

RECORD_NAME = re.compile(r"^(\d{6})-([0-9a-f]{64})\.json$")


def chain_path(chain_dir: Path, model: str) -> Path:
    return Path(chain_dir) / re.sub(r"[^A-Za-z0-9._-]", "_", model)


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _files(folder: Path) -> list[Path]:
    records = folder / "records"
    return sorted(p for p in records.iterdir() if RECORD_NAME.match(p.name)) if records.is_dir() else []


class ChainError(RuntimeError):
    """The chain cannot take another record as it is; the message names the record and the repair."""


def _valid_head(path: Path, model: str) -> dict[str, Any]:
    """The newest record, checked before anything links to it: a torn or altered head is named, with
    the command that repairs the chain, instead of a JSON error from deep inside an append."""
    problem = _record_problem(path)
    if problem:
        raise ChainError(f"chain record {path.name[:6]} of {model} {problem}; nothing appended. Inspect it, then "
                         f"`govtrain audit repair-chain --model {model}` sets it aside and records that it did")
    return json.loads(path.read_bytes())


def _record_problem(path: Path) -> str | None:
    try:
        record = json.loads(path.read_bytes())
    except ValueError:
        return "is not readable JSON (torn by a crash?)"
    name_hash = RECORD_NAME.match(path.name).group(2)  # type: ignore[union-attr]
    if not isinstance(record, dict) or record_hash(record) != record.get("hash") or record["hash"] != name_hash:
        return "does not match its hash"
    return None


def read_chain(chain_dir: Path, model: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_bytes()) for p in _files(chain_path(chain_dir, model))]


def append(chain_dir: Path, model: str, step: str, *, version: str | None, model_root: str | None,
           decision: str = "pass", details: dict | None = None, checks: list[dict] | None = None,
           started: str | None = None) -> dict[str, Any]:
    """Append one record naming the model version's root; returns it (with seq and hash)."""
    folder = chain_path(chain_dir, model)
    with _locked(folder):
        return _append(folder, model, step, version=version, model_root=model_root, decision=decision,
                       details=details, checks=checks, started=started)


def _append(folder: Path, model: str, step: str, *, version: str | None, model_root: str | None,
            decision: str, details: dict | None, checks: list[dict] | None, started: str | None) -> dict[str, Any]:
    existing = _files(folder)
    head = _valid_head(existing[-1], model) if existing else None
    record = {
        "step": step, "model": model, "version": version, "model_root": model_root,
        "seq": (head["seq"] + 1) if head else 1,
        "started": started or now(), "finished": now(), "actor": actor(), "code_version": code_version(),
        "checks": jsonable(checks or []), "details": jsonable(details or {}), "decision": decision,
        "rmf": STEP_RMF.get(step, []), "parents": [head["hash"]] if head else [],
    }
    record["hash"] = record_hash(record)
    record["signature"] = signing.sign(record["hash"], signing.signing_key())
    records = folder / "records"
    records.mkdir(exist_ok=True)
    # Readers never see a half-written record, and a crash right after leaves the whole of it.
    write_durably(records / f"{record['seq']:06d}-{record['hash']}.json", canonical_json(record))
    return record


def repair_chain(chain_dir: Path, model: str, reason: str, trusted: list[str] | None = None,
                 allow_unsigned: bool = False) -> dict[str, Any]:
    """Set aside the first record that does not verify and every record after it (moved, never deleted,
    to set-aside/<time>/), then append a `repair` record naming each file moved and its digest."""
    import hashlib
    import shutil

    folder = chain_path(chain_dir, model)
    with _locked(folder):
        check = verify_chain(chain_dir, model, trusted, allow_unsigned)
        if check.ok:
            raise ChainError(f"the chain of {model} verifies ({check.records} records): nothing to repair")
        bad = _files(folder)[check.records:]
        aside = folder / "set-aside" / now().replace(":", "")
        aside.mkdir(parents=True)
        moved = [{"file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "bytes": p.stat().st_size}
                 for p in bad]
        for path in bad:
            shutil.move(path, aside / path.name)
        return _append(folder, model, "repair", version=None, model_root=None, decision="pass",
                       details={"reason": reason, "problem": check.problem, "kept_records": check.records,
                                "set_aside": moved, "set_aside_folder": str(aside.relative_to(folder))},
                       checks=None, started=None)


@dataclass
class ChainVerification:
    ok: bool
    records: int = 0
    problem: str | None = None
    head: str | None = None
    signed_by: list[str] = field(default_factory=list)


def verify_chain(chain_dir: Path, model: str, trusted: list[str] | None = None,
                 allow_unsigned: bool = False) -> ChainVerification:
    """Every record's hash, name, sequence, link and signature (by a trusted key: default signing.trusted_keys()),
    stopping at the first that does not hold."""
    result = ChainVerification(True)
    trusted = signing.trusted_keys() if trusted is None else trusted  # read once, not per record
    previous: dict | None = None
    for path in _files(chain_path(chain_dir, model)):
        seq, file_hash = RECORD_NAME.match(path.name).groups()  # type: ignore[union-attr]
        name = f"chain record {path.name[:6]} of {model}"
        try:
            record = json.loads(path.read_bytes())
        except ValueError:
            return ChainVerification(False, result.records, f"{name}: not readable JSON")
        if record_hash(record) != record.get("hash") or record["hash"] != file_hash:
            return ChainVerification(False, result.records,
                                     f"{name} ({record.get('step')}): content does not match its hash")
        problem, key = signing.signature_problem(record["hash"], record.get("signature"), trusted, allow_unsigned,
                                                 f"{name} ({record.get('step')})")
        if problem:
            return ChainVerification(False, result.records, problem)
        if key and key not in result.signed_by:
            result.signed_by.append(key)
        expected_seq = (previous["seq"] + 1) if previous else 1
        if record.get("seq") != expected_seq or int(seq) != expected_seq:
            return ChainVerification(False, result.records,
                                     f"{name}: sequence {record.get('seq')}, expected {expected_seq}")
        expected_parents = [previous["hash"]] if previous else []
        if record.get("parents") != expected_parents:
            return ChainVerification(False, result.records,
                                     f"{name} ({record['step']}): does not link to the record before it")
        previous = record
        result.records += 1
    result.head = previous["hash"] if previous else None
    return result


def anchor_of(record: dict[str, Any]) -> str:
    """What is kept outside the chain after each append: "<seq>:<hash>" of the newest record."""
    return f"{record['seq']}:{record['hash']}"


def anchor_problem(records: list[dict[str, Any]], model: str, anchor: str | None) -> str | None:
    """Where the chain disagrees with its anchor, in one line: records cut off the end, or the anchored record
    replaced. A chain longer than its anchor is not a fault (a crash between an append and the anchoring)."""
    if anchor is None:
        return (f"the chain of {model} has {len(records)} records but no anchor in the registry "
                f"(tag govtrain.chain_head)") if records else None
    seq_text, _, anchored = anchor.partition(":")
    seq = int(seq_text) if seq_text.isdigit() else 0
    if len(records) < seq:
        return (f"the chain of {model} ends at record {len(records)}, but the registry anchors record {seq} "
                f"({anchored[:12]}…): records were removed from the end")
    if records[seq - 1]["hash"] != anchored:
        return (f"chain record {seq} of {model} is {records[seq - 1]['hash'][:12]}…, but the registry anchors "
                f"{anchored[:12]}… there: the chain was rewritten")
    return None


def registered_root(chain: list[dict[str, Any]], version: str) -> str | None:
    """The ledger root the chain recorded when this version was registered."""
    for record in chain:
        if record["step"] == "register" and record["version"] == str(version):
            return record["model_root"]
    return None


def alias_history(chain: list[dict[str, Any]], alias: str) -> list[dict[str, Any]]:
    """Every change of the alias, oldest first: who, when, why, from which version to which."""
    return [r for r in chain if r["step"] in ("promote", "rollback") and r["details"].get("alias") == alias]


def alias_discrepancy(chain: list[dict[str, Any]], alias: str, model: str, actual: str | None) -> str | None:
    """Where the registry's alias disagrees with the chain's last move of it (an alias moved outside
    govtrain), in one line; None when they agree."""
    moves = alias_history(chain, alias)
    recorded = moves[-1]["details"]["to_version"] if moves else None
    if str(actual) == str(recorded) or (actual is None and recorded is None):
        return None
    if not moves:
        return f"alias {alias} of {model} points at version {actual}, but the chain records no move of {alias}"
    last = moves[-1]
    where = f"version {actual}" if actual is not None else "no version"
    return (f"alias {alias} of {model} points at {where}, but the chain's last move of it (record "
            f"{last['seq']}, {last['step']} by {last['details'].get('approver')} at {last['finished']}) was to "
            f"version {recorded}: moved outside govtrain")

