"""What a serving runtime needs to know about a registered version, read from MLflow: where its model
files live, whether it has a signature, and whether its requirements are exact. `govtrain deploy`
refuses a version that a runtime without govtrain could not load."""
from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from govtrain.registry.models import client_for, parse_ref, resolve

PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_,.-]+\])?==[0-9][^\s;]*$")


@dataclass
class ServableModel:
    name: str
    version: str
    artifact_uri: str  # as MLflow names it: s3://..., gs://..., or mlflow-artifacts:/... (proxied)
    ledger_root: str | None
    signature: bool
    code_paths: bool
    requirements: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Why a runtime without govtrain could not serve it; empty when it can."""
        found = []
        if not self.signature:
            found.append("its MLmodel has no signature (the runtime cannot check inputs or describe the model)")
        if not self.code_paths:
            found.append("it ships no code (MLflow code_paths): it would import govtrain, which the runtime lacks")
        loose = [r for r in self.requirements if not PINNED.match(r)]
        if loose:
            found.append(f"requirements.txt line {loose[0]!r} is not pinned with ==")
        if not self.requirements:
            found.append("it has no requirements.txt")
        return found


def servable_model(tracking_uri: str, ref: str) -> ServableModel:
    """Read the version's MLmodel and requirements.txt from the registry."""
    import mlflow

    client = client_for(tracking_uri)
    version = resolve(client, parse_ref(ref))
    uri = client.get_model_version_download_uri(version.name, version.version).rstrip("/")
    with tempfile.TemporaryDirectory(prefix="govtrain-serving-") as tmp:
        mlmodel = yaml.safe_load(Path(mlflow.artifacts.download_artifacts(f"{uri}/MLmodel", dst_path=tmp))
                                 .read_text())
        try:
            requirements = Path(mlflow.artifacts.download_artifacts(f"{uri}/requirements.txt", dst_path=tmp)
                                ).read_text().splitlines()
        except Exception:  # an old version logged without one  # noqa: BLE001
            requirements = []
    pyfunc = mlmodel.get("flavors", {}).get("python_function", {})
    return ServableModel(name=version.name, version=str(version.version), artifact_uri=uri,
                         ledger_root=version.tags.get("govtrain.ledger_root"),
                         signature=bool(mlmodel.get("signature")), code_paths=bool(pyfunc.get("code")),
                         requirements=[r.strip() for r in requirements if r.strip() and not r.startswith("#")])
