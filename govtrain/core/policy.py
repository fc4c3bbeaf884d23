"""Who and what is trusted, from the operator of this machine, never from the registry.

A model command run without --config works with the config the version was registered with (stored in
MLflow), but whoever can write to MLflow can rewrite that. So the three settings that decide trust (the
trusted signing keys, separation of duties, where the chains live) are not taken from it: they come from
<state>/policy.yaml, which only this machine's operator writes, or from the operator's own --config.

    public_keys: [BASE64...]       # besides <state>/keys/trusted.pub
    separation_of_duties: true
    chain_dir: chains              # relative to the state folder (a copied state folder keeps its own chains)
"""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from govtrain.core.config import Config, ConfigError, bounded_yaml
from govtrain.core.state import state_dir

POLICY_FILE = "policy.yaml"


class TrustPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_keys: list[str] = Field(default_factory=list)
    separation_of_duties: bool = True
    chain_dir: Path = Path("chains")


def policy_path(state: Path | None = None) -> Path:
    return (state or state_dir()) / POLICY_FILE


def load_policy(state: Path | None = None) -> TrustPolicy:
    """<state>/policy.yaml, or the defaults (no extra keys, separation of duties on, <state>/chains)."""
    path = policy_path(state)
    if not path.is_file():
        return TrustPolicy()
    raw = bounded_yaml(path)
    try:
        return TrustPolicy.model_validate(raw or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{path}: {key}: {first['msg']}") from exc
    except yaml.YAMLError as exc:  # pragma: no cover - bounded_yaml turns these into ConfigError
        raise ConfigError(f"{path}: not valid YAML") from exc


def with_operator_policy(stored: Config, state: Path | None = None) -> Config:
    """The stored config with its trust settings replaced by this machine's policy."""
    policy = load_policy(state)
    config = stored.model_copy(deep=True)
    config.governance.public_keys = list(policy.public_keys)
    config.governance.separation_of_duties = policy.separation_of_duties
    config.governance.chain_dir = ((state or state_dir()) / policy.chain_dir).resolve()
    return config
