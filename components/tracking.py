"""The one MLflow run of a pipeline run, found by its govtrain.run_id tag so every step (and a retry)
writes to the same run instead of creating another."""
from __future__ import annotations

from pathlib import Path
from typing import Any

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


def pipeline_run(tracking_uri: str, experiment: str, run_id: str) -> str:
    """The MLflow run id for this pipeline run, created on first use."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp_id = experiment_id(client, experiment, tracking_uri)
    found = client.search_runs([exp_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=1)
    if found:
        return found[0].info.run_id
    return client.create_run(exp_id, run_name=f"govtrain-{run_id}", tags={RUN_ID_TAG: run_id}).info.run_id
