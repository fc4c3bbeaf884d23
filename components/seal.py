"""seal: close a run that stopped at a gate, so even a refused model leaves a verifiable ledger."""

from pathlib import Path

from governance.ledger import seal


def seal_failed_run(evidence_dir: Path, bundle_dir: Path, run_id: str, stopped_at: str) -> dict:
    return seal(evidence_dir, bundle_dir, run_id=run_id, outcome=f"failed gate: {stopped_at}")
