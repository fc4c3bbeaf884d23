"""The audit report of a model version, from its verified ledger and chain: the verdict paragraph first, the
headline and the gates, the comparison with the simple models, the figures, then the NIST AI RMF coverage.

A subcategory is "evidenced" only by a verified record whose content supports the claim (governance/rmf.py),
"artefact linked" by a document a person linked (governance.artefacts) or a statement recorded from the config,
and otherwise a gap of one of two kinds: an organisational document to attach, which no pipeline can produce,
or something the pipeline could evidence and did not, with the reason."""
from __future__ import annotations

import base64
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from govtrain.core.catalogue import by_id
from govtrain.core.config import Config
from govtrain.governance.audit import ModelAudit, check_verdict, measured, who
from govtrain.governance.gates import bound, describe, rmf_of
from govtrain.governance.hashing import sha256_file
from govtrain.governance.rmf import STATEMENTS, claims, standing
from govtrain.governance.verdict import comparison_words, paragraph

STATUSES = ("evidenced", "artefact linked", "not evidenced", "document to attach")
# What the audit report shows of each task's evaluation (the rest is in evaluation.json).
HEADLINE_METRICS = ("roc_auc", "accuracy", "macro_f1", "log_loss", "rmse", "mae", "r2", "interval_coverage", "ece",
                    "ece_excess", "test_rows")
# The evaluate step's figures and their titles, in the order a credit or pricing reviewer looks for them.
FIGURES = {"roc_pr.png": "ROC and precision-recall curves", "score_distributions.png": "Scores by class (KS)",
           "reliability.png": "Reliability diagram", "residuals.png": "Residuals",
           "confusion_matrix.png": "Confusion matrix", "robustness.png": "Robustness curves",
           "importance.png": "Permutation importance"}


def _statements(ledger: dict) -> dict[str, tuple[str, str, dict]]:
    """{subcategory: (statement name, register record hash, statement)} from the register record."""
    register = next((r for r in ledger["records"] if r["step"] == "register"), None)
    found = {}
    for name, statement in (register or {}).get("details", {}).get("statements", {}).items():
        if name in STATEMENTS:
            found[STATEMENTS[name]] = (name, register["hash"], statement)  # type: ignore[index]
    return found


def coverage(config: Config, ledger: dict, lifecycle: list[dict], verified: bool) -> list[dict[str, Any]]:
    """One row per subcategory: evidenced, artefact linked, not evidenced (with the reason), or a document to
    attach."""
    supported: dict[str, list[str]] = {}
    reasons: dict[str, str] = {}
    for record in [*ledger["records"], *lifecycle]:
        held, unsupported = standing(record)
        for sid in held:
            supported.setdefault(sid, []).append(f"{record['step']} {record['hash'][:12]}")
        for sid, why in {**claims(record["step"], record)[1], **unsupported}.items():
            reasons.setdefault(sid, f"{record['step']}: {why}")
    statements = _statements(ledger)
    rows = []
    for sub in by_id().values():
        link = config.governance.artefacts.get(sub.id)
        if sub.id in supported and verified:
            status, detail = "evidenced", ", ".join(supported[sub.id])
        elif link is not None:
            status, detail = _artefact_status(link)
        elif sub.id in statements and verified:
            name, record, statement = statements[sub.id]
            status = "artefact linked"
            detail = (f"statement in the config (registry.{name}, sha256 {statement['sha256'][:12]}…), recorded by "
                      f"register {record[:12]}")
        elif not sub.evidence:
            status, detail = "document to attach", f"needs a human artefact: {sub.human} (governance.artefacts)"
        else:
            status = "not evidenced"
            detail = reasons.get(sub.id) or (f"the pipeline can evidence this via {', '.join(sub.evidence)}; no "
                                             f"verified record in this version")
            if not verified:
                detail = "the ledger does not verify: nothing in it counts"
        rows.append({"id": sub.id, "function": sub.function, "title": sub.title, "status": status, "detail": detail})
    return rows


def _artefact_status(link: Any) -> tuple[str, str]:
    if link.url:
        return "artefact linked", f"{link.title or 'link'}: {link.url}"
    if not link.file.is_file():
        return "document to attach", f"linked artefact {link.file} is missing"
    digest = sha256_file(link.file)
    if link.sha256 and digest != link.sha256:
        return "document to attach", (f"linked artefact {link.file} has sha256 {digest[:12]}…, config says "
                                      f"{link.sha256[:12]}…")
    return "artefact linked", f"{link.title or link.file.name} (sha256 {digest[:12]}…)"


def figures(bundle: Path | None) -> dict[str, str]:
    """The evaluate step's figures from the verified bundle, as data URIs (the HTML report is one file)."""
    if bundle is None:
        return {}
    folder = bundle / "files" / "evaluate"
    return {name: "data:image/png;base64," + base64.b64encode((folder / name).read_bytes()).decode()
            for name in FIGURES if (folder / name).is_file()}


def report_data(config: Config, audit: ModelAudit, ledger: dict, bundle: Path | None = None) -> dict[str, Any]:
    rows = coverage(config, ledger, audit.lifecycle, audit.ok)
    functions: dict[str, dict[str, int]] = {}
    for row in rows:
        counts = functions.setdefault(row["function"], dict.fromkeys(STATUSES, 0))
        counts[row["status"]] += 1
    gates = [{"step": r["step"], **c} for r in ledger["records"] if r["step"] in ("data_gate", "evaluate")
             for c in r.get("checks", [])]  # data_gate repeats the checks of validate and leakage
    not_measured = sorted({n for r in ledger["records"] for n in r.get("not_measured", [])})
    approvals = [r for r in audit.lifecycle if r["step"] in ("promote", "rollback")]
    drift = [r for r in audit.lifecycle if r["step"] == "drift"]
    monitoring = monitoring_rows(audit.lifecycle)
    register = next((r for r in ledger["records"] if r["step"] == "register"), None)
    identity = register["details"].get("registered_by") if register else None
    registered_by = who(identity["user"] if identity else register["actor"], identity) if register else "-"
    prepare: dict[str, Any] = next((r for r in ledger["records"] if r["step"] == "prepare"), {})
    task = prepare.get("details", {}).get("task") or {"kind": "binary", "classes": [],
                                                      "rule": "a run from before tasks were recorded"}
    evaluate: dict[str, Any] = next((r for r in ledger["records"] if r["step"] == "evaluate"), {})
    return {"model": audit.model, "task": task, "metrics": evaluate.get("metrics", {}), "version": audit.version,
            "root": audit.root, "verified": audit.ok, "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "verdict": paragraph(ledger, audit.ok, f"{audit.model} version {audit.version}"),
            "baselines": evaluate.get("details", {}).get("baselines", []), "figures": figures(bundle),
            "problem": audit.problem, "records": audit.ledger.records, "chain_records": audit.chain_records,
            "signed_by": audit.ledger.signed_by, "functions": functions, "rows": rows, "gates": gates,
            "approvals": approvals, "drift": drift, "monitoring": monitoring, "not_measured": not_measured,
            "registered_by": registered_by}


MONITORING_HEADER = ["window to", "rows", "estimated (95% interval)", "realised", "verdict"]


def monitoring_rows(lifecycle: list[dict[str, Any]]) -> list[list[str]]:
    """Each monitor window of the version, its estimate of the judged metric beside what labels later showed
    (the newest labels record that reconciled it)."""
    reconciled: dict[str, dict[str, Any]] = {}
    for record in lifecycle:
        if record["step"] == "labels":
            for window in record["details"].get("windows", []):
                reconciled[window["monitor_record"]] = window
    rows = []
    for record in lifecycle:
        if record["step"] != "monitor":
            continue
        details, estimate = record["details"], record["details"].get("estimate") or {}
        window = reconciled.get(record["hash"])
        judged = next((m for m, c in (window or {}).get("metrics", {}).items() if c.get("judged")), None) or next(
            (m for m in ("accuracy", "rmse") if m in estimate), None)
        shown = (f"{judged} {estimate[judged]['expected']:.4f} ({estimate[judged]['interval'][0]:.4f} to "
                 f"{estimate[judged]['interval'][1]:.4f})") if judged else "not estimated"
        realised = f"{window['metrics'][judged]['realised']:.4f}" if window and judged in window["metrics"] else \
            "no labels yet"
        verdict = ("CONCEPT SHIFT" if window["concept_shift"] else "SHIFT WITH DRIFT" if window.get(
            "shift_with_drift") else "estimate held") if window else (
            "; ".join(details.get("alerts", [])) or "no alert")
        rows.append([details["window"]["until"][:19], str(details["window"]["rows"]), shown, realised, verdict])
    return rows


def reason_of(approval: dict[str, Any]) -> str:
    """The approver's reason, and the drift they accepted when they acknowledged one."""
    acknowledged = approval["details"].get("drift_acknowledged")
    said = f" (promoted despite drift: {acknowledged['summary']}; {acknowledged['reason']})" if acknowledged else ""
    return str(approval["details"]["reason"]) + said


def drift_word(record: dict[str, Any]) -> str:
    """As the CLI says it."""
    return "DRIFT" if record["decision"] == "fail" else "no drift"


def _gate_row(g: dict[str, Any]) -> list[str]:
    return [g["id"], describe(g["id"]), measured(g), bound(g["id"], g["threshold"]), g.get("reference", "the config"),
            check_verdict(g)]


GATE_HEADER = ["check", "measures", "value", "must be", "measured against", "result"]


def render_markdown(data: dict[str, Any]) -> str:
    ok = "verified" if data["verified"] else f"DOES NOT VERIFY: {data['problem']}"
    lines = [f"# AI RMF audit report: {data['model']} version {data['version']}", "",
             f"Generated {data['generated']}.", "", "## Verdict", "", data["verdict"], "",
             f"- ledger root `{data['root']}`: {ok}",
             f"- {data['records']} pipeline records, {data['chain_records']} chain records, "
             f"signed by: {data['signed_by'] or 'not signed'}", f"- registered by: {data['registered_by']}",
             f"- task: {data['task']['kind']}" + (f" ({', '.join(data['task']['classes'][:20])})"
                                                  if data["task"]["classes"] else "") + f", {data['task']['rule']}",
             "- test metrics: " + (", ".join(f"{k} {v}" for k, v in data["metrics"].items()
                                             if k in HEADLINE_METRICS) or "none recorded"), "",
             "## Gate decisions", "", "| step | " + " | ".join(GATE_HEADER) + " | RMF |", "|---" * 8 + "|"]
    lines += [f"| {g['step']} | " + " | ".join(_gate_row(g)) + f" | {', '.join(rmf_of(g['id']))} |"
              for g in data["gates"]]
    lines += ["", "## Compared with simple models (same split)", ""]
    lines += [f"- {comparison_words(b)}" for b in data["baselines"]] or ["- not measured"]
    lines += ["", "## Figures", ""] + ([f"- files/evaluate/{name}" for name in data["figures"]] or ["- none"])
    lines += ["", "## Coverage by function", "", "| function | " + " | ".join(STATUSES) + " |", "|---" * 5 + "|"]
    lines += [f"| {f} | " + " | ".join(str(c[s]) for s in STATUSES) + " |" for f, c in data["functions"].items()]
    lines += ["", "## The pipeline could evidence these and did not", ""]
    lines += [f"- {r['id']} {r['title']}: {r['detail']}" for r in data["rows"]
              if r["status"] == "not evidenced"] or ["- none"]
    lines += ["", "## Organisational documents to attach (governance.artefacts)", ""]
    lines += [f"- {r['id']} {r['title']}: {r['detail'].removeprefix('needs a human artefact: ')}"
              for r in data["rows"] if r["status"] == "document to attach"] or ["- none"]
    lines += ["", "## Subcategories", "", "| id | title | status | records / artefact / reason |", "|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['title']} | {r['status']} | {r['detail']} |" for r in data["rows"]]
    lines += ["", "## Approvals", ""]
    lines += [f"- {r['finished']}: {r['step']} {r['details']['from_version'] or '-'} → {r['details']['to_version']} "
              f"by {who(r['details']['approver'], r['details'].get('approver_identity'))}: {reason_of(r)}"
              for r in data["approvals"]] or ["- none"]
    lines += ["", "## Drift history", ""]
    lines += [f"- {r['finished']}: {drift_word(r)} ({r['details'].get('summary', '')})"
              for r in data["drift"]] or ["- none"]
    lines += ["", "## Served traffic: estimated against realised", ""]
    lines += (["| " + " | ".join(MONITORING_HEADER) + " |", "|" + "---|" * len(MONITORING_HEADER)]
              + ["| " + " | ".join(row) + " |" for row in data["monitoring"]]) if data["monitoring"] else ["- none"]
    lines += ["", "## Not measured (MEASURE 1.1)",
              ""] + ([f"- {n}" for n in data["not_measured"]] or ["- nothing listed"])
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[Any]], css: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{f' id={css!r}' if css else ''}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _list(items: list[str]) -> str:
    return "<ul>" + ("".join(f"<li>{escape(i)}</li>" for i in items) or "<li>none</li>") + "</ul>"


def render_html(data: dict[str, Any]) -> str:
    status_class = {"evidenced": "ok", "artefact linked": "linked", "not evidenced": "gap",
                    "document to attach": "doc"}
    sub_rows = "".join(
        f"<tr class='{status_class[r['status']]}'><td>{escape(r['id'])}</td><td>{escape(r['title'])}</td>"
        f"<td>{escape(r['status'])}</td><td>{escape(r['detail'])}</td></tr>" for r in data["rows"])
    ok = "verified" if data["verified"] else f"DOES NOT VERIFY: {data['problem']}"
    metrics = ", ".join(f"{k} {v}" for k, v in data["metrics"].items() if k in HEADLINE_METRICS) or "none recorded"
    task = data["task"]
    figures = "".join(f"<figure><img alt='{escape(name)}' src='{uri}'><figcaption>{escape(name)}</figcaption>"
                      f"</figure>" for name, uri in data["figures"].items()) or "<p>none</p>"
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>AI RMF audit: {escape(data['model'])} v{escape(data['version'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:80em}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}
p.verdict{{font-size:110%;border-left:4px solid #444;padding-left:1em}}figure{{display:inline-block;margin:0 1em 1em 0}}
figure img{{max-width:36em}}
tr.ok td:nth-child(3){{background:#d9f2d9}}tr.linked td:nth-child(3){{background:#dde8fa}}
tr.gap td:nth-child(3){{background:#fbe0dc}}tr.doc td:nth-child(3){{background:#eee}}code{{font-size:90%}}</style>
</head><body>
<h1>AI RMF audit report: {escape(data['model'])} version {escape(data['version'])}</h1>
<p>Generated {escape(data['generated'])}.</p>
<h2>Verdict</h2>
<p class="verdict" id="verdict">{escape(data['verdict'])}</p>
<ul><li>ledger root <code>{escape(str(data['root']))}</code>: <b>{escape(ok)}</b>; {data['records']} pipeline records,
{data['chain_records']} chain records, signed by: {escape(str(data['signed_by'] or 'not signed'))}</li>
<li>registered by {escape(data['registered_by'])}</li>
<li>task: {escape(task['kind'])}{escape(' (' + ', '.join(task['classes'][:20]) + ')' if task['classes'] else '')},
{escape(task['rule'])}</li><li>test metrics: {escape(metrics)}</li></ul>
<h2>Gate decisions</h2>
{_table(["step", *GATE_HEADER, "RMF"], [[g["step"], *_gate_row(g), ", ".join(rmf_of(g["id"]))]
                                       for g in data["gates"]], "gates")}
<h2>Compared with simple models (same split)</h2>
{_list([comparison_words(b) for b in data["baselines"]])}
<h2>Figures</h2>
{figures}
<h2>Coverage by function</h2>
{_table(["function", *STATUSES], [[f, *(c[s] for s in STATUSES)] for f, c in data["functions"].items()])}
<h2>The pipeline could evidence these and did not</h2>
{_list([f"{r['id']} {r['title']}: {r['detail']}" for r in data["rows"] if r["status"] == "not evidenced"])}
<h2>Organisational documents to attach (governance.artefacts)</h2>
<p>No pipeline can produce these: link each in the config's governance.artefacts (a URL, or a file whose sha256
the report checks).</p>
{_list([f"{r['id']} {r['title']}: {r['detail'].removeprefix('needs a human artefact: ')}" for r in data["rows"]
        if r["status"] == "document to attach"])}
<h2>Subcategories</h2>
<table><thead><tr><th>id</th><th>title</th><th>status</th><th>records / artefact / reason</th></tr></thead>
<tbody>{sub_rows}</tbody></table>
<h2>Approvals</h2>
{_table(["when", "action", "from", "to", "approver", "reason"],
        [[r["finished"], r["step"], r["details"]["from_version"] or "-", r["details"]["to_version"],
          who(r["details"]["approver"], r["details"].get("approver_identity")), reason_of(r)]
         for r in data["approvals"]])}
<h2>Drift history</h2>
{_table(["when", "result", "summary"],
        [[r["finished"], drift_word(r), r["details"].get("summary", "")] for r in data["drift"]])}
<h2>Served traffic: estimated against realised</h2>
{_table(MONITORING_HEADER, data["monitoring"])}
<h2>Not measured (MEASURE 1.1)</h2>
{_list(data["not_measured"])}
</body></html>
"""
