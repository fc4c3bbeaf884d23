"""Our validate step vs the same Great Expectations suite called directly, on the same splits.

    python -m benchmarks.validate_vs_ge [--rows 100000 1000000]
"""
import argparse
import json
import tempfile
from pathlib import Path

import great_expectations as gx  # imported before forking so neither side pays the 3 s import
import pandas as pd

from benchmarks.harness import measure, table
from components.prepare import prepare
from components.validate import validate
from pipelines import demo_data
from pipelines.config import load_config

ROOT = Path(__file__).resolve().parent.parent


def ge_direct(paths: dict, suite_json: dict) -> bool:
    context = gx.get_context(mode="ephemeral")
    batch_definition = (context.data_sources.add_pandas("direct").add_dataframe_asset("t")
                        .add_batch_definition_whole_dataframe("all"))
    suite = context.suites.add(gx.ExpectationSuite(**suite_json))
    ok = True
    for path in paths.values():
        frame = pd.read_parquet(path)
        ok &= batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite).success
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    suite_json = json.loads((ROOT / "expectations" / "demo_credit.json").read_text())
    rows_out = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            files = demo_data.write_demo_data(tmp / "data", rows)
            config_path = tmp / "c.yaml"
            config_path.write_text((ROOT / "configs" / "demo.yaml").read_text()
                                   .replace("../.govtrain/demo/credit.parquet", str(files.data))
                                   .replace("../expectations/demo_credit.json", str(ROOT / "expectations/demo_credit.json")))
            config = load_config(config_path)
            paths = {s: tmp / f"{s}.parquet" for s in ("train", "val", "test")}
            prepare(config, paths, tmp / "ev0", "bench")
            ours_s, ours_mb, _ = measure(lambda: validate(config, paths, tmp / "ev0", tmp / "ev1", "bench"))
            ge_s, ge_mb, _ = measure(lambda: ge_direct(paths, suite_json))
            columns = len(pd.read_parquet(paths["test"]).columns)
            rows_out.append([rows, columns, len(suite_json["expectations"]), f"{ours_s:.2f}", f"{ge_s:.2f}",
                             f"{ours_s / ge_s:.2f}", f"{ours_mb:.0f}", f"{ge_mb:.0f}"])
    table("validate step vs Great Expectations direct (3 splits, same suite)",
          ["rows", "cols", "expectations", "ours s", "GE s", "ours/GE", "ours peak MB", "GE peak MB"], rows_out)


if __name__ == "__main__":
    main()
