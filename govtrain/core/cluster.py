"""The cluster half of the config: how the compiled pipeline, the training job and the scheduled drift
job run on Kubernetes. kfp.local ignores all of it. Lives beside config.py (the ground floor), which
composes it into Config."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from govtrain.core.state import COMPONENT_IMAGE

# The steps whose pods can be sized; `default` applies to any step not named.
STEPS = ("prepare", "validate", "leakage", "data_gate", "train", "evaluate", "register", "seal", "drift", "serve")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ElasticSpec(_Strict):
    min_replicas: int = Field(1, ge=1)
    max_replicas: int = Field(2, ge=1)
    max_restarts: int = Field(3, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> ElasticSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class PyTorchJobSpec(_Strict):
    """Training Operator v1 (training.backend: pytorchjob): a kubeflow.org/v1 PyTorchJob."""
    nproc_per_node: int = Field(1, ge=1)  # worker processes per pod (one per GPU on GPU nodes)
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = Field(0, ge=0)  # nvidia.com/gpu per pod; GPU pods get cluster.gpu_node_selector/tolerations
    backoff_limit: int = Field(3, ge=0)
    active_deadline_seconds: int = Field(6 * 3600, ge=60)
    clean_pod_policy: Literal["None", "Running", "All"] = "Running"
    ttl_seconds_after_finished: int = Field(3600, ge=0)
    elastic: ElasticSpec | None = None
    poll_seconds: float = Field(10.0, gt=0)


class TrainJobSpec(_Strict):
    """Kubeflow Trainer v2 (training.backend: trainjob): a trainer.kubeflow.org/v1alpha1 TrainJob that
    refers to a training runtime installed on the cluster."""
    runtime: str = "torch-distributed"  # the upstream ClusterTrainingRuntime
    runtime_kind: Literal["ClusterTrainingRuntime", "TrainingRuntime"] = "ClusterTrainingRuntime"
    nproc_per_node: int = Field(1, ge=1)
    cpu: str = "2"
    memory: str = "4Gi"
    gpus: int = Field(0, ge=0)
    active_deadline_seconds: int = Field(6 * 3600, ge=60)
    poll_seconds: float = Field(10.0, gt=0)


class Toleration(_Strict):
    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None


class Resources(_Strict):
    """Requests and limits of one step's pod, in Kubernetes quantities."""
    cpu: str = "500m"
    memory: str = "1Gi"
    cpu_limit: str | None = "2"
    memory_limit: str | None = "4Gi"


def _default_resources() -> dict[str, Resources]:
    return {"default": Resources(), "train": Resources(cpu="1", memory="2Gi", cpu_limit="4", memory_limit="8Gi"),
            "evaluate": Resources(cpu="1", memory="2Gi", cpu_limit="4", memory_limit="8Gi")}


class ClusterSpec(_Strict):
    """What the compiled pipeline, the training job and the drift CronJob apply on Kubernetes."""
    namespace: str = "govtrain"  # training jobs, `deploy`; the overlay of the same name (infra/overlays)
    # Every step, every training pod and the drift CronJob run this image; pin it by digest in production.
    image: str = COMPONENT_IMAGE
    # None: IfNotPresent for a digest (immutable), Always for a tag (a moved tag is pulled again).
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    # A ReadWriteMany claim mounted at work_mount in every step and every training pod: the data, the
    # shard tensors, snapshots and the trained model pass through it.
    work_volume_claim: str = "govtrain-work"
    work_mount: str = "/mnt/govtrain"
    # Secret whose keys become env vars of every step and training pod. Every key must exist: KFP before
    # 2.15 ignores `optional`, so an optional key that is missing stops the pod (docs/cluster.md).
    credentials_secret: str | None = "govtrain-mlflow"
    credentials_keys: list[str] = Field(default_factory=lambda: [
        "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
    # Secret with the Ed25519 signing key (key `signing.key`: base64 of the 32-byte seed), mounted read-only
    # only into the steps that seal a ledger or append to a chain (register, seal, drift); None: unsigned
    # on the cluster, which every `audit verify` then refuses. Rotation: docs/cluster.md.
    signing_key_secret: str | None = "govtrain-signing-key"
    service_account: str = "govtrain-pipeline"  # has the Role in infra/base/rbac.yaml
    # `govtrain deploy`: the predictor's identity (KServe reads its S3 credentials through it) and where
    # the MLflow server stores artifacts (its --artifacts-destination), to find a version's files.
    serving_service_account: str = "govtrain-serving"
    artifacts_destination: str = "s3://mlflow-artifacts"
    # The predictor's image: MLServer and its MLflow runtime beside the model's pinned torch and safetensors
    # (docker/Dockerfile.serving). Not `image`: MLServer 1.7 pins fastapi below 0.116, govtrain's server above.
    serving_image: str = "ghcr.io/govtrain/govtrain-serving:0.1.0"
    # KServe's payload logger (v0.18+): every request and answer as Parquet under capture_uri, read back by
    # `govtrain monitor --kserve-log`; the key names the bucket's credentials in KServe's storage-config Secret.
    # capture_uri None: no logger.
    capture_uri: str | None = "s3://mlflow-artifacts/capture"
    capture_storage_key: str = "govtrain-capture"
    capture_batch_size: int = Field(100, ge=1)  # events per Parquet object
    capture_batch_interval: str = "60s"  # or sooner: a quiet service's last requests still reach the store
    resources: dict[str, Resources] = Field(default_factory=_default_resources)
    train_step_gpus: int = Field(0, ge=0)  # GPUs for the train step itself (backend local on a cluster)
    gpu_node_selector: dict[str, str] = Field(default_factory=dict)
    gpu_tolerations: list[Toleration] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_steps(self) -> ClusterSpec:
        unknown = sorted(set(self.resources) - {"default", *STEPS})
        if unknown:
            raise ValueError(f"resources: unknown step {unknown[0]!r} (steps: default, {', '.join(STEPS)})")
        return self

    @property
    def pull_policy(self) -> str:
        return self.image_pull_policy or ("IfNotPresent" if "@sha256:" in self.image else "Always")

    def resources_of(self, step: str) -> Resources:
        return self.resources.get(step) or self.resources.get("default") or Resources()
