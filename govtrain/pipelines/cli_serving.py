"""govtrain serve / monitor / labels: the production loop of a registered version."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from govtrain.pipelines.cli_common import ModelConfigOption, app, config_for, console, user_errors

ServedModelOption = Annotated[str, typer.Option("--model", help="NAME@alias or NAME/version.")]


@app.command(rich_help_panel="Serving and UI")
@user_errors
def serve(
    model: ServedModelOption,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 8080,
    capture: Annotated[bool, typer.Option(help="Write every request and answer under $GOVTRAIN_HOME/capture/ "
                                               "(--no-capture: serve only).")] = True,
    rotate_rows: Annotated[int, typer.Option(help="Rows per Parquet part of the capture.", min=1)] = 50_000,
    max_capture_mb: Annotated[int, typer.Option(help="The capture folder's bound: the oldest parts are deleted "
                                                     "beyond it, and dropped.jsonl says which.", min=1)] = 1024,
    config: ModelConfigOption = None,
) -> None:
    """Serve a registered version on 127.0.0.1 with MLflow's scoring protocol (POST /invocations), refusing rows
    it should not answer (4xx naming the column), capturing what it saw and answered. SIGTERM stops it cleanly."""
    from govtrain.core.state import state_dir
    from govtrain.serving.capture import capture_folder
    from govtrain.serving.serve import open_served, run_server

    served = open_served(config_for(config, model), model, capture=capture, rotate_rows=rotate_rows,
                         max_bytes=max_capture_mb << 20)
    where = capture_folder(state_dir(), served.name, served.version) if capture else None
    console.print(f"serving {served.name}/{served.version} on http://127.0.0.1:{port}/invocations "
                  f"(ledger verified); capture: {where or 'off'}", markup=False, highlight=False)
    run_server(served, port)
    if served.capture is not None:
        console.print(f"stopped; {served.capture.rows_written} row(s) captured in {where}", markup=False,
                      highlight=False)


def since_option(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--since: {value!r} is not an ISO time (for example 2026-12-01T00:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command(rich_help_panel="Models")
@user_errors
def monitor(
    model: ServedModelOption,
    since: Annotated[str | None, typer.Option(help="Window start (ISO time, UTC when no zone); default: where the "
                                                   "version's previous monitor run ended.")] = None,
    fail_on_alert: Annotated[bool, typer.Option("--fail-on-alert", help="Exit 1 when an alert fired.")] = False,
    out: Annotated[Path | None, typer.Option(help="Report folder; default under the state folder.")] = None,
    kserve_log: Annotated[str | None, typer.Option(help="Read what KServe's payload logger wrote for the "
                                                        "deployed version (a folder, or s3://, gs://; credentials "
                                                        "from the environment) instead of govtrain serve's "
                                                        "capture.")] = None,
    config: ModelConfigOption = None,
) -> None:
    """What the served version saw since the last run: drift, refused requests, and the performance its
    calibrated probabilities promise before labels arrive. One signed chain record; exit 0 (1 with
    --fail-on-alert when an alert fired); 2 on an error."""
    from govtrain.monitoring.monitor import monitor as run_monitor

    start = since_option(since)  # a bad time is refused before anything is fetched
    found = run_monitor(config_for(config, model), model, start, out, kserve_log=kserve_log)
    window, problems = found.window, found.problems
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    say(f"window {window['since'] or 'first capture'} -> {window['until']}: {window['rows']} row(s) served, "
        f"{problems['refused_requests']} of {problems['requests']} request(s) refused "
        f"({problems['refused_share']:.1%})" + (f"; top cause {next(iter(problems['by_cause']))}"
                                              if problems["by_cause"] else ""))
    if found.drift is not None:
        d = found.drift
        say(f"drift: share {d['share']:.2f} (threshold {d['threshold']:.2f}) "
            f"{'DRIFT: ' + ', '.join(d['drifted_columns']) if d['drifted'] else 'ok'}")
    if found.estimate is not None:
        for metric in ("accuracy", "roc_auc", "macro_f1", "f1", "rmse", "mae"):
            if metric in found.estimate:
                m = found.estimate[metric]
                say(f"estimated {metric} {m['expected']:.4f} (95% interval {m['interval'][0]:.4f} to "
                    f"{m['interval'][1]:.4f})")
        if "test_metric" in found.estimate:
            t = found.estimate["test_metric"]
            say(f"the version's test {t['metric']}: {t['value']:.4f}")
    for alert in found.alerts:
        say(f"ALERT: {alert}")
    if found.webhook is not None:
        say(f"webhook: {'delivered' if found.webhook['delivered'] else 'NOT delivered'}")
    say(f"recorded in the chain of {found.record['model']} version {found.record['version']} "
        f"(record {found.record['hash'][:12]})")
    raise typer.Exit(1 if fail_on_alert and found.alerts else 0)


@app.command(rich_help_panel="Models")
@user_errors
def labels(
    model: ServedModelOption,
    file: Annotated[Path, typer.Option("--file", help="CSV or Parquet: request_id, label, and row for requests of "
                                                      "several rows.")],
    fail_on_shift: Annotated[bool, typer.Option("--fail-on-shift",
                                                help="Exit 1 when a window's realised value fell outside its "
                                                     "estimate's interval.")] = False,
    kserve_log: Annotated[str | None, typer.Option(help="Join to what KServe's payload logger wrote (as for "
                                                        "monitor --kserve-log) instead of govtrain serve's "
                                                        "capture.")] = None,
    config: ModelConfigOption = None,
) -> None:
    """Join delayed labels to the served rows by request id; per monitor window, the realised metric beside the
    estimate, and whether it fell inside its interval (outside: concept shift). One chain record."""
    from govtrain.monitoring.labels import missed, reconcile

    found = reconcile(config_for(config, model), model, file, kserve_log=kserve_log)
    say = lambda text: console.print(text, markup=False, highlight=False)  # noqa: E731
    say(f"{found.joined} label(s) joined to served rows; {found.unmatched} name no captured row")
    for window in found.windows:
        parts = [f"{m} realised {c['realised']:.4f} vs estimated {c['estimated']:.4f} "
                 f"[{c['interval'][0]:.4f}, {c['interval'][1]:.4f}] {'inside' if c['inside'] else 'OUTSIDE'}"
                 f"{'' if c['judged'] else ' (shown, not judged)'}"
                 for m, c in window["metrics"].items()]
        say(f"window -> {window['window']['until'][:19]} ({window['labelled_rows']} labelled of "
            f"{window['window_rows']}): " + "; ".join(parts))
        if missed(window):
            say(f"{'CONCEPT SHIFT' if window['concept_shift'] else 'SHIFT WITH DRIFT'}: {window['finding']}")
    if not found.windows:
        say("no monitor window holds these labels' rows (run govtrain monitor first)")
    say(f"recorded in the chain of {found.record['model']} version {found.record['version']} "
        f"(record {found.record['hash'][:12]})")
    raise typer.Exit(1 if fail_on_shift and any(missed(w) for w in found.windows) else 0)
