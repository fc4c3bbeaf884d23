"""What the binary and the other tasks' evaluations share: the splits and their encoded labels, the
calibrated model's files, a shifted batch, latency, seeded samples and the per-phase stopwatch."""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from govtrain.components.evaluation import robustness
from govtrain.core.config import Config
from govtrain.model.network import CONFIG_FILE, LoadedModel
from govtrain.model.task import Task


def write_calibrated(model_dir: Path, out_dir: Path, temperature: float, interval: float | None = None,
                     interval_level: float = 0.9, interval_scale: dict | None = None) -> LoadedModel:
    """The model as it ships: the temperature (classification) or the conformal interval (regression) set."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in model_dir.iterdir():
        if path.is_file():
            shutil.copyfile(path, out_dir / path.name)
    config = json.loads((out_dir / CONFIG_FILE).read_text())
    config["temperature"] = temperature
    if interval is not None:
        config["task"] = {**config["task"], "interval": interval, "interval_level": interval_level}
    if interval_scale is not None:
        config["interval_scale"] = interval_scale
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return LoadedModel(out_dir)


def shifted_batch(config: Config, test: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    if config.evaluation.ood_data is not None:
        from govtrain.data.io import read_table

        return read_table(config.evaluation.ood_data, options=config.dataset.csv), str(config.evaluation.ood_data.name)
    shifted = test.copy()
    for column in config.dataset.numeric:
        shifted[column] = shifted[column] + 2.0 * shifted[column].std()
    return shifted, "test split with every numeric feature shifted by +2 std"


def latency(model: LoadedModel, x_num: torch.Tensor, x_cat: torch.Tensor, repeats: int) -> dict[str, dict]:
    out, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)  # per-request latency on one core, as a single-threaded server would see it
    for batch in (1, 1024):
        n = min(batch, len(x_num))
        times = []
        for i in range(repeats if batch == 1 else max(repeats // 10, 10)):
            start = (i * n) % max(len(x_num) - n, 1)
            began = time.perf_counter()
            model.outputs_from_tensors(x_num[start:start + n], x_cat[start:start + n])
            times.append((time.perf_counter() - began) * 1000)
        out[str(batch)] = {"p50_ms": float(np.percentile(times, 50)), "p99_ms": float(np.percentile(times, 99)),
                           "rows_per_second": float(n / (np.median(times) / 1000))}
    torch.set_num_threads(threads)
    return out


def sample(n: int, size: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(size, n), replace=False))


@dataclass
class Splits:
    """The three splits as frames, with their labels encoded by the task fitted on train: class indices
    (binary: 1 is the positive class), or the target in its own units for regression."""
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame
    task: Task
    labels: dict[str, np.ndarray]

    @classmethod
    def of(cls, frames: dict[str, pd.DataFrame], config: Config, task: Task | None = None) -> Splits:
        """`task`: fitted on the whole train split when `frames` holds a sample of it."""
        spec = config.dataset
        task = task or Task.fit(frames["train"][spec.target], spec.task, spec.positive_label)
        labels = {name: task.numbers(frame[spec.target], f"the {name} split's ") for name, frame in frames.items()}
        return cls(frames["train"], frames["val"], frames["test"], task, labels)

    def y(self, name: str) -> np.ndarray:
        return self.labels[name]


def robustness_suite(config: Config, model: LoadedModel, x_num: torch.Tensor, x_cat: torch.Tensor,
                     y: np.ndarray) -> dict[str, Any]:
    spec = config.evaluation
    severities = sorted({*spec.noise_severities, config.gates.noise_severity})
    rows = sample(len(y), spec.attack_rows, spec.seed)
    attacks = [{"name": name, **robustness.attack(model, x_num[rows], x_cat[rows], y[rows], spec.attack_epsilon,
                                                   steps, spec.seed)}
               for name, steps in (("FGSM", 1), ("PGD", spec.pgd_steps))]
    return {"noise": robustness.noise(model, x_num, x_cat, y, severities, spec.seed),
            "missing": robustness.missingness(model, x_num, x_cat, y, spec.missing_rates, spec.seed),
            "swaps": robustness.category_swaps(model, x_num, x_cat, y, spec.swap_rate,
                                               model.features.cardinalities(), spec.seed),
            "attacks": attacks, "attack_rows": len(rows)}


class Stopwatch:
    """Seconds per phase, for the evaluation report (where the time of the gate goes)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.timings[name], self._clock = now - self._clock, now
        print(f"evaluate: {name} done in {self.timings[name]:.1f} s", flush=True)  # the run's progress lines


