"""seal: close a run that did not register a model, so it still leaves a verifiable ledger: a run that
stopped at a gate (the pipeline's seal step), or one whose step crashed (the local runner, below)."""

from pathlib import Path

from govtrain.core.config import Config
from govtrain.core.secrets import redact
from govtrain.governance.evidence import StepEvidence, adopt_mirror
from govtrain.governance.ledger import seal
from govtrain.registry.runs import end_pipeline_run


def seal_failed_run(evidence_dir: Path, bundle_dir: Path, run_id: str, stopped_at: str,
                    config: Config | None = None) -> dict:
    ledger = seal(evidence_dir, bundle_dir, run_id=run_id, outcome=f"failed gate: {stopped_at}")
    if config is not None:  # a run stopped at a gate is over: its MLflow run must not stay RUNNING
        end_pipeline_run(config.tracking_uri, config.registry.experiment, run_id, "FAILED",
                         f"failed gate: {stopped_at}")
    return ledger


def seal_errored_run(evidence_dirs: list[Path], work_dir: Path, bundle_dir: Path, run_id: str, failed_step: str,
                     message: str) -> dict:
    """Record the crash as an "error" record on top of every step that finished, then seal."""
    finished = [d for d in evidence_dirs if (d / "HEAD").is_file()]
    evidence = StepEvidence("seal", work_dir, run_id=run_id, config_digest="", parents=finished)
    message = redact(message)  # an error line may quote a URL with its credentials; the ledger never holds them
    evidence.details = {"failed_step": failed_step, "error": message}
    evidence.finish("error")
    return seal(work_dir, bundle_dir, run_id=run_id, outcome=f"error at {failed_step}: {message}")


def seal_interrupted_run(evidence_dirs: list[Path], work_dir: Path, bundle_dir: Path, run_id: str, step: str,
                         signal_name: str, killed: int) -> dict:
    """An `interrupted` record naming the step that was running and the signal, on top of every step that
    finished, then seal."""
    finished = [d for d in evidence_dirs if (d / "HEAD").is_file()]
    evidence = StepEvidence("interrupted", work_dir, run_id=run_id, config_digest="", parents=finished)
    evidence.details = {"step": step, "signal": signal_name, "children_killed_after_grace": killed}
    evidence.finish("interrupted", claims_as="seal")
    return seal(work_dir, bundle_dir, run_id=run_id, outcome=f"interrupted at {step} by {signal_name}")


def seal_on_exit(mirror_root: Path, bundle_dir: Path, run_id: str, state: str, failed_task: str,
                 message: str, config: Config | None = None) -> dict | None:
    """The exit handler of a cluster run: if the run did not succeed, end its MLflow run (KILLED when
    cancelled, else FAILED) and seal what its steps mirrored to the work volume, plus an error record
    naming the failed task. Returns the ledger, or None."""
    if state == "SUCCEEDED":
        return None  # registered, or sealed by the seal step at a failed gate
    if config is not None:
        status = "KILLED" if state.upper().startswith("CANCEL") else "FAILED"
        end_pipeline_run(config.tracking_uri, config.registry.experiment, run_id, status,
                         f"{state.lower()} at {failed_task}: {message}")
    work = bundle_dir.parent / "exit-evidence"
    leaves = adopt_mirror(mirror_root, run_id, work)
    if leaves is None:
        return None  # nothing ran far enough to record anything
    evidence = StepEvidence("seal", work.parent / "exit-seal", run_id=run_id, config_digest="", parents=[work])
    evidence.parents = leaves
    message = redact(message)
    evidence.details = {"failed_step": failed_task, "error": message, "final_state": state}
    evidence.finish("error")
    return seal(work.parent / "exit-seal", bundle_dir, run_id=run_id,
                outcome=f"{state.lower()} at {failed_task}: {message}")
