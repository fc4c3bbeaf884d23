"""What the two cluster backends share: the job's name, where it reads and writes on the work volume,
the worker command and environment, the pod's security settings, and how to tell success from
failure for each kind (JobKind). pytorchjob.py and trainjob.py build the manifests from these."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from govtrain.core.config import Config

WORK_VOLUME = "govtrain-work"
RUN_LABEL = "govtrain/run-id"
PART_OF = {"app.kubernetes.io/part-of": "govtrain"}


class ManifestError(ValueError):
    """The job would be refused by the API server or the training controller's admission webhook."""


@dataclass(frozen=True)
class JobKind:
    """One training CRD as the launcher sees it."""
    group: str
    version: str
    plural: str
    kind: str
    container: str  # the training container's name
    succeeded: str  # the condition type that means success
    log_selector: str  # pods of job {name}, as a label selector; rank 0 is the first by name

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"


PYTORCHJOB = JobKind("kubeflow.org", "v1", "pytorchjobs", "PyTorchJob", "pytorch", "Succeeded",
                     "training.kubeflow.org/job-name={name}")
# Trainer v2 runs a TrainJob as a JobSet of the same name; its pods carry the JobSet's name label.
TRAINJOB = JobKind("trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob", "node", "Complete",
                   "jobset.sigs.k8s.io/jobset-name={name}")


def slug(text: str) -> str:
    """Lower case letters, digits and single dashes: the alphabet of a DNS-1035 label."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def is_dns1035(name: str) -> bool:
    """What Kubernetes, the training controllers and KServe accept as an object's name."""
    return bool(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", name)) and len(name) <= 63


def job_name(run_id: str) -> str:
    """A DNS-1035 label short enough for the per-replica service and pod names the controllers derive."""
    return f"govtrain-{slug(run_id)}"[:40].rstrip("-")


def check_name(name: str, kind: str) -> None:
    if not is_dns1035(name):
        raise ManifestError(f"{kind} name {name!r} is not a DNS-1035 label")


def pod_paths(config: Config, run_id: str) -> dict[str, PurePosixPath]:
    """Where the job, the snapshots and the model live on the shared work volume."""
    root = PurePosixPath(config.cluster.work_mount) / "runs" / run_id
    return {"root": root, "job": root / "job", "checkpoints": root / "checkpoints", "model": root / "model"}


def worker_command(config: Config, run_id: str, max_restarts: int) -> list[str]:
    """torchrun takes nnodes, node rank, processes per node and the master's address from the PET_*
    variables both controllers set in every pod, so the command names none of them."""
    paths = pod_paths(config, run_id)
    return ["python", "-m", "torch.distributed.run", "--max-restarts", str(max_restarts),
            "-m", "govtrain.components.train.worker", "--job", str(paths["job"]), "--out", str(paths["model"])]


def worker_env(config: Config, tracking_uri: str | None) -> list[dict[str, Any]]:
    cluster = config.cluster
    env: list[dict[str, Any]] = [
        {"name": "OMP_NUM_THREADS", "value": str(config.training.threads_per_worker)},
        {"name": "TORCH_DISABLE_SHARE_RDZV_TCP_STORE", "value": "1"},  # see step.RESTART_SAFE_ENV
        {"name": "HOME", "value": "/tmp"}]
    if tracking_uri:
        env.append({"name": "MLFLOW_TRACKING_URI", "value": tracking_uri})
    if cluster.credentials_secret:  # required keys: see ClusterSpec.credentials_keys
        env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": cluster.credentials_secret, "key": key}}}
                for key in cluster.credentials_keys]
    return env


CONTAINER_SECURITY = {"runAsNonRoot": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                      "seccompProfile": {"type": "RuntimeDefault"}}
POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                "seccompProfile": {"type": "RuntimeDefault"}}


def work_volume(config: Config) -> dict[str, Any]:
    return {"name": WORK_VOLUME, "persistentVolumeClaim": {"claimName": config.cluster.work_volume_claim}}


def work_mount(config: Config) -> dict[str, Any]:
    return {"name": WORK_VOLUME, "mountPath": config.cluster.work_mount}


def gpu_placement(config: Config, gpus: int) -> dict[str, Any]:
    """nodeSelector and tolerations for GPU pods, from config.cluster."""
    cluster, placement = config.cluster, dict[str, Any]()
    if gpus and cluster.gpu_node_selector:
        placement["nodeSelector"] = dict(cluster.gpu_node_selector)
    if gpus and cluster.gpu_tolerations:
        placement["tolerations"] = [t.model_dump(exclude_none=True) for t in cluster.gpu_tolerations]
    return placement


def metadata(config: Config, run_id: str, owner: dict | None) -> dict[str, Any]:
    """The job's metadata. With an owner (the train step's pod), Kubernetes' garbage collector deletes
    the job when the pod goes, however the step ended: cancellation included."""
    meta: dict[str, Any] = {"name": job_name(run_id), "namespace": config.cluster.namespace,
                            "labels": {**PART_OF, RUN_LABEL: job_name(run_id)}}
    if owner:
        meta["ownerReferences"] = [owner]
    return meta
