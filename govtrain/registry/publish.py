"""The MLflow side of registration: the pipeline run's MLflow run gets params, metrics, the sealed
evidence bundle, the model card and the model; the model version is created last, with its tags in the
same call, and deleted again if moving the alias or writing the chain record fails.

A retry of the register step finds the version its pipeline run created (version_of_run) and completes
it (complete_existing) instead of creating another.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from govtrain.core.config import Config
from govtrain.core.files import write_durably
from govtrain.data.sources import read_sample
from govtrain.governance import chain
from govtrain.governance.hashing import sha256_file
from govtrain.governance.report import figures
from govtrain.governance.verdict import paragraph
from govtrain.model import PYFUNC_FILE
from govtrain.registry.bound import binding, registered_card
from govtrain.registry.identity import whoami
from govtrain.registry.model_card import description, model_card
from govtrain.registry.models import (
    CHALLENGER,
    CHAMPION,
    STATE_TAG,
    STORED_CONFIG,
    anchored_chain,
    current_alias,
    fetch_bundle,
)
from govtrain.registry.runs import RUN_ID_TAG, pipeline_run


class Registration(TypedDict):
    """What register returns and writes as registration.json beside the sealed bundle."""
    model_name: str
    version: str
    alias: str
    mlflow_run_id: str
    ledger_root: str
    tracking_uri: str
    seconds: float


@dataclass
class Target:
    """Where a new version will go: the pipeline run's MLflow run and the champion it would replace."""
    client: Any
    mlflow_run_id: str
    champion: Any

    def details(self, config: Config) -> dict[str, Any]:
        """For the register record: the new version's ledger names the champion it would replace."""
        champion = self.champion
        return {"tracking_uri": config.tracking_uri, "mlflow_run_id": self.mlflow_run_id,
                "registered_by": whoami(config.tracking_uri).record(),
                "model_name": config.registry.model_name, "alias": CHALLENGER,
                "previous_champion": ({"version": champion.version,
                                       "ledger_root": champion.tags.get("govtrain.ledger_root")} if champion else None)}


def target(config: Config, client: Any, run_id: str) -> Target:
    registry = config.registry
    # The train step already opened this pipeline run's MLflow run and logged the epochs into it.
    mlflow_run_id = pipeline_run(config.tracking_uri, registry.experiment, run_id)
    return Target(client, mlflow_run_id, current_alias(client, registry.model_name, CHAMPION))


@dataclass
class LoggedModel:
    """The model as logged to the pipeline run's MLflow run, and its files as MLflow stores them."""
    model_id: str
    files: list[dict[str, Any]]  # {"name": "model/<path>", "sha256", "bytes"}


def log_model(config: Config, where: Target, model_dir: Path, train_path: Path | None) -> LoggedModel:
    import mlflow

    with mlflow.start_run(run_id=where.mlflow_run_id):
        info = log_servable_model(config, model_dir, train_path)
    return LoggedModel(info.model_id, model_files(f"models:/{info.model_id}"))


def model_files(uri: str) -> list[dict[str, Any]]:
    """Every file of a logged model, read back from the artifact store: what a server would load."""
    import tempfile

    from govtrain.registry.models import download_model

    with tempfile.TemporaryDirectory(prefix="govtrain-logged-") as tmp:
        root = download_model(uri, Path(tmp))
        return [{"name": f"model/{p.relative_to(root).as_posix()}", "sha256": sha256_file(p),
                 "bytes": p.stat().st_size} for p in sorted(root.rglob("*")) if p.is_file()]


def publish(config: Config, where: Target, logged: LoggedModel, bundle_dir: Path, ledger: dict, details: dict,
            train_path: Path | None, started: float) -> Registration:
    """Log everything the version needs, then create it: a crash before the version exists leaves no
    version without its evidence, and a rerun (version_of_run) completes the one it created."""
    import mlflow

    registry, client = config.registry, where.client
    by_step = {r["step"]: r for r in ledger["records"]}
    with mlflow.start_run(run_id=where.mlflow_run_id) as run:
        mlflow.log_params(run_params(config))
        # The run page's description: which run, which table, and the verdict a reviewer reads first.
        mlflow.set_tag("mlflow.note.content", f"govtrain run `{ledger['run_id']}` on `{config.dataset.source_name}` "
                                              f"(target `{config.dataset.target}`).\n\n{paragraph(ledger)}")
        mlflow.log_metrics({f"test_{k}": v for k, v in by_step["evaluate"]["metrics"].items()})
        log_datasets(config, by_step["prepare"])
        mlflow.log_artifacts(str(bundle_dir), artifact_path="evidence")
        for page in sorted((bundle_dir / "files" / "validate").glob("data_docs_*.html")):
            mlflow.log_artifact(str(page), artifact_path="data_docs")  # GE's pages, where reviewers look
        card_md, card_html = model_card(config, ledger, approvals=[], figures=figures(bundle_dir))
        mlflow.log_text(card_md, "model_card/model_card.md")
        mlflow.log_text(card_html, "model_card/model_card.html")
        # What model commands need with no config file at hand (columns, task, settings), its digest a tag.
        mlflow.log_text(config.to_json(), STORED_CONFIG)
        mlflow.set_tags({"govtrain.ledger_root": ledger["root"], RUN_ID_TAG: ledger["run_id"]})
        tags = version_tags(by_step, ledger, config) | {STATE_TAG: "incomplete"}  # until finish_registration
        if train_path is not None:
            tags.update(log_reference_profile(config, train_path))
        ensure_registered_model(client, registry.model_name)
        version = client.create_model_version(registry.model_name, source=f"models:/{logged.model_id}",
                                              run_id=run.info.run_id, model_id=logged.model_id, tags=tags,
                                              description=description(card_md))
        try:
            finish_registration(config, client, version, ledger, details)
        except Exception:
            try:
                client.delete_model_version(registry.model_name, version.version)
            except Exception:  # MLflow is gone: the version stays, marked incomplete, refused
                pass
            raise
    return write_result(config, version, ledger["root"], bundle_dir, started)


def log_servable_model(config: Config, model_dir: Path, train_path: Path | None) -> Any:
    """The pyfunc with what serving needs without govtrain installed: govtrain.model as code_paths,
    exact requirements, and a signature with an input example (when the train split is at hand)."""
    import tempfile

    import mlflow

    from govtrain.model.network import LoadedModel
    from govtrain.model.package import code_package, factory_code, input_example, pinned_requirements

    example = signature = None
    if train_path is not None:
        spec = config.dataset
        # medians and modes of a seeded sample: the example is an aggregate row, and the split may not fit
        train, _ = read_sample(train_path, REFERENCE_ROWS, 0, columns=[*spec.numeric, *spec.categorical])
        example = input_example(train, spec.numeric, spec.categorical)
        output = LoadedModel(model_dir).predict(example)
        signature = mlflow.models.infer_signature(example, output)
    network = json.loads((model_dir / "model.json").read_text()).get("network", "mlp")
    with tempfile.TemporaryDirectory(prefix="govtrain-code-") as staging:
        code = [str(code_package(Path(staging)))]
        if network != "mlp":  # a user's factory: its module, under its dotted name (model.package.factory_code)
            code += [str(p) for p in factory_code(network, Path(staging)).iterdir()]
        return mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_FILE),
                                       artifacts={"model_dir": str(model_dir)},
                                       code_paths=code,
                                       pip_requirements=pinned_requirements(), signature=signature,
                                       input_example=example)


def finish_registration(config: Config, client: Any, version: Any, ledger: dict, details: dict) -> None:
    """Alias challenger and the chain record: the two steps a crashed registration may not have done."""
    name = config.registry.model_name
    current = current_alias(client, name, CHALLENGER)
    if current is None or int(current.version) < int(version.version):  # a retry never moves it backwards
        client.set_registered_model_alias(name, CHALLENGER, version.version)
    # The version's tags and card as registered, bound to the chain: an edit in the registry later shows.
    card = registered_card(version)
    bound = binding(version.tags, card)
    filled = description(card, str(version.version))  # the provenance command names this version
    if version.description != filled:  # a version is never promoted before this: no approvals to keep
        client.update_model_version(name, version.version, description=filled)
    with anchored_chain(config, name) as opened:  # the check and the append under one lock: one record per version
        if chain.registered_root(opened.records, str(version.version)) is None:
            opened.append("register", version=str(version.version), model_root=ledger["root"],
                          details={"run_id": ledger["run_id"], "alias": CHALLENGER, **details, **bound})
    client.set_model_version_tag(name, version.version, STATE_TAG, "complete")  # last: everything above exists


def complete_existing(config: Config, client: Any, version: Any, bundle_dir: Path, started: float) -> Registration:
    """A retried register step: reuse the version and its sealed bundle, finish what is missing."""
    fetched = fetch_bundle(client, version)
    shutil.copytree(fetched, bundle_dir, dirs_exist_ok=True)
    shutil.rmtree(fetched.parent, ignore_errors=True)
    ledger = json.loads((bundle_dir / "ledger.json").read_bytes())
    register_record = next(r for r in ledger["records"] if r["step"] == "register")
    finish_registration(config, client, version, ledger, register_record["details"])
    return write_result(config, version, ledger["root"], bundle_dir, started)


def complete_registration(config: Config, ref: str, retire: str | None = None) -> dict:
    """An incomplete version (a registration killed between creating the version and its chain record),
    without rerunning the pipeline: its sealed ledger is verified with this machine's trusted keys, then
    the registration is finished (alias challenger, chain record) or, with a reason in `retire`, the
    version is deleted and a `retire` record says so. Returns the chain record."""
    from govtrain.registry.models import ModelRef, RegistryError, client_for, incomplete, resolve, verified_ledger

    client = client_for(config.tracking_uri)
    name, _, number = ref.partition("/")
    version = resolve(client, ModelRef(name, version=number or None))
    label = f"{version.name}/{version.version}"
    if not incomplete(version):
        raise RegistryError(f"{label}: its registration is not incomplete; nothing to complete")
    try:
        ledger = verified_ledger(config, client, version)
    except RegistryError as exc:
        raise RegistryError(f"{exc}; `--retire REASON` withdraws it") from None
    if retire is not None:
        with anchored_chain(config, version.name) as opened:
            record = opened.append("retire", version=str(version.version), model_root=ledger["root"],
                                   decision="fail", details={"reason": retire, "run_id": ledger["run_id"],
                                                             "by": whoami(config.tracking_uri).record()})
        client.delete_model_version(version.name, version.version)
        return record
    register = next(r for r in ledger["records"] if r["step"] == "register")
    finish_registration(config, client, version, ledger, register["details"])
    records = chain.read_chain(config.chain_dir, version.name)
    return next(r for r in records if r["step"] == "register" and r["version"] == str(version.version))


def write_result(config: Config, version: Any, root: str, bundle_dir: Path, started: float) -> Registration:
    result: Registration = {"model_name": config.registry.model_name, "version": version.version, "alias": CHALLENGER,
              "mlflow_run_id": version.run_id, "ledger_root": root, "tracking_uri": config.tracking_uri,
              "seconds": round(time.perf_counter() - started, 3)}
    write_durably(bundle_dir / "registration.json", json.dumps(result, indent=2))
    return result


def version_of_run(client: Any, name: str, run_id: str) -> Any:
    """The version this pipeline run registered, if any."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}' and tags.`{RUN_ID_TAG}` = '{run_id}'")
    except MlflowException:
        return None
    return found[0] if found else None


def run_params(config: Config) -> dict[str, str]:
    """The config as MLflow parameters, those that applied to this run: no cluster settings for a local run,
    nothing left unset (the whole config is the run artifact govtrain/config.json)."""
    dumped = config.model_dump(mode="json")
    if config.training.backend == "local":
        dumped.pop("cluster", None)
    return {k: v for k, v in flatten("", dumped, {}).items() if v not in ("None", "[]", "{}")}


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

    from govtrain.governance.hashing import sha256_file
    from govtrain.model.task import Task

    spec = config.dataset
    # read a batch at a time: at 14M train rows the split in pandas would not fit the step's memory
    sample, rows = read_sample(train_path, REFERENCE_ROWS, 0, columns=[*spec.features, spec.target])
    profile: dict[str, Any] = {
               "source_sha256": sha256_file(train_path), "source_rows": rows, "sample_rows": len(sample),
               "numeric": {c: {"mean": float(sample[c].mean()), "std": float(sample[c].std()),
                               "quantiles": sample[c].quantile([0, 0.01, 0.25, 0.5, 0.75, 0.99, 1]).tolist(),
                               "missing": float(sample[c].isna().mean())} for c in spec.numeric},
               "categorical": {c: sample[c].astype("string").value_counts(normalize=True, dropna=False).head(50)
                               .rename(index=str).to_dict() for c in spec.categorical},
               "target": Task.fit(pd.read_parquet(train_path, columns=[spec.target])[spec.target], spec.task,
                                  spec.positive_label).summary(sample[spec.target])}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        sample.to_parquet(path, index=False)
        profile["sample_sha256"] = sha256_file(path)
        (Path(tmp) / "profile.json").write_text(json.dumps(profile, indent=2))
        mlflow.log_artifacts(tmp, artifact_path="reference")
    return {"govtrain.reference.sha256": profile["sample_sha256"], "govtrain.reference.rows": str(len(sample))}


def log_datasets(config: Config, prepare_record: dict) -> None:
    """Each split as an MLflow dataset input, named and digested as in the ledger (no data uploaded)."""
    import mlflow
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.data.sources import LocalArtifactDatasetSource  # type: ignore[attr-defined]  # made at import

    for out in prepare_record["outputs"]:
        split = Path(out["name"]).stem
        source = LocalArtifactDatasetSource(str(config.dataset.path))
        # MetaDataset is MLflow's own way to log a digest-only dataset; its stubs call it abstract.
        dataset = MetaDataset(source, name=split, digest=out["sha256"][:32])  # type: ignore[abstract]
        mlflow.log_input(dataset, context=split, tags={"sha256": out["sha256"], "rows": str(out.get("rows"))})


def ensure_registered_model(client: Any, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(name)
