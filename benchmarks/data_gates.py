"""The data gates at scale: our validate and leakage steps against their peers, on the same files.

    python -m benchmarks.data_gates [--train-rows 1000000 --test-rows 250000]

- validate: our step (GE suite on 3 splits + Data Docs pages + summary) vs the same GE suite run directly;
- leakage: every leakage check of ours vs the same checks written the way Deepchecks writes them
  (pandas groupby over all columns and merges for sample mix, sets for index overlap, a rounded
  groupby for near-duplicates, per-feature sklearn scores on the same sample).
Each contender runs in its own forked process; peak memory is that process's peak RSS, shown next to
the in-memory (pandas, deep) size of the three splits.
"""
import argparse
import json
import tempfile
from pathlib import Path

import great_expectations as gx  # imported before forking so neither side pays the import
import numpy as np
import pandas as pd
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from benchmarks.harness import measure, table
from govtrain.components.leakage import leakage
from govtrain.components.validate import validate
from govtrain.core.config import load_config
from govtrain.data.suite_draft import draft_suite
from govtrain.pipelines import demo_data

EXTRA_NUMERIC = [f"score_{i:02d}" for i in range(8)]
EXTRA_CATEGORICAL = ["channel", "state", "product", "segment"]


def wide_table(rows: int, seed: int) -> pd.DataFrame:
    """The demo credit table plus 12 more columns: 30 in all."""
    rng = np.random.default_rng(seed)
    frame = demo_data._table(rows, rng, drift=0.0)
    for i, column in enumerate(EXTRA_NUMERIC):
        frame[column] = rng.normal(50 + i, 10 + i, rows).round(3)
    frame["channel"] = rng.choice(["web", "branch", "phone", "partner"], rows)
    frame["state"] = rng.choice([f"S{i:02d}" for i in range(50)], rows)
    frame["product"] = rng.choice(["standard", "premium", "secured"], rows)
    frame["segment"] = rng.choice(["A", "B", "C", "D", "E"], rows)
    return frame


def write_splits(folder: Path, train_rows: int, test_rows: int) -> dict[str, Path]:
    frames = {"train": wide_table(train_rows, 1), "val": wide_table(test_rows // 5, 2), "test": wide_table(test_rows,
                                                                                                           3)}
    for name in ("val", "test"):  # ids unique per split, so entity overlap is what we plant
        frames[name][demo_data.ENTITY] = name[0] + frames[name][demo_data.ENTITY]
    copies = frames["train"].sample(500, random_state=0)  # planted: 500 exact and 500 near copies in test
    near = frames["train"].sample(500, random_state=1).copy()
    near["income"] *= 1.0001
    frames["test"] = pd.concat([frames["test"].iloc[1000:], copies, near], ignore_index=True)
    paths = {name: folder / f"{name}.parquet" for name in frames}
    for name, frame in frames.items():
        frame.to_parquet(paths[name], index=False)
    return paths


def config_for(folder: Path, paths: dict[str, Path]):
    train = pd.read_parquet(paths["train"])
    suite = draft_suite(train.sample(min(len(train), 100_000), random_state=0), "bench", source="train",
                        target=demo_data.TARGET)
    (folder / "suite.json").write_text(json.dumps(suite))
    raw = {"dataset": {"path": str(paths["train"]), "target": demo_data.TARGET,
                       "numeric": demo_data.NUMERIC + EXTRA_NUMERIC,
                       "categorical": demo_data.CATEGORICAL + EXTRA_CATEGORICAL,
                       "entity_id": demo_data.ENTITY, "timestamp": demo_data.TIMESTAMP,
                       "sensitive": demo_data.SENSITIVE},
           "split": {"strategy": "group"}, "validation": {"suite": str(folder / "suite.json")}}
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    return load_config(folder / "config.yaml"), suite


def ge_direct(paths: dict[str, Path], suite_json: dict) -> bool:
    context = gx.get_context(mode="ephemeral")
    batch_definition = (context.data_sources.add_pandas("direct").add_dataframe_asset("t")
                        .add_batch_definition_whole_dataframe("all"))
    suite = context.suites.add(gx.ExpectationSuite(**suite_json))
    ok = True
    for path in paths.values():
        ok &= batch_definition.get_batch(batch_parameters={"dataframe": pd.read_parquet(path)}).validate(suite).success
    return ok


def deepchecks_way(paths: dict[str, Path], config) -> dict:
    """The same checks, written as Deepchecks writes its train-test checks, on pandas frames."""
    spec, tolerance = config.dataset, config.leakage.near_duplicates.tolerance
    frames = {name: pd.read_parquet(path) for name, path in paths.items()}
    features, label = spec.features, spec.target
    content = [c for c in frames["train"].columns if c not in (spec.entity_id, spec.timestamp)]
    placeholder = "__nan__"
    found: dict = {}
    pairs = [("train", "val"), ("train", "test"), ("val", "test")]
    for first, second in pairs:
        a, b = frames[first][content].fillna(placeholder), frames[second][content].fillna(placeholder)
        uniq = a.groupby(content, dropna=False).size().reset_index(name="n")  # TrainTestSamplesMix
        found[f"mix_{second}"] = len(b.merge(uniq, on=content, how="inner"))
        af = frames[first][features + [label]].fillna(placeholder).groupby(features, dropna=False)[label].agg(["min",
                                                                                                               "max"])
        merged = frames[second][features + [label]].fillna(placeholder).merge(af.reset_index(), on=features)
        found[f"conflicts_{second}"] = int(((merged["min"] != merged[label]) | (merged["max"] != merged[label])).sum())
        rounded = {}
        for name in (first, second):
            r = frames[name][features].copy()
            for c in spec.numeric:
                r[c] = (r[c] / (frames["train"][c].std() * tolerance)).round()
            for c in spec.categorical:
                r[c] = r[c].str.strip().str.casefold()
            rounded[name] = r.fillna(placeholder)
        near_uniq = rounded[first].groupby(features, dropna=False).size().reset_index(name="n")
        found[f"near_{second}"] = len(rounded[second].merge(near_uniq, on=features, how="inner"))
        found[f"index_{second}"] = len(set(frames[first][spec.entity_id]) & set(frames[second][spec.entity_id]))
    newest = frames["train"][spec.timestamp].max()
    found["dates"] = int((frames["test"][spec.timestamp] <= newest).sum())
    found["balance"] = {n: float(f[label].mean()) for n, f in frames.items()}
    found["unseen"] = {c: int((~frames["test"][c].isin(frames["train"][c].unique())).sum()) for c in spec.categorical}
    found["train_conflicts"] = int((frames["train"].groupby(features, dropna=False)[label].nunique() > 1).sum())
    sample = frames["train"].sample(config.leakage.sample_rows, random_state=0)
    y = sample[label].to_numpy()
    scores = {c: roc_auc_score(y, sample[c].fillna(sample[c].median())) for c in spec.numeric}
    for c in spec.categorical:
        scores[c] = roc_auc_score(y, sample[c].map(sample.groupby(c)[label].mean()))
        pd.crosstab(sample[c], sample[label])
    x = pd.get_dummies(sample[features].fillna(0), columns=spec.categorical, drop_first=True).to_numpy(float)
    x = (x - x.mean(0)) / (x.std(0) + 1e-9)
    cross_val_predict(LogisticRegression(max_iter=500), x, y, method="predict_proba", cv=StratifiedKFold(3,
                                                                                                         shuffle=True))
    found["auc"] = max(scores.values())
    return found


def make_inputs(folder: Path, args) -> tuple:
    paths = write_splits(folder, args.train_rows, args.test_rows)
    _, suite = config_for(folder, paths)
    frames = {n: pd.read_parquet(p) for n, p in paths.items()}
    data_mb = sum(f.memory_usage(deep=True).sum() for f in frames.values()) / 2**20
    return paths, suite, data_mb, len(frames["train"].columns), {n: len(f) for n, f in frames.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--train-rows", type=int, default=1_000_000)
    parser.add_argument("--test-rows", type=int, default=250_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Made in a child process, so this one stays small and the forked contenders start from it.
        _, _, (paths, suite, data_mb, columns, rows) = measure(lambda: make_inputs(folder, args))
        config = load_config(folder / "config.yaml")
        (folder / "ev0").mkdir()
        (folder / "ev0" / "HEAD").write_text("")

        idle_s, idle_mb, _ = measure(lambda: None)
        ours_v = measure(lambda: validate(config, paths, folder / "ev0", folder / "ev-v", "bench")["decision"])
        ge_v = measure(lambda: ge_direct(paths, suite))
        ours_l = measure(lambda: leakage(config, paths, folder / "ev0", folder / "ev-l", "bench")["details"]["seconds"])
        peer_l = measure(lambda: deepchecks_way(paths, config))

    print(f"splits: train {rows['train']:,} / val {rows['val']:,} / test {rows['test']:,} rows x {columns} columns; "
          f"in memory (pandas, deep) {data_mb:,.0f} MB; idle forked process {idle_mb:,.0f} MB; "
          f"suite: {len(suite['expectations'])} expectations")
    table("data gates: ours vs peer, same files, same run", [
        "stage", "ours s", "peer s", "ours/peer", "ours peak MB", "peer peak MB", "ours peak / data",
        "(ours peak - idle) / data"], [
        ["validate (peer: GE direct)", f"{ours_v[0]:.2f}", f"{ge_v[0]:.2f}", f"{ours_v[0] / ge_v[0]:.2f}",
         f"{ours_v[1]:.0f}", f"{ge_v[1]:.0f}", f"{ours_v[1] / data_mb:.2f}", f"{(ours_v[1] - idle_mb) / data_mb:.2f}"],
        ["leakage, all checks (peer: Deepchecks way)", f"{ours_l[0]:.2f}", f"{peer_l[0]:.2f}",
         f"{ours_l[0] / peer_l[0]:.2f}", f"{ours_l[1]:.0f}", f"{peer_l[1]:.0f}", f"{ours_l[1] / data_mb:.2f}",
         f"{(ours_l[1] - idle_mb) / data_mb:.2f}"]])
    print("\nour leakage checks, seconds each:", ", ".join(f"{k} {v}" for k, v in ours_l[2].items()))


if __name__ == "__main__":
    main()
