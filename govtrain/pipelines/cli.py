"""The govtrain command: run, compile, submit, drift and the other pipeline-level commands; the audit
and model-lifecycle commands register themselves from cli_audit.py and cli_models.py."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from govtrain.core.config import ConfigError, load_config
from govtrain.core.state import state_dir
from govtrain.pipelines.cli_common import (
    DEFAULT_CONFIG,
    ConfigOption,
    ModelConfigOption,
    ModelNameOption,
    app,
    check_paths,
    config_for,
    console,
    errors,
    expectations_app,
    user_errors,
)


@app.command("demo-data", rich_help_panel="Start")
@user_errors
def demo_data(
    out: Annotated[Path | None, typer.Option(
        help="Folder to write credit and current tables to; default: demo/ in the state folder.")] = None,
    rows: Annotated[int, typer.Option(help="Rows in the training table.")] = 100_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same bytes.")] = 7,
    drift: Annotated[float, typer.Option(help="How far the current batch drifts, 0 (none) to 1.")] = 0.6,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
    leak_duplicates: Annotated[int, typer.Option(
        help="Plant this many copied rows (new ids) to test the leakage gate.")] = 0,
    leak_target: Annotated[bool,
                           typer.Option(help="Plant a column derived from the label (collections_flag).")] = False,
) -> None:
    """Write a deterministic synthetic credit-risk table and a drifted current batch."""
    from govtrain.pipelines.demo_data import write_demo_data

    if fmt not in ("parquet", "csv"):
        raise ValueError(f"--format must be parquet or csv, got {fmt!r}")
    files = write_demo_data(out or state_dir() / "demo", rows, seed=seed, drift=drift, fmt=fmt,
                            leak_duplicates=leak_duplicates, leak_target=leak_target)
    console.print(f"wrote {files.data} ({files.rows} rows) and {files.current} ({files.current_rows} rows)")


@app.command(rich_help_panel="Start")
@user_errors
def init(
    data: Annotated[Path, typer.Option(help="Your table (CSV or Parquet).")],
    target: Annotated[str, typer.Option(help="The column to predict: two classes, several, or a number.")],
    out: Annotated[Path | None, typer.Option(help="Config file to write; default: <table's name>.yaml here.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing config.")] = False,
) -> None:
    """Draft a config from a table: every column a feature, the target, or left out with the reason.

    Example: govtrain init --data loans.csv --target defaulted   (writes loans.yaml; then govtrain run -c loans.yaml)
    """
    from govtrain.data.config_draft import draft_config

    path = out or Path(f"{data.stem}.yaml")
    if path.exists() and not force:
        raise ValueError(f"{path}: already exists; edit it, or pass --force to replace it")
    placed = draft_config(data, target, path)
    console.print(f"wrote {path}: {len(placed['numeric'])} numeric and {len(placed['categorical'])} categorical "
                  f"features, {len(placed['left out'])} column(s) left out (the file says why); next: "
                  f"govtrain run --config {path}", markup=False, highlight=False)


@app.command(rich_help_panel="Start")
@user_errors
def run(config: ConfigOption = DEFAULT_CONFIG) -> None:
    """Run the whole pipeline locally (kfp.local) and print a summary. Exit 0 registered, 1 failed gate."""
    from govtrain.pipelines.interrupt import Interrupted
    from govtrain.pipelines.run import run_local
    from govtrain.pipelines.summary import print_summary

    state = state_dir()
    if config == DEFAULT_CONFIG and not config.is_file():  # the demo's config, looked for in the current folder
        raise ConfigError(f"no --config given and {config} is not in {Path.cwd()}: give --config FILE "
                          f"(`govtrain init --data TABLE --target COLUMN` writes one)")
    cfg = load_config(config)  # a config that never loads starts no run: nothing is sealed for it
    check_paths(cfg, config)
    console.print(f"running govtrain pipeline on {cfg.dataset.path} (state: {state})")
    try:
        result = run_local(cfg, state)
    except Interrupted as stopped:
        errors.print(f"interrupted: {stopped.name} during {stopped.step}; every child process stopped; sealed "
                     f"evidence: {stopped.run_dir}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(stopped.exit_code) from None
    console.print()
    print_summary(result, console)
    raise typer.Exit(0 if result.registered else 1)


@app.command(rich_help_panel="Cluster")
@user_errors
def plan(
    config: ConfigOption = DEFAULT_CONFIG,
    workers: Annotated[list[int] | None, typer.Option(help="World sizes to price (repeat); default 1 2 4 8.")] = None,
    link: Annotated[str, typer.Option(help="loopback (this host, fitted) | 25gbe | 100gbe | nvlink.")] = "loopback",
) -> None:
    """Predicted samples/s, efficiency, time and cost per epoch for 1..N workers, before any is paid for.

    Example: govtrain plan --config configs/demo.yaml --link 25gbe
    """
    from rich.table import Table

    from govtrain.components.train.costmodel import LINKS
    from govtrain.components.train.plan import plan as make_plan

    if link not in LINKS:
        raise ValueError(f"--link {link!r}: choose one of {', '.join(LINKS)}")
    found = make_plan(load_config(config), workers or [1, 2, 4, 8], link)
    chosen = found["link"]
    timed = ", ".join(f"{us:.1f} us at batch {b}" for b, us in found["compute_us_per_sample"].items())
    console.print(f"{found['rows_per_epoch']} train rows an epoch, {found['gradient_bytes'] / 2**20:.2f} MiB of "
                  f"gradients a step; compute a sample, timed here on one thread: {timed}",
                  markup=False, highlight=False)
    said = (f"{chosen.latency_s * 1e6:.0f} us a message, {chosen.bytes_per_s / 1e9:.2f} GB/s" if chosen.per_bucket
            else f"compute x{1 + chosen.contention:.3f} per extra worker on the shared host, "
                 f"{2 * chosen.latency_s * 1e3:.2f} ms a step of all-reduce and waiting at 2 workers")
    console.print(f"link: {chosen.name}, {said} ({chosen.source}); no overlap of the all-reduce assumed",
                  markup=False, highlight=False)
    table = Table(title="predicted per epoch", title_justify="left")
    for column in ("workers", "batch", "samples/s", "efficiency", "seconds", "cost"):
        table.add_column(column, justify="right")
    for row in found["rows"]:
        table.add_row(str(row["workers"]), str(row["batch_per_worker"]), f"{row['samples_per_second']:,.0f}",
                      f"{row['efficiency']:.2f}", f"{row['epoch_seconds']:.1f}", f"{row['epoch_cost']:.3g}")
    console.print(table)


@app.command("compile", rich_help_panel="Cluster")
@user_errors
def compile_cmd(
    out: Annotated[Path, typer.Option(help="Where to write the KFP pipeline YAML.")] = Path("govtrain-pipeline.yaml"),
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Bake this config in as the default.")] = None,
    pipeline: Annotated[str, typer.Option(help="training, or drift or monitor (for a recurring run).")] = "training",
) -> None:
    """Compile the training (or drift) pipeline to KFP IR YAML for a cluster. With --config, a path only
    this machine has or a tracking URI a pod cannot reach is refused."""
    from govtrain.pipelines.run import compile_pipeline
    from govtrain.pipelines.submit import check_cluster_config

    cfg = load_config(config) if config else None
    if cfg is not None and config is not None:
        check_cluster_config(cfg, config)
    path = compile_pipeline(out, cfg, pipeline)
    console.print(f"wrote {path}")


@app.command(rich_help_panel="Cluster")
@user_errors
def submit(
    host: Annotated[str | None,
                    typer.Option(help="Kubeflow Pipelines API URL (default: $KF_PIPELINES_ENDPOINT).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Kubeflow namespace (profile); must be the config's "
                                                       "cluster.namespace, the default.")] = None,
    experiment: Annotated[str, typer.Option(help="KFP experiment name.")] = "govtrain",
    config: ConfigOption = Path("configs/cluster.yaml"),
    run_name: Annotated[str | None, typer.Option(help="Display name of the run.")] = None,
    out: Annotated[Path,
                   typer.Option(help="Where to write the compiled pipeline YAML.")] = Path("govtrain-pipeline.yaml"),
    dry_run: Annotated[bool, typer.Option("--dry-run",
                                          help="Compile and print the platform settings; submit nothing.")] = False,
    token: Annotated[str | None, typer.Option(envvar="GOVTRAIN_KFP_TOKEN", show_envvar=True,
                                              help="Bearer token for a KFP behind Kubeflow's auth proxy (prefer "
                                                   "the environment variable: a flag shows in `ps`).")] = None,
    token_file: Annotated[Path | None, typer.Option(help="Read the bearer token from this file.")] = None,
    cookies: Annotated[str | None, typer.Option(envvar="GOVTRAIN_KFP_COOKIES", show_envvar=True,
                                                help="Cookie header for the auth proxy, e.g. "
                                                     "'oauth2_proxy_kubeflow=...'.")] = None,
) -> None:
    """Compile the pipeline with a cluster config and submit it to Kubeflow Pipelines. Without a token,
    a pod uses its projected KFP service-account token."""
    from govtrain.pipelines.submit import KfpAuth
    from govtrain.pipelines.submit import submit as submit_run

    if not dry_run and not (host or os.environ.get("KF_PIPELINES_ENDPOINT")):
        raise ConfigError("--host: give the Kubeflow Pipelines URL (or set KF_PIPELINES_ENDPOINT), or use --dry-run")
    auth = KfpAuth(token=token, token_file=token_file, cookies=cookies)
    result = submit_run(load_config(config), config, out, host, namespace, experiment, run_name, dry_run, auth)
    console.print(f"compiled {result.package}")
    for key, value in result.platform.items():
        console.print(f"  {key}: {value}")
    if dry_run:
        console.print("dry run: nothing submitted")
    else:
        console.print(f"submitted run {result.run_id}\n  {result.url}")


@app.command(rich_help_panel="Models")
@user_errors
def drift(
    current: Annotated[Path, typer.Option(help="The current batch (CSV or Parquet).")],
    reference: Annotated[Path | None,
                         typer.Option(help="Reference batch; default: the --model version's stored reference "
                                           "(one of the two is required).")] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="YAML config file; default: the --model version's own, or with no model, the "
                               "columns --reference and --current share, types inferred.")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder; default under the state folder.")] = None,
    model: Annotated[str | None,
                     typer.Option(help="Monitor this model version (NAME[@alias|/version]): its reference, prediction "
                                       "drift, MLflow run, chain record, webhook.")] = None,
    fail_on_drift: Annotated[bool, typer.Option("--fail-on-drift",
                                                help="Exit 1 when drift is found (for CI gates).")] = False,
    idempotency_key: Annotated[str | None,
                               typer.Option(help="One record per key: a retried scheduled run reports the first "
                                                 "attempt's record instead of logging, notifying and appending "
                                                 "again.")] = None,
) -> None:
    """Data drift of a current batch (Evidently's tests on every row). Finding drift is a result: exit 0
    (1 with --fail-on-drift); 2 on an error."""
    from govtrain.monitoring.drift import shared_columns_config
    from govtrain.monitoring.job import drift_job

    if model is not None:
        cfg = config_for(config, model)
    elif config is not None:
        cfg = load_config(config)
    elif reference is not None:
        cfg = shared_columns_config(reference, current)
    else:
        raise ConfigError("drift needs a reference: give --reference FILE or --model NAME[@alias]")
    job = drift_job(cfg, current, reference, model, out, idempotency_key=idempotency_key)
    if job.replayed and job.record is not None:
        console.print(f"already recorded for {idempotency_key}: record {job.record['hash'][:12]} in the chain of "
                      f"{job.record['model']} version {job.record['version']} ({job.record['decision']}); "
                      f"nothing logged or notified again")
        raise typer.Exit(1 if fail_on_drift and job.record["decision"] == "fail" else 0)
    result = job.result
    drifted = [c["column"] for c in result.columns if c["drifted"]]
    verdict = "[red]DRIFT[/]" if result.drifted else "[green]no drift[/]"
    console.print(f"{verdict}: {len(drifted)}/{len(result.columns)} columns drifted "
                  f"(share {result.drift_share:.2f}, threshold {result.threshold:.2f}): {', '.join(drifted) or '-'}")
    details = json.loads(result.summary.read_text())
    if "prediction" in details:
        p = details["prediction"]
        console.print(f"prediction drift: {p['method']} {p['value']:.4f} (threshold {p['threshold']}) "
                      f"{'[red]DRIFT[/]' if p['drifted'] else 'ok'}")
    if "target" in details:  # label drift: measured when both batches carry the label
        t = details["target"]
        value = "-" if t["value"] is None else f"{t['value']:.4f}"
        console.print(f"label drift: {t['method']} {value} (threshold {t['threshold']}) "
                      f"{'[red]DRIFT[/]' if t['drifted'] else 'ok'}{': ' + t['finding'] if t.get('finding') else ''}")
    perf = details.get("performance", {})
    metric = next((k.removeprefix("current_") for k in perf if k.startswith("current_")), None)
    if metric and perf[f"current_{metric}"] is not None and perf[f"reference_{metric}"] is not None:
        console.print(f"labelled batch: {metric} {perf[f'current_{metric}']:.4f} vs {perf[f'reference_{metric}']:.4f} "
                      f"on the reference ({perf.get('reference_is', 'the given reference file')})", markup=False,
                      highlight=False)
    elif "error" in perf:
        console.print(f"labelled batch: {perf['error']}")
    html = details.get("html_report", {})
    console.print(f"report: {result.html} ({html.get('note', 'Evidently')})\nsummary: {result.summary}",
                  markup=False, highlight=False)
    if job.webhook is not None:
        hook = job.webhook
        line = ("delivered" if hook["delivered"] else "[red]NOT delivered[/]") + f" after {hook['attempts']} attempt(s)"
        console.print(f"webhook: {line}{': ' + hook['error'] if hook['error'] else ''}")
    if job.record is not None:
        console.print(f"MLflow monitoring run {job.monitoring_run}; recorded in the chain of {job.record['model']} "
                      f"version {job.record['version']} (record {job.record['hash'][:12]})")
    raise typer.Exit(1 if fail_on_drift and result.drifted else 0)


@app.command("drift-history", rich_help_panel="Models")
@user_errors
def drift_history(
    model: ModelNameOption,
    config: ModelConfigOption = None,
    out: Annotated[Path | None, typer.Option(help="PNG of drift share over time.")] = None,
) -> None:
    """Past drift runs of a model (from its chain): when, which version, drift share, drifted columns; and a PNG."""
    from rich.table import Table

    from govtrain.monitoring.history import drift_history as history_of
    from govtrain.monitoring.history import plot_history

    rows = history_of(config_for(config, model), model)
    if not rows:
        console.print(f"{model}: no drift runs recorded (run `govtrain drift --model {model} ...`)")
        return
    table = Table(title=f"{model}: drift history", title_justify="left")
    for column in ("when", "version", "share", "threshold", "result", "drifted columns"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["at"][:19], row["version"], f"{row['share']:.2f}", f"{row['threshold']:.2f}",
                      "DRIFT" if row["drifted"] else "ok", ", ".join(row["columns"]))
    console.print(table)
    png = plot_history(rows, out or state_dir() / "drift" / f"history-{model}.png")
    console.print(f"plot: {png}")


@expectations_app.command("init")
@user_errors
def expectations_init(
    data: Annotated[Path, typer.Option(help="Reference table (CSV or Parquet) to profile.")],
    suite: Annotated[str, typer.Option(help="Suite name; written to <out>/<suite>.json.")],
    out: Annotated[Path, typer.Option(help="Folder of the suites.")] = Path("expectations"),
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Profile only this config's columns.")] = None,
    margin: Annotated[float, typer.Option(help="Widen numeric ranges by this share of the observed range.")] = 0.1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing suite.")] = False,
) -> None:
    """Profile a table into a draft suite (columns, types, null rates, ranges, value sets, row counts)."""
    import re

    from govtrain.components.prepare import required_columns
    from govtrain.data.io import read_table
    from govtrain.data.suite_draft import draft_suite

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", suite):
        raise ValueError(f"--suite {suite!r}: use letters, digits, '_', '-' or '.'")
    path = out / f"{suite}.json"
    if path.exists() and not force:
        raise ValueError(f"{path}: already exists; edit it, or pass --force to replace it")
    cfg = load_config(config) if config else None
    frame = read_table(data, columns=required_columns(cfg) if cfg else None, options=cfg.dataset.csv if cfg else None)
    if frame.empty:
        raise ValueError(f"{data}: no rows to profile")
    draft = draft_suite(frame, suite, source=data.name, target=cfg.dataset.target if cfg else None, margin=margin,
                        task=cfg.dataset.task if cfg else None, entity_id=cfg.dataset.entity_id if cfg else None,
                        timestamp=cfg.dataset.timestamp if cfg else None)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(draft, indent=2) + "\n")
    critical = sum(e["meta"]["severity"] == "critical" for e in draft["expectations"])
    console.print(f"wrote {path}: {len(draft['expectations'])} expectations ({critical} critical) "
                  f"profiled from {len(frame)} rows x {len(frame.columns)} columns; review it before use")


@app.command(rich_help_panel="Serving and UI")
@user_errors
def server(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for /health.")] = 120.0,
    auth: Annotated[bool, typer.Option("--auth", help="MLflow's basic-auth app: every request names a user, so "
                                                      "registrations and approvals are authenticated.")] = False,
    admin_password_file: Annotated[Path | None, typer.Option(
        help="With --auth, the admin's password on first start (else $MLFLOW_AUTH_ADMIN_PASSWORD).")] = None,
) -> None:
    """Start the MLflow tracking server on the embedded store (127.0.0.1), wait until it is healthy."""
    from govtrain.registry.server import EmbeddedServer, stop_on_sigterm

    if admin_password_file is not None:
        os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = admin_password_file.read_text().strip()
    # Ctrl-C stops it even when started in the background by a script: a shell starts background jobs with
    # SIGINT ignored, and Python keeps an ignored SIGINT ignored (a server that no SIGINT could stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    stop_on_sigterm()
    with EmbeddedServer(state_dir(), port, auth=auth) as running:
        running.wait_healthy(timeout)
        console.print(f"MLflow tracking server at {running.url} (store {running.store}); Ctrl-C to stop")
        raise typer.Exit(running.wait())


@app.command(rich_help_panel="Serving and UI")
@user_errors
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
) -> None:
    """The MLflow UI on the embedded store: `govtrain server`, then your browser on it."""
    import webbrowser

    from govtrain.registry.server import EmbeddedServer, stop_on_sigterm

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as in `govtrain server`
    stop_on_sigterm()
    with EmbeddedServer(state_dir(), port) as running:
        running.wait_healthy(120.0)
        console.print(f"MLflow UI at {running.url} (Ctrl-C to stop)")
        webbrowser.open(running.url)
        raise typer.Exit(running.wait())


# Last, so `govtrain --help` lists the pipeline commands first: these modules register theirs on app.
from govtrain.pipelines import cli_audit, cli_cluster, cli_models, cli_serving, cli_validate  # noqa: E402, F401

if __name__ == "__main__":
    app()
