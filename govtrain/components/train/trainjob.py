"""The trainer.kubeflow.org/v1alpha1 TrainJob (Kubeflow Trainer v2) that runs the training workers.

The TrainJob refers to a training runtime installed on the cluster (default: the upstream
`torch-distributed` ClusterTrainingRuntime) and sets the worker's image, command, env, node count and
resources through its own `trainer` fields. What the trainer fields cannot carry (the work volume, the
pods' security context and service account, GPU placement) goes into one runtime patch, the v2.2+ API
for per-job changes to the runtime's pod template. The runtime's torch plugin sets the same PET_*
variables as the Training Operator, so the pods run the same torchrun command as a PyTorchJob.
"""
from __future__ import annotations

from typing import Any

from govtrain.components.train.cluster_job import (
    CONTAINER_SECURITY,
    POD_SECURITY,
    TRAINJOB,
    ManifestError,
    check_name,
    gpu_placement,
    metadata,
    work_mount,
    work_volume,
    worker_command,
    worker_env,
)
from govtrain.core.config import Config

NODE_JOB = "node"  # the runtime's replicated job that runs the trainer (torch-distributed names it so)
PATCH_MANAGER = "govtrain.dev/train-step"
# Set by the torch plugin in every node; the admission webhook refuses a TrainJob that sets one.
RESERVED_ENV = {"PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR", "PET_MASTER_PORT"}


def build_trainjob(config: Config, run_id: str, tracking_uri: str | None, owner: dict | None = None) -> dict:
    training, spec, cluster = config.training, config.training.trainjob, config.cluster
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        resources["nvidia.com/gpu"] = str(spec.gpus)
    pod_patch: dict[str, Any] = {
        "serviceAccountName": "govtrain-workload", "securityContext": POD_SECURITY,
        "containers": [{"name": TRAINJOB.container, "volumeMounts": [work_mount(config)],
                        "securityContext": CONTAINER_SECURITY}],
        "volumes": [work_volume(config)], **gpu_placement(config, spec.gpus)}
    patch = {"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {"replicatedJobs": [
        {"name": NODE_JOB, "template": {"spec": {"template": {
            "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}}, "spec": pod_patch}}}}]}}}}
    job: dict[str, Any] = {
        "apiVersion": TRAINJOB.api_version, "kind": TRAINJOB.kind, "metadata": metadata(config, run_id, owner),
        "spec": {
            "runtimeRef": {"apiGroup": TRAINJOB.group, "kind": spec.runtime_kind, "name": spec.runtime},
            "activeDeadlineSeconds": spec.active_deadline_seconds,
            "trainer": {"image": cluster.image, "command": worker_command(config, run_id, training.max_restarts),
                        "env": worker_env(config, tracking_uri), "numNodes": training.workers,
                        "numProcPerNode": spec.nproc_per_node,
                        "resourcesPerNode": {"requests": resources, "limits": resources}},
            "runtimePatches": [patch],
        },
    }
    check_webhook_rules(job)
    return job


def check_webhook_rules(job: dict, runtime: dict | None = None) -> None:
    """Trainer v2's admission rules for what we generate (pkg/webhooks, the torch plugin's Validate), and,
    given the runtime object, that every patch names a replicated job and container the runtime has."""
    check_name(job.get("metadata", {}).get("name", ""), "TrainJob")
    spec = job.get("spec", {})
    if not spec.get("runtimeRef", {}).get("name"):
        raise ManifestError("spec.runtimeRef.name is required")
    trainer = spec.get("trainer", {})
    reserved = sorted({e.get("name") for e in trainer.get("env", [])} & RESERVED_ENV)
    if reserved:
        raise ManifestError(f"spec.trainer.env must not have reserved envs: {', '.join(reserved)}")
    if trainer.get("numNodes", 1) < 1:
        raise ManifestError("spec.trainer.numNodes must be at least 1")
    if runtime is None:
        return
    jobs = {j["name"]: j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    for index, patch in enumerate(spec.get("runtimePatches", [])):
        for replicated in patch.get("trainingRuntimeSpec", {}).get("template", {}).get("spec", {}).get(
                "replicatedJobs", []):
            where = f"spec.runtimePatches[{index}]: replicated job {replicated['name']!r}"
            if replicated["name"] not in jobs:
                raise ManifestError(f"{where} is not in runtime {runtime['metadata']['name']!r}")
            has = {c["name"] for c in jobs[replicated["name"]]["template"]["spec"]["template"]["spec"]["containers"]}
            for container in replicated["template"]["spec"]["template"]["spec"].get("containers", []):
                if container["name"] not in has:
                    raise ManifestError(f"{where}: no container {container['name']!r} in the runtime")
