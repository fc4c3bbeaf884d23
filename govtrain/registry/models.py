"""Finding a registered model version in MLflow and fetching its sealed evidence bundle."""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAMPION = "champion"  # the approved, served version; moved only by registry.lifecycle
CHALLENGER = "challenger"  # the newest registered version, set by registration

REF = re.compile(r"^(?P<name>[^@/]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))?$")


class RegistryError(ValueError):
    """A model reference that does not resolve, said in one line."""


@dataclass
class ModelRef:
    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        return self.name + (f"@{self.alias}" if self.alias else f"/{self.version}" if self.version else "")


def parse_ref(text: str) -> ModelRef:
    match = REF.match(text.strip())
    if not match:
        raise RegistryError(f"--model {text!r}: expected NAME, NAME@alias or NAME/version")
    return ModelRef(match["name"], match["alias"], match["version"])


def client_for(tracking_uri: str) -> Any:
    """The one way govtrain makes an MLflow client (and points the fluent API at the same server)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep CLI output to our lines
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri)


def resolve(client: Any, ref: ModelRef) -> Any:
    """The ModelVersion a reference names; NAME alone means @champion, else the newest version."""
    from mlflow.exceptions import MlflowException

    try:
        if ref.version:
            return client.get_model_version(ref.name, ref.version)
        if ref.alias:
            return client.get_model_version_by_alias(ref.name, ref.alias)
        try:
            return client.get_model_version_by_alias(ref.name, CHAMPION)
        except MlflowException:
            versions = client.search_model_versions(f"name = '{ref.name}'")
            if not versions:
                raise
            return max(versions, key=lambda v: int(v.version))
    except MlflowException as exc:
        raise RegistryError(f"model {ref}: not found in the registry ({str(exc).splitlines()[0][:120]})") from exc


def fetch_bundle(client: Any, version: Any, dest: Path | None = None) -> Path:
    """Download the version's sealed evidence bundle (ledger.json + files/) from its MLflow run."""
    import mlflow

    dest = Path(dest or tempfile.mkdtemp(prefix="govtrain-bundle-"))
    mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="evidence", dst_path=str(dest))
    bundle = dest / "evidence"
    if not (bundle / "ledger.json").is_file():
        raise RegistryError(f"model {version.name}/{version.version}: its MLflow run has no evidence/ledger.json")
    return bundle


def load_version_model(version: Any, dest: Path | None = None) -> Any:
    """The version's trained model (safetensors + model.json, temperature included), no pickle."""
    import mlflow

    from govtrain.model.network import CONFIG_FILE, LoadedModel

    dest = Path(dest or tempfile.mkdtemp(prefix="govtrain-model-"))
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{version.name}/{version.version}", dst_path=str(dest)))
    return LoadedModel(next(p.parent for p in local.rglob(CONFIG_FILE)))


def current_alias(client: Any, name: str, alias: str) -> Any:
    """The model version an alias points at, or None (no such model or alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_model(tracking_uri: str, name: str, dest: Path) -> tuple[Any, Any] | None:
    """(the champion version, its loaded model), or None when the model has no champion yet."""
    version = current_alias(client_for(tracking_uri), name, CHAMPION)
    return None if version is None else (version, load_version_model(version, dest))


def reference_sample(version: Any, dest: Path) -> Path:
    """The drift reference sample stored with the version at registration, checked against its digest."""
    import mlflow

    from govtrain.governance.hashing import sha256_file

    expected = version.tags.get("govtrain.reference.sha256")
    if expected is None:
        raise RegistryError(f"model {version.name}/{version.version} has no stored reference profile; pass --reference")
    path = Path(mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="reference/reference.parquet",
                                                    dst_path=str(dest)))
    if sha256_file(path) != expected:
        raise RegistryError(f"model {version.name}/{version.version}: stored reference sample does not match its "
                            f"sha256")
    return path
