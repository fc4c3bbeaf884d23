"""What capture costs a served request: `govtrain serve` with capture against `govtrain serve --no-capture`,
the same registered version, in one run.

    python -m benchmarks.serve [--requests 1000] [--rows-per-request 1 20]

Registers the demo model first (3,000 demo rows, a temporary GOVTRAIN_HOME and embedded MLflow), then starts
both servers on 127.0.0.1 and sends the same requests to each, alternating one to this and one to that so
that load on the machine falls on both alike. Latency is the client's wall time for one request (HTTP on
loopback, JSON parsing, checks, the model, and, with capture, the journal write and flush). Reports p50, p99,
the ratio of p50s, and each server's peak RSS.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from benchmarks.harness import table
from govtrain.pipelines import demo_data

GOVTRAIN = str(Path(sys.executable).with_name("govtrain"))


def register(home: Path) -> str:
    data = demo_data.write_demo_data(home / "demo", 3000, seed=3)
    config = {"dataset": {"path": str(data.data), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                          "categorical": demo_data.CATEGORICAL, "entity_id": demo_data.ENTITY,
                          "timestamp": demo_data.TIMESTAMP},
              "split": {"strategy": "group"}, "training": {"epochs": 3},
              "registry": {"model_name": "bench-serve"}}
    (home / "config.yaml").write_text(yaml.safe_dump(config))
    subprocess.run([GOVTRAIN, "run", "--config", str(home / "config.yaml")], check=True, capture_output=True)
    return "bench-serve/1"


def start(ref: str, port: int, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([GOVTRAIN, "serve", "--model", ref, "--port", str(port), *extra], stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5):
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start: {log.read_text()[-2000:]}") from None
            time.sleep(0.5)


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def timed_post(port: int, body: bytes) -> float:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
        assert response.status == 200
    return (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rows-per-request", type=int, nargs="+", default=[1, 20])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        home = Path(tmp)
        os.environ["GOVTRAIN_HOME"] = str(home / "state")
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        ref = register(home)
        frame = pd.read_parquet(demo_data.write_demo_data(home / "traffic", 4000, seed=11, drift=0.0).data)
        frame = frame.drop(columns=[demo_data.TARGET])
        servers = {"capture": start(ref, 18931, home / "capture.log"),
                   "no capture": start(ref, 18932, home / "plain.log", "--no-capture")}
        ports = {"capture": 18931, "no capture": 18932}
        rows = []
        try:
            for size in args.rows_per_request:
                times: dict[str, list[float]] = {name: [] for name in servers}
                for i in range(args.requests + 50):
                    start_row = (i * size) % (len(frame) - size)
                    chunk = frame.iloc[start_row:start_row + size]
                    body = json.dumps({"dataframe_split": json.loads(chunk.to_json(orient="split", index=False,
                                                                                   date_format="iso"))}).encode()
                    order = list(servers) if i % 2 == 0 else list(reversed(servers))
                    for name in order:
                        elapsed = timed_post(ports[name], body)
                        if i >= 50:  # the first 50 warm both servers up
                            times[name].append(elapsed)
                p50 = {name: float(np.percentile(t, 50)) for name, t in times.items()}
                for name, t in times.items():
                    rows.append([size, name, args.requests, f"{p50[name]:.2f}", f"{np.percentile(t, 99):.2f}",
                                 f"{p50[name] / p50['no capture']:.3f}", f"{peak_rss_mb(servers[name].pid):.0f}"])
        finally:
            for proc in servers.values():
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=60)
        captured = sum(1 for _ in (home / "state" / "capture").rglob("*.parquet"))
        table(f"govtrain serve, capture on and off ({ref}, {len(frame.columns)} input columns; {captured} Parquet "
              f"part(s) written)", ["rows/request", "server", "requests", "p50 ms", "p99 ms", "p50 / no capture",
                                    "peak RSS MB"], rows)


if __name__ == "__main__":
    main()
