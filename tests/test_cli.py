"""The govtrain command as a user runs it: one-line errors, exit codes, compile and drift."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kfp import components

from tests.conftest import ROOT, base_config

pytestmark = pytest.mark.slow  # each test starts the govtrain command as a subprocess


def govtrain(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "govtrain.pipelines.cli", *map(str, args)], capture_output=True,
                          text=True,
                          cwd=cwd, timeout=300)


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


def write_yaml(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def test_every_subcommand_has_help():
    for command in (["run"], ["compile"], ["drift"], ["demo-data"], ["ui"], ["audit", "verify"]):
        result = govtrain(*command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, command


def test_every_missing_option_is_named_at_once_and_run_says_where_it_looked_for_a_config(tmp_path):
    result = govtrain("promote")
    assert result.returncode == 2 and "Missing options: --model, --reason." in result.stderr
    # One way to name a version everywhere: NAME/VERSION (NAME with --version still works).
    assert_one_line_error(govtrain("promote", "--model", "m", "--reason", "r"),
                          "--model m: name the version, NAME/VERSION (e.g. m/1)")
    assert_one_line_error(govtrain("promote", "--model", "m/2", "--version", "3", "--reason", "r"),
                          "--model m/2 and --version 3 name two versions; give one")
    assert_one_line_error(govtrain("run", cwd=tmp_path),
                          f"no --config given and configs/demo.yaml is not in {tmp_path}",
                          "govtrain init --data TABLE --target COLUMN")


def test_missing_data_file(tmp_path):
    """Issue 32: the line names the key and the folder a relative path was resolved against, and no run is
    sealed for it."""
    raw = base_config(Path("data") / "absent.parquet")  # relative: to the config file's folder, not the shell's
    (tmp_path / "configs").mkdir()
    config = write_yaml(tmp_path / "configs" / "c.yaml", raw)
    result = govtrain("run", "--config", config, cwd=tmp_path)
    assert_one_line_error(result, f"{config}: dataset.path is {tmp_path / 'configs' / 'data' / 'absent.parquet'}, "
                                  f"which does not exist (a relative path is resolved against the config file's "
                                  f"folder, {tmp_path / 'configs'})")
    assert not (tmp_path / "state").exists() and "sealed evidence" not in result.stderr


def test_missing_target_column(small_data, tmp_path):
    raw = base_config(small_data.data)
    raw["dataset"]["target"] = "defaulted"
    config = write_yaml(tmp_path / "c.yaml", raw)
    assert_one_line_error(govtrain("run", "--config", config), "credit.parquet", "target 'defaulted' not found")


def test_config_error_names_the_key(small_data, tmp_path):
    raw = base_config(small_data.data)
    raw["training"]["workers"] = "two"
    config = write_yaml(tmp_path / "c.yaml", raw)
    assert_one_line_error(govtrain("run", "--config", config), "c.yaml: training.workers")


def test_debug_shows_the_traceback(tmp_path):
    config = write_yaml(tmp_path / "c.yaml", base_config(tmp_path / "absent.parquet"))
    result = govtrain("--debug", "run", "--config", config)
    assert result.returncode == 2 and "Traceback" in result.stderr


def test_compile_writes_a_pipeline_kfp_can_load(tmp_path):
    out = tmp_path / "pipeline.yaml"
    result = govtrain("compile", "--out", out, "--config", ROOT / "configs" / "cluster.yaml")
    assert result.returncode == 0, result.stderr
    loaded = components.load_component_from_file(str(out))
    assert loaded.name == "govtrain-training"
    spec, platform = yaml.safe_load_all(out.read_text())  # with --config: the cluster's platform spec too
    assert "exec-train-op" in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(spec["root"]["dag"]["tasks"]) == {"exit-handler-1", "seal-on-exit-op"}  # a cluster run always seals
    tasks = spec["components"]["comp-exit-handler-1"]["dag"]["tasks"]
    assert {"prepare-op", "validate-op", "leakage-op", "data-gate-op"} <= set(tasks)
    docs = spec["components"]["comp-validate-op"]["outputDefinitions"]["artifacts"]
    assert {n: a["artifactType"]["schemaTitle"] for n, a in docs.items() if n.endswith("_data_docs")} == {
        f"{s}_data_docs": "system.HTML" for s in ("train", "val", "test")}  # the KFP UI shows GE's pages
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"ghcr.io/govtrain/govtrain:0.1.0"}  # cluster.image
    assert "config_json" in spec["root"]["inputDefinitions"]["parameters"]


def test_drift_exit_codes(small_data, tmp_path):
    """Finding drift is a result (exit 0, as a scheduled job must not be retried for it); --fail-on-drift
    makes it exit 1 for CI gates; errors exit 2."""
    config = write_yaml(tmp_path / "c.yaml", base_config(small_data.data))
    found = govtrain("drift", "--current", small_data.current, "--reference", small_data.data,
                     "--config", config, "--out", tmp_path / "d1")
    assert found.returncode == 0, found.stderr
    assert "DRIFT" in found.stdout and (tmp_path / "d1" / "drift_report.html").stat().st_size > 10_000
    gated = govtrain("drift", "--current", small_data.current, "--reference", small_data.data,
                     "--config", config, "--out", tmp_path / "d2", "--fail-on-drift")
    assert gated.returncode == 1 and "DRIFT" in gated.stdout
    same = govtrain("drift", "--current", small_data.data, "--reference", small_data.data,
                    "--config", config, "--out", tmp_path / "d0")
    assert same.returncode == 0 and "no drift" in same.stdout
    bad = govtrain("drift", "--current", tmp_path / "nope.parquet", "--reference", small_data.data, "--config", config)
    assert_one_line_error(bad, "nope.parquet: data file not found")
    # Neither --reference nor --model: an error, never the newest run's train split picked silently.
    unsaid = govtrain("drift", "--current", small_data.current, "--config", config)
    assert_one_line_error(unsaid, "drift needs a reference: give --reference FILE or --model NAME[@alias]")


def test_drift_of_two_tables_with_no_config_compares_the_columns_they_share(small_data, tmp_path):
    """No config and no model: the shared columns, numbers as numbers, strings as categories, no label."""
    import pandas as pd

    reference = pd.read_parquet(small_data.data).drop(columns=["purpose"]).assign(only_here=1.0)
    reference.to_csv(tmp_path / "reference.csv", index=False)
    current = pd.read_parquet(small_data.current).assign(new_column="x")
    current.to_parquet(tmp_path / "current.parquet", index=False)
    result = govtrain("drift", "--reference", tmp_path / "reference.csv", "--current", tmp_path / "current.parquet",
                      "--out", tmp_path / "d", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "d" / "drift_summary.json").read_text())
    columns = {c["column"]: c for c in summary["columns"]}
    assert "purpose" not in columns and "only_here" not in columns and "new_column" not in columns
    assert {"income", "gender", "default"} <= set(columns)  # the label too: without a config it is a column
    assert columns["income"]["method"] != columns["gender"]["method"]  # numeric vs categorical test
    unrelated = tmp_path / "unrelated.csv"
    unrelated.write_text("a,b\n1,2\n")
    assert_one_line_error(govtrain("drift", "--reference", unrelated, "--current", tmp_path / "current.parquet",
                                   cwd=tmp_path), "share no column to compare")


def test_audit_verify_exit_codes(tmp_path):
    result = govtrain("audit", "verify", tmp_path)
    assert result.returncode == 1 and "no ledger here" in result.stderr


def test_compile_the_drift_pipeline_for_a_recurring_run(tmp_path):
    out = tmp_path / "drift.yaml"
    result = govtrain("compile", "--pipeline", "drift", "--out", out, "--config", ROOT / "configs" / "cluster.yaml")
    assert result.returncode == 0, result.stderr
    assert components.load_component_from_file(str(out)).name == "govtrain-drift"
    spec, platform = yaml.safe_load_all(out.read_text())
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"config_json", "current", "model"}
    assert spec["root"]["inputDefinitions"]["parameters"]["model"]["defaultValue"] == "govtrain-credit@champion"
    assert "exec-drift-op" in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    bad = govtrain("compile", "--pipeline", "nightly", "--out", out)
    assert_one_line_error(bad, "--pipeline 'nightly': choose one of training, drift, monitor")


def test_compile_the_monitor_pipeline_for_a_recurring_run(tmp_path):
    """The monitor's recurring run reads the capture root deploy points KServe's logger at."""
    out = tmp_path / "monitor.yaml"
    result = govtrain("compile", "--pipeline", "monitor", "--out", out, "--config", ROOT / "configs" / "cluster.yaml")
    assert result.returncode == 0, result.stderr
    spec, platform = yaml.safe_load_all(out.read_text())
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert set(parameters) == {"config_json", "model", "kserve_log"}
    assert parameters["kserve_log"]["defaultValue"] == "s3://mlflow-artifacts/capture"
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-monitor-op"]
    assert executor["secretAsVolume"][0]["secretName"] == "govtrain-signing-key"  # it appends signed records
