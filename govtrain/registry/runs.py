"""The one MLflow run of a pipeline run, found by its govtrain.run_id tag so every step (and a retry)
writes to the same run instead of creating another."""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from govtrain.registry.models import client_for

log = logging.getLogger(__name__)

RUN_ID_TAG = "govtrain.run_id"


def artifact_location(tracking_uri: str) -> str | None:
    """For the embedded sqlite store, keep artifacts beside the database, not in ./mlruns."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()
    return None


def experiment_id(client: Any, name: str, tracking_uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(name, artifact_location=artifact_location(tracking_uri))


def tagged_run(client: Any, experiment_id: str, run_id: str) -> Any:
    """The MLflow run carrying this pipeline run's id, or None."""
    found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1)
    return found[0] if found else None


def pipeline_run(tracking_uri: str, experiment: str, run_id: str) -> str:
    """The MLflow run id for this pipeline run, created on first use."""
    client = client_for(tracking_uri)
    exp_id = experiment_id(client, experiment, tracking_uri)
    found = tagged_run(client, exp_id, run_id)
    if found is not None:
        return found.info.run_id
    return client.create_run(exp_id, run_name=f"govtrain-{run_id}", tags={RUN_ID_TAG: run_id}).info.run_id


def end_pipeline_run(tracking_uri: str, experiment: str, run_id: str, status: str, outcome: str) -> str | None:
    """End the pipeline run's MLflow run (if one was opened and is still RUNNING) as FAILED or KILLED,
    with the outcome as a tag; returns its id. Best effort: the sealed ledger is the record, and an
    unreachable server costs a warning, not the seal."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return None  # no store yet, so no run to end (and opening one would create it)
    try:
        client = client_for(tracking_uri)
        exp = client.get_experiment_by_name(experiment)
        found = tagged_run(client, exp.experiment_id, run_id) if exp else None
        if found is None or found.info.status != "RUNNING":
            return None
        client.set_tag(found.info.run_id, "govtrain.outcome", outcome[:4900])
        client.set_terminated(found.info.run_id, status)
        return found.info.run_id
    except Exception as exc:  # noqa: BLE001
        log.warning("could not end the MLflow run of %s as %s: %s", run_id, status, exc)
        return None


class EpochLogger:
    """Rank 0's per-epoch metrics to the pipeline run's MLflow run. A tracking-server blip costs a
    warning, not the training job: the same figures are in the evidence record."""

    def __init__(self, target: Any = None):
        """target: where to log (tracking_uri, run_id), or None for rank > 0 and local stores."""
        self.client, self.run_id = None, None
        if target is not None:
            self.client, self.run_id = client_for(target.tracking_uri), target.run_id

    def log(self, stats: dict) -> None:
        if self.client is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        names = ("train_loss", "val_loss", "val_auc", "val_accuracy", "val_rmse", "samples_per_second", "world_size",
                 "comm_share", "comm_overlap", "comm_bytes_per_step", "comm_exposed_seconds")
        try:
            self.client.log_batch(self.run_id, metrics=[Metric(n, float(stats[n]), now, stats["epoch"])
                                                        for n in names if n in stats])
        except Exception as exc:
            log.warning("could not log epoch %s to MLflow: %s", stats["epoch"], exc)
            self.client = None


def log_monitoring_run(tracking_uri: str, experiment: str, version: Any, drifted: bool, metrics: dict[str, float],
                       files: list[Path]) -> str:
    """One MLflow run per drift job, in "<experiment>-monitoring", tagged with the model version and root."""
    client = client_for(tracking_uri)
    exp = experiment_id(client, f"{experiment}-monitoring", tracking_uri)
    run = client.create_run(exp, run_name=f"drift-{version.name}-v{version.version}", tags={
        "govtrain.model": version.name, "govtrain.version": str(version.version),
        "govtrain.ledger_root": version.tags.get("govtrain.ledger_root", ""), "govtrain.drifted": str(drifted)})
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, name, value)
    for path in files:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


RUNS_ANCHOR_TAG = "govtrain.runs_chain_head"  # "<seq>:<hash>" of the chain of runs' newest record


def anchor_runs(tracking_uri: str, experiment: str, anchor: str) -> None:
    """The chain of runs anchored outside this machine's files: a tag on the experiment. Best effort, like
    ending a run: the anchor file beside the chains is the one every append checks. A run refused before
    anything opened the embedded store leaves no tag (making the store would print MLflow's set-up lines)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return
    try:
        client = client_for(tracking_uri)
        client.set_experiment_tag(experiment_id(client, experiment, tracking_uri), RUNS_ANCHOR_TAG, anchor)
    except Exception as exc:  # noqa: BLE001
        log.warning("could not anchor the chain of runs in MLflow: %s", exc)


def runs_anchor(tracking_uri: str, experiment: str) -> str | None:
    """The experiment's anchor of the chain of runs, or None (no store, no experiment, no tag yet)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return None
    exp = client_for(tracking_uri).get_experiment_by_name(experiment)
    return exp.tags.get(RUNS_ANCHOR_TAG) if exp else None
