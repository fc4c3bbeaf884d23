"""`govtrain monitor`: what a served version saw since the last run, without waiting for labels.

Over the captured traffic of one window (after the previous monitor run of the version, or --since, up to
now): data drift against the version's stored reference sample and prediction drift (monitoring/drift.py,
Evidently's tests), the rate of refused requests by cause, and the performance the calibrated
probabilities promise (monitoring/estimate.py). An alert fires when drift passes its threshold or when the
estimate's 95% interval of the served label's accuracy lies wholly below the version's own test accuracy (from
its verified ledger). Each run
is one signed record in the model's chain, with the digests of the capture files it read; `govtrain labels`
later reconciles its estimate with what the labels show.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from govtrain.core.config import Config
from govtrain.core.state import state_dir
from govtrain.monitoring import estimate
from govtrain.serving.capture import IN, OUT, Captured, capture_folder, read_capture

# The estimate an alert and a reconciliation judge: the served label's accuracy. Expected accuracy needs the
# probabilities right on each side of the served threshold; expected AUC needs them right across the whole
# score range, which temperature scaling does not give a weak model. The test suite's served model (3,000
# demo rows, test AUC 0.67), on 1,200 in-distribution rows: accuracy 0.7359 estimated [0.7117, 0.7592],
# 0.7367 realised; AUC 0.716 estimated [0.687, 0.747], 0.670 realised. AUC, F1 and macro-F1 are shown.
JUDGED = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}
LOWER_IS_BETTER = {"rmse"}


@dataclass
class MonitorResult:
    record: dict
    alerts: list[str]
    window: dict
    drift: dict | None
    estimate: dict | None
    problems: dict
    webhook: dict | None = None


def read_served(name: str, version: str, kserve_log: str | None, dest: Path, since: datetime | None = None,
                until: datetime | None = None) -> Captured:
    """A version's served rows: govtrain serve's capture, or what KServe's payload logger wrote under
    `kserve_log` (copied under `dest` first)."""
    if kserve_log:
        from govtrain.serving.kserve_log import read_kserve_log

        return read_kserve_log(kserve_log, dest, since, until, version=version, model=name)
    return read_capture(capture_folder(state_dir(), name, version), since, until)


def last_window_end(config: Config, model: str, version: str) -> datetime | None:
    from govtrain.governance.records import read_chain

    ends = [r["details"]["window"]["until"] for r in read_chain(config.chain_dir, model)
            if r.get("step") == "monitor" and r.get("version") == version]
    return datetime.fromisoformat(ends[-1]) if ends else None


def input_problems(captured: Captured) -> dict:
    refused_rows = sum(r["rows"] for r in captured.rejected)
    served_requests = captured.rows["request_id"].nunique() if len(captured.rows) else 0
    requests = served_requests + len(captured.rejected)
    causes: dict[str, int] = {}
    for item in captured.rejected:
        key = f"{item['column']}: {item['kind']}" if item.get("column") else item.get("kind", "bad request")
        causes[key] = causes.get(key, 0) + 1
    return {"requests": requests, "refused_requests": len(captured.rejected),
            "refused_share": len(captured.rejected) / requests if requests else 0.0,
            "refused_rows": refused_rows, "served_rows": len(captured.rows),
            "by_cause": dict(sorted(causes.items(), key=lambda kv: -kv[1])[:20])}


def estimated(model: Any, rows: pd.DataFrame, seed: int) -> dict | None:
    kind, classes = model.task.kind, list(model.task.classes)
    if kind == "binary":
        return estimate.binary(rows[OUT + "probability"].to_numpy(float), seed=seed)
    if kind == "multiclass":
        return estimate.multiclass(rows[[f"{OUT}probability_{c}" for c in classes]].to_numpy(float), seed=seed)
    scale, q = model.interval_scale, model.task.interval
    if scale is None or not scale.score_quantiles or not q or OUT + "upper" not in rows:
        return None  # calibrated before its val scores shipped: nothing to draw errors from
    sigma = (rows[OUT + "upper"].to_numpy(float) - rows[OUT + "prediction"].to_numpy(float)) / q
    return estimate.regression(sigma, scale.score_quantiles, seed=seed)


def test_metric(ledger: dict, kind: str) -> tuple[str, float] | None:
    """The version's test value of the judged metric, as its sealed evaluate record holds it."""
    name = JUDGED.get(kind)
    evaluate = next((r for r in ledger["records"] if r.get("step") == "evaluate"), None)
    if name is None or evaluate is None or name not in evaluate.get("metrics", {}):
        return None
    return name, float(evaluate["metrics"][name])


def monitor(config: Config, ref: str, since: datetime | None = None, out_dir: Path | None = None,
            seed: int = 0, kserve_log: str | None = None) -> MonitorResult:
    """One window of one version's traffic: govtrain serve's capture, or, given `kserve_log` (a folder or an
    object-store URI), what KServe's payload logger wrote for the InferenceService `govtrain deploy` made."""
    from govtrain.governance.hashing import sha256_file
    from govtrain.monitoring.drift import run_drift
    from govtrain.registry.models import append_anchored, parse_ref, reference_sample, verified_version

    until = datetime.now(UTC)
    out_dir = out_dir or state_dir() / "monitor" / parse_ref(ref).name / until.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    version, ledger, model = verified_version(config, ref, out_dir / "model")
    name, number = version.name, str(version.version)
    since = since if since is not None else last_window_end(config, name, number)
    captured = read_served(name, number, kserve_log, out_dir / "kserve-log", since, until)
    window = {"since": since.isoformat() if since else None, "until": until.isoformat(), "rows": len(captured.rows)}
    problems = input_problems(captured)
    kind, alerts = model.task.kind, []
    drift = found = None
    if len(captured.rows):
        inputs = captured.rows[[c for c in captured.rows.columns if c.startswith(IN)]]
        current = out_dir / "current.parquet"
        inputs.rename(columns=lambda c: c[len(IN):]).to_parquet(current, index=False)
        reference = reference_sample(version, out_dir / "reference")
        result = run_drift(config, current, reference, out_dir, model=model, stored_reference_of=f"{name}/{number}")
        summary = json.loads(result.summary.read_text())
        drift = {"drifted": result.drifted, "share": result.drift_share, "threshold": result.threshold,
                 "drifted_columns": [c["column"] for c in result.columns if c["drifted"]],
                 "prediction": summary.get("prediction"), "report_sha256": sha256_file(result.html)}
        if result.drifted:
            alerts.append(f"drift: {len(drift['drifted_columns'])}/{len(result.columns)} columns (share "
                          f"{result.drift_share:.2f}, threshold {result.threshold:.2f})"
                          + (", prediction drifted" if (drift["prediction"] or {}).get("drifted") else ""))
        found = estimated(model, captured.rows, seed)
    reference_metric = test_metric(ledger, kind)
    if found is not None and reference_metric is not None and reference_metric[0] in found:
        metric, tested = reference_metric
        low, high = found[metric]["interval"]
        found["test_metric"] = {"metric": metric, "value": tested}
        worse = low > tested if metric in LOWER_IS_BETTER else high < tested
        if worse:
            alerts.append(f"estimated {metric} {found[metric]['expected']:.4f} (95% interval {low:.4f} to "
                          f"{high:.4f}) is worse than the version's test {metric} {tested:.4f}")
    details: dict[str, Any] = {
        "window": window, "requests": problems, "drift": drift, "estimate": found,
        "estimate_method": (estimate.__doc__ or "").split("\n\n")[0] if found else
        ("no traffic in the window" if not len(captured.rows) else "regression: not estimated (the model shipped "
                                                                   "no val scores: calibrated before they were kept)"),
        "capture_source": kserve_log or "govtrain serve",
        "capture_files": {p.name: sha256_file(p) for p in captured.files}, "dropped_parts": captured.dropped,
        "alerts": alerts}
    record = append_anchored(config, name, "monitor", version=number,
                             model_root=version.tags.get("govtrain.ledger_root"),
                             decision="fail" if alerts else "pass", details=details)
    (out_dir / "monitor_summary.json").write_text(json.dumps({**details, "record": record["hash"]}, indent=2,
                                                             default=str))
    result_ = MonitorResult(record, alerts, window, drift, found, problems)
    if alerts:
        result_.webhook = notify(f"{name}/{number}", alerts, record["hash"])
        if result_.webhook is not None:  # delivered or not, the outcome is a record of its own
            append_anchored(config, name, "notify", version=number, model_root=record.get("model_root"),
                            decision="pass" if result_.webhook["delivered"] else "fail",
                            details={"monitor_record": record["hash"], **result_.webhook})
    return result_


def notify(label: str, alerts: list[str], record_hash: str) -> dict | None:
    """A signed POST of the alert to $GOVTRAIN_DRIFT_WEBHOOK (monitoring/webhook.py), when one is configured."""
    from govtrain.monitoring.webhook import configured, post

    url, secret = configured()
    if not url:
        return None
    body = json.dumps({"model": label, "kind": "monitor", "alerts": alerts, "chain_record": record_hash,
                       "sent_at": int(time.time())}).encode()
    return post(url, body, secret)


def window_rows(rows: pd.DataFrame, window: dict) -> pd.DataFrame:
    since, until = window.get("since"), window["until"]
    keep = rows["time"] <= pd.Timestamp(until)
    if since:
        keep &= rows["time"] > pd.Timestamp(since)
    return rows[keep]

