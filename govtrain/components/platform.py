"""Kubernetes settings the compiled pipeline carries for a cluster (config.cluster). kfp.local ignores
platform settings, and a local run compiles the pipeline without them, so components stay unaware."""
from kfp import kubernetes
from kfp.dsl import PipelineTask

from govtrain.core.config import Config
from govtrain.governance.evidence import MIRROR_ENV
from govtrain.governance.signing import KEY_FILE_ENV

SIGNING_STEPS = ("register", "seal", "drift")  # the steps that seal a ledger or append to a chain (monitor: drift's)
SIGNING_MOUNT = "/var/run/govtrain/signing"


def on_cluster(task: PipelineTask, config: Config | None, step: str, *, cache: bool = True) -> PipelineTask:
    """`step` names the entry of cluster.resources that sizes the pod (else `default`)."""
    if config is None:
        return task
    cluster = config.cluster
    # The image comes from the config, not from the decorator's base_image, so one setting moves every step.
    assert task.container_spec is not None
    task.container_spec.image = cluster.image
    kubernetes.set_image_pull_policy(task, cluster.pull_policy)
    size = cluster.resources_of(step)
    task.set_cpu_request(size.cpu).set_memory_request(size.memory)
    if size.cpu_limit:
        task.set_cpu_limit(size.cpu_limit)
    if size.memory_limit:
        task.set_memory_limit(size.memory_limit)
    if not cache:
        task.set_caching_options(False)
    kubernetes.mount_pvc(task, pvc_name=cluster.work_volume_claim, mount_path=cluster.work_mount)
    # Every record is mirrored to the work volume, so the exit handler can seal a crashed run.
    task.set_env_variable(MIRROR_ENV, f"{cluster.work_mount.rstrip('/')}/runs")
    if cluster.credentials_secret:
        # Not optional: KFP before 2.15 ignores the flag, so "optional" would only hide a missing key here.
        kubernetes.use_secret_as_env(task, secret_name=cluster.credentials_secret,
                                     secret_key_to_env={key: key for key in cluster.credentials_keys})
    if step in SIGNING_STEPS and cluster.signing_key_secret:
        # Only here: a step that neither seals nor appends never holds the key that makes evidence trusted.
        kubernetes.use_secret_as_volume(task, secret_name=cluster.signing_key_secret, mount_path=SIGNING_MOUNT)
        task.set_env_variable(KEY_FILE_ENV, f"{SIGNING_MOUNT}/signing.key")
    if step == "train" and cluster.train_step_gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(cluster.train_step_gpus)
        for label, value in cluster.gpu_node_selector.items():
            kubernetes.add_node_selector(task, label_key=label, label_value=value)
        for toleration in cluster.gpu_tolerations:
            kubernetes.add_toleration(task, key=toleration.key, operator=toleration.operator,
                                      value=toleration.value, effect=toleration.effect)
    return task


def training_summary(config: Config) -> str:
    training, cluster = config.training, config.cluster
    if training.backend == "pytorchjob":
        spec = training.pytorchjob
        return (f"PyTorchJob in {cluster.namespace}: {training.workers} pod(s) x {spec.nproc_per_node} "
                f"process(es), {spec.gpus} GPU(s)/pod")
    if training.backend == "trainjob":
        job = training.trainjob
        return (f"TrainJob in {cluster.namespace} on {job.runtime_kind} {job.runtime}: {training.workers} node(s) x "
                f"{job.nproc_per_node} process(es), {job.gpus} GPU(s)/node")
    return f"torchrun in the train step: {training.workers} process(es), {cluster.train_step_gpus} GPU(s)"


def platform_summary(config: Config) -> dict:
    """What `govtrain submit --dry-run` prints: where the run would go and what it would mount and read."""
    cluster = config.cluster
    return {
        "namespace": cluster.namespace,
        "image": cluster.image, "image_pull_policy": cluster.pull_policy,
        "service_account": cluster.service_account,
        "work_volume": f"{cluster.work_volume_claim} at {cluster.work_mount} (every step)",
        "credentials_secret": (f"{cluster.credentials_secret}: {', '.join(cluster.credentials_keys)} (all required)"
                               if cluster.credentials_secret else "none"),
        "signing_key": (f"Secret {cluster.signing_key_secret} at {SIGNING_MOUNT}, only in {', '.join(SIGNING_STEPS)}"
                        if cluster.signing_key_secret else "none: ledgers unsigned, audit verify refuses them"),
        "resources": {step: size.model_dump(exclude_none=True) for step, size in cluster.resources.items()},
        "training": training_summary(config),
        "gpu_node_selector": cluster.gpu_node_selector or "none",
        "gpu_tolerations": [t.model_dump(exclude_none=True) for t in cluster.gpu_tolerations] or "none",
        "tracking_uri": config.tracking_uri,
        "dataset": str(config.dataset.path),
    }
