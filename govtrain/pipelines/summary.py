"""The end-of-run summary: steps, gates, registration, where the evidence is."""
from __future__ import annotations

from datetime import datetime

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from govtrain.governance.audit import check_verdict
from govtrain.governance.evidence import blocks
from govtrain.governance.gates import bound, describe
from govtrain.governance.verdict import paragraph
from govtrain.pipelines.run import LocalRun

COLOURS = {"pass": "green", "FAIL": "red", "warn": "yellow"}
STEPS = ["prepare", "validate", "leakage", "data_gate", "train", "evaluate", "register"]


def _seconds(record: dict) -> float:
    return (datetime.fromisoformat(record["finished"]) - datetime.fromisoformat(record["started"])).total_seconds()


def number(value: object) -> str:
    """At most 4 decimals: 0.751857 -> 0.7519, 0.0 -> 0, 3 -> 3."""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def next_steps(run: LocalRun) -> list[str]:
    """What to do next, with this run's values filled in."""
    reg = run.registration
    if not reg:
        return [f"what stopped it:   govtrain audit verify {run.run_dir}   (and {run.run_dir / 'pipeline.log'})",
                "fix the data or the config, then run again: a refused run registers nothing"]
    name, version = reg["model_name"], reg["version"]
    return [f"review the card:   govtrain ui   (then Models > {name} > Version {version})",
            f"audit report:      govtrain audit report --model {name}/{version}",
            f"approve it:        govtrain promote --model {name}/{version} --reason \"...\"",
            "                   (separation of duties: not the person who ran this run;",
            "                    with MLflow's basic-auth app, the login decides)",
            f"watch for drift:   govtrain drift --model {name}@champion --current <batch.csv>"]


def print_summary(run: LocalRun, console: Console) -> None:
    records = {r["step"]: r for r in run.ledger["records"]}
    steps = Table(title=f"govtrain run {run.run_id}", title_justify="left")
    for column in ("step", "status", "seconds"):
        steps.add_column(column)
    for step in STEPS:
        record = records.get(step)
        if record is None:
            steps.add_row(step, "[dim]skipped[/]", "")
        else:
            colour = "green" if record["decision"] == "pass" else "red"
            # The register record is sealed before the MLflow upload, so its own span misses the upload.
            seconds = run.registration["seconds"] if step == "register" and run.registration else _seconds(record)
            steps.add_row(step, f"[{colour}]{record['decision']}[/]", f"{seconds:.1f}")
    console.print(steps)

    # At 80 columns (CI, `make run | tee`) the numbers are never elided: the names fold instead.
    gates = Table(title="gates", title_justify="left")
    gates.add_column("check", overflow="fold", ratio=1)
    for column in ("value", "must be", "kind", "result"):  # rows and intervals: evaluation.md, the audit report
        gates.add_column(column, no_wrap=True)
    for step in ("data_gate", "evaluate"):
        for check in records.get(step, {}).get("checks", []):
            verdict = check_verdict(check)
            gates.add_row(check["id"], number(check["value"]), bound(check["id"], number(check["threshold"])),
                          "gated" if check.get("gated", True) else "reported", f"[{COLOURS[verdict]}]{verdict}[/]")
    console.print(gates)

    failed = records.get("validate", {}).get("details", {}).get("failed", [])
    if failed:  # which expectations, so the user need not open the Data Docs to start fixing
        expectations = Table(title="failed expectations (critical fail the gate)", title_justify="left")
        for column in ("split", "column", "expectation", "severity", "unexpected"):
            expectations.add_column(column)
        for row in failed[:12]:
            shown = row["unexpected_count"] if row["unexpected_count"] is not None else row["observed"]
            expectations.add_row(row["split"], str(row["column"] or ""), row["expectation"], row["severity"],
                                 str(shown))
        console.print(expectations)

    task = records.get("prepare", {}).get("details", {}).get("task")
    if task:
        classes = f" ({len(task['classes'])} classes)" if task["kind"] == "multiclass" else ""
        positive = f" (positive class {task['classes'][1]!r})" if task["kind"] == "binary" else ""
        console.print(f"task: {task['kind']}{classes}{positive}, {task['rule']}", markup=False)
    if "train" in records:
        train = records["train"]
        m, d = train["metrics"], train["details"]
        gpu = f", {m['gpu_seconds']:.1f} GPU-seconds" if m["gpu_seconds"] else ""
        price = d["price_per_worker_hour"]
        cost = f", cost {m['cost']:.4f} at {price}/worker-hour" if price else ""
        console.print(f"trained on {m['world_size']} worker(s) ({d['backend']}, {d['device_name']}): {m['epochs']} "
                      f"epochs, "
                      f"{m['restart_count']} restart(s), {m['worker_seconds']:.1f} worker-seconds{gpu}{cost}")

    if run.registration:
        reg = run.registration
        console.print(f"[bold green]registered[/] model [bold]{reg['model_name']}[/] version {reg['version']} "
                      f"alias @{reg['alias']}  (MLflow run {reg['mlflow_run_id']})")
    else:
        failed = [c for s in ("data_gate", "evaluate") for c in records.get(s, {}).get("checks", []) if blocks(c)]
        console.print(f"[bold red]{run.ledger['outcome']}[/]: registered nothing; {len(failed)} failed check(s)")
        for check in failed:  # what each failed gate measures, from governance/gates.py
            console.print(f"  {check['id']}: {describe(check['id'])} was {check['value']}, "
                          f"limit {check['threshold']}", markup=False)
            if check.get("reference"):  # what the reference achieved: the refusal read against it
                console.print(f"    {check['reference']}", markup=False)
    registered = f"{run.registration['model_name']} version {run.registration['version']}" if run.registration else None
    # soft_wrap off for this one: the console keeps paths whole, a paragraph must wrap
    console.print(Panel(Text(paragraph(run.ledger, registered=registered)), title="verdict", title_align="left",
                        width=min(console.width, 100)), soft_wrap=False)
    console.print(f"evidence and sealed ledger: {run.run_dir}  (root {run.ledger['root'][:16]}…)")
    console.print(f"verify it:         govtrain audit verify {run.run_dir}", markup=False)
    for line in next_steps(run):
        console.print(line, markup=False, highlight=False)
    console.print(f"pipeline took {run.seconds:.1f} s; log: {run.run_dir / 'pipeline.log'}")
