"""The model card, generated from the sealed evidence and the model's chain, never typed by hand.
One structure, rendered as Markdown (the MLflow model version description) and as HTML (an artifact)."""
from __future__ import annotations

import re
from html import escape
from typing import Any

from govtrain.core.config import Config
from govtrain.governance.audit import check_verdict
from govtrain.governance.gates import bound
from govtrain.governance.report import FIGURES, reason_of
from govtrain.governance.rmf import standing
from govtrain.governance.verdict import comparison_words, paragraph

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
        if metrics.get("interval_follows_row"):
            return [f"- normalised split-conformal {metrics['interval_level']:.0%} interval (fitted on val; its width "
                    f"follows the row): half-width {metrics['interval_half_width']} at the median test row, "
                    f"{metrics['interval_half_width_p10']} to {metrics['interval_half_width_p90']} from the 10th to "
                    f"the 90th percentile; covers {metrics['interval_coverage']} of test rows"]
        why = (f"; one width for every row: its scale model did not track the error on held-out train rows (Spearman "
               f"{metrics['interval_scale_spearman']})" if "interval_scale_spearman" in metrics else "")
        return [f"- split-conformal {metrics['interval_level']:.0%} interval, +/- {metrics['interval_half_width']} "
                f"(fitted on val): covers {metrics['interval_coverage']} of test rows{why}"]
    top = "top-label " if "classwise_ece" in metrics else ""
    lines = [f"- {top}ECE (15 equal-width bins): {metrics.get('ece')}, beyond sampling noise "
             f"{metrics.get('ece_excess')}"]
    if "classwise_ece" in metrics:
        lines.append(f"- classwise ECE: {metrics['classwise_ece']}")
    return [*lines, f"- Brier score: {metrics.get('brier')}"]


def sampled_lines(sampled: dict | None) -> list[str]:
    """What evaluate measured on a sample, and the headline metric on every test row (evaluation/sampled.py)."""
    if not sampled:
        return []
    every = sampled["headline_on_every_test_row"]
    return [f"- evaluate measured a seeded sample (seed {sampled['seed']}) of {s['measured']:,} of the {name} split's "
            f"{s['rows']:,} rows (evaluation.max_rows)" for name, s in sampled["splits"].items()] + [
        f"- {every['metric']} on every one of the {every['rows']:,} test rows: {every['value']}"]


def baseline_rows(rows: list[dict]) -> list[list[Any]]:
    """The simple models beside the network, with a verdict in words the right way round: an auditor's first
    question."""
    return [[row["model"].removeprefix("sklearn "), row["metric"], row["value"], row["network"],
             comparison_words(row)] for row in rows]


# The record's metrics in groups, with the words a reviewer reads (evaluation.json keeps every name).
METRIC_GROUPS: dict[str, dict[str, str]] = {
    "discrimination": {"roc_auc": "ROC AUC", "pr_auc": "average precision (PR AUC)", "macro_auc": "macro ROC AUC",
                       "accuracy": "accuracy", "f1": "F1 at 0.5", "macro_f1": "macro-F1", "rmse": "RMSE",
                       "mae": "MAE", "r2": "R²", "log_loss": "log loss"},
    "calibration": {"ece": "expected calibration error (ECE)", "ece_excess": "ECE beyond sampling noise",
                    "ece_before_scaling": "ECE before temperature scaling", "brier": "Brier score",
                    "classwise_ece": "classwise ECE", "interval_coverage": "interval coverage",
                    "interval_half_width": "interval half-width", "temperature": "temperature"},
    "robustness": {"noise_auc_ratio": "share of ROC AUC kept under noise",
                   "noise_metric_ratio": "share of the headline metric kept under noise",
                   "pgd_auc": "ROC AUC under a PGD attack", "pgd_macro_f1": "macro-F1 under a PGD attack",
                   "pgd_rmse": "RMSE under a PGD attack", "ood_auroc": "out-of-distribution detection AUROC"},
    "privacy": {"mia_auc": "membership-inference attack AUC"},
    "cost": {"latency_p99_ms_batch1": "p99 latency at batch 1 (ms)", "test_rows": "test rows"},
}


def metric_rows(metrics: dict, intervals: dict, fairness: dict) -> list[list[Any]]:
    rows = []
    for group, names in METRIC_GROUPS.items():
        for name, label in names.items():
            if name in metrics:
                ci = intervals.get(name)
                shown = f"{metrics[name]}" + (f" (95% CI {ci[0]:.4f} to {ci[1]:.4f})" if ci else "")
                rows.append([group, label, shown])
    for column, found in fairness.items():
        for name, value in found.items():
            if name != "groups_judged":
                rows.append(["fairness", f"{name.replace('_', ' ')} across {column}", round(value, 6)])
    return rows or [["-", "no metrics recorded", ""]]


def short_reference(check: dict) -> str:
    """What a gate was measured against, in a few words: the config's threshold, or the reference it came from."""
    reference = check.get("reference")
    if not reference:
        return "config"
    parts = reference.split("; ")
    if parts[0].startswith("set by a person"):
        return "config" + (f"; {parts[1]}" if len(parts) > 1 else "")[:80]
    text = parts[1] if parts[0].startswith("no threshold was set") and len(parts) > 1 else parts[0]
    return text[:80] + ("…" if len(text) > 80 else "")


def gate_rows(by_step: dict[str, dict]) -> list[list[Any]]:
    """The model gate's checks one by one; the data gate's passing checks in one row (each is also a version tag
    govtrain.gate.<check>), its failed or warned ones one by one."""
    rows = []
    data = by_step.get("data_gate", {}).get("checks", [])
    passed = [c for c in data if c["passed"]]
    if passed:
        rows.append([f"data gate: {len(passed)} checks (validation, leakage)", "-", "-", "tags govtrain.gate.*",
                     "pass"])
    rows += [[c["id"], c["value"], bound(c["id"], c["threshold"]), short_reference(c), check_verdict(c)]
             for c in data if not c["passed"]]
    rows += [[c["id"], c["value"], bound(c["id"], c["threshold"]), short_reference(c), check_verdict(c)]
             for c in by_step.get("evaluate", {}).get("checks", [])]
    return rows


def importance_lines(found: dict | None, top: int = 8) -> list[str]:
    if not found or not found.get("features"):
        return ["- not computed (MEASURE 2.9 is a gap in this version)"]
    metric = found["metric"]
    lines = [f"- permutation importance on {found['rows']} test rows, {found['repeats']} shuffles each: the drop in "
             f"{metric} when the feature is shuffled (95% interval)"]
    lines += [f"- `{r['feature']}`: {r['drop']:+.4f} ({r['interval'][0]:+.4f} to {r['interval'][1]:+.4f})"
              for r in found["features"][:top]]
    return lines


def figure_lines(by_step: dict[str, dict]) -> list[str]:
    """The evaluate step's figures as images served by the MLflow server from the run's evidence artifacts (the
    version page renders them; relative to the server, so no host is written into the card)."""
    run = by_step.get("register", {}).get("details", {}).get("mlflow_run_id")
    names = [o["name"].rsplit("/", 1)[-1] for o in by_step.get("evaluate", {}).get("outputs", [])
             if o["name"].endswith(".png")]
    if not run or not names:
        return ["- in the run's evidence (files/evaluate/*.png)"]
    return [f"![{FIGURES.get(n, n)}](get-artifact?path=evidence/files/evaluate/{n}&run_uuid={run})"
            for n in sorted(names, key=lambda n: list(FIGURES).index(n) if n in FIGURES else 99)]


def _subcategory_key(sid: str) -> tuple[str, list[int]]:
    return sid.split()[0], [int(p) for p in sid.split()[1].split(".")]


def rmf_rows(records: list[dict]) -> list[list[str]]:
    """The subcategories the records' content supports (governance/rmf.py), with the records."""
    held = {r["hash"]: standing(r)[0] for r in records}
    return [[sid, ", ".join(f"{r['step']} `{r['hash'][:12]}`" for r in records if sid in held[r["hash"]])]
            for sid in sorted({s for claims in held.values() for s in claims}, key=_subcategory_key)]


def step_lines(train: dict) -> list[str]:
    """How a step ran: what its all-reduce cost (the last epoch, rank 0) and whether it was compiled."""
    metrics, details = train.get("metrics", {}), train.get("details", {})
    communication, compiled = details.get("communication") or {}, details.get("compile") or {}
    lines = []
    if "comm_share" in metrics:
        lines.append(f"- communication: {metrics['comm_share']:.1%} of step time exposed, "
                     f"{metrics['comm_overlap']:.0%} of the all-reduce hidden behind backward, "
                     f"{metrics['comm_bytes_per_step'] / 1024:.0f} KiB all-reduced a step (bucket "
                     f"{communication.get('bucket_cap_mb')} MB, hook {communication.get('comm_hook')}, "
                     f"{communication.get('grad_accumulation')} micro-batch(es) a step)")
    if compiled:
        lines.append(f"- compile: {compiled.get('setting')}, ran {compiled.get('mode') or 'eager'}"
                     + (f" ({compiled['why']})" if compiled.get("why") else ""))
    return lines


def card_sections(config: Config, ledger: dict, approvals: list[dict]) -> list[Section]:
    by_step = _records(ledger)
    reg, ds = config.registry, config.dataset
    prepare, train, evaluate = by_step.get("prepare", {}), by_step.get("train", {}), by_step.get("evaluate", {})
    metrics, details = evaluate.get("metrics", {}), evaluate.get("details", {})
    sections: list[Section] = [
        # First: MLflow keeps 5000 characters of the card as the version's description (the rest is an artifact).
        ("Verdict", [paragraph(ledger)]),
        ("Provenance", [f"- govtrain run `{ledger['run_id']}`, ledger root `{ledger['root']}`"
                        + (f", signed by `{ledger['signature']['public_key']}`" if ledger.get("signature") else ""),
                        f"- verify: `govtrain audit verify --model {reg.model_name}/VERSION`"]),
        ("Intended use", [reg.intended_use]),
        ("Limitations", [f"- {item}" for item in reg.limitations] or ["- none stated"]),
        ("Task", [task_line(prepare.get("details", {}).get("task"))]),
        ("Data", ([f"- source `{ds.source_name}`, target `{ds.target}`, {len(ds.numeric)} numeric and "
                   f"{len(ds.categorical)} categorical features; sensitive attributes: "
                   f"{', '.join(ds.sensitive) or 'none'}",
                   f"- split: {config.split.strategy} (train {config.split.fractions.train}, val "
                   f"{config.split.fractions.val}, test {config.split.fractions.test}, seed {config.split.seed})"]
                  + [f"- {o['name']}: {o.get('rows')} rows, sha256 `{o['sha256']}`" for o in prepare.get("outputs", [])]
                  + sampled_lines(details.get("sampled"))
                  + [f"- {key}: {value}" for key, value in reg.datasheet.items()])),
        ("Training", [f"- {train.get('metrics', {}).get('world_size')} worker(s), backend "
                      f"{train.get('details', {}).get('backend')}, device "
                      f"{train.get('details', {}).get('device_name')}, "
                      f"{train.get('metrics', {}).get('epochs')} epochs, "
                      f"{train.get('metrics', {}).get('restart_count')} restart(s)",
                      f"- compute: {train.get('metrics', {}).get('worker_seconds')} worker-seconds, "
                      f"{train.get('metrics', {}).get('gpu_seconds')} GPU-seconds, cost "
                      f"{train.get('metrics', {}).get('cost')}", *step_lines(train)]),
        ("Gates", (["check", "value", "must be", "measured against", "result"], gate_rows(by_step))),
        ("Compared with simple models (same split)", (["model", "metric", "its value", "network", "verdict"],
                                                      baseline_rows(details.get("baselines", [])))),
        ("Figures", figure_lines(by_step)),
        ("Test metrics", (["group", "metric", "value"], metric_rows(metrics, details.get("confidence_intervals", {}),
                                                                    details.get("fairness", {})))),
        ("What the model leans on", importance_lines(details.get("importance"))),
        ("Calibration", calibration_lines(metrics)),
        ("Robustness", [f"- headline metric kept under Gaussian noise of {config.gates.noise_severity} std: "
                        f"{metrics.get('noise_auc_ratio', metrics.get('noise_metric_ratio'))} of clean"]),
        ("What the gates were measured against", [
            f"- {c['id']}: {c['reference']}" for step in ("data_gate", "evaluate")
            for c in by_step.get(step, {}).get("checks", []) if c.get("reference")]
         or ["- thresholds from the config"]),
        ("Not measured", [f"- {n}" for n in sorted({n for r in ledger["records"] for n in r.get("not_measured", [])})]
         or ["- nothing listed"]),
        ("NIST AI RMF subcategories evidenced", (["subcategory", "records"], rmf_rows(ledger["records"]))),
        ("Approval history", [f"- {a['finished']}: {a['step']} {a['details']['from_version'] or '-'} → "
                              f"{a['details']['to_version']} by {a['details']['approver']}: {reason_of(a)}"
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


def inline(text: str) -> str:
    """Markdown's inline marks as HTML: `code`, **bold** and ![images](url); the rest escaped."""
    html = escape(text)
    html = re.sub(r"!\[([^\]]*)\]\(([^)\s]+)\)", r"<img alt='\1' src='\2'>", html)
    html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", html)


def to_html(title: str, sections: list[Section], figures: dict[str, str] | None = None) -> str:
    """The card as one HTML file; with `figures` (name -> data URI) the images are inside it."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>"
             "body{font-family:sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}img{max-width:36em;margin:0 1em 1em 0}"
             "</style></head><body>", f"<h1>{escape(title)}</h1>"]
    for name, body in sections:
        parts.append(f"<h2>{escape(name)}</h2>")
        if name == "Figures" and figures:
            parts.append("".join(f"<img alt='{escape(FIGURES.get(n, n))}' src='{uri}'>"
                                 for n, uri in figures.items()))
        elif isinstance(body, tuple):
            header, rows = body
            parts.append("<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
                         + "".join("<tr>" + "".join(f"<td>{inline(str(c))}</td>" for c in row) + "</tr>"
                                   for row in rows)
                         + "</table>")
        else:
            items = [line[2:] for line in body if line.startswith("- ")]
            parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in items) + "</ul>" if len(items) == len(body)
                         else "".join(f"<p{' id=verdict' if name == 'Verdict' else ''}>{inline(line)}</p>"
                                      for line in body))
    return "".join(parts) + "</body></html>\n"


def model_card(config: Config, ledger: dict, approvals: list[dict], figures: dict[str, str] | None = None
               ) -> tuple[str, str]:
    """(markdown, html)."""
    sections = card_sections(config, ledger, approvals)
    title = f"Model card: {config.registry.model_name}"
    return to_markdown(title, sections), to_html(title, sections, figures)


def with_approvals(card_md: str, approvals: list[dict]) -> str:
    """The card with its "Approval history" section replaced (after a promotion or rollback)."""
    lines = [f"- {a['finished']}: {a['step']} {a['details']['from_version'] or '-'} → {a['details']['to_version']} "
             f"by {a['details']['approver']}: {reason_of(a)}" for a in approvals]
    head, marker, rest = card_md.partition("## Approval history\n")
    if not marker:
        return card_md.rstrip() + "\n\n## Approval history\n\n" + "\n".join(lines) + "\n"
    following = rest.find("\n## ")
    tail = rest[following:] if following >= 0 else "\n"
    return head + marker + "\n" + "\n".join(lines) + "\n" + tail


DROPPED_FIRST = ("What the gates were measured against", "NIST AI RMF subcategories evidenced", "Not measured",
                 "Training", "What the model leans on", "Data", "Calibration", "Robustness", "Test metrics")


def description(card_md: str, version: str | None = None) -> str:
    """The card as the version's description: the provenance command filled with the version's number, within
    the 5000 characters MLflow keeps. A card too long leaves out whole sections, least read first, never the
    verdict or the gates, and says where they are (the whole card is an artifact)."""
    if version is not None:
        card_md = re.sub(r"(audit verify --model [^`]+/)VERSION`", rf"\g<1>{version}`", card_md, count=1)
    note = "\n\n… (full card: run artifact model_card/model_card.md and .html)"
    for dropped in DROPPED_FIRST:
        if len(card_md) <= 5000:
            return card_md
        head, found, rest = card_md.partition(f"\n## {dropped}\n")
        if found:
            following = rest.find("\n## ")
            card_md = head + f"\n## {dropped}\n\n(in the full card: model_card/model_card.html)\n" + (
                rest[following:] if following >= 0 else "")
    return card_md if len(card_md) <= 5000 else card_md[:5000 - len(note)] + note
