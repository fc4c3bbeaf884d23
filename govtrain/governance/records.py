"""Where chain records live and how one is added: the files, the lock, the anchors. governance/chain.py
builds the model chains on this (signing with this machine's key, verifying), and governance/keylog.py
the key log; this module knows no key but the one an append is handed.

    <chain_dir>/<name>/records/<seq>-<hash>.json    canonical records, seq = 1, 2, 3, ...
    <chain_dir>/<name>/.lock                        appends hold an exclusive flock on it (holder's PID inside)
    <chain_dir>/.anchors/<name>                     "<seq>:<hash>" of the newest record, beside the chains
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from govtrain.core.files import write_durably
from govtrain.governance import signing
from govtrain.governance.evidence import actor, code_version, now
from govtrain.governance.hashing import canonical_json, jsonable, record_hash
from govtrain.governance.rmf import claims

RECORD_NAME = re.compile(r"^(\d{6})-([0-9a-f]{64})\.json$")


ANCHORS = ".anchors"  # beside the chain folders; chain_path never makes a name that starts with "."
LOCK_TIMEOUT_ENV = "GOVTRAIN_LOCK_TIMEOUT"
ANCHOR_FILE = "its anchor file"


def _encoded(model: str) -> str:
    """Injective: "credit model" and "credit_model" get two folders. A leading "." is encoded too, so no
    model's folder is the anchors folder or the chain of runs (".runs", which is passed as is)."""
    if model.startswith(".") and model in (".runs",):
        return model
    text = urllib.parse.quote(model, safe="")
    return "%2E" + text[1:] if text.startswith(".") else text


def chain_path(chain_dir: Path, model: str) -> Path:
    return Path(chain_dir) / _encoded(model)


def anchor_path(chain_dir: Path, model: str) -> Path:
    return Path(chain_dir) / ANCHORS / _encoded(model)


def lock_timeout() -> float:
    return float(os.environ.get(LOCK_TIMEOUT_ENV, "60"))


@contextmanager
def _locked(folder: Path, model: str, timeout: float | None = None) -> Iterator[None]:
    """The chain's exclusive lock, waited for at most `timeout` seconds (GOVTRAIN_LOCK_TIMEOUT, default 60):
    a process that hangs while holding it is named by its PID, instead of blocking every other writer."""
    folder.mkdir(parents=True, exist_ok=True)
    timeout = lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    with open(folder / ".lock", "a+") as lock:
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.seek(0)
                    holder = lock.read().strip() or "unknown"
                    raise ChainError(f"the chain of {model} has been locked by PID {holder} for over {timeout:.0f} s "
                                     f"({folder / '.lock'}); nothing appended. If that process is stuck, stop it "
                                     f"by its PID and retry ({LOCK_TIMEOUT_ENV} sets the wait)") from None
                time.sleep(0.05)
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        try:
            yield
        finally:
            lock.truncate(0)
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


def _readable(path: Path, model: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_bytes())
    except ValueError:
        return _valid_head(path, model)  # raises, naming the record and the repair


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


def local_anchor(chain_dir: Path, model: str) -> str | None:
    path = anchor_path(chain_dir, model)
    return path.read_text().strip() if path.is_file() else None


def _write_anchor(chain_dir: Path, model: str, record: dict[str, Any]) -> None:
    path = anchor_path(chain_dir, model)
    path.parent.mkdir(exist_ok=True)
    write_durably(path, anchor_of(record) + "\n")


class Open:
    """The chain under its lock, checked against its anchor: read it, decide, append. What an append depends
    on (the champion now, an idempotency key, a registration record) is read here, so no other writer can
    change it between the reading and the appending."""

    def __init__(self, chain_dir: Path, model: str, signer: Callable[[], str]):
        self.chain_dir, self.model, self.folder = Path(chain_dir), model, chain_path(chain_dir, model)
        self.signer = signer  # the seed that signs an append made without one
        files = _files(self.folder)
        # The head is checked against its hash before anything links to it; the rest are read (an unreadable
        # one is named the same way), not re-hashed on every append: verify_chain checks them all.
        self.records = [_readable(p, model) for p in files[:-1]] + [_valid_head(p, model) for p in files[-1:]]

    @property
    def head(self) -> str | None:
        return self.records[-1]["hash"] if self.records else None

    def append(self, step: str, *, version: str | None, model_root: str | None, decision: str = "pass",
               details: dict | None = None, checks: list[dict] | None = None, started: str | None = None,
               extends: str | None | object = ..., unique: tuple[str, str] | None = None,
               seed: str | None = None) -> dict[str, Any]:
        """The record appended (with seq and hash). `extends`: the head hash the caller read (None: an empty
        chain); refused if the chain moved since. `unique`: (details key, value); a record that already has
        it is returned instead of a new one."""
        if unique is not None:
            key, value = unique
            for record in self.records:
                if record.get("step") == step and record.get("details", {}).get(key) == value:
                    return record
        if extends is not ... and extends != self.head:
            raise ChainError(f"the chain of {self.model} moved on (head {str(self.head)[:12]}…, not "
                             f"{str(extends)[:12]}…) while this {step} was decided; nothing appended; retry")
        record = _append(self.folder, self.model, step, version=version, model_root=model_root, decision=decision,
                         details=details, checks=checks, started=started, seed=seed or self.signer())
        _write_anchor(self.chain_dir, self.model, record)
        self.records.append(record)
        return record


@contextmanager
def opened(chain_dir: Path, model: str, signer: Callable[[], str],
           outside_anchor: Callable[[], str | None] | None = None, timeout: float | None = None) -> Iterator[Open]:
    """The chain locked and checked against its anchor beside the chains (and `outside_anchor`, read under
    the lock, when given): a chain cut at its end, or rewritten, takes no appends until repaired."""
    folder = chain_path(chain_dir, model)
    with _locked(folder, model, timeout):
        chain = Open(chain_dir, model, signer)
        problems = [anchor_problem(chain.records, model, local_anchor(chain_dir, model), where=ANCHOR_FILE, slack=1)]
        if outside_anchor is not None and chain.records:
            problems.append(anchor_problem(chain.records, model, outside_anchor()))
        problem = next((p for p in problems if p), None)
        if problem:
            raise ChainError(f"{problem}; nothing appended. `govtrain audit repair-chain --model {model}` "
                             f"records what is missing and re-anchors")
        yield chain


def _append(folder: Path, model: str, step: str, *, version: str | None, model_root: str | None,
            decision: str, details: dict | None, checks: list[dict] | None, started: str | None,
            seed: str) -> dict[str, Any]:
    existing = _files(folder)
    head = _valid_head(existing[-1], model) if existing else None
    record = {
        "step": step, "model": model, "version": version, "model_root": model_root,
        "seq": (head["seq"] + 1) if head else 1,
        "started": started or now(), "finished": now(), "actor": actor(), "code_version": code_version(),
        "checks": jsonable(checks or []), "details": jsonable(details or {}), "decision": decision,
        "rmf": [], "parents": [head["hash"]] if head else [],
    }
    record["rmf"] = claims(step, record)[0]  # what its content supports (governance/rmf.py)
    record["hash"] = record_hash(record)
    record["signature"] = signing.sign(record["hash"], seed)
    records = folder / "records"
    records.mkdir(exist_ok=True)
    # Readers never see a half-written record, and a crash right after leaves the whole of it.
    write_durably(records / f"{record['seq']:06d}-{record['hash']}.json", canonical_json(record))
    return record


def anchor_of(record: dict[str, Any]) -> str:
    """What is kept outside the chain after each append: "<seq>:<hash>" of the newest record."""
    return f"{record['seq']}:{record['hash']}"


def anchor_problem(records: list[dict[str, Any]], model: str, anchor: str | None, where: str = "the registry",
                   slack: int | None = None) -> str | None:
    """Where the chain disagrees with its anchor, in one line: records cut off the end, or the anchored record
    replaced. A chain longer than its anchor is not a fault up to `slack` records (None: any number; a crash
    between an append and the anchoring leaves one)."""
    if anchor is None:
        tag = " (tag govtrain.chain_head)" if where == "the registry" else ""
        return f"the chain of {model} has {len(records)} records but no anchor in {where}{tag}" if records else None
    seq_text, _, anchored = anchor.partition(":")
    seq = int(seq_text) if seq_text.isdigit() else 0
    if len(records) < seq:
        return (f"the chain of {model} ends at record {len(records)}, but {where} anchors record {seq} "
                f"({anchored[:12]}…): records were removed from the end")
    if seq < 1 or records[seq - 1]["hash"] != anchored:
        found = records[seq - 1]["hash"][:12] + "…" if seq >= 1 else "nothing"
        return (f"chain record {seq} of {model} is {found}, but {where} anchors {anchored[:12]}… there: the chain "
                f"was rewritten")
    if slack is not None and len(records) - seq > slack:
        return (f"the chain of {model} has {len(records)} records, but {where} anchors record {seq}: "
                f"{len(records) - seq} records were added without anchoring")
    return None




def record_files(folder: Path) -> list[Path]:
    return _files(folder)


def valid_record(path: Path, name: str) -> dict[str, Any]:
    """A record read whole and matching its hash and file name, else ChainError naming it."""
    return _valid_head(path, name)
