"""The drift and monitor pipelines: one step each, the same jobs as `govtrain drift --model` and `govtrain
monitor --kserve-log`, for KFP recurring runs.

Its KFP wrapper lives here, beside the pipeline, not in components/ops.py: the drift job sits above the
training components (it reads what register wrote), and components never import monitoring.
"""
from kfp import dsl
from kfp.dsl import HTML, Artifact, Metrics, Output

from govtrain.components.platform import on_cluster
from govtrain.core.config import Config
from govtrain.core.state import COMPONENT_IMAGE

PIPELINE_NAME = "govtrain-drift"
MONITOR_PIPELINE_NAME = "govtrain-monitor"


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def drift_op(config_json: str, model: str, current: str, run_id: str, report: Output[HTML],
             summary: Output[Artifact], metrics: Output[Metrics]) -> str:
    """The drift job for a registered model on a current batch; returns "drift" or "no drift" (both
    succeed: finding drift is a result). A retried task of one run records once (run_id is the key)."""
    import shutil
    from pathlib import Path

    from govtrain.core.config import Config
    from govtrain.monitoring.job import drift_job

    job = drift_job(Config.from_json(config_json), Path(current), model=model or None, out_dir=Path(summary.path),
                    idempotency_key=run_id)
    shutil.copyfile(job.result.html, report.path)
    metrics.log_metric("drift_share", job.result.drift_share)
    metrics.log_metric("drifted_columns", sum(c["drifted"] for c in job.result.columns))
    return "drift" if job.result.drifted else "no drift"


def build_drift_pipeline(config: Config | None = None):
    @dsl.pipeline(name=PIPELINE_NAME, description="Data and prediction drift of a registered model on a current "
                                                  "batch, logged to MLflow and the model's evidence chain.")
    def drift_pipeline(config_json: str, current: str, model: str = "govtrain-credit@champion"):
        # Caching off: a recurring run has the same inputs every night and must measure every night. The
        # run id is a task constant, which the backend fills in per run (see pipelines/training.py).
        on_cluster(drift_op(config_json=config_json, model=model, current=current,
                            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER), config, "drift", cache=False)

    return drift_pipeline


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def monitor_op(config_json: str, model: str, kserve_log: str, summary: Output[Artifact],
               metrics: Output[Metrics]) -> str:
    """One monitor window of a served version: what KServe's payload logger wrote under `kserve_log` since the
    version's last monitor record; returns "alert" or "ok" (both succeed: an alert is a result). A retried task
    starts where the last recorded window ended, so no traffic is judged twice."""
    from pathlib import Path

    from govtrain.core.config import Config
    from govtrain.monitoring.monitor import monitor

    found = monitor(Config.from_json(config_json), model, out_dir=Path(summary.path), kserve_log=kserve_log)
    metrics.log_metric("rows", found.window["rows"])
    metrics.log_metric("refused_share", found.problems["refused_share"])
    if found.drift is not None:
        metrics.log_metric("drift_share", found.drift["share"])
    if found.estimate is not None and "accuracy" in found.estimate:
        metrics.log_metric("estimated_accuracy", found.estimate["accuracy"]["expected"])
    return "alert" if found.alerts else "ok"


def build_monitor_pipeline(config: Config | None = None):
    capture = config.cluster.capture_uri if config is not None and config.cluster.capture_uri else ""

    @dsl.pipeline(name=MONITOR_PIPELINE_NAME, description="Drift, refused requests and the performance estimated "
                                                          "before labels, over a served version's captured traffic; "
                                                          "one signed record in the model's chain per run.")
    def monitor_pipeline(config_json: str, model: str = "govtrain-credit@champion", kserve_log: str = capture):
        # Caching off: every run must read the traffic since the last one.
        on_cluster(monitor_op(config_json=config_json, model=model, kserve_log=kserve_log), config, "drift",
                   cache=False)

    return monitor_pipeline
