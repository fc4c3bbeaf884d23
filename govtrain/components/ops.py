"""The thin KFP wrappers: each maps typed KFP artifacts to paths and calls one step function.

Bodies import inside the function because KFP ships only the function's source to the executor.
They run unchanged under kfp.local (the project is installed in the venv) and on a cluster (it is in
COMPONENT_IMAGE), since install_kfp_package=False and nothing else is installed at run time.
"""
from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from govtrain.core.state import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def prepare_op(config_json: str, run_id: str, train: Output[Dataset], val: Output[Dataset],
               test: Output[Dataset], evidence: Output[Artifact]):
    """Split the configured table into train/val/test Parquet datasets and record their digests."""
    from pathlib import Path

    from govtrain.components.prepare import prepare
    from govtrain.core.config import Config

    paths = {"train": Path(train.path), "val": Path(val.path), "test": Path(test.path)}
    prepare(Config.from_json(config_json), paths, Path(evidence.path), run_id)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def validate_op(config_json: str, run_id: str, train: Input[Dataset], val: Input[Dataset],
                test: Input[Dataset], parent_evidence: Input[Artifact], evidence: Output[Artifact],
                train_data_docs: Output[HTML], val_data_docs: Output[HTML], test_data_docs: Output[HTML]) -> str:
    """Validate train/val/test with the configured GE suite (Data Docs page per split); "pass" or "fail"."""
    from pathlib import Path

    from govtrain.components.validate import validate
    from govtrain.core.config import Config

    paths = {"train": Path(train.path), "val": Path(val.path), "test": Path(test.path)}
    docs = {"train": Path(train_data_docs.path), "val": Path(val_data_docs.path), "test": Path(test_data_docs.path)}
    record = validate(Config.from_json(config_json), paths, Path(parent_evidence.path), Path(evidence.path), run_id,
                      docs_out=docs)
    return record["decision"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def leakage_op(config_json: str, run_id: str, train: Input[Dataset], val: Input[Dataset],
               test: Input[Dataset], parent_evidence: Input[Artifact], evidence: Output[Artifact]) -> str:
    """Check train/val/test for duplicate rows, shared entities and single-feature leaks; "pass"/"fail"."""
    from pathlib import Path

    from govtrain.components.leakage import leakage
    from govtrain.core.config import Config

    paths = {"train": Path(train.path), "val": Path(val.path), "test": Path(test.path)}
    record = leakage(Config.from_json(config_json), paths, Path(parent_evidence.path), Path(evidence.path), run_id)
    return record["decision"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def data_gate_op(config_json: str, run_id: str, validation_evidence: Input[Artifact],
                 leakage_evidence: Input[Artifact], evidence: Output[Artifact]) -> str:
    """Pass only if validation and leakage both passed; "pass"/"fail"."""
    from pathlib import Path

    from govtrain.components.gate import data_gate
    from govtrain.core.config import Config

    upstream = [Path(validation_evidence.path), Path(leakage_evidence.path)]
    return data_gate(Config.from_json(config_json), upstream, Path(evidence.path), run_id)["decision"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def seal_op(config_json: str, run_id: str, stopped_at: str, evidence: Input[Artifact], bundle: Output[Artifact]):
    """Seal the evidence so far into a ledger bundle, recording the gate that stopped the run; end its
    MLflow run as FAILED."""
    from pathlib import Path

    from govtrain.components.seal import seal_failed_run
    from govtrain.core.config import Config

    seal_failed_run(Path(evidence.path), Path(bundle.path), run_id, stopped_at, Config.from_json(config_json))


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def seal_on_exit_op(config_json: str, run_id: str, status: dsl.PipelineTaskFinalStatus, bundle: Output[Artifact]):
    """The exit handler on a cluster: a run that failed or was cancelled is still sealed, from the evidence
    its steps mirrored to the work volume, with an error record; its MLflow run ends FAILED or KILLED."""
    import os
    from pathlib import Path

    from govtrain.components.seal import seal_on_exit
    from govtrain.core.config import Config
    from govtrain.governance.evidence import MIRROR_ENV

    if os.environ.get(MIRROR_ENV):
        seal_on_exit(Path(os.environ[MIRROR_ENV]), Path(bundle.path), run_id, status.state,
                     status.pipeline_task_name, status.error_message or "", Config.from_json(config_json))


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def train_op(config_json: str, run_id: str, train_data: Input[Dataset], val_data: Input[Dataset],
             parent_evidence: Input[Artifact], model: Output[Model], evidence: Output[Artifact]):
    """Train the tabular MLP with DistributedDataParallel: torchrun here, or a PyTorchJob (training.backend)."""
    from pathlib import Path

    from govtrain.components.train.step import train
    from govtrain.core.config import Config

    paths = {"train": Path(train_data.path), "val": Path(val_data.path)}
    train(Config.from_json(config_json), paths, Path(parent_evidence.path), Path(model.path), Path(evidence.path),
          run_id)


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_op(config_json: str, run_id: str, model: Input[Model], train_data: Input[Dataset],
                val_data: Input[Dataset],
                test_data: Input[Dataset], parent_evidence: Input[Artifact], calibrated_model: Output[Model],
                evidence: Output[Artifact], metrics: Output[Metrics],
                classification: Output[ClassificationMetrics]) -> str:
    """The model gate on the test split; writes the temperature-scaled model; returns "pass" or "fail"."""
    from pathlib import Path

    from govtrain.components.evaluation import evaluate
    from govtrain.core.config import Config

    paths = {"train": Path(train_data.path), "val": Path(val_data.path), "test": Path(test_data.path)}
    record = evaluate(Config.from_json(config_json), Path(model.path), paths, Path(parent_evidence.path),
                      Path(evidence.path), run_id, calibrated_dir=Path(calibrated_model.path))
    for name, value in record["metrics"].items():
        metrics.log_metric(name, value)
    details = record["details"]
    if "roc_curve" in details:  # binary
        roc = details["roc_curve"]
        classification.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    if "confusion_matrix" in details:  # binary and multiclass; regression has none
        classification.log_confusion_matrix(details["classes"], details["confusion_matrix"])
    return record["decision"]


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def register_op(config_json: str, run_id: str, model: Input[Model], train_data: Input[Dataset],
                parent_evidence: Input[Artifact], evidence: Output[Artifact], bundle: Output[Artifact]):
    """Seal the ledger, log run + evidence + model to MLflow, register a version with alias challenger."""
    from pathlib import Path

    from govtrain.components.register import register
    from govtrain.core.config import Config

    register(Config.from_json(config_json), Path(model.path), Path(parent_evidence.path), Path(evidence.path),
             Path(bundle.path), run_id, train_path=Path(train_data.path))
