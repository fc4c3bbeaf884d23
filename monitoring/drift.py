"""Data drift of a current batch against the training data, with Evidently's DataDriftPreset.

Evidently picks each column's test by type and size and flags dataset drift when at least
monitoring.drift_share of the columns drift; govtrain keeps that rule so the answers match Evidently's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from components.io import DataError, read_table
from pipelines.config import Config


@dataclass
class DriftResult:
    drifted: bool
    drift_share: float
    threshold: float
    columns: list[dict]
    html: Path
    json: Path
    summary: Path


def run_drift(config: Config, current_path: Path, reference_path: Path, out_dir: Path) -> DriftResult:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    spec = config.dataset
    columns = spec.features
    frames = {}
    for name, path in (("reference", reference_path), ("current", current_path)):
        frames[name] = read_table(path)
        missing = [c for c in columns if c not in frames[name].columns]
        if missing:
            raise DataError(f"{path}: column {missing[0]!r} not found ({name} batch)")
        frames[name] = frames[name][columns]
    definition = DataDefinition(numerical_columns=spec.numeric, categorical_columns=spec.categorical)
    report = Report([DataDriftPreset(drift_share=config.monitoring.drift_share)])
    snapshot = report.run(Dataset.from_pandas(frames["current"], data_definition=definition),
                          Dataset.from_pandas(frames["reference"], data_definition=definition))

    out_dir.mkdir(parents=True, exist_ok=True)
    html, raw = out_dir / "drift_report.html", out_dir / "drift_report.json"
    snapshot.save_html(str(html))
    result = snapshot.dict()
    raw.write_text(json.dumps(result, indent=2, default=str))

    share, per_column = 0.0, []
    for metric in result["metrics"]:
        kind = metric["config"]["type"]
        if kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            cfg = metric["config"]
            # Evidently's convention: p-value tests drift below the threshold, distances above it.
            is_p_value = "p_value" in cfg["method"].lower() or "test" in cfg["method"].lower()
            value = float(metric["value"])
            drifted = value < cfg["threshold"] if is_p_value else value >= cfg["threshold"]
            per_column.append({"column": cfg["column"], "method": cfg["method"], "value": value,
                               "threshold": cfg["threshold"], "drifted": drifted})
    threshold = config.monitoring.drift_share
    summary = {"drifted": share >= threshold, "drift_share": share, "threshold": threshold,
               "reference": str(reference_path), "current": str(current_path),
               "reference_rows": len(frames["reference"]), "current_rows": len(frames["current"]),
               "columns": per_column}
    summary_path = out_dir / "drift_summary.json"
    summary_path.write_text(json.dumps(summary, indent=2))
    return DriftResult(summary["drifted"], share, threshold, per_column, html, raw, summary_path)


def record_drift(config: Config, model_ref: str, result: DriftResult, current_path: Path) -> dict:
    """Append the drift run to the model's chain, naming the monitored version's ledger root."""
    from governance import chain
    from governance.hashing import sha256_file
    from registry.models import client_for, parse_ref, resolve

    version = resolve(client_for(config.registry.tracking_uri), parse_ref(model_ref))
    drifted = [c["column"] for c in result.columns if c["drifted"]]
    summary = (f"{len(drifted)}/{len(result.columns)} columns drifted (share {result.drift_share:.2f}, "
               f"threshold {result.threshold:.2f})")
    return chain.append(
        config.governance.chain_dir, version.name, "drift", version=str(version.version),
        model_root=version.tags.get("govtrain.ledger_root"), decision="fail" if result.drifted else "pass",
        checks=[{"id": "drift.share", "value": round(result.drift_share, 6), "threshold": result.threshold,
                 "passed": not result.drifted}],
        details={"summary": summary, "drifted_columns": drifted, "current_sha256": sha256_file(current_path),
                 "report_sha256": sha256_file(result.html), "summary_sha256": sha256_file(result.summary)})
