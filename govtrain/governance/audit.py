"""What an auditor checks, from files alone: a sealed bundle against its ledger, the registry's root tag
and the model's chain; an exported zip offline; and the NIST AI RMF coverage report. Fetching a bundle
from MLflow is registry/audit.py's job."""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from govtrain.core.catalogue import by_id
from govtrain.core.config import Config
from govtrain.governance import chain
from govtrain.governance.evidence import blocks
from govtrain.governance.gates import describe, rmf_of
from govtrain.governance.hashing import sha256_file
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


# --- the RMF report ------------------------------------------------------------------------------

def coverage(config: Config, ledger: dict, lifecycle: list[dict], verified: bool) -> list[dict[str, Any]]:
    """One row per subcategory: evidenced by the pipeline, human artefact linked, or gap."""
    claims: dict[str, list[str]] = {}
    for record in [*ledger["records"], *lifecycle]:
        for sid in record.get("rmf", []):
            claims.setdefault(sid, []).append(f"{record['step']} {record['hash'][:12]}")
    rows = []
    for sub in by_id().values():
        link = config.governance.artefacts.get(sub.id)
        if sub.id in claims and verified:
            status, detail = "evidenced", ", ".join(claims[sub.id])
        elif link is not None:
            status, detail = _artefact_status(link)
        else:
            status = "gap"
            detail = (f"the pipeline can evidence this via {', '.join(sub.evidence)}; no verified record in this "
                      f"version"
                      if sub.evidence else f"needs a human artefact: {sub.human}")
        rows.append({"id": sub.id, "function": sub.function, "title": sub.title, "status": status, "detail": detail})
    return rows


def _artefact_status(link: Any) -> tuple[str, str]:
    if link.url:
        return "artefact linked", f"{link.title or 'link'}: {link.url}"
    if not link.file.is_file():
        return "gap", f"linked artefact {link.file} is missing"
    digest = sha256_file(link.file)
    if link.sha256 and digest != link.sha256:
        return "gap", f"linked artefact {link.file} has sha256 {digest[:12]}…, config says {link.sha256[:12]}…"
    return "artefact linked", f"{link.title or link.file.name} (sha256 {digest[:12]}…)"


NOT_AUTHENTICATED = "identity not authenticated"


def who(name: str, identity: dict | None) -> str:
    """A name as the records vouch for it: "alice (authenticated: MLflow basic-auth at …)" or
    "root (identity not authenticated)"."""
    if identity and identity.get("authenticated"):
        return f"{name} (authenticated: {identity.get('by')})"
    return f"{name} ({NOT_AUTHENTICATED})"


def report_data(config: Config, audit: ModelAudit, ledger: dict) -> dict[str, Any]:
    rows = coverage(config, ledger, audit.lifecycle, audit.ok)
    functions: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = functions.setdefault(row["function"], {"evidenced": 0, "artefact linked": 0, "gap": 0})
        counts[row["status"]] += 1
    gates = [{"step": r["step"], **c} for r in ledger["records"] if r["step"] in ("data_gate", "evaluate")
             for c in r.get("checks", [])]  # data_gate repeats the checks of validate and leakage
    not_measured = sorted({n for r in ledger["records"] for n in r.get("not_measured", [])})
    approvals = [r for r in audit.lifecycle if r["step"] in ("promote", "rollback")]
    drift = [r for r in audit.lifecycle if r["step"] == "drift"]
    register = next((r for r in ledger["records"] if r["step"] == "register"), None)
    identity = register["details"].get("registered_by") if register else None
    registered_by = who(identity["user"] if identity else register["actor"], identity) if register else "-"
    prepare: dict[str, Any] = next((r for r in ledger["records"] if r["step"] == "prepare"), {})
    task = prepare.get("details", {}).get("task") or {"kind": "binary", "classes": [],
                                                      "rule": "a run from before tasks were recorded"}
    evaluate: dict[str, Any] = next((r for r in ledger["records"] if r["step"] == "evaluate"), {})
    return {"model": audit.model, "task": task, "metrics": evaluate.get("metrics", {}), "version": audit.version,
            "root": audit.root, "verified": audit.ok,
            "problem": audit.problem, "records": audit.ledger.records, "chain_records": audit.chain_records,
            "signed_by": audit.ledger.signed_by, "functions": functions, "rows": rows, "gates": gates,
            "approvals": approvals, "drift": drift, "not_measured": not_measured, "registered_by": registered_by}


# What the audit report shows of each task's evaluation (the rest is in evaluation.json).
HEADLINE_METRICS = ("roc_auc", "accuracy", "macro_f1", "log_loss", "rmse", "mae", "r2", "interval_coverage", "ece",
                    "ece_excess", "test_rows")


def measured(check: dict[str, Any]) -> str:
    """The value, with its 95% interval and the rows it was measured on when the check recorded them."""
    interval = f" (95% CI {check['interval'][0]}-{check['interval'][1]})" if "interval" in check else ""
    rows = f", n={check['rows']}" if "rows" in check else ""
    return f"{check['value']}{interval}{rows}"


def check_verdict(check: dict[str, Any]) -> str:
    """pass, FAIL (a gated failure), or warn (an ungated one, such as a poisoning signal)."""
    return "pass" if check["passed"] else "FAIL" if blocks(check) else "warn"


def render_markdown(data: dict[str, Any]) -> str:
    ok = "verified" if data["verified"] else f"DOES NOT VERIFY: {data['problem']}"
    lines = [f"# AI RMF audit report: {data['model']} version {data['version']}", "",
             f"- ledger root `{data['root']}`: {ok}",
             f"- {data['records']} pipeline records, {data['chain_records']} chain records, "
             f"signed by: {data['signed_by'] or 'not signed'}", f"- registered by: {data['registered_by']}",
             f"- task: {data['task']['kind']}" + (f" ({', '.join(data['task']['classes'][:20])})"
                                                  if data["task"]["classes"] else "") + f", {data['task']['rule']}",
             "- test metrics: " + ", ".join(f"{k} {v}" for k, v in data["metrics"].items()
                                            if k in HEADLINE_METRICS) or "- test metrics: none recorded", "",
             "## Coverage by function", "",
             "| function | evidenced | artefact linked | gap |", "|---|---|---|---|"]
    lines += [f"| {f} | {c['evidenced']} | {c['artefact linked']} | {c['gap']} |" for f, c in data["functions"].items()]
    lines += ["", "## Subcategories", "", "| id | title | status | records / artefact / gap |", "|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['title']} | {r['status']} | {r['detail']} |" for r in data["rows"]]
    lines += ["", "## Gate decisions", "", "| step | check | measures | RMF | value | threshold | measured against | "
              "result |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {g['step']} | {g['id']} | {describe(g['id'])} | {', '.join(rmf_of(g['id']))} | {measured(g)} "
              f"| {g['threshold']} | {g.get('reference', 'the config')} | {check_verdict(g)} |" for g in data["gates"]]
    lines += ["", "## Approvals", ""]
    lines += [f"- {r['finished']}: {r['step']} {r['details']['from_version'] or '-'} → {r['details']['to_version']} "
              f"by {who(r['details']['approver'], r['details'].get('approver_identity'))}: {r['details']['reason']}"
              for r in data["approvals"]] or ["- none"]
    lines += ["", "## Drift history", ""]
    lines += [f"- {r['finished']}: {r['decision']} ({r['details'].get('summary', '')})"
              for r in data["drift"]] or ["- none"]
    lines += ["", "## Not measured (MEASURE 1.1)",
              ""] + ([f"- {n}" for n in data["not_measured"]] or ["- nothing listed"])
    return "\n".join(lines) + "\n"


def render_html(data: dict[str, Any]) -> str:
    from html import escape

    def table(header: list[str], rows: list[list[Any]]) -> str:
        head = "".join(f"<th>{escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    status_class = {"evidenced": "ok", "artefact linked": "linked", "gap": "gap"}
    sub_rows = "".join(
        f"<tr class='{status_class[r['status']]}'><td>{escape(r['id'])}</td><td>{escape(r['title'])}</td>"
        f"<td>{escape(r['status'])}</td><td>{escape(r['detail'])}</td></tr>" for r in data["rows"])
    verdict = "verified" if data["verified"] else f"DOES NOT VERIFY: {data['problem']}"
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>AI RMF audit: {escape(data['model'])} v{escape(data['version'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
tr.ok td:nth-child(3){{background:#d9f2d9}}tr.linked td:nth-child(3){{background:#dde8fa}}
tr.gap td:nth-child(3){{background:#fbe0dc}}code{{font-size:90%}}</style></head><body>
<h1>AI RMF audit report: {escape(data['model'])} version {escape(data['version'])}</h1>
<p>Ledger root <code>{escape(str(data['root']))}</code>: <b>{escape(verdict)}</b>. {data['records']} pipeline records,
{data['chain_records']} chain records, signed by: {escape(str(data['signed_by'] or 'not signed'))}.
Registered by {escape(data['registered_by'])}.</p>
<h2>Coverage by function</h2>
{table(["function", "evidenced", "artefact linked", "gap"],
       [[f, c["evidenced"], c["artefact linked"], c["gap"]] for f, c in data["functions"].items()])}
<h2>Subcategories</h2>
<table><thead><tr><th>id</th><th>title</th><th>status</th><th>records / artefact / gap</th></tr></thead>
<tbody>{sub_rows}</tbody></table>
<h2>Gate decisions</h2>
{table(["step", "check", "measures", "RMF", "value", "threshold", "measured against", "result"],
       [[g["step"], g["id"], describe(g["id"]), ", ".join(rmf_of(g["id"])), g["value"], g["threshold"],
         g.get("reference", "the config"), check_verdict(g)] for g in data["gates"]])}
<h2>Approvals</h2>
{table(["when", "action", "from", "to", "approver", "reason"],
       [[r["finished"], r["step"], r["details"]["from_version"] or "-", r["details"]["to_version"],
         who(r["details"]["approver"], r["details"].get("approver_identity")), r["details"]["reason"]]
        for r in data["approvals"]])}
<h2>Drift history</h2>
{table(["when", "decision", "summary"],
       [[r["finished"], r["decision"], r["details"].get("summary", "")] for r in data["drift"]])}
<h2>Not measured (MEASURE 1.1)</h2>
<ul>{"".join(f"<li>{escape(n)}</li>" for n in data["not_measured"]) or "<li>nothing listed</li>"}</ul>
</body></html>
"""
