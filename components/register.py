"""register: seal the run's ledger, log everything to MLflow, and create the model version.

Order matters for "all its evidence or not at all": the MLflow run gets params, metrics, the sealed
evidence bundle and the model first; the model version is created last, with its tags in the same
call, and is deleted again if moving the alias fails.
"""

import json
import time
from pathlib import Path
from typing import Any

from governance.evidence import StepEvidence
from governance.ledger import seal
from components.tracking import RUN_ID_TAG, pipeline_run
from governance import chain
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


def model_card(by_step: dict[str, dict], ledger: dict, config: Config) -> str:
    """A short card built from the evidence (the registry issue grows it into the full card)."""
    ev, prep = by_step["evaluate"], by_step["prepare"]
    lines = [f"# {config.registry.model_name}", "",
             f"Binary classifier of `{config.dataset.target}` on tabular data, trained by govtrain run `{ledger['run_id']}`.",
             "", "## Data", ""]
    lines += [f"- {o['name']}: {o['rows']} rows, sha256 `{o['sha256'][:16]}…`" for o in prep["outputs"]]
    lines += ["", "## Test metrics", ""] + [f"- {k}: {v}" for k, v in ev["metrics"].items()]
    lines += ["", "## Gates", ""] + [f"- {c['id']}: {c['value']} (threshold {c['threshold']}) "
                                     f"{'pass' if c['passed'] else 'FAIL'}" for c in ev["checks"]]
    lines += ["", "## Not measured", ""] + [f"- {n}" for n in ev["not_measured"]]
    lines += ["", f"Ledger root: `{ledger['root']}` (verify with `govtrain audit verify`)."]
    return "\n".join(lines)


def register(config: Config, model_dir: Path, parent_evidence: Path, evidence_dir: Path, bundle_dir: Path,
             run_id: str) -> dict[str, Any]:
    import mlflow
    from mlflow import MlflowClient

    started = time.perf_counter()
    registry = config.registry
    mlflow.set_tracking_uri(registry.tracking_uri)
    client = MlflowClient(registry.tracking_uri)
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

        mlflow.log_params(flatten("", config.model_dump(mode="json"), {}))
        mlflow.log_metrics({f"test_{k}": v for k, v in by_step["evaluate"]["metrics"].items()})
        mlflow.log_artifacts(str(bundle_dir), artifact_path="evidence")
        mlflow.set_tags({"govtrain.ledger_root": ledger["root"], RUN_ID_TAG: run_id})
        info = mlflow.pyfunc.log_model(name="model", python_model=str(PYFUNC_CODE),
                                       artifacts={"model_dir": str(model_dir)},
                                       pip_requirements=["torch", "safetensors", "pandas<3", "numpy", "govtrain"])

        tags = version_tags(by_step, ledger, config)
        ensure_registered_model(client, registry.model_name)
        version = client.create_model_version(registry.model_name, source=f"models:/{info.model_id}",
                                              run_id=run.info.run_id, model_id=info.model_id, tags=tags,
                                              description=model_card(by_step, ledger, config))
        try:
            client.set_registered_model_alias(registry.model_name, ALIAS, version.version)
            chain.append(config.governance.chain_dir, registry.model_name, "register", version=str(version.version),
                         model_root=ledger["root"], details={"run_id": run_id, "mlflow_run_id": run.info.run_id,
                                                             "alias": ALIAS, **evidence.details})
        except Exception:
            client.delete_model_version(registry.model_name, version.version)
            raise
    result = {"model_name": registry.model_name, "version": version.version, "alias": ALIAS,
              "mlflow_run_id": run.info.run_id, "ledger_root": ledger["root"], "tracking_uri": registry.tracking_uri,
              "seconds": round(time.perf_counter() - started, 3)}
    (bundle_dir / "registration.json").write_text(json.dumps(result, indent=2))
    return result


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
