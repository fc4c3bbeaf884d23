"""A registered model's life as one hash chain: registrations, promotions, rollbacks and drift runs.

Each pipeline run seals its own ledger. After that, everything that happens to the model appends a
record here that names the model version's ledger root, and links to the record before it:

    <chain_dir>/<model>/records/<seq>-<hash>.json    canonical records, seq = 1, 2, 3, ...
    <chain_dir>/<model>/.lock                        appends hold an exclusive flock on it (holder's PID inside)
    <chain_dir>/.anchors/<model>                     "<seq>:<hash>" of the newest record, beside the chains

<model> is the name percent-encoded (chain_path), so two names never share a folder. Appends from
concurrent processes are serialised by the flock, and each append first checks the chain against its
anchor: a chain cut at its end is refused (naming `repair-chain`), never silently extended. An append may
also name the head it extends (compare-and-swap), and may carry a unique key that a second append with the
same key finds instead of writing again. Every record carries an Ed25519 signature of its hash
(governance/signing.py), so re-hashing after an edit or a deletion does not verify without the key. The
model chains have a second anchor outside this machine's files (a registered-model tag in MLflow,
registry/models.py), checked under the same lock.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtrain.governance import keys
from govtrain.governance.evidence import now
from govtrain.governance.hashing import record_hash
from govtrain.governance.records import (  # noqa: F401 - the chain's names, as its users know them
    ANCHOR_FILE,
    ANCHORS,
    LOCK_TIMEOUT_ENV,
    RECORD_NAME,
    ChainError,
    Open,
    _append,
    _files,
    _locked,
    _write_anchor,
    anchor_of,
    anchor_path,
    anchor_problem,
    chain_path,
    local_anchor,
    read_chain,
)
from govtrain.governance.records import opened as _opened


@contextmanager
def opened(chain_dir: Path, model: str, outside_anchor: Callable[[], str | None] | None = None,
           timeout: float | None = None) -> Iterator[Open]:
    """The chain locked and checked against its anchors (records.opened), appends signed with this machine's
    signing key (governance/keys.py)."""
    with _opened(chain_dir, model, keys.signing_key, outside_anchor, timeout) as chain:
        yield chain


def append(chain_dir: Path, model: str, step: str, *, version: str | None, model_root: str | None,
           decision: str = "pass", details: dict | None = None, checks: list[dict] | None = None,
           started: str | None = None, extends: str | None | object = ...,
           unique: tuple[str, str] | None = None) -> dict[str, Any]:
    """Append one record naming the model version's root; returns it (with seq and hash)."""
    with opened(chain_dir, model) as chain:
        return chain.append(step, version=version, model_root=model_root, decision=decision, details=details,
                            checks=checks, started=started, extends=extends, unique=unique)


def repair_chain(chain_dir: Path, model: str, reason: str, trusted: list[str] | None = None,
                 allow_unsigned: bool = False, outside_anchor: str | None | object = ...) -> dict[str, Any]:
    """Two repairs, each ending in a `repair` record and a new anchor. A record that does not verify: it and
    every record after it are set aside (moved, never deleted, to set-aside/<time>/), each named with its
    digest. A chain that verifies but disagrees with an anchor (records cut off its end, or no anchor yet):
    the record says what each anchor held, so the cut stays on the chain."""
    import hashlib
    import shutil

    folder = chain_path(chain_dir, model)
    with _locked(folder, model):
        check = verify_chain(chain_dir, model, trusted, allow_unsigned)
        anchors = {ANCHOR_FILE: local_anchor(chain_dir, model)}
        if outside_anchor is not ...:
            anchors["the registry"] = outside_anchor  # type: ignore[assignment]
        details: dict[str, Any] = {"reason": reason, "anchors": anchors}
        if check.ok:
            records = read_chain(chain_dir, model)
            cut = [anchor_problem(records, model, anchor, where, slack=1 if where == ANCHOR_FILE else None)
                   for where, anchor in anchors.items()]
            found = [c for c in cut if c]
            if not found:
                raise ChainError(f"the chain of {model} verifies ({check.records} records) and agrees with its "
                                 f"anchors: nothing to repair")
            details.update(problem=found[0], kept_records=check.records, set_aside=[])
        else:
            bad = _files(folder)[check.records:]
            aside = folder / "set-aside" / now().replace(":", "")
            aside.mkdir(parents=True)
            moved = [{"file": p.name, "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                      "bytes": p.stat().st_size} for p in bad]
            for path in bad:
                shutil.move(path, aside / path.name)
            details.update(problem=check.problem, kept_records=check.records, set_aside=moved,
                           set_aside_folder=str(aside.relative_to(folder)))
        record = _append(folder, model, "repair", version=None, model_root=None, decision="pass", details=details,
                         checks=None, started=None, seed=keys.signing_key())
        _write_anchor(chain_dir, model, record)
        return record


@dataclass
class ChainVerification:
    ok: bool
    records: int = 0
    problem: str | None = None
    head: str | None = None
    signed_by: list[str] = field(default_factory=list)


def verify_chain(chain_dir: Path, model: str, trusted: list[str] | None = None,
                 allow_unsigned: bool = False) -> ChainVerification:
    """Every record's hash, name, sequence, link and signature (by a trusted key: default keys.trusted_keys()),
    stopping at the first that does not hold."""
    result = ChainVerification(True)
    trusted = keys.trusted_keys() if trusted is None else trusted  # read once, not per record
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
        problem, key = keys.signature_problem(record["hash"], record.get("signature"), trusted, allow_unsigned,
                                                 f"{name} ({record.get('step')})", at=record.get("finished"))
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

