"""Compile the pipeline for a cluster and submit it to Kubeflow Pipelines with kfp.Client."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from govtrain.components.platform import platform_summary
from govtrain.core.config import Config, ConfigError
from govtrain.pipelines.run import compile_pipeline


@dataclass
class Submission:
    package: Path
    platform: dict
    run_id: str | None = None
    url: str | None = None


def check_cluster_config(config: Config, source: Path) -> None:
    """What would only fail inside a pod, minutes later, said now in one line."""
    uri = config.tracking_uri or ""
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: registry.tracking_uri: a cluster run needs the MLflow server's http(s) URL, "
                          f"not {uri.split('?')[0]!r}")


def submit(config: Config, source: Path, package: Path, host: str | None, namespace: str | None,
           experiment: str, run_name: str | None, dry_run: bool) -> Submission:
    check_cluster_config(config, source)
    compile_pipeline(package, config)
    result = Submission(package=package, platform=platform_summary(config))
    if dry_run:
        return result
    import kfp

    client = kfp.Client(host=host, namespace=namespace or "kubeflow")
    run = client.create_run_from_pipeline_package(
        str(package), arguments={"config_json": config.to_json()}, run_name=run_name, experiment_name=experiment,
        namespace=namespace, service_account=config.cluster.service_account)
    result.run_id = run.run_id
    result.url = f"{(host or '').rstrip('/')}/#/runs/details/{run.run_id}"
    return result
