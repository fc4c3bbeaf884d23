"""Every run sealed on this machine, as a chain of its own (<chain_dir>/.runs): one signed record per sealed
ledger, naming the run, its outcome and its root. A run folder deleted, or replaced by another ledger,
then shows (`govtrain audit runs`), as a model's chain shows a missing promotion."""
from __future__ import annotations

import json
from pathlib import Path

from govtrain.governance import chain
from govtrain.governance.hashing import sha256_file
from govtrain.governance.ledger import LEDGER_FILE
from govtrain.governance.unsealed import MANIFEST_FILE

RUNS = ".runs"  # not a name MLflow gives a model: the chain of runs sits beside the model chains


def record_run(chain_dir: Path, run_dir: Path, ledger: dict) -> dict:
    """The run's record names its unsealed.json by digest: deleting the list together with the files it lists
    (the log, registration.json) would otherwise leave a folder that verifies."""
    manifest = run_dir / MANIFEST_FILE
    unsealed = {"unsealed_sha256": sha256_file(manifest)} if manifest.is_file() else {}
    return chain.append(chain_dir, RUNS, "seal", version=None, model_root=ledger["root"],
                        details={"run_id": ledger["run_id"], "outcome": ledger["outcome"], "folder": run_dir.name,
                                 **unsealed})


def missing_runs(chain_dir: Path, runs_dir: Path) -> tuple[int, list[str]]:
    """(sealed runs recorded, one line per run whose folder is gone or holds another ledger)."""
    problems = []
    records = [r for r in chain.read_chain(chain_dir, RUNS) if r["step"] == "seal"]  # not repair records
    for record in records:
        details = record["details"]
        ledger_path = runs_dir / details["folder"] / LEDGER_FILE
        name = f"run {details['run_id']} (sealed {record['finished']}, {details['outcome']})"
        if not ledger_path.is_file():
            problems.append(f"{name}: {ledger_path.parent} is gone")
            continue
        try:
            root = json.loads(ledger_path.read_bytes()).get("root")
        except ValueError:
            root = None
        if root != record["model_root"]:
            problems.append(f"{name}: {ledger_path} is not the ledger that was sealed (root {str(root)[:12]}…, "
                            f"recorded {record['model_root'][:12]}…)")
            continue
        manifest = ledger_path.parent / MANIFEST_FILE
        wanted = details.get("unsealed_sha256")
        if wanted and (not manifest.is_file() or sha256_file(manifest) != wanted):
            problems.append(f"{name}: {manifest} is {'changed' if manifest.is_file() else 'gone'} (the list of "
                            f"the folder's files outside the ledger, recorded {wanted[:12]}…)")
    return len(records), problems
