"""The key log: which signing keys this machine trusted, from when to when, and on whose word.

An append-only chain (governance/records.py) under <state>/keys/log, with its anchor file beside it:

    trust   {public_key, reason, by}   the key verifies signatures made from this entry on
    retire  {public_key, reason, by}   ... and none made after this entry

Entry 1 is the operator's own act: this machine's key, made on first use, trusting itself (self-signed).
Every later entry must be signed by a key the log trusts at that point, so a key cannot trust itself in,
and replacing trusted.pub changes nothing (it is a copy for people, no longer read). A signature then
verifies only with a key trusted at the signed record's own time, and verify names the entry it relied
on. Keys the operator configures (policy.yaml public_keys, --config, --public-key) are trusted for all time,
as before: that is the operator's act, outside this log.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from govtrain.governance import records, signing
from govtrain.governance.evidence import actor
from govtrain.governance.signing import short

LOG = "log"


class KeyLogError(RuntimeError):
    """The key log does not hold, or refuses an entry; one line."""


@dataclass
class Window:
    """A key trusted from `since` until `until` (ISO times; None: for all time / still), and on whose word."""
    key: str
    since: str | None
    until: str | None
    entry: str | None  # "key log entry 3", or None for a key the operator configured
    until_entry: str | None = None

    def covers(self, at: str | None) -> bool:
        """Trusted at time `at` (None: now)."""
        if at is None:
            return self.until is None
        return (self.since is None or self.since <= at) and (self.until is None or at < self.until)


class KeyTrust(list[str]):
    """The trusted keys (a list, as every verifier takes them) and when each was trusted."""

    def __init__(self, keys: list[str] | None = None, windows: dict[str, list[Window]] | None = None):
        super().__init__(keys or [])
        self.windows: dict[str, list[Window]] = windows or {}

    @classmethod
    def of(cls, windows: dict[str, list[Window]]) -> KeyTrust:
        return cls(list(windows), windows)

    def with_configured(self, configured: list[str] | tuple[str, ...]) -> KeyTrust:
        windows = {k: list(v) for k, v in self.windows.items()}
        for key in configured:
            windows.setdefault(key, []).append(Window(key, None, None, None))
        return KeyTrust(list(dict.fromkeys([*configured, *self])), windows)

    def problem(self, key: str, at: str | None, what: str) -> str | None:
        windows = self.windows.get(key)
        if not windows or any(w.covers(at) for w in windows):
            return None
        spans = "; ".join(f"from {w.since} ({w.entry}) to {w.until or 'now'}"
                          + (f" ({w.until_entry})" if w.until_entry else "") for w in windows)
        return f"{what} is signed by {short(key)} at {at}, when the key log did not trust it (trusted {spans})"

    def entry(self, key: str, at: str | None) -> str | None:
        """The key log entry a signature at `at` relies on (None: a configured key, or no window)."""
        return next((w.entry for w in self.windows.get(key, []) if w.covers(at)), None)


def log_dir() -> Path:
    return signing.key_dir()


def entries() -> list[dict[str, Any]]:
    return records.read_chain(log_dir(), LOG)


def start(seed: str) -> dict[str, Any]:
    """Entry 1: this machine's new key trusts itself (called once, by keys.local_key)."""
    with records.opened(log_dir(), LOG, signer=lambda: seed) as opened:
        if opened.records:
            return opened.records[0]
        return opened.append("trust", version=None, model_root=None,
                             details={"public_key": signing.public_key_of(seed), "by": actor(),
                                      "reason": "this machine's key, made on first use"})


def change(step: str, public_key: str, reason: str, seed: str) -> dict[str, Any]:
    """A trust or retire entry, signed by `seed` (the signing key in use), which the log must trust now."""
    signing.public_key_bytes(public_key)  # refuses what is not a key, before anything is written
    signer = signing.public_key_of(seed)
    with records.opened(log_dir(), LOG, signer=lambda: seed) as opened:
        windows = trust_windows(opened.records)
        if not _active(windows.get(signer, []), None):
            raise KeyLogError(f"the signing key in use ({short(signer)}) is not trusted by the key log: "
                              f"a key is trusted only by an entry a trusted key signs")
        if step == "retire" and not _active(windows.get(public_key, []), None):
            raise KeyLogError(f"{short(public_key)} is not trusted now; nothing to retire")
        if step == "trust" and _active(windows.get(public_key, []), None):
            raise KeyLogError(f"{short(public_key)} is already trusted")
        return opened.append(step, version=None, model_root=None,
                             details={"public_key": public_key, "by": actor(), "reason": reason})


def _active(windows: list[Window], at: str | None) -> bool:
    return any(w.covers(at) for w in windows)


def trust_windows(records: list[dict[str, Any]]) -> dict[str, list[Window]]:
    """Each key's windows of trust, checking that every entry was signed by a key trusted at that point."""
    windows: dict[str, list[Window]] = {}
    for record in records:
        label = f"key log entry {record['seq']}"
        key = record["details"]["public_key"]
        signer = (record.get("signature") or {}).get("public_key")
        if not signing.check(record["hash"], record.get("signature") or {}):
            raise KeyLogError(f"{label}: its signature does not verify")
        genesis = record["seq"] == 1 and record["step"] == "trust" and signer == key
        if not genesis and not _active(windows.get(signer or "", []), record["finished"]):
            raise KeyLogError(f"{label} ({record['step']} {short(key)}) is signed by "
                              f"{short(signer or '?')}, which the log did not trust then")
        if record["step"] == "trust":
            # The first key is trusted from its making: nothing was signed with it before it existed, and the
            # record it signs first (a seal, a chain record) takes its time just before the key is made.
            since = None if genesis else record["finished"]
            windows.setdefault(key, []).append(Window(key, since, None, label))
        elif record["step"] == "retire":
            for window in windows.get(key, []):
                if window.until is None:
                    window.until, window.until_entry = record["finished"], label
    return windows


def trusted_by_log() -> KeyTrust:
    """The keys the log trusts, with their windows; the log checked first (files, links, anchor, who signed)."""
    folder = records.chain_path(log_dir(), LOG)
    if not folder.is_dir():
        return KeyTrust()
    try:
        entries_read = [records.valid_record(p, "the key log") for p in records.record_files(folder)]
    except records.ChainError as exc:
        raise KeyLogError(str(exc)) from None
    for seq, record in enumerate(entries_read, 1):
        if record["seq"] != seq or record["parents"] != ([entries_read[seq - 2]["hash"]] if seq > 1 else []):
            raise KeyLogError(f"{folder}: key log entry {seq} does not follow the entry before it")
    problem = records.anchor_problem(entries_read, "the key log", records.local_anchor(log_dir(), LOG),
                                     records.ANCHOR_FILE, slack=1)
    if problem:
        raise KeyLogError(f"{folder}: {problem}")
    return KeyTrust.of(trust_windows(entries_read))
