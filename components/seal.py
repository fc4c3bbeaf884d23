"""seal: close a run that did not register a model, so it still leaves a verifiable ledger: a run that
stopped at a gate (the pipeline's seal step), or one whose step crashed (the local runner, below)."""

from pathlib import Path

from governance.evidence import StepEvidence
from governance.ledger import seal


def seal_failed_run(evidence_dir: Path, bundle_dir: Path, run_id: str, stopped_at: str) -> dict:
    return seal(evidence_dir, bundle_dir, run_id=run_id, outcome=f"failed gate: {stopped_at}")


def seal_errored_run(evidence_dirs: list[Path], work_dir: Path, bundle_dir: Path, run_id: str, failed_step: str,
                     message: str) -> dict:
    """Record the crash as an "error" record on top of every step that finished, then seal."""
    finished = [d for d in evidence_dirs if (d / "HEAD").is_file()]
    evidence = StepEvidence("seal", work_dir, run_id=run_id, config_digest="", parents=finished)
    evidence.details = {"failed_step": failed_step, "error": message}
    evidence.finish("error")
    return seal(work_dir, bundle_dir, run_id=run_id, outcome=f"error at {failed_step}: {message}")
