"""`govtrain plan`: predicted time and cost per epoch for 1..N workers before any is paid for. The config's own
network is built from the table's columns and timed here, forward and backward on one thread at the
configured batch (what each worker does between all-reduces); the step model (costmodel.py) adds the ring
all-reduce of its gradient bytes over the named link."""
from __future__ import annotations

import time
from typing import Any

import torch

from govtrain.components.train.costmodel import LINKS, StepModel, plan_rows
from govtrain.components.train.fitting import anchor_counts
from govtrain.components.train.job import batch_size_for
from govtrain.components.train.runtime import optimizer_for
from govtrain.components.train.step import grad_accumulation, members, numeric_embedding
from govtrain.core.config import Config
from govtrain.data.io import read_table
from govtrain.model.features import FeatureSpec
from govtrain.model.network import build_network
from govtrain.model.task import Task


def compute_seconds_per_sample(model: torch.nn.Module, features: FeatureSpec, task: Task, batch: int,
                               steps: int = 12) -> float:
    """Median forward+backward+AdamW step time over `steps` steps (after 3 warm-up steps), per sample."""
    optimizer = optimizer_for(model, lr=1e-3, weight_decay=0.01)  # the worker's optimizer (AdamW's default decay)
    x_num = torch.randn(batch, len(features.numeric))
    x_cat = torch.stack([torch.randint(1, max(2, c), (batch,)) for c in features.cardinalities()], dim=1) \
        if features.categorical else torch.zeros(batch, 0, dtype=torch.long)
    y = torch.randint(0, 2, (batch,)) if task.kind != "regression" else torch.randn(batch)
    if task.kind == "multiclass":
        y = torch.randint(0, len(task.classes), (batch,))
    timings = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as a worker runs (OMP_NUM_THREADS=1)
    try:
        for i in range(steps + 3):
            began = time.perf_counter()
            optimizer.zero_grad()
            task.loss(model(x_num, x_cat), y).backward()
            optimizer.step()
            if i >= 3:
                timings.append(time.perf_counter() - began)
    finally:
        torch.set_num_threads(threads)
    return sorted(timings)[len(timings) // 2] / batch


def plan(config: Config, workers: list[int], link_name: str) -> dict[str, Any]:
    spec, training = config.dataset, config.training
    frame = read_table(spec.path, columns=[*spec.numeric, *spec.categorical, spec.target])
    features = FeatureSpec.fit(frame, spec.numeric, spec.categorical, training.min_category_rows)
    task = Task.fit(frame[spec.target], spec.task)
    train_rows = int(len(frame) * config.split.fractions.train)
    embedding = numeric_embedding(training, train_rows, anchor_counts(frame, spec.numeric,
                                                                      training.numeric_embedding.max_code_values),
                                  features)
    model = build_network(features, task, network=training.model, embedding_dim=training.embedding_dim,
                          hidden=training.hidden, numeric_embedding=embedding, dropout=training.dropout,
                          members=members(training, train_rows))
    gradient_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    # Timed once, at one worker's batch: a smaller batch's per-sample overhead is left out (timings of a few
    # steps at several batches differed more by noise than by batch on the 2-core host), so efficiency is at
    # most 1 by construction.
    batches = {n: batch_size_for(train_rows // n, training.batch_size, training.min_steps_per_epoch)
               for n in sorted({1, *workers})}
    per_sample = compute_seconds_per_sample(model, features, task, batches[1])
    models = {n: StepModel(per_sample, gradient_bytes, batch,
                           grad_accumulation(training.model_copy(update={"workers": n}), train_rows),
                           training.ddp.bucket_cap_mb)
              for n, batch in batches.items()}
    link = LINKS[link_name]
    rows = [r for r in plan_rows(models, train_rows, link, training.price_per_worker_hour) if r["workers"] in workers]
    return {"rows_per_epoch": train_rows, "gradient_bytes": gradient_bytes, "link": link,
            "compute_us_per_sample": {batches[1]: per_sample * 1e6}, "rows": rows}
