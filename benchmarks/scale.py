"""The data gates past one machine's comfort: validate and leakage on Parquet splits of growing size.

    python -m benchmarks.scale [--rows 1000000 3000000 10000000] [--held-up-to 10000000]

For each size the 30-column table (benchmarks.data_gates.wide_table) is written as train/val/test Parquet
(80/10/10, in 1M-row row groups, generated a chunk at a time so the generator stays small), the suite is
drafted from a 100k-row sample of train, and the pipeline's own validate and leakage steps run on the files,
each in a forked process: seconds, and peak RSS less an idle forked process's. Leakage runs both ways: held (the
splits encoded whole, as below split.stream_from_rows) up to --held-up-to rows, and streamed (hash partitions
spilled beside the splits, the default from 1M rows); their gates must agree. docs/scale.md reads this table.
"""
import argparse
import json
import tempfile
from pathlib import Path

import great_expectations as gx  # noqa: F401  imported before forking: neither step pays the import
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from benchmarks.data_gates import EXTRA_CATEGORICAL, EXTRA_NUMERIC, wide_table
from benchmarks.harness import measure, table
from govtrain.components.leakage import leakage
from govtrain.components.validate import validate
from govtrain.core.config import load_config
from govtrain.data.suite_draft import draft_suite
from govtrain.pipelines import demo_data

CHUNK = 1_000_000


def write_split(path: Path, rows: int, seed: int, prefix: str) -> None:
    writer = None
    for start in range(0, rows, CHUNK):
        frame = wide_table(min(CHUNK, rows - start), seed * 1000 + start // CHUNK)
        frame[demo_data.ENTITY] = prefix + frame[demo_data.ENTITY] + f"-{start // CHUNK}"  # ids unique per chunk
        batch = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch)
    assert writer is not None
    writer.close()


def make_inputs(folder: Path, rows: int) -> dict:
    paths = {"train": folder / "train.parquet", "val": folder / "val.parquet", "test": folder / "test.parquet"}
    for (name, path), share, seed in zip(paths.items(), (0.8, 0.1, 0.1), (1, 2, 3), strict=True):
        write_split(path, int(rows * share), seed, name[:2])  # tr, va, te: no id shared across splits
    sample = pq.read_table(paths["train"]).slice(0, 100_000).to_pandas()
    suite = draft_suite(sample, "scale", source="a 100k sample of train", target=demo_data.TARGET)
    (folder / "suite.json").write_text(json.dumps(suite))
    raw = {"dataset": {"path": str(paths["train"]), "target": demo_data.TARGET,
                       "numeric": demo_data.NUMERIC + EXTRA_NUMERIC,
                       "categorical": demo_data.CATEGORICAL + EXTRA_CATEGORICAL,
                       "entity_id": demo_data.ENTITY, "timestamp": demo_data.TIMESTAMP,
                       "sensitive": demo_data.SENSITIVE},
           "split": {"strategy": "group"}, "validation": {"suite": str(folder / "suite.json")}}
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    return {name: str(path) for name, path in paths.items()}


def gates(record: dict) -> dict:
    """Each gate's value and verdict, rounded as recorded, and the step's decision."""
    return {"decision": record["decision"], **{c["id"]: (c["value"], c["passed"]) for c in record["checks"]}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--held-up-to", type=int, default=10_000_000, help="largest table leakage also runs held")
    args = parser.parse_args()
    found, phases = [], {}
    idle_mb = measure(lambda: None)[1]
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            paths = {k: Path(v) for k, v in measure(lambda f=folder, n=rows: make_inputs(f, n))[2].items()}
            config = load_config(folder / "config.yaml")
            (folder / "ev0").mkdir()
            (folder / "ev0" / "HEAD").write_text("")
            file_mb = sum(p.stat().st_size for p in paths.values()) / 2**20
            v_s, v_mb, verdict = measure(lambda c=config, p=paths, f=folder: validate(
                c, p, f / "ev0", f / "ev-v", "scale")["decision"])
            held = config.model_copy(deep=True)
            held.split.stream_from_rows = 10**15
            h_s, h_mb, h_gates = measure(lambda c=held, p=paths, f=folder: gates(leakage(
                c, p, f / "ev0", f / "ev-h", "scale"))) if rows <= args.held_up_to else (None, None, None)
            s_s, s_mb, s_gates = measure(lambda c=config, p=paths, f=folder: gates(leakage(
                c, p, f / "ev0", f / "ev-s", "scale")))
            phases[f"{rows:,}"] = json.loads((folder / "ev-s" / "files" / "leakage" / "leakage.json").read_text())[
                "seconds"]
            agree = "not run" if h_gates is None else str(h_gates == s_gates)
            found.append([f"{rows:,}", 30, f"{file_mb:,.0f}", f"{v_s:.1f}", f"{(v_mb - idle_mb):,.0f}", verdict,
                          "-" if h_s is None else f"{h_s:.1f}", "-" if h_mb is None else f"{h_mb - idle_mb:,.0f}",
                          f"{s_s:.1f}", f"{s_mb - idle_mb:,.0f}", agree, s_gates["decision"]])
    table("validate and leakage steps on train/val/test Parquet (80/10/10), one 2-core machine", [
        "rows (all splits)", "columns", "Parquet MB", "validate s", "validate peak-idle MB", "validate decision",
        "leakage held s", "held peak-idle MB", "leakage streamed s", "streamed peak-idle MB", "gates agree",
        "leakage decision"], found)
    for rows, seconds in phases.items():
        print(f"leakage streamed at {rows} rows, seconds per phase: {json.dumps(seconds)}")
    print(f"idle forked process: {idle_mb:,.0f} MB; a float64 column of 8M train rows is "
          f"{np.dtype('float64').itemsize * 8_000_000 / 2**20:,.0f} MB")


if __name__ == "__main__":
    main()
