"""validate: run the Great Expectations suite from expectations/ on every split.

The native engine (govtrain.data.native_suite) gives GE's results for the expectation types it supports, in a
vectorised pass per column; GE itself answers any other type, and renders the Data Docs pages.

A failed expectation fails the gate only when the suite marks it `"meta": {"severity": "critical"}`;
every other failure is a warning, recorded in the evidence and the summary but not gated.
Outputs per split: GE's Data Docs page (HTML) and one compact JSON summary for all splits.
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from govtrain.core.config import Config, ConfigError, check_shape
from govtrain.data.ge_engine import data_docs_html
from govtrain.data.io import SPLITS, DataError
from govtrain.data.native_suite import columns_named, exception_message, validate_frame, validate_parquet
from govtrain.governance.evidence import Record, StepEvidence
from govtrain.governance.hashing import sha256_file

SEVERITIES = ("critical", "warning")
MAX_EXAMPLES = 20
# The demo suite is 6 KB; a suite with a value set per column of a wide table is a few MB. Past these a suite
# is a mistake or an attack (a 50 MB suite took 1.2 GB of memory and wrote 305 MB of evidence).
MAX_SUITE_BYTES, MAX_EXPECTATIONS, MAX_SUITE_VALUES = 8 * 1024 * 1024, 10_000, 2_000_000


def load_suite(path: Path) -> dict[str, Any]:
    """Read a suite file; malformed JSON or severities are one-line errors naming the file and key."""
    if not path.is_file():
        raise DataError(f"{path}: expectation suite not found (config validation.suite)")
    size = path.stat().st_size
    if size > MAX_SUITE_BYTES:
        raise DataError(f"{path}: {size} bytes; an expectation suite may be at most {MAX_SUITE_BYTES} bytes")
    try:
        suite = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from exc
    except RecursionError:
        raise DataError(f"{path}: nested deeper than the JSON reader allows") from None
    try:
        check_shape(path, suite, "suite", MAX_SUITE_VALUES)
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
        raise DataError(f"{path}: not an expectation suite (needs a list under 'expectations')")
    if len(suite["expectations"]) > MAX_EXPECTATIONS:
        raise DataError(f"{path}: {len(suite['expectations'])} expectations; a suite may hold at most "
                        f"{MAX_EXPECTATIONS}")
    for index, expectation in enumerate(suite["expectations"]):
        kwargs = expectation.get("kwargs") if isinstance(expectation, dict) else None
        if not isinstance(kwargs, dict) or not isinstance(expectation.get("type"), str):
            raise DataError(f"{path}: expectations[{index}] needs a 'type' string and a 'kwargs' object")
        low, high = kwargs.get("min_value"), kwargs.get("max_value")
        if isinstance(low, int | float) and isinstance(high, int | float) and low > high:
            raise DataError(f"{path}: expectations[{index}] ({expectation['type']}) has min_value {low} > "
                            f"max_value {high}")
        severity = (expectation.get("meta") or {}).get("severity", "warning")
        if severity not in SEVERITIES:
            raise DataError(f"{path}: expectations[{index}].meta.severity is {severity!r}; use 'critical' or 'warning'")
    return suite


def severity_of(expectation_config: dict[str, Any]) -> str:
    return (expectation_config.get("meta") or {}).get("severity", "warning")


def run_suite(tables: dict[str, pd.DataFrame | Path], suite_json: dict[str, Any], engine: str = "native",
              source: object = "suite") -> dict[str, dict[str, Any]]:
    """GE's validation result (plain JSON) per table: the native engine answers what it supports with GE's
    verdicts, GE the rest (govtrain.data.native_suite). A Parquet path is read a column group at a time by the
    native engine (bounded memory), whole by GE. `source` names the suite in errors."""
    def one(table: pd.DataFrame | Path) -> dict[str, Any]:
        if isinstance(table, pd.DataFrame):
            return validate_frame(table, suite_json, engine)
        if engine == "native":
            return validate_parquet(table, suite_json, engine)
        return validate_frame(pd.read_parquet(table), suite_json, engine)
    try:
        return {name: one(table) for name, table in tables.items()}
    except DataError as exc:
        raise DataError(f"{source}: {exc}") from exc


def summarize(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One compact row per expectation per split: what was expected, what was seen, a few offending values."""
    rows = []
    for split, result in results.items():
        for item in result["results"]:
            config = item["expectation_config"]
            seen = item.get("result") or {}
            expected = {k: v for k, v in config["kwargs"].items() if k not in ("column", "batch_id")}
            rows.append({
                "split": split,
                "expectation": config["type"],
                "column": config["kwargs"].get("column"),
                "severity": severity_of(config),
                "success": item["success"],
                "observed": seen.get("observed_value"),
                "expected": expected,
                "unexpected_count": seen.get("unexpected_count"),
                "unexpected_percent": seen.get("unexpected_percent"),
                "examples": [] if item["success"] else
                [str(v) for v in (seen.get("partial_unexpected_list") or [])[:MAX_EXAMPLES]],
                "error": exception_message(item),
            })
    return rows


def validate(config: Config, split_paths: dict[str, Path], parent_evidence: Path, evidence_dir: Path,
             run_id: str, docs_out: dict[str, Path] | None = None) -> Record:
    """Validate every split; docs_out (split -> path) also receives each split's Data Docs page (KFP HTML)."""
    evidence = StepEvidence("validate", evidence_dir, run_id=run_id, config_digest=config.digest(),
                            parents=[parent_evidence])
    suite_path, not_measured = config.validation.suite, []
    if suite_path is not None:
        suite = load_suite(suite_path)
        evidence.add_input(f"expectations/{suite_path.name}", suite_path)
    split_rows = {name: pq.read_metadata(split_paths[name]).num_rows for name in SPLITS}
    for name in SPLITS:
        evidence.add_input(f"data/{name}.parquet", split_paths[name], rows=split_rows[name])
    if suite_path is None:  # a minimal config: check the structure, and say that nobody reviewed a suite
        from govtrain.data.suite_draft import structural_suite  # imports torch (the task rule): only here

        spec = config.dataset
        suite = structural_suite(pd.read_parquet(split_paths["train"]), "structural", source="the train split",
                                 target=spec.target, task=spec.task, entity_id=spec.entity_id,
                                 timestamp=spec.timestamp, schema=pq.read_schema(split_paths["train"]),
                                 smallest_split=min(split_rows.values()))
        suite_path = evidence.write_json("structural_suite.json", suite)
        not_measured.append("expectations a person reviewed (validation.suite is unset): only the structural "
                            "suite drafted from the train split (columns, types, labels, a complete target, entity "
                            "id and timestamp; null shares of other columns as warnings) ran")
        not_measured += [f"the type of column {column!r} ({why})"
                         for column, why in suite["meta"].get("types_not_checked", {}).items()]
    results = run_suite({name: Path(split_paths[name]) for name in SPLITS}, suite, config.validation.engine,
                        suite_path)
    rows = summarize(results)
    failed = [r for r in rows if not r["success"]]
    for name in SPLITS:
        stats = results[name]["statistics"]
        evidence.metrics[f"{name}_evaluated"] = stats["evaluated_expectations"]
        evidence.metrics[f"{name}_failed"] = stats["unsuccessful_expectations"]
        critical = sum(1 for r in failed if r["split"] == name and r["severity"] == "critical")
        evidence.check(f"validate.{name}.critical_failures", critical, 0, critical == 0)
        page = evidence.write_text(f"data_docs_{name}.html", data_docs_html(results[name]))
        if docs_out:
            Path(docs_out[name]).parent.mkdir(parents=True, exist_ok=True)
            Path(docs_out[name]).write_bytes(page.read_bytes())
    evidence.metrics["warnings"] = sum(1 for r in failed if r["severity"] == "warning")
    evidence.write_json("summary.json", rows)
    evidence.write_json("ge_results.json", results)
    critical_count = sum(1 for e in suite["expectations"] if severity_of(e) == "critical")
    evidence.details = {"suite": suite.get("name"), "suite_sha256": sha256_file(suite_path),
                        "expectations": len(suite["expectations"]), "critical_expectations": critical_count,
                        "failed": [{k: r[k] for k in ("split", "expectation", "column", "severity", "observed",
                                                      "unexpected_count")} for r in failed][:50]}
    evidence.metrics["expectations_native"] = sum(results[n]["meta"]["engine"]["native"] for n in SPLITS)
    evidence.metrics["expectations_great_expectations"] = sum(results[n]["meta"]["engine"]["great_expectations"]
                                                              for n in SPLITS)
    return evidence.finish(not_measured=not_measured)


def suite_columns_missing(suite: dict[str, Any], columns: list[str], suite_path: Path, data: Path) -> None:
    """A suite that names a column the table lacks is one error naming both, not a page of GE exceptions."""
    present = set(columns)
    for index, expectation in enumerate(suite["expectations"]):
        for column in columns_named(expectation):
            if column not in present:
                raise DataError(f"{suite_path}: expectations[{index}] ({expectation.get('type')}) names column "
                                f"{column!r}, which {data.name} does not have")


def validate_table(data: Path, suite_path: Path, out_dir: Path, options: Any = None, engine: str = "native",
                   docs: bool = True) -> list[dict[str, Any]]:
    """One table against one suite, with the pipeline's reader and engine: writes results.json, summary.json and
    data_docs.html to out_dir; returns the summary rows (failed critical ones decide the exit code)."""
    from govtrain.data.io import format_of, read_table, table_columns

    suite = load_suite(suite_path)
    if format_of(data) == "parquet":  # read a column group at a time, not whole
        suite_columns_missing(suite, table_columns(data, "parquet"), suite_path, data)
        table: pd.DataFrame | Path = data
    else:
        table = read_table(data, options=options)
        suite_columns_missing(suite, list(table.columns), suite_path, data)
    result = run_suite({"table": table}, suite, engine, suite_path)["table"]
    rows = summarize({"table": result})
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(result, indent=2))
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    if docs:
        (out_dir / "data_docs.html").write_text(data_docs_html(result))
    return rows
