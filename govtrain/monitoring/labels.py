"""`govtrain labels`: delayed ground truth joined to the served rows by request id, and each monitor window's
estimate reconciled with what the labels show.

The labels file has `request_id`, `label`, and `row` (the row's position in its request) when a request held
more than one row. For every monitor record of the version whose window holds labelled rows, the realised
metric is computed on them and set beside the estimate: the error, and whether the realised value fell inside
the estimate's 95% interval. Outside it, the calibrated probabilities no longer describe the world (concept
shift): the estimate is not to be trusted for this version until it is retrained or recalibrated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from govtrain.core.config import Config
from govtrain.data.io import DataError
from govtrain.monitoring import estimate
from govtrain.monitoring.monitor import JUDGED, read_served, window_rows
from govtrain.serving.capture import OUT


@dataclass
class Reconciled:
    record: dict
    windows: list[dict]
    joined: int
    unmatched: int


def read_labels(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    frame = pd.read_parquet(path) if path.suffix in (".parquet", ".pq") else pd.read_csv(path, dtype={"label": str})
    for column in ("request_id", "label"):
        if column not in frame.columns:
            raise DataError(f"{path}: column {column!r} not found (labels need request_id, label and, for requests "
                            f"of several rows, row)")
    empty = np.flatnonzero(frame["label"].isna().to_numpy())
    if len(empty):
        raise DataError(f"{path}: row {empty[0]}: label is empty")
    frame["request_id"] = frame["request_id"].astype(str)
    return frame


def join(rows: pd.DataFrame, labels: pd.DataFrame, path: Path) -> tuple[pd.DataFrame, int]:
    """Captured rows with their label; labels naming no captured row are counted, not guessed."""
    if "row" not in labels.columns:
        sizes = rows.groupby("request_id")["row"].size()
        several = sizes[sizes > 1].index.intersection(labels["request_id"])
        if len(several):
            raise DataError(f"{path}: request {several[0]!r} held {sizes[several[0]]} rows: give a row column")
        labels = labels.assign(row=0)
    labels = labels.assign(row=labels["row"].astype("int32"))
    merged = rows.merge(labels[["request_id", "row", "label"]], on=["request_id", "row"], how="inner")
    return merged, len(labels) - len(merged)


def realised(kind: str, classes: list[str], rows: pd.DataFrame) -> dict:
    if kind == "regression":
        values = pd.to_numeric(rows["label"], errors="coerce")
        if values.isna().any():
            raise DataError(f"label {rows['label'][values.isna()].iloc[0]!r} is not a number (a regression model)")
        return estimate.realised_regression(values.to_numpy(float), rows[OUT + "prediction"].to_numpy(float))
    y = rows["label"].astype(str).map({str(c): i for i, c in enumerate(classes)})
    if y.isna().any():
        raise DataError(f"label {rows['label'][y.isna()].iloc[0]!r} is not a class of the model ({classes})")
    if kind == "binary":
        return estimate.realised_binary(y.to_numpy(int), rows[OUT + "probability"].to_numpy(float))
    return estimate.realised_multiclass(y.to_numpy(int),
                                        rows[[f"{OUT}probability_{c}" for c in classes]].to_numpy(float))


def reconcile(config: Config, ref: str, labels_path: Path, kserve_log: str | None = None) -> Reconciled:
    """Labels joined to the served rows (govtrain serve's capture, or what KServe's logger wrote under
    `kserve_log`), reconciled with every monitor window of the version."""
    import tempfile

    from govtrain.governance.hashing import sha256_file
    from govtrain.governance.records import read_chain
    from govtrain.registry.models import append_anchored, verified_version

    with tempfile.TemporaryDirectory(prefix="govtrain-labels-") as tmp:
        version, _, model = verified_version(config, ref, Path(tmp) / "model")
        name, number = version.name, str(version.version)
        captured = read_served(name, number, kserve_log, Path(tmp) / "kserve-log")
    kind, classes = model.task.kind, [str(c) for c in model.task.classes]
    labels = read_labels(labels_path)
    joined, unmatched = join(captured.rows, labels, labels_path)
    windows = []
    for record in read_chain(config.chain_dir, name):
        if record.get("step") != "monitor" or record.get("version") != number:
            continue
        details = record["details"]
        here = window_rows(joined, details["window"])
        found = details.get("estimate") or {}
        if not len(here) or not found:
            continue
        real = realised(kind, classes, here)
        compared = {}
        for metric, value in real.items():
            if metric == "rows" or metric not in found:
                continue
            low, high = found[metric]["interval"]
            compared[metric] = {"estimated": found[metric]["expected"], "interval": [low, high], "realised": value,
                                "error": value - found[metric]["expected"], "inside": bool(low <= value <= high)}
        # Judged on the metric the monitor alerts on (monitor.JUDGED says why accuracy); the others are shown.
        outside = [m for m, c in compared.items() if not c["inside"] and m == JUDGED[kind]]
        drifted = bool((details.get("drift") or {}).get("drifted"))
        for metric, c in compared.items():
            c["judged"] = metric == JUDGED[kind]
        windows.append({"monitor_record": record["hash"], "window": details["window"], "labelled_rows": len(here),
                        "window_rows": details["window"]["rows"], "metrics": compared,
                        # A miss in a window whose inputs drifted is not called concept shift: calibration need
                        # not hold under new inputs (docs/monitoring.md), so the labels cannot tell the two apart
                        "concept_shift": bool(outside) and not drifted,
                        "shift_with_drift": bool(outside) and drifted,
                        "finding": finding(outside, drifted, details.get("drift") or {})})
    record = append_anchored(config, name, "labels", version=number, model_root=version.tags.get(
        "govtrain.ledger_root"), decision="fail" if any(missed(w) for w in windows) else "pass",
                             details={"labels_file": str(labels_path), "labels_sha256": sha256_file(labels_path),
                                      "labels": len(labels), "joined": len(joined), "unmatched": unmatched,
                                      "windows": windows})
    return Reconciled(record, windows, len(joined), unmatched)


def missed(window: dict[str, Any]) -> bool:
    """The realised metric fell outside the estimate's interval, with or without drift of the inputs."""
    return bool(window.get("concept_shift") or window.get("shift_with_drift"))


def finding(outside: list[str], drifted: bool, drift: dict[str, Any]) -> str:
    if not outside:
        return "realised inside the estimate's 95% interval"
    if drifted:
        columns = ", ".join(drift.get("drifted_columns") or []) or "the inputs"
        return (f"realised {', '.join(outside)} outside the estimate's 95% interval while {columns} drifted: the "
                f"probabilities do not describe the labels under the new inputs (calibration did not hold under "
                f"the covariate shift, or the concept moved too; the labels cannot tell which); the estimate is not "
                f"to be trusted until the version is retrained or recalibrated")
    return (f"realised {', '.join(outside)} outside the estimate's 95% interval and the inputs did not drift: the "
            f"probabilities no longer describe the labels (concept shift); the estimate is not to be trusted until "
            f"the version is retrained or recalibrated")
