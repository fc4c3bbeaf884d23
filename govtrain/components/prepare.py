"""prepare: read the user's table, check its columns, split it, write train/val/test Parquet."""

from pathlib import Path

import numpy as np
import pandas as pd

from govtrain.core.config import Config
from govtrain.data.io import SPLITS, DataError, read_table, table_columns
from govtrain.data.table_checks import check_table
from govtrain.governance.evidence import Record, StepEvidence


def required_columns(config: Config) -> list[str]:
    spec = config.dataset
    extra = [c for c in (spec.entity_id, spec.timestamp) if c]
    return list(dict.fromkeys([*spec.features, spec.target, *extra, *spec.sensitive]))


def check_columns(config: Config) -> None:
    """Fail early, naming the file and the first missing column."""
    spec = config.dataset
    present = set(table_columns(spec.path, spec.file_format, spec.csv))
    roles: dict[str | None, tuple[str, str]] = {
             spec.target: ("target", "target"), spec.entity_id: ("entity_id", "entity_id"),
             spec.timestamp: ("timestamp", "timestamp"),
             **{c: ("numeric feature", "numeric") for c in spec.numeric},
             **{c: ("categorical feature", "categorical") for c in spec.categorical},
             **{c: ("sensitive attribute", "sensitive") for c in spec.sensitive}}
    for column in required_columns(config):
        if column not in present:
            role, key = roles[column]
            raise DataError(f"{spec.path}: {role} {column!r} not found (config dataset.{key})")


def split_labels(frame: pd.DataFrame, config: Config) -> np.ndarray:
    """An array of "train"/"val"/"test", one per row, by the configured strategy."""
    fr, strategy, seed = config.split.fractions, config.split.strategy, config.split.seed
    n = len(frame)
    if strategy == "random":
        position = np.empty(n)
        position[np.random.default_rng(seed).permutation(n)] = np.arange(n) / n
    elif strategy == "group":
        # Whole entities go to one split, so no customer is in both train and test.
        codes, uniques = pd.factorize(frame[config.dataset.entity_id], sort=True)
        order = np.random.default_rng(seed).permutation(len(uniques))
        rank = np.empty(len(uniques))
        rank[order] = np.arange(len(uniques)) / len(uniques)
        position = rank[codes]
    else:
        # Oldest rows train, newest test: the model is judged on the future it will meet.
        position = frame[config.dataset.timestamp].rank(method="first").to_numpy() / n - 1e-12
    return np.where(position < fr.train, "train", np.where(position < fr.train + fr.val, "val", "test"))


def prepare(config: Config, out_paths: dict[str, Path], evidence_dir: Path, run_id: str) -> Record:
    """Split the table into Parquet files at out_paths; returns the evidence record."""
    spec = config.dataset
    evidence = StepEvidence("prepare", evidence_dir, run_id=run_id, config_digest=config.digest())
    check_columns(config)
    frame = read_table(spec.path, spec.file_format, required_columns(config), spec.csv)
    if frame.empty:
        raise DataError(f"{spec.path}: has a header but no rows")
    if len(frame) < 30:
        raise DataError(f"{spec.path}: only {len(frame)} rows; need at least 30 to split")
    frame = check_table(frame, config)
    evidence.add_input(spec.path.name, spec.path, rows=len(frame))

    labels = split_labels(frame, config)
    for name in SPLITS:
        part = frame[labels == name].reset_index(drop=True)
        if part.empty or part[spec.target].nunique() < 2:
            raise DataError(f"{spec.path}: the {name} split has fewer than two classes; add rows or change "
                            f"split.fractions")
        out = Path(out_paths[name])
        out.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(out, index=False)
        evidence.add_data_output(f"data/{name}.parquet", out, rows=len(part))
        evidence.metrics[f"{name}_rows"] = len(part)
        evidence.metrics[f"{name}_positive_rate"] = round(float(part[spec.target].mean()), 6)
    evidence.details = {
        "strategy": config.split.strategy,
        "seed": config.split.seed,
        "columns": {"numeric": spec.numeric, "categorical": spec.categorical, "target": spec.target,
                    "entity_id": spec.entity_id, "timestamp": spec.timestamp, "sensitive": spec.sensitive},
    }
    return evidence.finish("pass")
