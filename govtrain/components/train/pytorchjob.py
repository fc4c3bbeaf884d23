"""The kubeflow.org/v1 PyTorchJob that runs the training workers on a cluster.

Each pod runs the same worker entrypoint as a local run, under torchrun: the Training Operator sets
PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE, PET_MASTER_ADDR and PET_MASTER_PORT in every pod, and
torchrun takes its arguments from those variables, so the command names none of them.
"""
from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from govtrain.core.config import Config

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
CONTAINER = "pytorch"  # the operator finds the training container by this name
WORK_VOLUME = "govtrain-work"


class ManifestError(ValueError):
    """The job would be refused by the Training Operator's admission webhook."""


def job_name(run_id: str) -> str:
    """A DNS-1035 label short enough for the operator's per-replica service names."""
    slug = re.sub(r"[^a-z0-9-]+", "-", run_id.lower()).strip("-")
    return f"govtrain-{slug}"[:40].rstrip("-")


def pod_paths(config: Config, run_id: str) -> dict[str, PurePosixPath]:
    """Where the job, the snapshots and the model live on the shared work volume."""
    root = PurePosixPath(config.cluster.work_mount) / "runs" / run_id
    return {"root": root, "job": root / "job", "checkpoints": root / "checkpoints", "model": root / "model"}


def build_pytorchjob(config: Config, run_id: str, tracking_uri: str | None) -> dict:
    training, spec, cluster = config.training, config.training.pytorchjob, config.cluster
    paths = pod_paths(config, run_id)
    restarts = spec.elastic.max_restarts if spec.elastic else training.max_restarts
    command = ["python", "-m", "torch.distributed.run", "--max-restarts", str(restarts),
               "-m", "govtrain.components.train.worker", "--job", str(paths["job"]), "--out", str(paths["model"])]
    resources = {"cpu": spec.cpu, "memory": spec.memory}
    if spec.gpus:
        resources["nvidia.com/gpu"] = str(spec.gpus)
    env: list[dict[str, Any]] = [{"name": "OMP_NUM_THREADS", "value": str(training.threads_per_worker)},
           {"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"}]  # see step.RESTART_SAFE_ENV
    if tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": tracking_uri})
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": cluster.credentials_secret, "key": key,
                                                         "optional": True}}}
            for key in (cluster.credentials_keys if cluster.credentials_secret else [])]
    container = {
        "name": CONTAINER, "image": training.image, "imagePullPolicy": cluster.image_pull_policy, "command": command,
        "env": env, "resources": {"requests": resources, "limits": resources},
        "volumeMounts": [{"name": WORK_VOLUME, "mountPath": cluster.work_mount}],
        "securityContext": {"runAsNonRoot": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    pod_spec = {"serviceAccountName": "govtrain-workload", "automountServiceAccountToken": False,
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                "containers": [container],
                "volumes": [{"name": WORK_VOLUME, "persistentVolumeClaim": {"claimName": cluster.work_volume_claim}}]}
    if spec.gpus:
        if cluster.gpu_node_selector:
            pod_spec["nodeSelector"] = dict(cluster.gpu_node_selector)
        if cluster.gpu_tolerations:
            pod_spec["tolerations"] = [t.model_dump(exclude_none=True) for t in cluster.gpu_tolerations]
    template = {
        "metadata": {"labels": {"app.kubernetes.io/part-of": "govtrain", "govtrain/run-id": job_name(run_id)},
                     "annotations": {"sidecar.istio.io/inject": "false"}},
        "spec": pod_spec,
    }
    replica_specs = {"Master": {"replicas": 1, "restartPolicy": "OnFailure", "template": template}}
    if training.workers > 1:
        replica_specs["Worker"] = {"replicas": training.workers - 1, "restartPolicy": "OnFailure", "template": template}
    job: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": job_name(run_id), "namespace": spec.namespace,
                     "labels": {"app.kubernetes.io/part-of": "govtrain", "govtrain/run-id": job_name(run_id)}},
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
    name = job.get("metadata", {}).get("name", "")
    if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
        raise ManifestError(f"PyTorchJob name {name!r} is not a DNS-1035 label")
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
