"""prepare and the train step's job files on a growing table: held whole (as before issue 30) against streamed.

    python -m benchmarks.scale_prepare [--rows 1000000 3000000 10000000] [--held-max 3000000] [--no-evaluate]

The 30-column table (benchmarks.data_gates.wide_table, ids unique per 1M-row chunk) is written as one Parquet
file in pandas' default row groups, a chunk at a time. For each size, each in a forked process:
- prepare, held: the table read whole and split exactly (split.stream_from_rows above the table's rows);
- prepare, streamed: data/stream_split.py, a 65,536-row batch at a time (the default switch, 1,000,000 rows);
- the train step's job files (write_job: features, task, 2 workers' chunks, val), held: one batch the size of
  the split (fitting.FIT_ROWS above its rows, which is what the step did before: the split in pandas, then its
  tensors), and streamed: the default 262,144-row batches;
- evaluate on a network with its initial weights, held (evaluation.max_rows above every split) and sampled (the
  default 500,000 rows a split, the headline on every test row).
Seconds and peak RSS less an idle forked process's. Held runs stop at --held-max rows: at 10M the held prepare
needs some 15 GB. docs/scale.md reads this table.
"""
import argparse
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import yaml

from benchmarks.data_gates import EXTRA_CATEGORICAL, EXTRA_NUMERIC, wide_table
from benchmarks.harness import measure, table
from govtrain.components.evaluation import evaluate
from govtrain.components.prepare import prepare
from govtrain.components.train import fitting
from govtrain.components.train.step import write_job
from govtrain.core.config import load_config
from govtrain.model.features import FeatureSpec
from govtrain.model.network import build_model, save_model
from govtrain.model.task import Task
from govtrain.pipelines import demo_data

CHUNK = 1_000_000
SPLITS = ("train", "val", "test")


def write_table(path: Path, rows: int) -> None:
    writer = None
    for start in range(0, rows, CHUNK):
        frame = wide_table(min(CHUNK, rows - start), 11 + start // CHUNK)
        frame[demo_data.ENTITY] = frame[demo_data.ENTITY] + f"-{start // CHUNK}"  # ids unique per chunk
        batch = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch)
    assert writer is not None
    writer.close()


def config_at(folder: Path, table_path: Path, stream_from: int):
    raw = {"dataset": {"path": str(table_path), "target": demo_data.TARGET,
                       "numeric": demo_data.NUMERIC + EXTRA_NUMERIC,
                       "categorical": demo_data.CATEGORICAL + EXTRA_CATEGORICAL,
                       "entity_id": demo_data.ENTITY, "timestamp": demo_data.TIMESTAMP,
                       "sensitive": demo_data.SENSITIVE},
           "split": {"strategy": "group", "stream_from_rows": stream_from},
           "training": {"workers": 2}}
    path = folder / f"config-{stream_from}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def run_prepare(config, out: Path) -> dict[str, int]:
    paths = {s: out / f"{s}.parquet" for s in SPLITS}
    record = prepare(config, paths, out / "ev", "scale")
    return {s: record["metrics"][f"{s}_rows"] for s in SPLITS}


def run_job(config, splits: Path, out: Path, fit_rows: int) -> int:
    fitting.FIT_ROWS = fit_rows  # the forked child's own copy
    write_job(config, {s: splits / f"{s}.parquet" for s in SPLITS}, out, out / "ckpt")
    return len(list(out.glob("train-*.safetensors")))


def run_evaluate(config, splits: Path, job: Path, out: Path, max_rows: int) -> float:
    """evaluate on a network with its initial weights (what is measured is the step's memory, not the model)."""
    features = FeatureSpec(**json.loads((job / "features.json").read_text()))
    task = Task(**json.loads((job / "task.json").read_text()))
    torch.manual_seed(0)
    save_model(build_model(features, 8, [32]), features, out / "model", embedding_dim=8, hidden=[32], task=task)
    config.evaluation.max_rows = max_rows
    config.evaluation.compare_with_champion = False
    (out / "ev0").mkdir()
    (out / "ev0" / "HEAD").write_text("")
    record = evaluate(config, out / "model", {s: splits / f"{s}.parquet" for s in SPLITS}, out / "ev0", out / "ev",
                      "scale", out / "calibrated")
    return record["metrics"]["test_rows"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument("--held-max", type=int, default=3_000_000)
    parser.add_argument("--no-evaluate", action="store_true", help="prepare and the job files only")
    args = parser.parse_args()
    idle_mb = measure(lambda: None)[1]
    found = []
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            table_path = folder / "table.parquet"
            measure(lambda p=table_path, n=rows: write_table(p, n))
            file_mb = table_path.stat().st_size / 2**20
            held = rows <= args.held_max
            for how, stream_from in (("held", 10**12), ("streamed", 30)):
                if how == "held" and not held:
                    continue
                config = config_at(folder, table_path, stream_from)
                out = folder / f"prepare-{how}"
                seconds, peak, split_rows = measure(lambda c=config, o=out: run_prepare(c, o))
                found.append([f"{rows:,}", f"{file_mb:,.0f}", "prepare", how, f"{seconds:.1f}",
                              f"{peak - idle_mb:,.0f}", f"train {split_rows['train']:,}"])
            config = config_at(folder, table_path, 1_000_000)
            splits = folder / "prepare-streamed"
            for how, fit_rows in (("held", 10**12), ("streamed", fitting.FIT_ROWS)):
                if how == "held" and not held:
                    continue
                seconds, peak, chunks = measure(lambda c=config, f=fit_rows, s=splits, o=folder / f"job-{how}": run_job(
                    c, s, o, f))
                found.append([f"{rows:,}", f"{file_mb:,.0f}", "train job files", how, f"{seconds:.1f}",
                              f"{peak - idle_mb:,.0f}", f"{chunks} chunks"])
            for how, cap in (("held", 10**12), ("sampled", 500_000)):
                if (how == "held" and not held) or args.no_evaluate:
                    continue
                seconds, peak, measured = measure(lambda c=config, s=splits, j=folder / "job-streamed", k=cap,
                                                  o=folder / f"eval-{how}": run_evaluate(c, s, j, o, k))
                found.append([f"{rows:,}", f"{file_mb:,.0f}", "evaluate", how, f"{seconds:.1f}",
                              f"{peak - idle_mb:,.0f}", f"test rows measured {measured:,}"])
            table(f"so far (idle forked process {idle_mb:,.0f} MB)", HEADER, found)
    table("prepare and the train step's job files: held whole against streamed, one 2-core machine", HEADER, found)


HEADER = ["rows", "Parquet MB", "step", "how", "seconds", "peak-idle MB", "output"]


if __name__ == "__main__":
    main()
