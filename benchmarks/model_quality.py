"""The default network against HistGradientBoosting and a linear model, per task, same split, several seeds.

    python -m benchmarks.model_quality [--rows 100000] [--seeds 0 1 2] [--large 1000000] [--previous]
                                       [--tables demo breast_cancer wine diabetes]

Tables:
- the demo at --rows for every task: binary is `default`, while multiclass and regression are built from the
  demo's features as in benchmarks.task_quality;
- at --large, binary only (one seed);
- three real tables shipped inside scikit-learn: breast_cancer (binary), wine (multiclass) and diabetes
  (regression).

For each table and seed:
- prepare splits the table once (its split seed is fixed);
- the pipeline's train step trains the network (`training.seed` = the seed; 2 DDP workers under torchrun);
- HistGradientBoosting (random_state = the seed, native categorical support) and LogisticRegression or
  Ridge (standardised numerics, one-hot categories) fit on the same train split.

All are scored on the same test split. `--previous` also trains the network with the defaults before issue
20 (standardised numerics, 8-wide embeddings, a constant learning rate of 2e-3, one step an epoch on a small
table) as a "before" column. The seconds
are the network's whole train step (torchrun start included) and each baseline's fit.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score, mean_squared_error, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from benchmarks.harness import table
from benchmarks.task_quality import score
from govtrain.pipelines import demo_data

METRIC = {"binary": "ROC AUC", "multiclass": "macro-F1", "regression": "RMSE"}
PREVIOUS = {"numeric_embedding": {"kind": "none"}, "embedding_dim": 8, "lr_schedule": "constant", "lr": 2e-3,
            "min_steps_per_epoch": 1}


def demo_tables(folder: Path, rows: int, kinds: tuple[str, ...]) -> list[dict]:
    files = demo_data.write_demo_data(folder / f"demo{rows}", rows)
    frame = pd.read_parquet(files.data)
    rng = np.random.default_rng(7)
    base = frame.drop(columns=[demo_data.TARGET])
    made = {"binary": (frame, demo_data.TARGET),
            "multiclass": (base.assign(grade=pd.qcut(score(frame, rng), 4, labels=["A", "B", "C", "D"])
                                       .astype(str)), "grade"),
            "regression": (base.assign(loss=np.round(1000 * np.exp(0.35 * score(frame, rng)), 2)), "loss")}
    found = []
    for kind in kinds:
        table_frame, target = made[kind]
        path = folder / f"demo{rows}_{kind}.parquet"
        table_frame.to_parquet(path, index=False)
        found.append({"name": f"demo {rows:,} ({kind})", "kind": kind, "path": path, "target": target,
                      "numeric": demo_data.NUMERIC, "categorical": demo_data.CATEGORICAL,
                      "split": {"strategy": "group"}, "entity_id": demo_data.ENTITY})
    return found


def sklearn_tables(folder: Path) -> list[dict]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    found = []
    for loader, kind, name in ((load_breast_cancer, "binary", "breast_cancer"), (load_wine, "multiclass", "wine"),
                               (load_diabetes, "regression", "diabetes")):
        frame = loader(as_frame=True).frame
        frame.columns = [c.replace(" ", "_").replace("/", "_") for c in frame.columns]
        if kind == "multiclass":
            frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
        path = folder / f"{name}.csv"
        frame.to_csv(path, index=False)
        found.append({"name": f"{name} ({len(frame)} rows, sklearn)", "kind": kind, "path": path, "target": "target",
                      "numeric": [c for c in frame.columns if c != "target"], "categorical": [],
                      "split": {"strategy": "random"}, "entity_id": None})
    return found


def config_file(folder: Path, spec: dict, seed: int, previous: bool) -> Path:
    dataset = {"path": str(spec["path"]), "target": spec["target"], "task": spec["kind"],
               "numeric": spec["numeric"], "categorical": spec["categorical"]}
    if spec["entity_id"]:
        dataset["entity_id"] = spec["entity_id"]
    training = {"seed": seed, "workers": 2, **(PREVIOUS if previous else {})}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"dataset": dataset, "split": spec["split"], "training": training}))
    return path


def network(folder: Path, spec: dict, seed: int, previous: bool) -> tuple[float, float, dict]:
    """(test metric, train step seconds, splits) through govtrain's own prepare and train steps."""
    from govtrain.components.prepare import prepare
    from govtrain.components.train.step import train
    from govtrain.core.config import load_config
    from govtrain.model.network import LoadedModel

    run = folder / f"run-{seed}-{int(previous)}"
    config = load_config(config_file(folder, spec, seed, previous))
    paths = {s: run / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, run / "ev-prepare", "quality")
    started = time.perf_counter()
    train(config, paths, run / "ev-prepare", run / "model", run / "ev-train", "quality")
    seconds = time.perf_counter() - started
    splits = {s: pd.read_parquet(p) for s, p in paths.items()}
    model = LoadedModel(run / "model")
    return metric(spec["kind"], splits["test"][spec["target"]], model.outputs(splits["test"]), model), seconds, splits


def metric(kind: str, truth: pd.Series, outputs: np.ndarray, model=None, classes=None) -> float:
    """RMSE; ROC AUC of the class in output column 1 (either class gives the same AUC); macro-F1."""
    if kind == "regression":
        return float(np.sqrt(mean_squared_error(truth.astype(float), outputs)))
    if model is not None:
        classes = list(model.task.decode(np.arange(outputs.shape[1])))
    if kind == "binary":
        return float(roc_auc_score((truth.astype(str) == str(classes[1])).astype(int), outputs[:, 1]))
    predicted = np.asarray(classes)[outputs.argmax(axis=1)]
    return float(f1_score(truth.astype(str), predicted.astype(str), average="macro"))


def baselines(spec: dict, splits: dict, seed: int) -> dict[str, tuple[float, float]]:
    train, test = splits["train"], splits["test"]
    kind, target, numeric, cats = spec["kind"], spec["target"], spec["numeric"], spec["categorical"]
    y = train[target] if kind == "regression" else train[target].astype(str)
    found = {}
    trees = HistGradientBoostingRegressor(random_state=seed) if kind == "regression" else \
        HistGradientBoostingClassifier(random_state=seed)
    as_trees = lambda f: f[numeric + cats].astype({c: "category" for c in cats})  # noqa: E731
    trees.set_params(categorical_features="from_dtype")
    started = time.perf_counter()
    trees.fit(as_trees(train), y)
    found["HistGradientBoosting"] = (_score(kind, trees, as_trees(test), test[target]), time.perf_counter() - started)
    prep = ColumnTransformer([("num", StandardScaler(), numeric)] +
                             ([("cat", OneHotEncoder(handle_unknown="ignore"), cats)] if cats else []))
    linear = make_pipeline(prep, Ridge() if kind == "regression" else LogisticRegression(max_iter=2000))
    filled = lambda f: f[numeric + cats].fillna(train[numeric].median())  # noqa: E731
    started = time.perf_counter()
    linear.fit(filled(train), y)
    found["linear"] = (_score(kind, linear, filled(test), test[target]), time.perf_counter() - started)
    return found


def _score(kind: str, model, x: pd.DataFrame, truth: pd.Series) -> float:
    if kind == "regression":
        return metric(kind, truth, model.predict(x))
    return metric(kind, truth.astype(str), model.predict_proba(x), classes=list(model.classes_))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--large", type=int, default=0, help="also the binary demo at this size, first seed only")
    parser.add_argument("--previous", action="store_true", help="also the network with the pre-issue-20 defaults")
    parser.add_argument("--tables", nargs="+", default=["demo", "breast_cancer", "wine", "diabetes"],
                        help="the tables to run, by the first word of their name")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        os.environ["GOVTRAIN_HOME"] = str(folder / "state")  # the benchmark's own embedded MLflow store
        specs = [(s, args.seeds) for s in demo_tables(folder, args.rows, ("binary", "multiclass", "regression"))]
        specs += [(s, args.seeds) for s in sklearn_tables(folder)]
        if args.large:
            specs += [(s, args.seeds[:1]) for s in demo_tables(folder, args.large, ("binary",))]
        for spec, seeds in [(s, seeds) for s, seeds in specs if s["name"].split()[0] in args.tables]:
            rows.append(measure(folder / spec["name"].split()[0], spec, seeds, args.previous))
            print(" | ".join(map(str, rows[-1])), flush=True)
    table("the default network against HistGradientBoosting and a linear model (test metric: mean ± spread over "
          "seeds; seconds: mean)", ["table", "task", "metric", "seeds", "network", "network s",
                                    "previous network", "previous s", "HistGradientBoosting", "HGB s", "linear",
                                    "gap to HGB", "gap to linear"],
          rows)


def measure(folder: Path, spec: dict, seeds: list[int], previous: bool) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[tuple[float, float]]] = {"network": [], "previous": [], "HistGradientBoosting": [],
                                                     "linear": []}
    for seed in seeds:
        value, seconds, splits = network(folder, spec, seed, previous=False)
        results["network"].append((value, seconds))
        if previous:
            results["previous"].append(network(folder, spec, seed, previous=True)[:2])
        for name, found in baselines(spec, splits, seed).items():
            results[name].append(found)

    def cell(name: str) -> str:
        values = [v for v, _ in results[name]]
        if not values:
            return "-"
        return f"{np.mean(values):.4f} ± {np.std(values):.4f}" if len(values) > 1 else f"{values[0]:.4f}"

    def gap(name: str) -> str:  # the network against a baseline: + is better for AUC and F1, worse for RMSE
        net, other = (np.mean([v for v, _ in results[n]]) for n in ("network", name))
        return f"{(net - other) / other:+.1%}" if spec["kind"] == "regression" else f"{net - other:+.4f}"

    seconds = {name: f"{np.mean([s for _, s in found]):.1f}" if found else "-" for name, found in results.items()}
    return [spec["name"], spec["kind"], METRIC[spec["kind"]], len(seeds), cell("network"), seconds["network"],
            cell("previous"), seconds["previous"], cell("HistGradientBoosting"), seconds["HistGradientBoosting"],
            cell("linear"), gap("HistGradientBoosting"), gap("linear")]


if __name__ == "__main__":
    main()
