"""validate: run the Great Expectations suite from expectations/ on every split, through GE's own API.

Every failed expectation fails the gate unless the suite marks it `"meta": {"severity": "warning"}`;
warnings are recorded, not gated.
"""

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from components.io import SPLITS, DataError, read_splits
from governance.evidence import StepEvidence
from pipelines.config import Config


def load_suite(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: expectation suite not found (config validation.suite)")
    try:
        suite = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise DataError(f"{path}: not an expectation suite (needs a list under 'expectations')")
    return suite


def run_suite(frames: dict[str, pd.DataFrame], suite_json: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Validate each frame with the suite; returns GE's result dict per split."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no phoning home from a pipeline step
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    batch_definition = (context.data_sources.add_pandas("govtrain")
                        .add_dataframe_asset("split").add_batch_definition_whole_dataframe("whole"))
    try:
        suite = context.suites.add(gx.ExpectationSuite(**suite_json))
    except Exception as exc:
        raise DataError(f"expectation suite {suite_json.get('name')!r} is invalid: {str(exc).splitlines()[0]}") from exc
    results = {}
    for name, frame in frames.items():
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
        results[name] = batch.validate(suite).to_json_dict()
    return results


def summarize(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per failed expectation: split, type, column, severity, what was seen."""
    rows = []
    for split, result in results.items():
        for item in result["results"]:
            if item["success"]:
                continue
            config = item["expectation_config"]
            observed = item.get("result", {})
            rows.append({
                "split": split,
                "expectation": config["type"],
                "column": config["kwargs"].get("column"),
                "severity": (config.get("meta") or {}).get("severity", "critical"),
                "observed": observed.get("observed_value"),
                "unexpected_count": observed.get("unexpected_count"),
                "examples": [str(v) for v in (observed.get("partial_unexpected_list") or [])[:20]],
                "error": (item.get("exception_info") or {}).get("exception_message"),
            })
    return rows


def validate(config: Config, split_paths: dict[str, Path], parent_evidence: Path, evidence_dir: Path,
             run_id: str) -> dict:
    evidence = StepEvidence("validate", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    suite_path = config.validation.suite
    suite = load_suite(suite_path)
    evidence.add_input(f"expectations/{suite_path.name}", suite_path)
    frames = read_splits({name: split_paths[name] for name in SPLITS}, evidence)
    results = run_suite(frames, suite)
    failures = summarize(results)
    for name in SPLITS:
        stats = results[name]["statistics"]
        evidence.metrics[f"{name}_evaluated"] = stats["evaluated_expectations"]
        evidence.metrics[f"{name}_failed"] = stats["unsuccessful_expectations"]
        critical = sum(1 for f in failures if f["split"] == name and f["severity"] != "warning")
        evidence.check(f"validate.{name}.critical_failures", critical, 0, critical == 0)
    evidence.metrics["warnings"] = sum(1 for f in failures if f["severity"] == "warning")
    evidence.write_json("failures.json", failures)
    evidence.write_json("ge_results.json", results)
    evidence.details = {"suite": suite.get("name"), "expectations": len(suite["expectations"])}
    return evidence.finish()
