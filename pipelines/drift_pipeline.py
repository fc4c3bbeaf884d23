"""The drift pipeline: one step, the same job as `govtrain drift --model`, for a KFP recurring run."""
from kfp import dsl

from components.ops import drift_op
from pipelines.config import Config
from pipelines.platform import on_cluster

PIPELINE_NAME = "govtrain-drift"


def build_drift_pipeline(config: Config | None = None):
    @dsl.pipeline(name=PIPELINE_NAME, description="Data and prediction drift of a registered model on a current "
                                                  "batch, logged to MLflow and the model's evidence chain.")
    def drift_pipeline(config_json: str, current: str, model: str = "govtrain-credit@champion"):
        on_cluster(drift_op(config_json=config_json, model=model, current=current), config)

    return drift_pipeline
