"""Compile the pipeline for a cluster and submit it to Kubeflow Pipelines with kfp.Client."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from govtrain.components.platform import platform_summary
from govtrain.core.config import Config, ConfigError
from govtrain.pipelines.run import compile_pipeline

IMAGE_ROOT = PurePosixPath("/opt/govtrain")  # what the image ships (docker/Dockerfile): expectation suites


@dataclass
class Submission:
    package: Path
    platform: dict
    run_id: str | None = None
    url: str | None = None


@dataclass
class KfpAuth:
    """How `submit` authenticates to a KFP behind Kubeflow's oauth2-proxy/Dex, or in a pod."""
    token: str | None = None  # a bearer token (e.g. `kubectl create token`), best from $GOVTRAIN_KFP_TOKEN
    token_file: Path | None = None
    cookies: str | None = None  # e.g. "oauth2_proxy_kubeflow=..." copied from a logged-in browser


def cluster_paths(config: Config) -> dict[str, Path | None]:
    files = {f"governance.artefacts.{key}.file": link.file for key, link in config.governance.artefacts.items()}
    table = config.dataset.path if isinstance(config.dataset.path, Path) else None  # a URI: pods read it directly
    return {"dataset.path": table, "validation.suite": config.validation.suite,
            "evaluation.ood_data": config.evaluation.ood_data,
            "training.checkpoint_dir": config.training.checkpoint_dir,
            "governance.chain_dir": config.governance.chain_dir, **files}


def check_cluster_config(config: Config, source: Path) -> None:
    """What would only fail inside a pod, minutes later, said now in one line: a tracking URI a pod cannot
    reach, or a path that exists only on this machine."""
    uri = config.tracking_uri or ""
    if not uri.startswith(("http://", "https://")):
        raise ConfigError(f"{source}: registry.tracking_uri: a cluster run needs the MLflow server's http(s) URL, "
                          f"not {uri.split('?')[0]!r}")
    named = re.search(r"//[^/.:]+\.([a-z0-9-]+)\.svc\b", uri)
    if named and named.group(1) != config.cluster.namespace:
        raise ConfigError(f"{source}: registry.tracking_uri names namespace {named.group(1)!r} but cluster.namespace "
                          f"is {config.cluster.namespace!r}: use one namespace for both")
    mount = PurePosixPath(config.cluster.work_mount)
    for key, path in cluster_paths(config).items():
        if path is None:
            continue
        posix = PurePosixPath(path)
        if not (posix.is_relative_to(mount) or posix.is_relative_to(IMAGE_ROOT)):
            raise ConfigError(f"{source}: {key}: {path} is a path on this machine; a pod sees only the work volume "
                              f"({mount}) and the image ({IMAGE_ROOT})")


def client_options(auth: KfpAuth) -> dict[str, Any]:
    """kfp.Client keyword arguments: a given token or token file, else the pod's own projected
    service-account token when running in a cluster; cookies as given."""
    from kfp.client import KF_PIPELINES_SA_TOKEN_ENV, KF_PIPELINES_SA_TOKEN_PATH
    from kfp.client.set_volume_credentials import ServiceAccountTokenVolumeCredentials

    options: dict[str, Any] = {}
    if auth.cookies:
        options["cookies"] = auth.cookies
    if auth.token:
        options["existing_token"] = auth.token
    elif auth.token_file:
        try:
            token = auth.token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"--token-file {auth.token_file}: {exc.strerror or exc}") from exc
        if not token:
            raise ConfigError(f"--token-file {auth.token_file}: the file is empty")
        options["existing_token"] = token
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        path = os.environ.get(KF_PIPELINES_SA_TOKEN_ENV) or KF_PIPELINES_SA_TOKEN_PATH
        if Path(path).is_file():
            options["credentials"] = ServiceAccountTokenVolumeCredentials(path)
    return options


def submit(config: Config, source: Path, package: Path, host: str | None, namespace: str | None,
           experiment: str, run_name: str | None, dry_run: bool, auth: KfpAuth | None = None) -> Submission:
    check_cluster_config(config, source)
    if namespace and namespace != config.cluster.namespace:
        raise ConfigError(f"--namespace {namespace}: {source} sets cluster.namespace {config.cluster.namespace!r}; "
                          f"the steps and their training job must share one namespace")
    compile_pipeline(package, config)
    result = Submission(package=package, platform=platform_summary(config))
    if dry_run:
        return result
    import kfp

    client = kfp.Client(host=host, namespace=config.cluster.namespace, **client_options(auth or KfpAuth()))
    run = client.create_run_from_pipeline_package(
        str(package), arguments={"config_json": config.to_json()}, run_name=run_name, experiment_name=experiment,
        namespace=config.cluster.namespace, service_account=config.cluster.service_account)
    result.run_id = run.run_id
    result.url = f"{(host or '').rstrip('/')}/#/runs/details/{run.run_id}"
    return result
