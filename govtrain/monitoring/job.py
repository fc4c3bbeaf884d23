"""The drift job, as both `govtrain drift` and the KFP drift pipeline run it."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from govtrain.core.config import Config
from govtrain.core.state import latest_run_dir, state_dir
from govtrain.monitoring.drift import DriftResult, monitoring_metrics, notify, record_drift, run_drift


@dataclass
class DriftJob:
    result: DriftResult
    version: Any = None  # the monitored model version, when --model was given
    monitoring_run: str | None = None
    webhook: dict | None = None
    record: dict | None = None
    replayed: bool = False  # this idempotency key was already recorded: nothing logged, notified or appended


def record_notification(config: Config, version: Any, drift_record: dict, outcome: dict) -> dict:
    from govtrain.registry.models import append_anchored

    return append_anchored(config, version.name, "notify", version=str(version.version),
                  model_root=drift_record.get("model_root"), decision="pass" if outcome["delivered"] else "fail",
                  details={"drift_record": drift_record["hash"], **outcome})


def recorded_drift(config: Config, model: str, key: str) -> dict | None:
    """The chain record an earlier attempt of the same scheduled run left (a retried CronJob pod)."""
    from govtrain.governance.chain import read_chain

    return next((r for r in read_chain(config.chain_dir, model)
                 if r.get("step") == "drift" and r.get("details", {}).get("idempotency_key") == key), None)


def drift_job(config: Config, current: Path, reference: Path | None = None, model: str | None = None,
              out_dir: Path | None = None, idempotency_key: str | None = None) -> DriftJob:
    """With an idempotency key (the CronJob passes its Job's name, the same for every retry of one
    scheduled time), a key already in the model's chain is reported, not run again."""
    from govtrain.registry.models import client_for, load_version_model, parse_ref, reference_sample, resolve
    from govtrain.registry.runs import log_monitoring_run

    version, stored_of = None, None
    if model is not None:
        version = resolve(client_for(config.tracking_uri), parse_ref(model))
        if reference is None:
            reference = reference_sample(version, state_dir() / "drift" / "reference")
            stored_of = f"{version.name}/{version.version}"
    if reference is None:  # never a silent pick: the newest run may be of another dataset
        latest = latest_run_dir(state_dir())
        hint = (f" (the newest local run's train split is {latest / 'data' / 'train.parquet'})"
                if latest is not None and (latest / "data" / "train.parquet").is_file() else "")
        raise ValueError(f"drift needs a reference: give --reference FILE or --model NAME[@alias]{hint}")
    out_dir = out_dir or state_dir() / "drift" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    result = run_drift(config, current, reference, out_dir, model=load_version_model(version) if version else None,
                       stored_reference_of=stored_of)
    job = DriftJob(result, version)
    if version is not None and idempotency_key:
        earlier = recorded_drift(config, version.name, idempotency_key)
        if earlier is not None:
            job.record, job.replayed = earlier, True
            job.monitoring_run = earlier.get("details", {}).get("mlflow_run_id")
            return job
    if version is not None:
        job.monitoring_run = log_monitoring_run(config.tracking_uri, config.registry.experiment, version,
                                                result.drifted, monitoring_metrics(result), [result.html,
                                                                                             result.summary])
        # The record first: an alert never announces what the chain does not hold. The alert names the
        # record, and its delivery is a record of its own.
        label = f"{version.name}/{version.version}"
        job.record = record_drift(config, label, result, current, monitoring_run=job.monitoring_run,
                                  idempotency_key=idempotency_key)
        if job.record["details"].get("mlflow_run_id") != job.monitoring_run:  # a racing retry recorded it first
            job.replayed = True
            return job
        job.webhook = notify(result, label, record_hash=job.record["hash"])
        if job.webhook is not None:
            record_notification(config, version, job.record, job.webhook)
    return job
