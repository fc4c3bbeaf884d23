"""register: seal the run's ledger, log everything to MLflow, and create the model version.

Order matters for "all its evidence or not at all": the MLflow run gets params, metrics, the sealed
evidence bundle and the model first; the model version is created last, with its tags in the same
call, and is deleted again if moving the alias fails.
"""

import json
import shutil
import time
from pathlib import Path
from typing import Any

from governance.evidence import StepEvidence
from governance.ledger import seal
from components.tracking import RUN_ID_TAG, pipeline_run
from governance import chain
from registry.model_card import model_card
from pipelines.config import Config

ALIAS = "challenger"
CHAMPION = "champion"
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict):
        for key, item in value.items():
            flatten(f"{prefix}.{key}" if prefix else key, item, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list) else str(value)
    return out


def version_tags(by_step: dict[str, dict], ledger: dict, config: Config) -> dict[str, str]:
    tags = {"govtrain.ledger_root": ledger["root"], "govtrain.run_id": ledger["run_id"],
            "govtrain.config_digest": config.digest(), "govtrain.code_version": by_step["register"]["code_version"]}
    for out in by_step["prepare"]["outputs"]:
        tags[f"govtrain.data.{Path(out['name']).stem}.sha256"] = out["sha256"]
    for step in ("data_gate", "evaluate"):
        for check in by_step[step]["checks"]:
            verdict = "pass" if check["passed"] else "fail"
            tags[f"govtrain.gate.{check['id']}"] = f"{verdict} ({check['value']} vs {check['threshold']})"
    return tags


REFERENCE_ROWS = 200_000


def log_reference_profile(config: Config, train_path: Path) -> dict[str, str]:
    """The drift job's default reference, computed once: a seeded sample of the train split (all of it up
    to REFERENCE_ROWS rows) and per-column statistics, with digests. Returns the version tags."""
    import tempfile

    import mlflow
    import pandas as pd

    from governance.hashing import sha256_file

    spec = config.dataset
    train = pd.read_parquet(train_path, columns=[*spec.features, spec.target])
    sample = train.sample(n=min(len(train), REFERENCE_ROWS), random_state=0) if len(train) > REFERENCE_ROWS else train
    profile = {"source_sha256": sha256_file(train_path), "source_rows": len(train), "sample_rows": len(sample),
               "numeric": {c: {"mean": float(sample[c].mean()), "std": float(sample[c].std()),
                               "quantiles": sample[c].quantile([0, 0.01, 0.25, 0.5, 0.75, 0.99, 1]).tolist(),
                               "missing": float(sample[c].isna().mean())} for c in spec.numeric},
               "categorical": {c: sample[c].astype("string").value_counts(normalize=True, dropna=False).head(50)
                               .rename(index=str).to_dict() for c in spec.categorical},
               "target_rate": float(sample[spec.target].mean())}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        sample.to_parquet(path, index=False)
        profile["sample_sha256"] = sha256_file(path)
        (Path(tmp) / "profile.json").write_text(json.dumps(profile, indent=2))
        mlflow.log_artifacts(tmp, artifact_path="reference")
    return {"govtrain.reference.sha256": profile["sample_sha256"], "govtrain.reference.rows": str(len(sample))}


def register(config: Config, model_dir: Path, parent_evidence: Path, evidence_dir: Path, bundle_dir: Path,
             run_id: str, train_path: Path | None = None) -> dict[str, Any]:
    """Idempotent per pipeline run: a retry finds the version this run already created and completes it."""
    import mlflow
    from mlflow import MlflowClient

    started = time.perf_counter()
    registry = config.registry
    mlflow.set_tracking_uri(registry.tracking_uri)
    client = MlflowClient(registry.tracking_uri)
    existing = version_of_run(client, registry.model_name, run_id)
    if existing is not None:
        return complete_existing(config, client, existing, bundle_dir, started)

    # The train step already opened this pipeline run's MLflow run and logged the epochs into it.
    mlflow_run_id = pipeline_run(registry.tracking_uri, registry.experiment, run_id)
    champion = current_alias(client, registry.model_name, CHAMPION)

    with mlflow.start_run(run_id=mlflow_run_id) as run:
        evidence = StepEvidence("register", evidence_dir, run_id=run_id, config_digest=config.digest(),
                                parents=[parent_evidence])
        # The new version's ledger names the champion it would replace, so versions form one chain.
        evidence.details = {"tracking_uri": registry.tracking_uri, "mlflow_run_id": run.info.run_id,
                            "model_name": registry.model_name, "alias": ALIAS,
                            "previous_champion": ({"version": champion.version,
                                                   "ledger_root": champion.tags.get("govtrain.ledger_root")}
                                                  if champion else None)}
        evidence.finish("pass")
        ledger = seal(evidence_dir, bundle_dir, run_id=run_id, outcome="registered")
        by_step = {r["step"]: r for r in ledger["records"]}

        # Everything the version needs is logged before the version exists: a crash from here on leaves
        # no version without its evidence, and a rerun (version_of_run) completes the one it created.
        mlflow.log_params(flatten("", config.model_dump(mode="json"), {}))
        mlflow.log_metrics({f"test_{k}": v for k, v in by_step["evaluate"]["metrics"].items()})
        log_datasets(config, by_step["prepare"])
        mlflow.log_artifacts(str(bundle_dir), artifact_path="evidence")
        for page in sorted((bundle_dir / "files" / "validate").glob("data_docs_*.html")):
            mlflow.log_artifact(str(page), artifact_path="data_docs")  # GE's pages, where reviewers look
        card_md, card_html = model_card(config, ledger, approvals=[])
        mlflow.log_text(card_md, "model_card/model_card.md")
        mlflow.log_text(card_html, "model_card/model_card.html")
        mlflow.set_tags({"govtrain.ledger_root": ledger["root"], RUN_ID_TAG: run_id})
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE),
                                       artifacts={"model_dir": str(model_dir)},
                                       pip_requirements=["torch", "safetensors", "pandas<3", "numpy", "govtrain"])

        tags = version_tags(by_step, ledger, config)
        if train_path is not None:
            tags.update(log_reference_profile(config, train_path))
        ensure_registered_model(client, registry.model_name)
        version = client.create_model_version(registry.model_name, source=f"models:/{info.model_id}",
                                              run_id=run.info.run_id, model_id=info.model_id, tags=tags,
                                              description=description(card_md))
        try:
            finish_registration(config, client, version, ledger, evidence.details)
        except Exception:
            client.delete_model_version(registry.model_name, version.version)
            raise
    return write_result(config, version, ledger["root"], bundle_dir, started)


def finish_registration(config: Config, client: Any, version: Any, ledger: dict, details: dict) -> None:
    """Alias challenger and the chain record: the two steps a crashed registration may not have done."""
    name = config.registry.model_name
    current = current_alias(client, name, ALIAS)
    if current is None or int(current.version) < int(version.version):  # a retry never moves it backwards
        client.set_registered_model_alias(name, ALIAS, version.version)
    records = chain.read_chain(config.governance.chain_dir, name)
    if chain.registered_root(records, str(version.version)) is None:
        chain.append(config.governance.chain_dir, name, "register", version=str(version.version),
                     model_root=ledger["root"], details={"run_id": ledger["run_id"], "alias": ALIAS, **details})


def complete_existing(config: Config, client: Any, version: Any, bundle_dir: Path, started: float) -> dict[str, Any]:
    """A retried register step: reuse the version and its sealed bundle, finish what is missing."""
    from registry.models import fetch_bundle

    fetched = fetch_bundle(client, version)
    shutil.copytree(fetched, bundle_dir, dirs_exist_ok=True)
    shutil.rmtree(fetched.parent, ignore_errors=True)
    ledger = json.loads((bundle_dir / "ledger.json").read_bytes())
    register_record = next(r for r in ledger["records"] if r["step"] == "register")
    finish_registration(config, client, version, ledger, register_record["details"])
    return write_result(config, version, ledger["root"], bundle_dir, started)


def write_result(config: Config, version: Any, root: str, bundle_dir: Path, started: float) -> dict[str, Any]:
    result = {"model_name": config.registry.model_name, "version": version.version, "alias": ALIAS,
              "mlflow_run_id": version.run_id, "ledger_root": root, "tracking_uri": config.registry.tracking_uri,
              "seconds": round(time.perf_counter() - started, 3)}
    (bundle_dir / "registration.json").write_text(json.dumps(result, indent=2))
    return result


def version_of_run(client: Any, name: str, run_id: str) -> Any:
    """The version this pipeline run registered, if any."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}' and tags.`{RUN_ID_TAG}` = '{run_id}'")
    except MlflowException:
        return None
    return found[0] if found else None


def log_datasets(config: Config, prepare_record: dict) -> None:
    """Each split as an MLflow dataset input, named and digested as in the ledger (no data uploaded)."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource

    for out in prepare_record["outputs"]:
        split = Path(out["name"]).stem
        dataset = MetaDataset(LocalArtifactDatasetSource(str(config.dataset.path)), name=split,
                              digest=out["sha256"][:32])
        mlflow.log_input(dataset, context=split, tags={"sha256": out["sha256"], "rows": str(out.get("rows"))})


def description(card_md: str) -> str:
    """MLflow keeps at most 5000 characters of a description; the whole card is an artifact."""
    note = "\n\n… (full card: run artifact model_card/model_card.md and .html)"
    return card_md if len(card_md) <= 5000 else card_md[:5000 - len(note)] + note


def current_alias(client: Any, name: str, alias: str) -> Any:
    """The model version an alias points at, or None (no such model or alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
