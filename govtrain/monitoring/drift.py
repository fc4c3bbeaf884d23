"""Data drift of a current batch against the training data: Evidently's tests, thresholds and
dataset rule (drift when at least monitoring.drift_share of the columns drift), computed on every row
by monitoring.engine; Evidently's own HTML report on a sample, for people to read."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from govtrain.core.config import Config
from govtrain.data.io import DataError, read_table
from govtrain.monitoring.engine import dataset_drift
from govtrain.monitoring.webhook import URL_ENV


@dataclass
class DriftResult:
    drifted: bool
    drift_share: float
    threshold: float
    columns: list[dict]
    html: Path
    json: Path
    summary: Path


HTML_SAMPLE_ROWS = 10_000


def load_batch(path: Path, name: str, config: Config) -> pd.DataFrame:
    """The batch's feature columns, or a one-line DataError naming the file, column and problem."""
    spec = config.dataset
    present = set(read_columns(path, spec.csv))  # the schema only, read once
    missing = [c for c in spec.features if c not in present]
    if missing:
        raise DataError(f"{path}: column {missing[0]!r} not found ({name} batch)")
    # The label comes along when the batch has it, for target and performance drift.
    labelled = spec.target in present
    frame = read_table(path, columns=[*spec.features, *([spec.target] if labelled else [])], options=spec.csv)
    if len(frame) == 0:
        raise DataError(f"{path}: the {name} batch has no rows")
    for column in spec.numeric:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            parsed = pd.to_numeric(frame[column], errors="coerce")
            bad = frame[column][parsed.isna() & frame[column].notna()]
            if len(bad):
                raise DataError(f"{path}: column {column!r} row {bad.index[0]}: {bad.iloc[0]!r} is not a number "
                                f"({name} batch)")
            frame[column] = parsed
    for column in spec.categorical:
        frame[column] = frame[column].astype("string")
    return frame


def evidently_html(config: Config, reference: pd.DataFrame, current: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    """Evidently's own report for people to read, on seeded samples of at most HTML_SAMPLE_ROWS rows."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    spec = config.dataset
    sample = {name: frame.sample(n=min(len(frame), HTML_SAMPLE_ROWS), random_state=0)
              for name, frame in (("reference", reference), ("current", current))}
    # Evidently refuses an all-missing column; the engine already reports it as a finding.
    usable = [c for c in spec.features if all(f[c].notna().any() for f in sample.values())]
    definition = DataDefinition(numerical_columns=[c for c in spec.numeric if c in usable],
                                categorical_columns=[c for c in spec.categorical if c in usable])
    snapshot = Report([DataDriftPreset(drift_share=config.monitoring.drift_share)]).run(
        Dataset.from_pandas(sample["current"][usable], data_definition=definition),
        Dataset.from_pandas(sample["reference"][usable], data_definition=definition))
    html, raw = out_dir / "drift_report.html", out_dir / "drift_report.json"
    snapshot.save_html(str(html))
    raw.write_text(json.dumps(snapshot.dict(), indent=2, default=str))
    return html, raw


def model_drift(config: Config, model: Any, frames: dict[str, pd.DataFrame]) -> dict:
    """Prediction drift on the model's outputs (binary: the positive probability; multiclass: the predicted
    class; regression: the prediction), and target and performance drift when both batches carry the label.
    Reported beside the feature columns; prediction drift also counts as drift."""
    from govtrain.monitoring.engine import column_drift

    target, task = config.dataset.target, model.task
    outputs = {name: model.outputs(frame) for name, frame in frames.items()}
    if task.kind == "multiclass":
        shown = {name: pd.Series(task.decode(out.argmax(axis=1))).astype("string") for name, out in outputs.items()}
    else:
        shown = {name: pd.Series(out[:, 1] if task.kind == "binary" else out) for name, out in outputs.items()}
    out = {"prediction": column_drift(shown["reference"], shown["current"], numeric=task.kind != "multiclass")}
    if all(target in frame.columns for frame in frames.values()):
        labels = {name: frame[target] for name, frame in frames.items()}
        out["target"] = column_drift(labels["reference"], labels["current"], numeric=task.kind == "regression")
        out["performance"] = performance_drift(task, labels, outputs)
    return out


def performance_drift(task: Any, labels: dict[str, pd.Series], outputs: dict[str, Any]) -> dict:
    """The task's headline metric on each labelled batch (ROC AUC, accuracy, RMSE) and how much worse it got."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    scores: dict[str, float | None] = {}
    for name, values in labels.items():
        if task.kind == "regression":
            scores[name] = float(np.sqrt(np.mean((values.astype(float).to_numpy() - outputs[name]) ** 2)))
            continue
        try:
            y = task.encode(values, f"the {name} batch's ")
        except ValueError as exc:  # a label the model has no class for is itself a finding
            return {"error": str(exc)}
        if task.kind == "binary":
            scores[name] = float(roc_auc_score(y, outputs[name][:, 1])) if len(set(y)) == 2 else None
        else:
            scores[name] = float(np.mean(outputs[name].argmax(axis=1) == y))
    metric = {"binary": "auc", "multiclass": "accuracy", "regression": "rmse"}[task.kind]
    before, now = scores["reference"], scores["current"]
    worse = None if before is None or now is None else (now - before if metric == "rmse" else before - now)
    change = "rmse_rise" if metric == "rmse" else f"{metric}_drop"
    return {f"reference_{metric}": before, f"current_{metric}": now, change: worse}


def reference_note(reference_path: Path, rows: int, stored_of: str | None) -> dict:
    """What the reference is, said in the summary and by the CLI. The one stored with a version at registration
    is a seeded sample of its train split (registry/publish.py, log_reference_profile): the rows the model was
    fit on, so the model's scores on it are in-sample, not a held-out baseline."""
    if stored_of is None:
        return {"source": "file", "in_sample": None, "short": f"the given reference file {reference_path.name}",
                "description": f"{reference_path} ({rows} rows), given as the reference (not a version's stored one)"}
    from govtrain.registry.publish import REFERENCE_ROWS

    whole = rows < REFERENCE_ROWS  # a larger split is sampled down to exactly REFERENCE_ROWS
    which = (f"the whole train split ({rows} rows)" if whole else
             f"a seeded sample of {rows} rows of the train split (the stored sample's limit)")
    return {"source": "stored train split", "in_sample": True, "sampled": not whole,
            "short": "the train split, in-sample" if whole else f"a {rows}-row sample of the train split, in-sample",
            "description": f"{which} of {stored_of}, as stored at registration: rows the model was fit on, so "
                           f"its scores there are in-sample, not a held-out baseline"}


def html_note(reference_rows: int, current_rows: int) -> dict:
    """Which rows Evidently's page was drawn on (evidently_html): a seeded sample of at most HTML_SAMPLE_ROWS
    per side, so where a batch is larger its scores differ from the summary's, computed on every row."""
    shown = {"reference_rows": min(reference_rows, HTML_SAMPLE_ROWS), "current_rows": min(current_rows,
                                                                                          HTML_SAMPLE_ROWS)}
    sampled = reference_rows > HTML_SAMPLE_ROWS or current_rows > HTML_SAMPLE_ROWS
    note = (f"Evidently's page is drawn on seeded samples, {shown['reference_rows']} of {reference_rows} "
            f"reference rows and {shown['current_rows']} of {current_rows} current rows: its scores differ from "
            f"this summary's and the CLI's, which use every row, and its verdict may too"
            if sampled else "Evidently's page is drawn on every row of both batches")
    return {**shown, "sample_limit": HTML_SAMPLE_ROWS, "sampled": sampled, "note": note}


def run_drift(config: Config, current_path: Path, reference_path: Path, out_dir: Path,
              model: Any | None = None, stored_reference_of: str | None = None) -> DriftResult:
    """Decisions from monitoring.engine on every row (Evidently's tests and thresholds); Evidently's HTML
    on a sample for reading. stored_reference_of names the version ("NAME/V") whose stored train-split sample
    the reference is, so the summary says the model's reference scores are in-sample."""
    from concurrent.futures import ThreadPoolExecutor

    spec = config.dataset
    reference = load_batch(reference_path, "reference", config)
    current = load_batch(current_path, "current", config)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=1) as pool:  # Evidently's report renders while the engine computes
        rendering = pool.submit(evidently_html, config, reference, current, out_dir)
        per_column, share, drifted = dataset_drift(reference, current, spec.numeric, spec.categorical,
                                                   config.monitoring.drift_share, config.monitoring.column_tests)
        html, raw = rendering.result()
    extra = sorted(set(read_columns(current_path, spec.csv)) - set(spec.features)
                   - {spec.target, spec.entity_id, spec.timestamp})
    of_model = model_drift(config, model, {"reference": reference, "current": current}) if model is not None else {}
    if of_model.get("prediction", {}).get("drifted"):
        drifted = True
    about = reference_note(reference_path, len(reference), stored_reference_of)
    if "performance" in of_model and "error" not in of_model["performance"]:
        of_model["performance"]["reference_is"] = about["short"]
    summary = {"drifted": drifted, "drift_share": share, "threshold": config.monitoring.drift_share, **of_model,
               "reference": str(reference_path), "reference_is": about, "current": str(current_path),
               "reference_rows": len(reference), "current_rows": len(current), "columns": per_column,
               "extra_columns_ignored": extra, "html_report": html_note(len(reference), len(current))}
    summary_path = out_dir / "drift_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return DriftResult(drifted, share, config.monitoring.drift_share, per_column, html, raw, summary_path)


def read_columns(path: Path, options: Any = None) -> list[str]:
    from govtrain.data.io import format_of, table_columns

    return table_columns(path, format_of(path), options)


WEBHOOK_ENV = URL_ENV  # where drift alerts go (monitoring/webhook.py)


def monitoring_metrics(result: DriftResult) -> dict[str, float]:
    """What the monitoring run logs: the dataset share, the count, and each column's statistic."""
    metrics = {"drift_share": result.drift_share, "drifted_columns": sum(c["drifted"] for c in result.columns)}
    metrics.update({f"drift.{c['column']}": c["value"] for c in result.columns if c["value"] is not None})
    return {name: float(value) for name, value in metrics.items()}


def notify(result: DriftResult, model_label: str, attempts: int = 3, backoff: float = 0.5,
           record_hash: str | None = None) -> dict | None:
    """On drift, a signed POST to $GOVTRAIN_DRIFT_WEBHOOK (monitoring/webhook.py), retrying; the outcome
    is returned, never lost. record_hash names the chain record already written for this run."""
    import time

    from govtrain.monitoring.webhook import configured, post

    url, secret = configured()
    if not url or not result.drifted:
        return None
    payload = json.dumps({"model": model_label, "drift_share": round(result.drift_share, 4),
                          "threshold": result.threshold, "report": str(result.html),
                          "drifted_columns": [c["column"] for c in result.columns if c["drifted"]],
                          "chain_record": record_hash, "sent_at": int(time.time())}).encode()
    return post(url, payload, secret, attempts=attempts, backoff=backoff)


def record_drift(config: Config, model_ref: str, result: DriftResult, current_path: Path,
                 monitoring_run: str | None = None, webhook: dict | None = None,
                 idempotency_key: str | None = None) -> dict:
    """Append the drift run to the model's chain, naming the monitored version's ledger root."""
    from govtrain.governance.hashing import sha256_file
    from govtrain.registry.models import append_anchored, client_for, parse_ref, resolve

    version = resolve(client_for(config.tracking_uri), parse_ref(model_ref))
    drifted = [c["column"] for c in result.columns if c["drifted"]]
    summary = (f"{len(drifted)}/{len(result.columns)} columns drifted (share {result.drift_share:.2f}, "
               f"threshold {result.threshold:.2f})")
    return append_anchored(
        config, version.name, "drift", version=str(version.version),
        model_root=version.tags.get("govtrain.ledger_root"), decision="fail" if result.drifted else "pass",
        checks=[{"id": "drift.share", "value": round(result.drift_share, 6), "threshold": result.threshold,
                 "passed": not result.drifted}],
        details={"summary": summary, "drifted_columns": drifted, "current_sha256": sha256_file(current_path),
                 "report_sha256": sha256_file(result.html), "summary_sha256": sha256_file(result.summary),
                 "mlflow_run_id": monitoring_run, "webhook": webhook, "idempotency_key": idempotency_key},
        # Checked under the chain's lock: two retries of one scheduled run racing make one record.
        unique=("idempotency_key", idempotency_key) if idempotency_key else None)


def shared_columns_config(reference: Path, current: Path) -> Config:
    """Drift of two tables with no config and no model: the columns both have, numbers compared as numbers
    and everything else as categories (types from the reference file). Nothing is treated as a label."""
    from govtrain.core.config import DatasetSpec, resolve

    shared = [c for c in read_columns(reference) if c in set(read_columns(current))]
    if not shared:
        raise DataError(f"{reference} and {current} share no column to compare")
    sample = read_table(reference, columns=shared)
    numeric = [c for c in shared
               if pd.api.types.is_numeric_dtype(sample[c]) and not pd.api.types.is_bool_dtype(sample[c])]
    dataset = DatasetSpec(path=reference, target="", numeric=numeric,
                          categorical=[c for c in shared if c not in numeric])
    return resolve(Config(dataset=dataset), Path.cwd())
