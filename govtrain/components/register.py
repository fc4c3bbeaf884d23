"""register: log the model, seal the run's ledger (listing the model's files), then publish it to MLflow
(registry.publish).

Order matters for "all its evidence or not at all": the register record and the sealed ledger exist
before the model version does, and the model version is created last.
"""
from __future__ import annotations

import time
from pathlib import Path

from govtrain.core.config import Config, RegistrySpec
from govtrain.governance.evidence import StepEvidence
from govtrain.governance.hashing import canonical_json, sha256_bytes
from govtrain.governance.ledger import seal
from govtrain.registry import publish
from govtrain.registry.models import client_for


def statements(config: Config) -> dict[str, dict]:
    """What a person stated in the config about the model (registry.intended_use, limitations, datasheet), each
    with its digest: recorded so the audit links them as the human artefacts they are (governance/rmf.py)."""
    registry, default = config.registry, RegistrySpec.model_fields["intended_use"].default
    stated = {"intended_use": registry.intended_use if registry.intended_use != default else None,
              "limitations": registry.limitations, "datasheet": registry.datasheet}
    return {name: {"text": text, "sha256": sha256_bytes(canonical_json(text))}
            for name, text in stated.items() if text}


def register(config: Config, model_dir: Path, parent_evidence: Path, evidence_dir: Path, bundle_dir: Path,
             run_id: str, train_path: Path | None = None) -> publish.Registration:
    """Idempotent per pipeline run: a retry finds the version this run already created and completes it."""
    started = time.perf_counter()
    client = client_for(config.tracking_uri)
    version = publish.version_of_run(client, config.registry.model_name, run_id)
    if version is not None:
        return publish.complete_existing(config, client, version, bundle_dir, started)

    where = publish.target(config, client, run_id)
    # The model is logged first so that the ledger can list every file of it by digest: the served model
    # is evidence. A crash here leaves a logged model that no version points at.
    logged = publish.log_model(config, where, model_dir, train_path)
    evidence = StepEvidence("register", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    evidence.details = where.details(config) | {"model_id": logged.model_id, "statements": statements(config)}
    evidence.add_model_files(logged.files)
    evidence.finish("pass")
    ledger = seal(evidence_dir, bundle_dir, run_id=run_id, outcome="registered")
    return publish.publish(config, where, logged, bundle_dir, ledger, evidence.details, train_path, started)
