"""The files of a sealed run folder that the ledger cannot hold, listed in a signed manifest (unsealed.json),
so that nothing in the folder goes unexplained and a changed byte anywhere fails `audit verify`.

A run folder holds what the ledger seals (ledger.json, files/, data/) and two files made only after it
was sealed: pipeline.log and registration.json. Their digests cannot be in the ledger (its root is signed
before they exist), so the local runner lists them, last, in unsealed.json: each file's sha256, size and why
it is outside the ledger.

How the manifest is protected: it names the ledger root it belongs to and is signed, like the ledger, with
keys.signing_key(); verify checks that signature against the same trusted keys (and key log window) as the
root's. A cross-check of registration.json against the ledger would not do: its ledger_root is a copy of a
public value, and pipeline.log has nothing to check against. Without the signing key, a changed byte in a
listed file, a file added, a file removed or a manifest edited, re-hashed or taken from another run fails.

Verify, for any folder (ledger.verify): every file must be named by the ledger or by the manifest. A folder
with no manifest (a bundle fetched from MLflow or an export: ledger.json and files/ only) verifies when the
ledger names every file in it; one that holds anything else (a run folder sealed before manifests existed,
or one whose manifest was deleted) fails, naming that file.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from govtrain.core.files import sync_folder, write_durably
from govtrain.governance import keys, signing
from govtrain.governance.evidence import now
from govtrain.governance.hashing import canonical_json, sha256_bytes, sha256_file

MANIFEST_FILE = "unsealed.json"
LOG_FILE, REGISTRATION_FILE = "pipeline.log", "registration.json"

# Why each file a run folder may hold is outside the ledger. A file not named here is never listed, so
# verify names it: the manifest explains files, it does not bless whatever happens to be there.
REASONS = {
    LOG_FILE: "written after the ledger was sealed: the pipeline's log (every step's output), copied into the "
              "folder when the run ended",
    REGISTRATION_FILE: "written after the ledger was sealed: the MLflow version number is known only once the "
                       "version exists; its facts are in the model's signed chain register record",
}


def folder_files(folder: Path) -> list[str]:
    """Every plain file under folder, as a posix path relative to it, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def write_manifest(folder: Path, ledger: dict[str, Any], covered: set[str]) -> dict[str, Any]:
    """List, hash and sign the files of folder that the ledger does not cover (`covered`: the names it does),
    after making every file and folder in it durable; the manifest is written last, durably, so it never
    names a file a crash could still lose or truncate."""
    entries = []
    for name in folder_files(folder):
        path = folder / name
        sync_folder(path)  # the file's bytes, before the manifest vouches for them
        if name in covered or name == MANIFEST_FILE or name not in REASONS:
            continue
        entries.append({"name": name, "sha256": sha256_file(path), "bytes": path.stat().st_size,
                        "reason": REASONS[name]})
    for sub in sorted([folder, *(p for p in folder.rglob("*") if p.is_dir())], key=lambda p: -len(p.parts)):
        sync_folder(sub)  # their names too: a file the manifest lists must not vanish in a crash
    body = {"run_id": ledger["run_id"], "ledger_root": ledger["root"], "written": now(), "files": entries}
    digest = sha256_bytes(canonical_json(body))
    manifest = {**body, "digest": digest, "signature": signing.sign(digest, keys.signing_key())}
    write_durably(folder / MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def check(folder: Path, ledger: dict[str, Any], covered: set[str], trusted: list[str] | None,
          allow_unsigned: bool) -> tuple[str | None, int]:
    """(the first problem in one line or None, how many listed files matched): every file in folder is
    covered by the ledger or listed, unchanged, in a manifest signed by a trusted key."""
    present = [n for n in folder_files(folder) if n not in covered]
    path = folder / MANIFEST_FILE
    if not path.is_file():
        if present:
            return (f"file {present[0]} is not in the ledger, and this folder has no {MANIFEST_FILE} to list it "
                    f"(sealed before govtrain listed unsealed files, or the list was deleted): nothing vouches "
                    f"for it"), 0
        return None, 0
    try:
        manifest = json.loads(path.read_bytes())
        body = {k: manifest[k] for k in ("run_id", "ledger_root", "written", "files")}
        listed = {entry["name"]: entry for entry in body["files"]}
    except (ValueError, KeyError, TypeError) as exc:
        return f"{MANIFEST_FILE}: not a readable list of unsealed files ({exc})", 0
    if sha256_bytes(canonical_json(body)) != manifest.get("digest"):
        return f"{MANIFEST_FILE} does not match its digest", 0
    problem, _ = keys.signature_problem(manifest["digest"], manifest.get("signature"), trusted, allow_unsigned,
                                        MANIFEST_FILE, at=body["written"])
    if problem:
        return problem, 0
    if body["ledger_root"] != ledger.get("root"):
        return (f"{MANIFEST_FILE} lists the unsealed files of ledger root {str(body['ledger_root'])[:12]}…, "
                f"not of this folder's ledger"), 0
    return _files_problem(folder, present, listed)


def _files_problem(folder: Path, present: list[str], listed: dict[str, dict[str, Any]]) -> tuple[str | None, int]:
    checked = 0
    for name, entry in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            return f"file {name}, listed in {MANIFEST_FILE}, is missing", checked
        if path.stat().st_size != entry.get("bytes") or sha256_file(path) != entry.get("sha256"):
            return f"file {name} does not match its sha256 in {MANIFEST_FILE}", checked
        checked += 1
    stray = [n for n in present if n != MANIFEST_FILE and n not in listed]
    if stray:
        return f"file {stray[0]} is neither in the ledger nor in {MANIFEST_FILE}", checked
    return None, checked
