"""The whole pipeline on a large demo table, inside one memory cgroup that holds every process of the run.

    python -m benchmarks.scale_pipeline --rows 20000000 --limit-gib 4 [--out DIR] [--keep]

1. Writes `--rows` rows of the demo table (demo_data's generator, 1M rows at a time, customer ids unique per
   chunk) as one Parquet file, and a 200,000-row drifted batch for the out-of-distribution check.
2. Writes configs/demo.yaml pointed at them, with training.epochs 1 (2 workers, as the demo).
3. Creates a cgroup v1 memory group with the limit (memory and memory+swap), and runs `govtrain run --config` in
   it with a fresh GOVTRAIN_HOME: the run's process joins the group before it starts, so every child (the DDP
   workers, the MLflow server) is in it too.
4. Samples the group's memory.stat (total_rss) every 0.5 s; at the end reads memory.max_usage_in_bytes (the
   cgroup's own peak, which counts the page cache the kernel reclaims at the limit), failcnt (how often usage met
   the limit) and the OOM-kill count; each step's seconds come from the sealed ledger's records.

Needs root and cgroup v1's memory controller at /sys/fs/cgroup/memory (this machine); says so and stops otherwise.
docs/scale.md says how to reproduce the figure it gives.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from govtrain.pipelines import demo_data

ROOT = Path(__file__).resolve().parent.parent
CGROUP = Path("/sys/fs/cgroup/memory")
CHUNK = 1_000_000


def write_table(path: Path, rows: int, seed: int, drift: float) -> None:
    writer = None
    for start in range(0, rows, CHUNK):
        frame = demo_data._table(min(CHUNK, rows - start), np.random.default_rng(seed + start // CHUNK), drift)
        frame[demo_data.ENTITY] = frame[demo_data.ENTITY].astype(str) + f"-{start // CHUNK}"  # unique per chunk
        batch = pa.Table.from_pandas(frame, preserve_index=False)
        writer = writer or pq.ParquetWriter(path, batch.schema)
        writer.write_table(batch)
    assert writer is not None
    writer.close()


def write_config(folder: Path) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw["dataset"]["path"] = str(folder / "credit.parquet")
    raw["evaluation"]["ood_data"] = str(folder / "current.parquet")
    raw["validation"]["suite"] = str(ROOT / "expectations" / "demo_credit.json")
    raw["training"]["epochs"] = 1
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def stat(group: Path) -> dict[str, int]:
    return {k: int(v) for k, v in (line.split() for line in (group / "memory.stat").read_text().splitlines())}


def run_in_group(group: Path, config: Path, home: Path, out: Path) -> tuple[int, float, list[tuple[float, int]]]:
    """(exit code, seconds, the group's total_rss in bytes sampled every 0.5 s with its Unix time)."""
    env = {**os.environ, "GOVTRAIN_HOME": str(home)}
    govtrain = Path(sys.executable).parent / "govtrain"
    command = f"echo $$ > {group / 'cgroup.procs'} && exec {govtrain} run --config {config}"
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            samples.append((time.time(), stat(group).get("total_rss", 0)))

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    with open(out / "stdout.txt", "wb") as stdout, open(out / "stderr.txt", "wb") as stderr:
        proc = subprocess.Popen(["sh", "-c", command], cwd=ROOT, env=env, stdout=stdout, stderr=stderr,
                                start_new_session=True)
        sampler.start()
        code = proc.wait()
    done.set()
    sampler.join()
    return code, time.perf_counter() - started, samples


def steps(home: Path, samples: list[tuple[float, int]]) -> dict[str, dict[str, float]]:
    """Per step of the sealed ledger: its seconds, and the largest total_rss the group had while it ran (MB)."""
    ledgers = sorted((home / "runs").glob("*/ledger.json"))
    found = {}
    for record in json.loads(ledgers[-1].read_text()).get("records", []) if ledgers else []:
        if record.get("started") and record.get("finished"):
            start = datetime.fromisoformat(record["started"]).timestamp()
            end = datetime.fromisoformat(record["finished"]).timestamp()
            during = [rss for at, rss in samples if start <= at <= end + 0.5]
            found[record["step"]] = {"seconds": round(end - start, 1),
                                     "peak_total_rss_mb": round(max(during, default=0) / 2**20)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--limit-gib", type=float, default=4.0)
    parser.add_argument("--out", type=Path, default=Path("/tmp/govtrain-scale-pipeline"))
    parser.add_argument("--keep", action="store_true", help="keep the table and the run's state")
    args = parser.parse_args()
    if not (CGROUP / "memory.limit_in_bytes").exists() or os.geteuid() != 0:
        raise SystemExit(f"needs root and cgroup v1's memory controller at {CGROUP}")
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tick = time.perf_counter()
    write_table(out / "credit.parquet", args.rows, seed=7, drift=0.0)
    write_table(out / "current.parquet", 200_000, seed=8, drift=0.6)
    config = write_config(out)
    print(f"wrote {args.rows:,} rows ({(out / 'credit.parquet').stat().st_size / 2**20:,.0f} MB Parquet) in "
          f"{time.perf_counter() - tick:.0f} s", flush=True)
    group = CGROUP / f"govtrain-scale-{os.getpid()}"
    group.mkdir()
    limit = int(args.limit_gib * 2**30)
    try:
        (group / "memory.limit_in_bytes").write_text(str(limit))
        if (group / "memory.memsw.limit_in_bytes").exists():
            (group / "memory.memsw.limit_in_bytes").write_text(str(limit))
        code, seconds, samples = run_in_group(group, config, out / "home", out)
        found = {"rows": args.rows, "limit_bytes": limit, "exit": code, "seconds": round(seconds, 1),
                 "max_usage_in_bytes": int((group / "memory.max_usage_in_bytes").read_text()),
                 "failcnt": int((group / "memory.failcnt").read_text()),
                 "oom_kill": stat_oom(group), "peak_total_rss_sampled": max((r for _, r in samples), default=0),
                 "registered": any((out / "home" / "runs").glob("*/registration.json")),
                 "steps": steps(out / "home", samples)}
    finally:
        for pid in (group / "cgroup.procs").read_text().split():  # none should be left; never by name
            os.kill(int(pid), 9)
        time.sleep(1)
        group.rmdir()
    (out / "result.json").write_text(json.dumps(found, indent=2))
    print(json.dumps(found, indent=2))
    if not args.keep:
        for name in ("credit.parquet", "current.parquet", "home"):
            path = out / name
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def stat_oom(group: Path) -> int:
    text = (group / "memory.oom_control").read_text()
    return next((int(line.split()[1]) for line in text.splitlines() if line.startswith("oom_kill ")), 0)


if __name__ == "__main__":
    main()
