"""The full evaluation gate on a 100k-row test split, per part, next to what a user would compute by
hand (scikit-learn's AUC, log loss and Brier on the same predictions).

    python -m benchmarks.evaluate_speed [--test-rows 100000]
"""
import argparse
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from benchmarks.harness import table
from govtrain.components.evaluation import evaluate
from govtrain.core.config import Config
from govtrain.governance.evidence import StepEvidence
from govtrain.model.features import FeatureSpec
from govtrain.model.network import LoadedModel, build_model, save_model
from govtrain.model.task import Task
from govtrain.pipelines import demo_data


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--test-rows", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = demo_data.write_demo_data(tmp / "data", args.test_rows + 30_000)
        frame = pd.read_parquet(files.data)
        paths = {"train": tmp / "train.parquet", "val": tmp / "val.parquet", "test": tmp / "test.parquet"}
        frame[:20_000].to_parquet(paths["train"])
        frame[20_000:30_000].to_parquet(paths["val"])
        frame[30_000:].to_parquet(paths["test"])
        config = Config.model_validate({
            "dataset": {"path": str(files.data), "target": demo_data.TARGET, "numeric": demo_data.NUMERIC,
                        "categorical": demo_data.CATEGORICAL, "sensitive": demo_data.SENSITIVE},
            "evaluation": {"ood_data": str(files.current), "compare_with_champion": False}})
        train = pd.read_parquet(paths["train"])
        features = FeatureSpec.fit(train, demo_data.NUMERIC, demo_data.CATEGORICAL)
        torch.manual_seed(0)
        model = build_model(features, 8, [256, 256])
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
        x_num, x_cat = features.tensors(train)
        y = torch.tensor(train[demo_data.TARGET].to_numpy(), dtype=torch.long)
        for _ in range(3):
            for i in range(0, len(y), 1024):
                optimizer.zero_grad()
                torch.nn.functional.cross_entropy(model(x_num[i:i + 1024], x_cat[i:i + 1024]), y[i:i + 1024]).backward()
                optimizer.step()
        save_model(model, features, tmp / "model", embedding_dim=8, hidden=[256, 256],
                   task=Task.fit(train[demo_data.TARGET]))
        parent = StepEvidence("train", tmp / "ev-train", run_id="bench", config_digest="")
        parent.finish("pass")

        # In this process, not a forked child: forking after torch has started its thread pool can hang.
        started = time.perf_counter()
        record = evaluate(config, tmp / "model", paths, tmp / "ev-train", tmp / "ev-eval", "bench",
                          calibrated_dir=tmp / "cal")
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        test = pd.read_parquet(paths["test"])
        started = time.perf_counter()
        proba = LoadedModel(tmp / "model").predict_proba(test)
        target = test[demo_data.TARGET].to_numpy()
        roc_auc_score(target, proba), log_loss(target, proba), brier_score_loss(target, proba)
        peer_s = time.perf_counter() - started
        rows = [[name, f"{value:.2f}"] for name, value in record["details"]["timings"].items()]
        rows += [["total (evaluate step)", f"{seconds:.2f}"], ["peak MB (process, incl. data prep)", f"{peak:.0f}"],
                 ["by hand: predict + AUC/log loss/Brier", f"{peer_s:.2f}"], ["ratio", f"{seconds / peer_s:.1f}x"]]
        table(f"evaluation gate, {len(test)} test rows x {len(demo_data.NUMERIC) + len(demo_data.CATEGORICAL)} "
              f"features (2 cores)", ["part", "seconds"], rows)


if __name__ == "__main__":
    main()
