"""The model card, generated from the sealed evidence and the model's chain, never typed by hand.
One structure, rendered as Markdown (the MLflow model version description) and as HTML (an artifact)."""
from __future__ import annotations

from html import escape
from typing import Any

from govtrain.core.config import Config
from govtrain.governance.audit import check_verdict

Section = tuple[str, list[str] | tuple[list[str], list[list[Any]]]]  # (title, lines | (header, rows))


def _records(ledger: dict) -> dict[str, dict]:
    return {r["step"]: r for r in ledger["records"]}


def task_line(task: dict | None) -> str:
    if not task:
        return "- binary (a run from before tasks were recorded)"
    what = {"binary": f"binary, positive class `{task['classes'][-1]}`" if task["classes"] else "binary",
            "multiclass": f"multiclass, {len(task['classes'])} classes: {', '.join(task['classes'][:20])}",
            "regression": f"regression of a number (mean {task['mean']:.4g}, std {task['std']:.4g})"}[task["kind"]]
    return f"- {what}; {task.get('rule', '')}"


def calibration_lines(metrics: dict) -> list[str]:
    if "interval_coverage" in metrics:
        return [f"- split-conformal {metrics['interval_level']:.0%} interval, +/- {metrics['interval_half_width']} "
                f"(fitted on val): covers {metrics['interval_coverage']} of test rows"]
    top = "top-label " if "classwise_ece" in metrics else ""
    lines = [f"- {top}ECE (15 equal-width bins): {metrics.get('ece')}, beyond sampling noise "
             f"{metrics.get('ece_excess')}"]
    if "classwise_ece" in metrics:
        lines.append(f"- classwise ECE: {metrics['classwise_ece']}")
    return [*lines, f"- Brier score: {metrics.get('brier')}"]


def baseline_rows(rows: list[dict]) -> list[list[Any]]:
    """The simple models beside the network, with a verdict in words: an auditor's first question."""
    found = []
    for row in rows:
        gap = f"{row['gap']:+.1%}" if row["metric"] == "rmse" else f"{row['gap']:+.4f}"
        verdict = "the network does better" if row["gap"] <= 0 else f"this model does better ({gap})"
        found.append([row["model"], row["metric"], row["value"], row["network"], verdict])
    return found


def card_sections(config: Config, ledger: dict, approvals: list[dict]) -> list[Section]:
    by_step = _records(ledger)
    reg, ds = config.registry, config.dataset
    prepare, train, evaluate = by_step.get("prepare", {}), by_step.get("train", {}), by_step.get("evaluate", {})
    metrics = evaluate.get("metrics", {})
    sections: list[Section] = [
        # First: MLflow keeps 5000 characters of the card as the version's description (the rest is an artifact).
        ("Provenance", [f"- govtrain run `{ledger['run_id']}`, ledger root `{ledger['root']}`"
                        + (f", signed by `{ledger['signature']['public_key']}`" if ledger.get("signature") else ""),
                        "- verify: `govtrain audit verify --model NAME/VERSION`"]),
        ("Intended use", [reg.intended_use]),
        ("Limitations", [f"- {item}" for item in reg.limitations] or ["- none stated"]),
        ("Task", [task_line(prepare.get("details", {}).get("task"))]),
        ("Data", ([f"- source `{ds.path.name}`, target `{ds.target}`, {len(ds.numeric)} numeric and "
                   f"{len(ds.categorical)} categorical features; sensitive attributes: "
                   f"{', '.join(ds.sensitive) or 'none'}",
                   f"- split: {config.split.strategy} (train {config.split.fractions.train}, val "
                   f"{config.split.fractions.val}, test {config.split.fractions.test}, seed {config.split.seed})"]
                  + [f"- {o['name']}: {o.get('rows')} rows, sha256 `{o['sha256']}`" for o in prepare.get("outputs", [])]
                  + [f"- {key}: {value}" for key, value in reg.datasheet.items()])),
        ("Training", [f"- {train.get('metrics', {}).get('world_size')} worker(s), backend "
                      f"{train.get('details', {}).get('backend')}, device "
                      f"{train.get('details', {}).get('device_name')}, "
                      f"{train.get('metrics', {}).get('epochs')} epochs, "
                      f"{train.get('metrics', {}).get('restart_count')} restart(s)",
                      f"- compute: {train.get('metrics', {}).get('worker_seconds')} worker-seconds, "
                      f"{train.get('metrics', {}).get('gpu_seconds')} GPU-seconds, cost "
                      f"{train.get('metrics', {}).get('cost')}"]),
        ("Test metrics", (["metric", "value"], [[k, v] for k, v in metrics.items()])),
        ("Compared with simple models (same split)", (["model", "metric", "its value", "network", "verdict"],
                                                      baseline_rows(evaluate.get("details", {}).get("baselines", [])))),
        ("Calibration", calibration_lines(metrics)),
        ("Robustness", [f"- headline metric kept under Gaussian noise of {config.gates.noise_severity} std: "
                        f"{metrics.get('noise_auc_ratio', metrics.get('noise_metric_ratio'))} of clean"]),
        # The card is the version's description (5000 characters in MLflow): what each check measures is in
        # the audit report and the run summary, which read governance/gates.py.
        ("Gates", (["check", "value", "threshold", "result"],  # data_gate repeats its inputs' checks
                   [[c["id"], c["value"], c["threshold"], check_verdict(c)]
                    for step in ("data_gate", "evaluate") for c in by_step.get(step, {}).get("checks", [])])),
        # A default threshold is derived from a reference (governance/gates.py): the card says from which
        ("What the gates were measured against", [
            f"- {c['id']}: {c['reference']}" for step in ("data_gate", "evaluate")
            for c in by_step.get(step, {}).get("checks", []) if c.get("reference")]
         or ["- thresholds from the config"]),
        ("Not measured", [f"- {n}" for n in sorted({n for r in ledger["records"] for n in r.get("not_measured", [])})]
         or ["- nothing listed"]),
        ("NIST AI RMF subcategories evidenced", (["subcategory", "records"], [
            [sid, ", ".join(f"{r['step']} `{r['hash'][:12]}`" for r in ledger["records"] if sid in r.get("rmf", []))]
            for sid in sorted({s for r in ledger["records"] for s in r.get("rmf", [])},
                              key=lambda x: (x.split()[0], [int(p) for p in x.split()[1].split(".")]))])),
        ("Approval history", [f"- {a['finished']}: {a['step']} {a['details']['from_version'] or '-'} → "
                              f"{a['details']['to_version']} by {a['details']['approver']}: {a['details']['reason']}"
                              for a in approvals] or ["- not yet approved (alias challenger)"]),
    ]
    return sections


def to_markdown(title: str, sections: list[Section]) -> str:
    lines = [f"# {title}", ""]
    for name, body in sections:
        lines += [f"## {name}", ""]
        if isinstance(body, tuple):
            header, rows = body
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
        else:
            lines += body
        lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: list[Section]) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
             "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}</style></head><body>",
             f"<h1>{escape(title)}</h1>"]
    for name, body in sections:
        parts.append(f"<h2>{escape(name)}</h2>")
        if isinstance(body, tuple):
            header, rows = body
            parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>"
                                   for row in rows)
                         + "</table>")
        else:
            items = [line[2:] for line in body if line.startswith("- ")]
            parts.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>" if len(items) == len(body)
                         else "".join(f"<p>{escape(line)}</p>" for line in body))
    return "".join(parts) + "</body></html>\n"


def model_card(config: Config, ledger: dict, approvals: list[dict]) -> tuple[str, str]:
    """(markdown, html)."""
    sections = card_sections(config, ledger, approvals)
    title = f"Model card: {config.registry.model_name}"
    return to_markdown(title, sections), to_html(title, sections)


def with_approvals(card_md: str, approvals: list[dict]) -> str:
    """The card with its "Approval history" section replaced (after a promotion or rollback)."""
    lines = [f"- {a['finished']}: {a['step']} {a['details']['from_version'] or '-'} → {a['details']['to_version']} "
             f"by {a['details']['approver']}: {a['details']['reason']}" for a in approvals]
    head, marker, rest = card_md.partition("## Approval history\n")
    if not marker:
        return card_md.rstrip() + "\n\n## Approval history\n\n" + "\n".join(lines) + "\n"
    following = rest.find("\n## ")
    tail = rest[following:] if following >= 0 else "\n"
    return head + marker + "\n" + "\n".join(lines) + "\n" + tail


def description(card_md: str) -> str:
    """MLflow keeps at most 5000 characters of a description; the whole card is an artifact. A card too long
    leaves out whole sections, the gates first (each is also a version tag govtrain.gate.<check>), and says so."""
    note = "\n\n… (full card: run artifact model_card/model_card.md and .html)"
    for dropped in ("What the gates were measured against", "Gates", "Not measured"):
        if len(card_md) <= 5000:
            return card_md
        head, found, rest = card_md.partition(f"\n## {dropped}\n")
        if found:
            following = rest.find("\n## ")
            where = "the full card and the govtrain.gate.* tags" if dropped == "Gates" else "the full card"
            card_md = head + f"\n## {dropped}\n\n(in {where})\n" + (rest[following:] if following >= 0 else "")
    return card_md if len(card_md) <= 5000 else card_md[:5000 - len(note)] + note
