"""register: log the model, seal the run's ledger (listing the model's files), then publish it to MLflow
(registry.publish).

Order matters for "all its evidence or not at all": the register record and the sealed ledger exist
before the model version does, and the model version is created last.
"""
from __future__ import annotations

import time
from pathlib import Path

from govtrain.core.config import Config
from govtrain.governance.evidence import StepEvidence
from govtrain.governance.ledger import seal
from govtrain.registry import publish
from govtrain.registry.models import client_for


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
    evidence.details = where.details(config) | {"model_id": logged.model_id}
    evidence.add_model_files(logged.files)
    evidence.finish("pass")
    ledger = seal(evidence_dir, bundle_dir, run_id=run_id, outcome="registered")
    return publish.publish(config, where, logged, bundle_dir, ledger, evidence.details, train_path, started)
