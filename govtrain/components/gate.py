"""data_gate: one decision over the data checks, so the trail shows who stopped the run and why."""

from pathlib import Path

from govtrain.core.config import Config
from govtrain.governance.evidence import Record, StepEvidence, blocks, head_record


def data_gate(config: Config, upstream: list[Path], evidence_dir: Path, run_id: str) -> Record:
    evidence = StepEvidence("data_gate", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=upstream)
    for parent in upstream:
        record = head_record(parent)
        evidence.checks.extend(record["checks"])
        evidence.metrics[f"{record['step']}_decision"] = record["decision"]
    failed = [c["id"] for c in evidence.checks if blocks(c)]
    evidence.details = {"failed_checks": failed}
    return evidence.finish()
