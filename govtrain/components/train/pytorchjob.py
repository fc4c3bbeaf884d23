"""The kubeflow.org/v1 PyTorchJob (Training Operator v1) that runs the training workers on a cluster.

Each pod runs the same worker entrypoint as a local run, under torchrun: the Training Operator sets
PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE, PET_MASTER_ADDR and PET_MASTER_PORT in every pod.
"""
from __future__ import annotations

from typing import Any

from govtrain.components.train.cluster_job import (
    CONTAINER_SECURITY,
    PART_OF,
    POD_SECURITY,
    PYTORCHJOB,
    RUN_LABEL,
    ManifestError,
    check_name,
    gpu_placement,
    job_name,
    metadata,
    work_mount,
    work_volume,
    worker_command,
    worker_env,
)
from govtrain.core.config import Config

CONTAINER = PYTORCHJOB.container  # the operator finds the training container by this name


def build_pytorchjob(config: Config, run_id: str, tracking_uri: str | None, owner: dict | None = None) -> dict:
    training, spec, cluster = config.training, config.training.pytorchjob, config.cluster
    restarts = spec.elastic.max_restarts if spec.elastic else training.max_restarts
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        resources["nvidia.com/gpu"] = str(spec.gpus)
    container = {
        "name": CONTAINER, "image": cluster.image, "imagePullPolicy": cluster.pull_policy,
        "command": worker_command(config, run_id, restarts), "env": worker_env(config, tracking_uri),
        "resources": {"requests": resources, "limits": resources}, "volumeMounts": [work_mount(config)],
        "securityContext": CONTAINER_SECURITY,
    }
    pod_spec = {"serviceAccountName": "govtrain-workload", "automountServiceAccountToken": False,
                "securityContext": POD_SECURITY, "containers": [container], "volumes": [work_volume(config)],
                **gpu_placement(config, spec.gpus)}
    template = {"metadata": {"labels": {**PART_OF, RUN_LABEL: job_name(run_id)},
                             "annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": pod_spec}
    replica_specs = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template}}
    if training.workers > 1:
        replica_specs["Worker"] = {"replicas": training.workers - 1, "restartPolicy": "OnFailure", "template": template}
    job: dict[str, Any] = {
        "apiVersion": PYTORCHJOB.api_version, "kind": PYTORCHJOB.kind, "metadata": metadata(config, run_id, owner),
        "spec": {
            "nprocPerNode": str(spec.nproc_per_node),
            "runPolicy": {"backoffLimit": spec.backoff_limit, "activeDeadlineSeconds": spec.active_deadline_seconds,
                          "cleanPodPolicy": spec.clean_pod_policy,
                          "ttlSecondsAfterFinished": spec.ttl_seconds_after_finished},
            "pytorchReplicaSpecs": replica_specs,
        },
    }
    if spec.elastic:
        job["spec"]["elasticPolicy"] = {"minReplicas": spec.elastic.min_replicas,
                                        "maxReplicas": spec.elastic.max_replicas,
                                        "maxRestarts": spec.elastic.max_restarts, "rdzvBackend": "c10d"}
    check_webhook_rules(job)
    return job


def check_webhook_rules(job: dict) -> None:
    """The Training Operator's validating webhook (pkg/webhooks/pytorch), checked before we submit so a
    user sees the reason in the step log rather than an HTTP 400."""
    check_name(job.get("metadata", {}).get("name", ""), "PyTorchJob")
    spec = job.get("spec", {})
    replicas = spec.get("pytorchReplicaSpecs") or {}
    if not replicas:
        raise ManifestError("spec.pytorchReplicaSpecs: at least one replica type is required")
    for kind, replica in replicas.items():
        where = f"spec.pytorchReplicaSpecs.{kind}"
        if kind not in ("Master", "Worker"):
            raise ManifestError(f"{where}: replica type must be Master or Worker")
        containers = replica.get("template", {}).get("spec", {}).get("containers", [])
        named = [c for c in containers if c.get("name") == CONTAINER]
        if not named:
            raise ManifestError(f"{where}: no container named {CONTAINER!r}")
        if not named[0].get("image"):
            raise ManifestError(f"{where}: container {CONTAINER!r} has no image")
    if "Master" in replicas and replicas["Master"].get("replicas", 1) != 1:
        raise ManifestError("spec.pytorchReplicaSpecs.Master.replicas must be exactly 1")
    if "elasticPolicy" in spec and replicas.get("Worker", {}).get("replicas", 0) < 1:
        raise ManifestError("spec.elasticPolicy needs spec.pytorchReplicaSpecs.Worker.replicas >= 1")
