"""Our drift job vs Evidently's DataDriftPreset called directly, same data, in one run.

    python -m benchmarks.drift [--rows 100000 1000000]

Reference and current: ROWS x 26 columns (20 numeric, 5 categorical, 1 label), seeded. Drift is
planted in n0-n4 (mean +0.25 std) and c0 (category shares changed); the other 19 columns come from
the same distribution. Both sides read the same Parquet files. Our job computes Evidently's tests
on every row (no sampling) and renders Evidently's HTML on a 10k-row sample; the decisions per
column must equal Evidently's on the full data.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.harness import measure, table
from govtrain.core.config import Config

NUMERIC = [f"n{i}" for i in range(20)]
CATEGORICAL = [f"c{i}" for i in range(5)]
PLANTED = {"n0", "n1", "n2", "n3", "n4", "c0"}


def batch(rows: int, seed: int, drift: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {}
    for i, name in enumerate(NUMERIC):
        values = rng.normal(i, 1 + i / 10, rows)
        data[name] = values + (0.25 * (1 + i / 10) if drift and name in PLANTED else 0)
    for name in CATEGORICAL:
        shares = np.array([0.4, 0.3, 0.2, 0.1]) if not (drift and name in PLANTED) else np.array([0.25, 0.25, 0.25,
                                                                                                  0.25])
        data[name] = rng.choice(["a", "b", "c", "d"], size=rows, p=shares)
    data["label"] = rng.integers(0, 2, rows)
    return pd.DataFrame(data)


def evidently_direct(reference: Path, current: Path) -> dict:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=NUMERIC, categorical_columns=CATEGORICAL)
    frames = [pd.read_parquet(p, columns=NUMERIC + CATEGORICAL) for p in (current, reference)]
    snapshot = Report([DataDriftPreset()]).run(*(Dataset.from_pandas(f, data_definition=definition) for f in frames))
    out = {}
    for metric in snapshot.dict()["metrics"]:
        cfg = metric["config"]
        if cfg["type"].endswith("ValueDrift"):
            value = float(metric["value"])
            p_value = "p_value" in cfg["method"].lower()
            out[cfg["column"]] = value < cfg["threshold"] if p_value else value >= cfg["threshold"]
    return out


def ours(config: Config, reference: Path, current: Path, out: Path) -> dict:
    from govtrain.monitoring.drift import run_drift

    result = run_drift(config, current, reference, out)
    return {c["column"]: c["drifted"] for c in result.columns}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args()
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for rows in args.rows:
            reference, current = tmp / f"ref-{rows}.parquet", tmp / f"cur-{rows}.parquet"
            batch(rows, 1, False).to_parquet(reference)
            batch(rows, 2, True).to_parquet(current)
            config = Config.model_validate({"dataset": {"path": str(reference), "target": "label",
                                                        "numeric": NUMERIC, "categorical": CATEGORICAL}})
            our_s, our_mb, our_cols = measure(
                lambda c=config, r=reference, k=current, o=tmp / f"out-{rows}": ours(c, r, k, o))
            ev_s, ev_mb, ev_cols = measure(lambda r=reference, k=current: evidently_direct(r, k))
            agree = sum(our_cols[c] == ev_cols[c] for c in ev_cols)
            found = {c for c, d in our_cols.items() if d}
            rows_out.append([rows, 26, f"{ev_s:.1f}", f"{our_s:.1f}", f"{ev_s / our_s:.1f}x", f"{ev_mb:.0f}",
                             f"{our_mb:.0f}", f"{agree}/{len(ev_cols)}",
                             "yes" if found == PLANTED else json.dumps(sorted(found))])
    table("data drift, reference vs current (Parquet), 2 cores",
          ["rows", "columns", "Evidently s", "ours s", "speed-up", "Evidently MB", "ours MB",
           "decisions agree", "finds exactly the planted columns"], rows_out)


if __name__ == "__main__":
    main()
