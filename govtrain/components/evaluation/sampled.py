"""The splits evaluate measures, in bounded memory: a split of more than evaluation.max_rows rows is read as a
seeded uniform sample of that many (a batch at a time, rows kept in their order), and the headline metric is
also computed on every test row, streamed through the model a batch at a time.

Why a sample: baselines, attacks, explanations and the membership attack fit or score models per row, and the
gates read 95% intervals that at 500,000 rows are already narrower than any margin they are compared with (an
AUC's interval is about +-0.002 there). Why the headline on every row as well: it is the figure a reader
compares across runs, and predictions cost 8 bytes a row per output. The record and the card state both.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from govtrain.components.evaluation.task_metrics import PRIMARY, headline_metric
from govtrain.data.sources import read_sample
from govtrain.model.network import LoadedModel
from govtrain.model.task import Task

BATCH_ROWS = 262_144


def read_split(path: Path, cap: int, seed: int) -> tuple[pd.DataFrame, int]:
    """(the split, or a seeded sample of `cap` of its rows; the rows the split holds)."""
    return read_sample(path, cap, seed, batch_rows=BATCH_ROWS)


def train_task(path: Path, target: str, kind: str | None, positive_label) -> Task:
    """The task of the whole train split (its target column read alone), so a sample cannot lose a class."""
    return Task.fit(pd.read_parquet(path, columns=[target])[target], kind, positive_label)


def headline_on_every_row(model_dir: Path, path: Path, task: Task, target: str) -> dict:
    """The headline metric of the uncalibrated model on every test row: temperature scaling changes neither a
    ranking (AUC) nor an argmax (macro-F1), and a regression's point predictions carry no temperature."""
    model = LoadedModel(model_dir)
    outputs, labels = [], []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS):
        frame = batch.to_pandas()
        outputs.append(model.outputs(frame))
        labels.append(task.numbers(frame[target], "the test split's "))
    y, out = np.concatenate(labels), np.concatenate(outputs)
    return {"metric": PRIMARY[task.kind], "value": round(headline_metric(task.kind, y, out), 6), "rows": len(y)}
