"""Kubernetes settings the compiled pipeline carries for a cluster (config.cluster). kfp.local ignores
platform settings, and a local run compiles the pipeline without them, so components stay unaware."""
from kfp import kubernetes
from kfp.dsl import PipelineTask

from govtrain.core.config import Config
from govtrain.governance.evidence import MIRROR_ENV


def on_cluster(task: PipelineTask, config: Config | None, *, train_step: bool = False) -> PipelineTask:
    if config is None:
        return task
    cluster = config.cluster
    kubernetes.set_image_pull_policy(task, cluster.image_pull_policy)
    kubernetes.mount_pvc(task, pvc_name=cluster.work_volume_claim, mount_path=cluster.work_mount)
    # Every record is mirrored to the work volume, so the exit handler can seal a crashed run.
    task.set_env_variable(MIRROR_ENV, f"{cluster.work_mount.rstrip('/')}/runs")
    if cluster.credentials_secret:
        kubernetes.use_secret_as_env(task, secret_name=cluster.credentials_secret,
                                     secret_key_to_env={key: key for key in cluster.credentials_keys}, optional=True)
    if train_step and cluster.train_step_gpus:
        task.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(cluster.train_step_gpus)
        for label, value in cluster.gpu_node_selector.items():
            kubernetes.add_node_selector(task, label_key=label, label_value=value)
        for toleration in cluster.gpu_tolerations:
            kubernetes.add_toleration(task, key=toleration.key, operator=toleration.operator,
                                      value=toleration.value, effect=toleration.effect)
    return task


def platform_summary(config: Config) -> dict:
    """What `govtrain submit --dry-run` prints: where the run would go and what it would mount and read."""
    cluster, training = config.cluster, config.training
    return {
        "image": training.image, "image_pull_policy": cluster.image_pull_policy,
        "service_account": cluster.service_account,
        "work_volume": f"{cluster.work_volume_claim} at {cluster.work_mount} (every step)",
        "credentials_secret": (f"{cluster.credentials_secret}: {', '.join(cluster.credentials_keys)} (optional)"
                               if cluster.credentials_secret else "none"),
        "training": (f"PyTorchJob in {training.pytorchjob.namespace}: {training.workers} pod(s) x "
                     f"{training.pytorchjob.nproc_per_node} process(es), {training.pytorchjob.gpus} GPU(s)/pod"
                     if training.backend == "pytorchjob" else
                     f"torchrun in the train step: {training.workers} process(es), {cluster.train_step_gpus} GPU(s)"),
        "gpu_node_selector": cluster.gpu_node_selector or "none",
        "gpu_tolerations": [t.model_dump(exclude_none=True) for t in cluster.gpu_tolerations] or "none",
        "tracking_uri": config.tracking_uri,
        "dataset": str(config.dataset.path),
    }
