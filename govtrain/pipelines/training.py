"""The training pipeline, as data flows: prepare -> validate + leakage -> gate -> train -> evaluate
-> gate -> register. A run that stops at a gate is still sealed, by the seal step in the else-branch."""
from kfp import dsl

from govtrain.components.ops import (
    data_gate_op,
    evaluate_op,
    leakage_op,
    prepare_op,
    register_op,
    seal_on_exit_op,
    seal_op,
    train_op,
    validate_op,
)
from govtrain.components.platform import on_cluster
from govtrain.core.config import Config

PIPELINE_NAME = "govtrain-training"
DESCRIPTION = ("Validated, leak-checked, DDP-trained, evaluated and registered tabular model with a sealed "
               "NIST AI RMF evidence ledger.")


def build_training_pipeline(config: Config | None = None):
    """The pipeline. With a config (`govtrain compile`/`submit`) every step also carries config.cluster's
    Kubernetes settings: the shared work volume, credentials, image pull policy, GPUs for the train step."""
    def k8s(task, step: str):
        return on_cluster(task, config, step)

    def steps(config_json, run_id):
        prepare = k8s(prepare_op(config_json=config_json, run_id=run_id), "prepare")
        splits = {name: prepare.outputs[name] for name in ("train", "val", "test")}

        validate = k8s(validate_op(config_json=config_json, run_id=run_id, parent_evidence=prepare.outputs["evidence"],
                                   **splits), "validate")
        leakage = k8s(leakage_op(config_json=config_json, run_id=run_id, parent_evidence=prepare.outputs["evidence"],
                                 **splits), "leakage")
        data_gate = k8s(data_gate_op(config_json=config_json, run_id=run_id,
                                     validation_evidence=validate.outputs["evidence"],
                                     leakage_evidence=leakage.outputs["evidence"]), "data_gate")

        with dsl.If(data_gate.outputs["Output"] == "pass", name="data-gate-passed"):
            train = k8s(train_op(config_json=config_json, run_id=run_id, train_data=splits["train"],
                                 val_data=splits["val"], parent_evidence=data_gate.outputs["evidence"]),
                        "train")
            evaluate = k8s(evaluate_op(config_json=config_json, run_id=run_id, model=train.outputs["model"],
                                       train_data=splits["train"], val_data=splits["val"], test_data=splits["test"],
                                       parent_evidence=train.outputs["evidence"]), "evaluate")
            with dsl.If(evaluate.outputs["Output"] == "pass", name="model-gate-passed"):
                register = k8s(register_op(config_json=config_json, run_id=run_id,
                                           model=evaluate.outputs["calibrated_model"], train_data=splits["train"],
                                           parent_evidence=evaluate.outputs["evidence"]), "register")
                # A retry completes the version the failed attempt created (publish.version_of_run), never
                # makes a second one: an MLflow outage mid-registration heals without a person.
                register.set_retry(num_retries=3, backoff_duration="30s", backoff_factor=2.0)
            with dsl.Else(name="model-gate-failed"):
                k8s(seal_op(config_json=config_json, run_id=run_id, stopped_at="evaluate",
                            evidence=evaluate.outputs["evidence"]), "seal")
        with dsl.Else(name="data-gate-failed"):
            k8s(seal_op(config_json=config_json, run_id=run_id, stopped_at="data_gate",
                        evidence=data_gate.outputs["evidence"]), "seal")

    if config is None:  # kfp.local: run_local names the run and seals a crashed run itself
        @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
        def training_pipeline(config_json: str, run_id: str):
            steps(config_json, run_id)

        return training_pipeline

    @dsl.pipeline(name=PIPELINE_NAME, description=DESCRIPTION)
    def cluster_training_pipeline(config_json: str):
        # The KFP backend substitutes placeholders in constant task inputs, once per run; a parameter's
        # default would reach every run as the literal text, so every run would share one id.
        run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
        exit_seal = k8s(seal_on_exit_op(config_json=config_json, run_id=run_id), "seal")
        with dsl.ExitHandler(exit_seal, name="seal-if-failed"):
            steps(config_json, run_id)

    return cluster_training_pipeline


training_pipeline = build_training_pipeline()
