"""Each task through the whole pipeline at 100k rows, in one table: the network's test metric against
HistGradientBoosting (evaluate's own baseline, same split) and a linear model fitted here on the same
split, and the wall time of every step.

The tables derive from the demo generator's features: binary is its `default`; multiclass is a 4-band
risk grade (quartiles of a noisy non-linear score of debt-to-income, credit score x utilisation and
purpose); regression is a loss amount from the same kind of score plus noise. Both are stated below, so
anyone can rebuild them.

    python -m benchmarks.task_quality [--rows 100000] [--epochs 6]
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from benchmarks.harness import table
from govtrain.pipelines import demo_data

STEPS = ("prepare", "validate", "leakage", "train", "evaluate", "register")
PRIMARY = {"binary": "roc_auc", "multiclass": "macro_f1", "regression": "rmse"}


def score(frame: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """A non-linear score of the demo's features (what the multiclass and regression targets are made of)."""
    dti = frame["debt_to_income"].to_numpy()
    cs = frame["credit_score"].fillna(680).to_numpy()
    util = frame["utilization"].to_numpy()
    risky = frame["purpose"].isin(["small_business", "medical"]).to_numpy()
    return (2.0 * (dti > 0.45) + 2.5 * ((cs < 640) & (util > 0.5)) - 0.01 * (cs - 680) + 0.8 * risky
            + 0.3 * frame["delinquencies_2y"].to_numpy() + rng.normal(0, 0.8, len(frame)))


def tables(folder: Path, rows: int) -> dict[str, tuple[Path, str]]:
    files = demo_data.write_demo_data(folder / "demo", rows)
    frame = pd.read_parquet(files.data)
    rng = np.random.default_rng(7)
    base = frame.drop(columns=[demo_data.TARGET])
    multi = base.assign(risk_grade=pd.qcut(score(frame, rng), 4, labels=["A", "B", "C", "D"]).astype(str))
    regression = base.assign(loss=np.round(1000 * np.exp(0.35 * score(frame, rng)), 2))
    multi.to_parquet(folder / "multiclass.parquet", index=False)
    regression.to_parquet(folder / "regression.parquet", index=False)
    return {"binary": (files.data, demo_data.TARGET), "multiclass": (folder / "multiclass.parquet", "risk_grade"),
            "regression": (folder / "regression.parquet", "loss")}


def linear(kind: str, run_dir: Path, target: str) -> tuple[float, float]:
    """LogisticRegression or Ridge on the run's own train/test split: (test metric, fit seconds)."""
    train, test = (pd.read_parquet(run_dir / "data" / f"{s}.parquet") for s in ("train", "test"))
    cats = demo_data.CATEGORICAL

    def design(frame: pd.DataFrame) -> pd.DataFrame:
        numbers = frame[demo_data.NUMERIC].astype(float)
        numbers = numbers.fillna(train[demo_data.NUMERIC].astype(float).median())
        return pd.concat([numbers, frame[cats].astype(str)], axis=1)

    from sklearn.compose import ColumnTransformer

    prep = ColumnTransformer([("num", StandardScaler(), demo_data.NUMERIC),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), cats)])
    estimator = Ridge() if kind == "regression" else LogisticRegression(max_iter=1000)
    model = make_pipeline(prep, estimator)
    started = time.perf_counter()
    model.fit(design(train), train[target])
    seconds = time.perf_counter() - started
    x_test, y = design(test), test[target]
    if kind == "binary":
        return float(roc_auc_score(y, model.predict_proba(x_test)[:, 1])), seconds
    if kind == "multiclass":
        return float(f1_score(y, model.predict(x_test), average="macro")), seconds
    return float(np.sqrt(np.mean((y - model.predict(x_test)) ** 2))), seconds


def run_task(kind: str, path: Path, target: str, folder: Path, epochs: int) -> list[object]:
    from govtrain.core.config import load_config
    from govtrain.pipelines.run import run_local

    config_file = folder / f"{kind}.yaml"
    config_file.write_text(yaml.safe_dump({
        "dataset": {"path": str(path), "target": target, "numeric": demo_data.NUMERIC,
                    "categorical": demo_data.CATEGORICAL, "entity_id": demo_data.ENTITY,
                    "timestamp": demo_data.TIMESTAMP, "sensitive": demo_data.SENSITIVE},
        "split": {"strategy": "group"}, "training": {"epochs": epochs},
        # Quality is measured here, not gated: every run reaches evaluate and register.
        "gates": {"min_auc": 0.0, "min_macro_f1": 0.0, "min_r2": None, "max_ece": 1.0, "min_noise_auc_ratio": 0.0,
                  "max_mia_auc": None, "max_demographic_parity_difference": None,
                  "max_equalized_odds_difference": None, "max_group_error_rate_difference": None,
                  "max_group_error_ratio": None, "min_interval_coverage": None, "max_champion_auc_drop": None,
                  "max_champion_auc_drop_relative": None},
        "leakage": {"target": {"gate": False}, "class_balance": {"gate": False}},
        "evaluation": {"compare_with_champion": False}}))
    started = time.perf_counter()
    run = run_local(load_config(config_file), folder / "state", show_progress=False)
    wall = time.perf_counter() - started
    records = {r["step"]: r for r in run.ledger["records"]}
    evaluate = records["evaluate"]["metrics"]
    name = PRIMARY[kind]
    linear_metric, linear_seconds = linear(kind, run.run_dir, target)
    seconds = [(datetime.fromisoformat(records[s]["finished"]) - datetime.fromisoformat(records[s]["started"]))
               .total_seconds() if s in records else "-" for s in STEPS]
    return [kind, name, f"{evaluate[name]:.4f}", f"{evaluate[f'baseline_{name}']:.4f}",
            f"{linear_metric:.4f}", f"{linear_seconds:.1f}", *[f"{s:.1f}" if s != "-" else s for s in seconds],
            f"{wall:.1f}", run.ledger["outcome"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["GOVTRAIN_HOME"] = str(folder / "state")
        found = [run_task(kind, path, target, folder, args.epochs)
                 for kind, (path, target) in tables(folder, args.rows).items()]
    table(f"Each task through `govtrain run` ({args.rows} rows, group split, {args.epochs} epochs, 2 DDP workers); "
          "metric on the test split (RMSE: lower is better); seconds per step from the ledger",
          ["task", "metric", "network", "HistGradientBoosting", "linear", "linear fit s", *[f"{s} s" for s in STEPS],
           "pipeline s", "outcome"], found)


if __name__ == "__main__":
    main()
