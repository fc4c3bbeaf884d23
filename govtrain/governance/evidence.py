"""Evidence records: one per pipeline step, carried between steps as a KFP artifact folder.

An evidence folder holds every record so far, so each step's output is the whole trail up to it:

    records/<hash>.json   canonical records (DESIGN.md format)
    files/<step>/...      the evidence files those records name, with their sha256
    HEAD                  hash of the record this step wrote (its children name it as a parent)

Data splits are named by digest only (kind "data"): they are too large to copy into every folder.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NotRequired, TypedDict

from govtrain.core.files import write_durably
from govtrain.governance.gates import BY_ID
from govtrain.governance.hashing import canonical_json, jsonable, record_hash, sha256_file
from govtrain.governance.rmf import claims


class Check(TypedDict):
    """One measured check: its value against its threshold; gated False for a reported-only signal."""
    id: str
    value: float | int
    threshold: float | int
    passed: bool
    gated: NotRequired[bool]
    rows: NotRequired[int]  # the sample the value was measured on
    interval: NotRequired[list[float]]  # its 95% interval, where one is computed (bootstrap, Wilson)
    # Where no person set the threshold: what it was derived from, with the reference's own numbers
    # ("HistGradientBoosting on the same split: 0.40"); the run summary, card and report show it.
    reference: NotRequired[str]


class Record(TypedDict):
    """One step's evidence record, as hashed (DESIGN.md's format; the keys are the hash's input)."""
    step: str
    run_id: str
    started: str
    finished: str
    actor: str
    code_version: str
    config_digest: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    metrics: dict[str, Any]
    checks: list[Check]
    details: dict[str, Any]
    decision: str
    rmf: list[str]
    not_measured: list[str]
    parents: list[str]
    hash: NotRequired[str]


MIRROR_ENV = "GOVTRAIN_EVIDENCE_MIRROR"  # set by the compiled pipeline on a cluster (pipelines/platform.py)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def code_version() -> str:
    """The git commit of the checkout when there is one (local runs), else the package version."""
    env = os.environ.get("GOVTRAIN_CODE_VERSION")
    if env:
        return env
    here = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if out.returncode == 0:
            dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    try:
        return "govtrain " + version("govtrain")
    except PackageNotFoundError:
        return "unknown"


def merge_evidence(parents: list[Path], out_dir: Path) -> list[str]:
    """Copy the parents' records and files into out_dir; return the parents' HEAD hashes."""
    heads = []
    for parent in parents:
        parent = Path(parent)
        for sub in ("records", "files"):
            if (parent / sub).is_dir():
                shutil.copytree(parent / sub, out_dir / sub, dirs_exist_ok=True)
        head = (parent / "HEAD").read_text().strip()
        if head not in heads:
            heads.append(head)
    return heads


def head_record(evidence_dir: Path) -> Record:
    """The record a step wrote last (its HEAD) in an evidence folder."""
    head = (evidence_dir / "HEAD").read_text().strip()
    return json.loads((evidence_dir / "records" / f"{head}.json").read_bytes())


def leaf_hashes(evidence_dir: Path) -> list[str]:
    """The records no other record names as a parent: the ends of a trail whose steps did not all finish."""
    records = [json.loads(p.read_bytes()) for p in (evidence_dir / "records").glob("*.json")]
    referenced = {parent for r in records for parent in r["parents"]}
    return sorted(r["hash"] for r in records if r["hash"] not in referenced)


def mirror_of(root: Path, run_id: str) -> Path:
    """Where a run's records are mirrored on the cluster's work volume (MIRROR_ENV names the root)."""
    return Path(root) / run_id / "evidence"


def adopt_mirror(root: Path, run_id: str, dest: Path) -> list[str] | None:
    """Copy a run's mirrored trail into dest as an evidence folder; returns its leaf records (the
    parents an error record should name), or None when no step recorded anything."""
    mirror = mirror_of(root, run_id)
    if not (mirror / "records").is_dir():
        return None
    shutil.copytree(mirror, dest, dirs_exist_ok=True)
    leaves = leaf_hashes(dest)
    (dest / "HEAD").write_text("")  # an evidence folder whose head is named by the caller's record
    return leaves


def blocks(check: Check | dict[str, Any]) -> bool:
    """A failed check that gates (ungated checks, such as poisoning signals, are only reported)."""
    return not check["passed"] and check.get("gated", True)


class StepEvidence:
    """Collects what one step read, wrote, measured and decided, then writes its record."""

    def __init__(self, step: str, out_dir: str | Path, *, run_id: str, config_digest: str,
                 parents: list[Path] = ()):  # type: ignore[assignment]
        self.step = step
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.started = now()
        self.run_id = run_id
        self.config_digest = config_digest
        self.parents = merge_evidence(list(parents), self.out_dir)
        self.inputs: list[dict[str, Any]] = []
        self.outputs: list[dict[str, Any]] = []
        self.metrics: dict[str, Any] = {}
        self.checks: list[Check] = []
        self.details: dict[str, Any] = {}

    # --- what the step touched -------------------------------------------------------------
    def add_input(self, name: str, path: str | Path, rows: int | None = None) -> None:
        self.inputs.append({"name": name, "sha256": sha256_file(path), "rows": rows})

    def add_input_digest(self, name: str, sha256: str, rows: int | None = None, parts: list | None = None) -> None:
        """An input that is not one file (a folder of Parquet parts): its digest over the parts, listed."""
        self.inputs.append({"name": name, "sha256": sha256, "rows": rows, **({"parts": parts} if parts else {})})

    def add_data_output(self, name: str, path: str | Path, rows: int | None = None) -> None:
        """An output named by digest only (data splits); verify checks it where it is supplied."""
        self.outputs.append({"name": name, "sha256": sha256_file(path), "kind": "data", "rows": rows})

    def add_model_files(self, files: list[dict[str, Any]]) -> None:
        """The registered model's files by digest (model/<path>, as `audit verify --model` downloads them)."""
        self.outputs.extend({"name": f["name"], "sha256": f["sha256"], "kind": "model", "bytes": f["bytes"]}
                            for f in files)

    def add_file(self, name: str, source: str | Path, kind: str = "evidence") -> Path:
        """Copy an evidence file into files/<step>/name and record its digest."""
        dest = self.out_dir / "files" / self.step / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, dest)
        self._note(dest, kind)
        return dest

    def write_json(self, name: str, obj: Any) -> Path:
        dest = self.out_dir / "files" / self.step / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        write_durably(dest, canonical_json(jsonable(obj)))
        self._note(dest, "evidence")
        return dest

    def write_text(self, name: str, text: str) -> Path:
        dest = self.out_dir / "files" / self.step / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(text, encoding="utf-8")
        self._note(dest, "evidence")
        return dest

    def _note(self, dest: Path, kind: str) -> None:
        rel = dest.relative_to(self.out_dir).as_posix()
        self.outputs.append({"name": rel, "sha256": sha256_file(dest), "kind": kind})

    # --- what the step measured and decided --------------------------------------------------
    def gate(self, gate_id: str, value: float, config: Any, *, key: str | None = None,
             check_id: str | None = None, rows: int | None = None,
             interval: list[float] | None = None, threshold: float | None = None,
             reference: str | None = None) -> bool | None:
        """Record a check of governance.gates.GATES against its threshold in the config; the recorded id
        is gate_id (+ ".key"), or check_id. None when the config sets no threshold: measured, not gated.
        A threshold passed here is one the step derived from the row's reference, stated in `reference`; a
        reference beside a configured threshold says what the reference achieved."""
        row = BY_ID[gate_id]
        if threshold is None:
            threshold = row.threshold_in(config)
        if threshold is None:
            return None
        recorded = check_id or gate_id + (f".{key}" if key else "")
        passed = self.check(recorded, round(float(value), 6), threshold, row.passes(float(value), threshold),
                            gated=row.gates_in(config))
        if rows is not None:
            self.checks[-1]["rows"] = int(rows)
        if interval is not None:
            self.checks[-1]["interval"] = [round(float(v), 6) for v in interval]
        if reference:
            self.checks[-1]["reference"] = reference
        return passed

    def check(self, check_id: str, value: float | int, threshold: float | int, passed: bool,
              gated: bool = True) -> bool:
        """Record a check; an ungated one (gated=False) is reported with its verdict but decides nothing."""
        entry: Check = {"id": check_id, "value": value, "threshold": threshold, "passed": bool(passed)}
        if not gated:
            entry["gated"] = False
        self.checks.append(entry)
        return bool(passed)

    def finish(self, decision: str | None = None, *, not_measured: list[str] = (),  # type: ignore[assignment]
               claims_as: str | None = None) -> Record:
        """Write the record; decision defaults to pass when no gated check failed. Its RMF claims are what its
        content supports as a record of its step (or of claims_as: an interrupted run claims as a seal)."""
        if decision is None:
            decision = "fail" if any(blocks(c) for c in self.checks) else "pass"
        record: Record = {
            "step": self.step,
            "run_id": self.run_id,
            "started": self.started,
            "finished": now(),
            "actor": actor(),
            "code_version": code_version(),
            "config_digest": self.config_digest,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "metrics": jsonable(self.metrics),
            "checks": jsonable(self.checks),
            "details": jsonable(self.details),
            "decision": decision,
            "rmf": [],
            "not_measured": list(not_measured),
            "parents": self.parents,
        }
        # Claimed from what the record holds (governance/rmf.py); an unmet claim is listed with its reason.
        held, gaps = claims(claims_as or self.step, dict(record))
        record["rmf"] = held
        record["not_measured"] += [f"{sid}: {why}" for sid, why in gaps.items()]
        record["hash"] = record_hash(dict(record))
        records = self.out_dir / "records"
        records.mkdir(exist_ok=True)
        write_durably(records / f"{record['hash']}.json", canonical_json(record))
        write_durably(self.out_dir / "HEAD", record["hash"] + "\n")
        self._mirror(record)
        return record

    def _mirror(self, record: Record) -> None:
        """On a cluster, also keep the record and its files on the shared work volume, so the pipeline's
        exit handler can seal a run whose later step crashed (KFP gives it no upstream artifacts)."""
        root = os.environ.get(MIRROR_ENV)
        if not root:
            return
        mirror = mirror_of(Path(root), self.run_id)
        (mirror / "records").mkdir(parents=True, exist_ok=True)
        write_durably(mirror / "records" / f"{record['hash']}.json", canonical_json(record))
        if (self.out_dir / "files" / self.step).is_dir():
            shutil.copytree(self.out_dir / "files" / self.step, mirror / "files" / self.step, dirs_exist_ok=True)
