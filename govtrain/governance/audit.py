"""What an auditor checks, from files alone: a sealed bundle against its ledger, the registry's root tag
and the model's chain, and an exported zip offline (the report of it: governance/report.py). Fetching a
bundle from MLflow is registry/audit.py's job."""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtrain.governance import chain
from govtrain.governance.evidence import blocks
from govtrain.governance.ledger import Verification, verify

MANIFEST = "manifest.json"


@dataclass
class ModelAudit:
    ok: bool
    model: str
    version: str
    root: str | None
    ledger: Verification
    chain_records: int = 0
    lifecycle: list[dict] = field(default_factory=list)  # chain records naming this version's root
    problem: str | None = None
    chain_signed_by: list[str] = field(default_factory=list)


def audit_bundle(model: str, version: str, bundle: Path, chain_dir: Path, trusted: list[str] | None,
                 registry_root: str | None, anchor: str | None, allow_unsigned: bool = False,
                 anchor_file: bool = False) -> ModelAudit:
    """The bundle against its ledger and signature, the registry's root tag, and the model's chain against
    its signatures and its anchor (the registry's "<seq>:<hash>" of the newest record)."""
    ledger = verify(bundle, trusted_keys=trusted, allow_unsigned=allow_unsigned)
    result = ModelAudit(ledger.ok, model, str(version), ledger.root, ledger, problem=ledger.problem)
    if not ledger.ok:
        return result
    if registry_root is not None and registry_root != ledger.root:
        result.ok = False
        result.problem = f"the registry's ledger root tag {registry_root[:12]}… is not this bundle's root"
        return result
    check = chain.verify_chain(chain_dir, model, trusted, allow_unsigned)
    result.chain_records, result.chain_signed_by = check.records, check.signed_by
    if not check.ok:
        result.ok, result.problem = False, check.problem
        return result
    records = chain.read_chain(chain_dir, model)
    cut = chain.anchor_problem(records, model, anchor)
    if anchor_file and not cut:
        cut = chain.anchor_problem(records, model, chain.local_anchor(chain_dir, model), chain.ANCHOR_FILE, slack=1)
    if cut and not (anchor is None and allow_unsigned):
        result.ok, result.problem = False, cut
        return result
    registered = chain.registered_root(records, str(version))
    if registered is None:
        result.ok, result.problem = False, f"the chain of {model} has no registration record for version {version}"
    elif registered != ledger.root and ledger.root is not None:
        result.ok = False
        result.problem = (f"the chain registered version {version} with root {registered[:12]}…, "
                          f"not {ledger.root[:12]}…")
    result.lifecycle = [r for r in records if r.get("model_root") == ledger.root]
    return result


# An export is untrusted input: it is opened only within these bounds (a real export of the demo model
# is about 2 MB in 60 members, compressed about 4:1).
MAX_MEMBERS, MAX_BYTES, MAX_RATIO = 10_000, 2 * 1024**3, 200


class UnsafeArchive(ValueError):
    """The zip is not opened: the message names the member and the limit."""


def safe_extract(archive: zipfile.ZipFile, dest: Path, max_members: int = MAX_MEMBERS, max_bytes: int = MAX_BYTES,
                 max_ratio: float = MAX_RATIO) -> None:
    """Extract only plain files whose paths stay inside dest, within count, size and ratio caps, all
    checked from the directory before anything is written (a zip bomb is refused, not inflated)."""
    members = archive.infolist()
    if len(members) > max_members:
        raise UnsafeArchive(f"{len(members)} members, more than the {max_members} an export can have")
    root, total = dest.resolve(), 0
    for member in members:
        name = member.filename
        target = (root / name).resolve()
        if name.startswith(("/", "\\")) or ".." in Path(name).parts or not target.is_relative_to(root):
            raise UnsafeArchive(f"member {name!r} would be written outside the extraction folder")
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            raise UnsafeArchive(f"member {name!r} is a symbolic link")
        total += member.file_size
        if total > max_bytes:
            raise UnsafeArchive(f"more than {max_bytes} bytes uncompressed (at member {name!r})")
        if member.compress_size and member.file_size / member.compress_size > max_ratio:
            raise UnsafeArchive(f"member {name!r} inflates {member.file_size / member.compress_size:.0f}:1, "
                                f"more than {max_ratio:.0f}:1")
    archive.extractall(root)


def audit_export(path: Path, trusted: list[str] | None = None, allow_unsigned: bool = False) -> ModelAudit:
    """Offline: an exported zip, checked with nothing but the zip (and the auditor's trusted keys)."""
    work = Path(tempfile.mkdtemp(prefix="govtrain-audit-"))
    try:
        with zipfile.ZipFile(path) as archive:
            safe_extract(archive, work)
        manifest = json.loads((work / MANIFEST).read_bytes())
        chain_dir = work / "chains"
        chain_dir.mkdir()
        if (work / "chain").is_dir():
            shutil.move(str(work / "chain"), str(chain.chain_path(chain_dir, manifest["model"])))
        return audit_bundle(manifest["model"], manifest["version"], work / "bundle", chain_dir, trusted,
                            manifest["root"], manifest.get("chain_head"), allow_unsigned)
    finally:
        shutil.rmtree(work, ignore_errors=True)


NOT_AUTHENTICATED = "identity not authenticated"


def who(name: str, identity: dict | None) -> str:
    """A name as the records vouch for it: "alice (authenticated: MLflow basic-auth at …)" or
    "root (identity not authenticated)"."""
    if identity and identity.get("authenticated"):
        return f"{name} (authenticated: {identity.get('by')})"
    return f"{name} ({NOT_AUTHENTICATED})"


def measured(check: dict[str, Any]) -> str:
    """The value, with its 95% interval and the rows it was measured on when the check recorded them."""
    interval = f" (95% CI {check['interval'][0]}-{check['interval'][1]})" if "interval" in check else ""
    rows = f", n={check['rows']}" if "rows" in check else ""
    return f"{check['value']}{interval}{rows}"


def check_verdict(check: dict[str, Any]) -> str:
    """pass, FAIL (a gated failure), or warn (an ungated one, such as a poisoning signal)."""
    return "pass" if check["passed"] else "FAIL" if blocks(check) else "warn"
