"""Finding a registered model version in MLflow and fetching its sealed evidence bundle."""
from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHAMPION = "champion"  # the approved, served version; moved only by registry.lifecycle
CHALLENGER = "challenger"  # the newest registered version, set by registration
STATE_TAG = "govtrain.registration"  # "incomplete" from creation until alias and chain record exist, then "complete"
ANCHOR_TAG = "govtrain.chain_head"  # "<seq>:<hash>" of the chain's newest record, outside the chain
STORED_CONFIG = "govtrain/config.json"  # the resolved config, in the version's run; its digest is a version tag

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
    if tracking_uri.startswith("sqlite:///"):  # the embedded store holds the registry: its owner's only
        from govtrain.core.state import private_file

        private_file(Path(tracking_uri.removeprefix("sqlite:///")))
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri)


@contextmanager
def anchored_chain(config: Any, model: str) -> Iterator[Any]:
    """The model's chain locked and checked against both anchors (the file beside the chains and the
    registered model's tag), for reading what an append depends on and appending it. After an append the
    tag moves on; a tag that cannot be written is said on stderr and left behind, which verifies (and the
    next append moves it on): the registry is another system, its failure must not undo a record."""
    import sys

    from govtrain.governance import chain

    client = client_for(config.tracking_uri)
    with chain.opened(config.chain_dir, model, outside_anchor=lambda: chain_anchor(client, model)) as opened:
        before = opened.head
        yield opened
        if opened.head != before:
            try:
                set_anchor(config, model, opened.records[-1])
            except Exception as exc:
                print(f"warning: chain record {opened.records[-1]['seq']} of {model} appended, but its anchor in "
                      f"the registry was not written ({str(exc).splitlines()[0][:160]})", file=sys.stderr)


def append_anchored(config: Any, model: str, step: str, **fields: Any) -> dict:
    """One chain record (governance/chain.py), appended only to a chain that agrees with its anchors, then
    anchored in the registry."""
    with anchored_chain(config, model) as opened:
        return opened.append(step, **fields)


def set_anchor(config: Any, model: str, record: dict) -> None:
    from govtrain.governance import chain

    client_for(config.tracking_uri).set_registered_model_tag(model, ANCHOR_TAG, chain.anchor_of(record))


def incomplete(version: Any) -> str | None:
    """Why a version may not be promoted or pass an audit because its registration did not finish, or None."""
    if version.tags.get(STATE_TAG) != "incomplete":
        return None
    return (f"{version.name}/{version.version}: its registration is incomplete (no challenger alias or chain record "
            f"yet); `govtrain complete-registration --model {version.name}/{version.version}` completes it (or "
            f"--retire REASON), as a retry of pipeline run {version.tags.get('govtrain.run_id')} would")


def chain_anchor(client: Any, model: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(model).tags.get(ANCHOR_TAG)
    except MlflowException:
        return None


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


def verified_ledger(config: Any, client: Any, version: Any, keep_model: Path | None = None) -> dict:
    """The version's sealed ledger, downloaded with the model's own files and verified against both with this
    machine's trusted keys, its root matching the registry's tag; RegistryError naming what does not hold.
    keep_model: where to keep the model files just verified (what a server then loads is what was verified)."""
    import json
    import shutil

    from govtrain.governance import keys
    from govtrain.governance.ledger import verify

    label = f"{version.name}/{version.version}"
    bundle = fetch_bundle(client, version)
    try:
        fetch_model_into(version, bundle)  # the files a server would load, against the ledger's digests
        result = verify(bundle, trusted_keys=keys.trusted_keys(config.governance.public_keys))
        if not result.ok:
            raise RegistryError(f"{label}: its ledger does not verify: {result.problem}")
        ledger = json.loads((bundle / "ledger.json").read_bytes())
        if ledger["root"] != version.tags.get("govtrain.ledger_root"):
            raise RegistryError(f"{label}: the registry's ledger root tag does not match its bundle")
        if keep_model is not None:
            shutil.move(str(bundle / "model"), str(keep_model))
    finally:
        shutil.rmtree(bundle.parent, ignore_errors=True)
    return ledger


def verified_version(config: Any, ref_text: str, model_dest: Path) -> tuple[Any, dict, Any]:
    """The version behind a reference, its sealed ledger verified with this machine's trusted keys, and its model
    loaded from the very files that were verified (one download; serving, monitoring and labels stand on it);
    RegistryError naming what does not hold."""
    from govtrain.model.network import CONFIG_FILE, LoadedModel

    client = client_for(config.tracking_uri)
    version = resolve(client, parse_ref(ref_text))
    ledger = verified_ledger(config, client, version, keep_model=model_dest)
    return version, ledger, LoadedModel(next(p.parent for p in model_dest.rglob(CONFIG_FILE)))


def download_model(uri: str, dest: Path) -> Path:
    """A logged model's folder (MLmodel, code/, artifacts/, requirements...) downloaded under dest."""
    import mlflow

    local = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(dest)))
    return local if local.is_dir() else local.parent


def fetch_model_into(version: Any, bundle: Path) -> None:
    """The version's model files from the artifact store into bundle/model, where verify compares them with
    the digests its ledger lists."""
    import shutil

    root = download_model(version.source, bundle.parent / "model-download")
    shutil.move(str(root), str(bundle / "model"))


def load_version_model(version: Any, dest: Path | None = None) -> Any:
    """The version's trained model (safetensors + model.json, temperature included), no pickle."""
    from govtrain.model.network import CONFIG_FILE, LoadedModel

    dest = Path(dest or tempfile.mkdtemp(prefix="govtrain-model-"))
    local = download_model(f"models:/{version.name}/{version.version}", dest)
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


def stored_config(version: Any) -> Any:
    """The resolved config a version was registered with, checked against the version's config digest tag."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from govtrain.core.config import Config

    label = f"model {version.name}/{version.version}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path=STORED_CONFIG, dst_path=tmp)
            config = Config.from_json(Path(path).read_text())
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"{label} has no stored config (registered before govtrain stored one); pass --config"
                            ) from exc
    if config.digest() != version.tags.get("govtrain.config_digest"):
        raise RegistryError(f"{label}: its stored config does not match the version's govtrain.config_digest tag")
    signed = ledger_config_digest(version)
    if signed is not None and signed != config.digest():
        raise RegistryError(f"{label}: its stored config (digest {config.digest()[:12]}…) is not the config its signed "
                            f"ledger was made with ({signed[:12]}…): changed in the registry; refused")
    return config


def ledger_config_digest(version: Any) -> str | None:
    """The config digest the version's sealed ledger records for its register step (None: no ledger)."""
    import json

    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=version.run_id, artifact_path="evidence/ledger.json",
                                                       dst_path=tmp)
            ledger = json.loads(Path(path).read_bytes())
    except (MlflowException, OSError, ValueError):
        return None
    register = next((r for r in ledger.get("records", []) if r.get("step") == "register"), None)
    return register.get("config_digest") if register else None
