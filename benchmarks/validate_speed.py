"""govtrain validate against Great Expectations called directly: same table, same suite, one run.

    python -m benchmarks.validate_speed [--rows 1000000 100000] [--small 1000]

- the table: the demo credit table plus 12 columns (30 in all, benchmarks.data_gates.wide_table), as Parquet;
- the suite: what `govtrain expectations init` drafts from it (a 100k-row sample);
- ours: the native engine reads the Parquet file a column group at a time (GE answers any type it does not
  support), as `govtrain validate` and the pipeline's validate step do;
  GE: read the same file and validate the same suite through GE's own API (an ephemeral context);
- verdicts: every expectation's success and observed value must be equal, or the run fails;
- each contender runs in its own forked process, GE imported before the fork; peak-idle MB is that process's peak
  RSS less an idle forked process's (the imports);
- data MB: the table in pandas, deep;
- start-up: `govtrain validate --no-docs` and a `python -c` calling GE, as fresh processes on a small table.
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import great_expectations as gx  # noqa: F401  imported before forking, so neither side pays the import
import pandas as pd

from benchmarks.data_gates import wide_table
from benchmarks.harness import measure, table
from govtrain.data.ge_engine import run_ge
from govtrain.data.native_suite import validate_parquet
from govtrain.data.suite_draft import draft_suite


def _numbers_as_floats(value):
    """GE writes 83.0 back as 83 in its result's kwargs; keys must not differ on that."""
    if isinstance(value, dict):
        return {k: _numbers_as_floats(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_numbers_as_floats(v) for v in value]
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


def verdicts(result: dict) -> dict[str, tuple]:
    """expectation -> (success, observed value), keyed by type and kwargs (GE reorders its results)."""
    found = {}
    for item in result["results"]:
        config = item["expectation_config"]
        kwargs = _numbers_as_floats({k: v for k, v in config["kwargs"].items() if k != "batch_id"})
        found[json.dumps([config["type"], kwargs], sort_keys=True, default=str)] = (
            item["success"], json.dumps(item["result"].get("observed_value"), default=str),
            item["result"].get("unexpected_count"))
    return found


def ours(path: Path, suite: dict) -> dict:
    """What `govtrain validate --data X.parquet` and the pipeline's validate step run: a column group at a time."""
    return verdicts(validate_parquet(path, suite))


def ge_direct(path: Path, suite: dict) -> dict:
    return verdicts(run_ge(pd.read_parquet(path), suite))


def start_up(data: Path, suite_file: Path, folder: Path) -> tuple[float, float]:
    """Seconds for a fresh process to validate a small table: govtrain validate (CLI) vs GE in python -c."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "govtrain.pipelines.cli", "validate", "--data", str(data), "--suite",
                    str(suite_file), "--out", str(folder / "small"), "--no-docs"], check=False, capture_output=True)
    cli = time.perf_counter() - started
    script = ("import json, pandas as pd; from govtrain.data.ge_engine import run_ge; "
              f"run_ge(pd.read_parquet({str(data)!r}), json.load(open({str(suite_file)!r})))")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    return cli, time.perf_counter() - started


def make_table(path: Path, rows: int) -> tuple[dict, float]:
    """The table as Parquet and the suite drafted from it as `expectations init` reads it (a 100k sample)."""
    wide_table(rows, 1).to_parquet(path, index=False)
    frame = pd.read_parquet(path)
    suite = draft_suite(frame.sample(min(rows, 100_000), random_state=0), "bench", source="bench", target="default")
    return suite, frame.memory_usage(deep=True).sum() / 2**20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 100_000])
    parser.add_argument("--small", type=int, default=1_000)
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        idle_mb = measure(lambda: None)[1]
        for rows in args.rows:
            path = folder / f"table_{rows}.parquet"
            # made in a child process, so this one stays small and the forked contenders start from it
            suite, data_mb = measure(lambda p=path, n=rows: make_table(p, n))[2]
            native_s, native_mb, native_v = measure(lambda p=path, s=suite: ours(p, s))
            ge_s, ge_mb, ge_v = measure(lambda p=path, s=suite: ge_direct(p, s))
            differ = [k for k in ge_v if native_v.get(k) != ge_v[k]]
            if differ or native_v.keys() != ge_v.keys():
                raise SystemExit(f"verdicts differ at {rows} rows: {differ[:3]}")
            rows_out.append([f"{rows:,}", 30, len(suite["expectations"]), f"{data_mb:,.0f}", f"{native_s:.2f}",
                             f"{ge_s:.2f}", f"{ge_s / native_s:.1f}x", f"{native_mb - idle_mb:,.0f}",
                             f"{ge_mb - idle_mb:,.0f}", f"{len(ge_v)} / {len(ge_v)}"])
        small = folder / "small.parquet"
        small_frame = wide_table(args.small, 2)
        small_frame.to_parquet(small, index=False)
        (folder / "suite.json").write_text(json.dumps(draft_suite(pd.read_parquet(small), "small", source="small",
                                                                  target="default")))
        cli_s, ge_cli_s = start_up(small, folder / "suite.json", folder)
    table("validate: govtrain (native engine) vs Great Expectations directly, same file and suite", [
        "rows", "columns", "expectations", "data MB", "ours s", "GE s", "GE/ours", "ours peak-idle MB",
        "GE peak-idle MB",
        "same verdicts"], rows_out)
    table(f"start-up: a fresh process validating {args.small:,} rows (imports included)", [
        "govtrain validate --no-docs s", "python -c GE s", "GE/ours"], [[f"{cli_s:.2f}", f"{ge_cli_s:.2f}",
                                                                          f"{ge_cli_s / cli_s:.1f}x"]])


if __name__ == "__main__":
    main()
