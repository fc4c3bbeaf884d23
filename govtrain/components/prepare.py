"""prepare: read the user's table, check its columns, split it, write train/val/test Parquet."""

from pathlib import Path

import numpy as np
import pandas as pd

from govtrain.core.config import Config
from govtrain.data.io import SPLITS, DataError, read_table_counted, table_columns
from govtrain.data.table_checks import check_table
from govtrain.governance.evidence import Record, StepEvidence
from govtrain.model.task import Task, infer_kind, label_keys


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
            raise DataError(f"{spec.path}: {role} {column!r} not found (config dataset.{key}){hint(column, present)}")


def hint(name: str, present: set[str]) -> str:
    """"; did you mean 'default'?" for a near miss, else the columns the file has (the first 12)."""
    import difflib

    close = difflib.get_close_matches(name, sorted(present), n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    listed = sorted(present)
    return f"; the file has {', '.join(listed[:12])}" + (f" and {len(listed) - 12} more" if len(listed) > 12 else "")


def classes_of(frame: pd.DataFrame, config: Config) -> np.ndarray | None:
    """The class of every row for a classification target (the strata of a random split), else None."""
    target = frame[config.dataset.target]
    if (config.dataset.task or infer_kind(target)) == "regression":
        return None
    return label_keys(target).fillna("").to_numpy(dtype=object)


def split_labels(frame: pd.DataFrame, config: Config) -> np.ndarray:
    """An array of "train"/"val"/"test", one per row, by the configured strategy."""
    fr, strategy, seed = config.split.fractions, config.split.strategy, config.split.seed
    n = len(frame)
    strata = classes_of(frame, config) if strategy == "random" and config.split.stratify else None
    if strata is not None:
        # Each class spread over the splits in the configured fractions, as scikit-learn's stratify= does:
        # a small table's splits then share its class balance instead of drifting apart by chance.
        rng, position = np.random.default_rng(seed), np.empty(n)
        for stratum in np.unique(strata):
            rows = np.flatnonzero(strata == stratum)
            position[rows[rng.permutation(len(rows))]] = (np.arange(len(rows)) + rng.random()) / len(rows)
    elif strategy == "random":
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


def split_task(frame: pd.DataFrame, labels: np.ndarray, config: Config) -> Task:
    """The task, fitted on the train split; every class of val and test must be one train has."""
    spec = config.dataset
    target = frame[spec.target]
    for name in SPLITS:
        if target[labels == name].nunique() < 2:
            raise DataError(f"{spec.path}: the {name} split has fewer than two distinct targets; add rows or change "
                            f"split.fractions")
    task = Task.fit(target[labels == "train"], spec.task, spec.positive_label)
    if task.kind != "regression":
        keys = label_keys(target)
        unseen = ~keys.isin(task.classes).to_numpy()
        if unseen.any():
            row = int(np.flatnonzero(unseen)[0])
            count = int((keys == keys.iloc[row]).sum())
            raise DataError(f"{spec.path}: target {spec.target!r} holds {str(target.iloc[row])!r} in row {row + 1}, a "
                            f"class of {count} row(s) none of which is in the train split; a class this rare cannot "
                            "be learned and tested: add rows of it or drop them")
    return task


def utc_without_zone(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Zoned times (a timestamp parsed from text is UTC) as UTC wall-clock times without the zone, and the columns
    so converted. The splits then hold datetime64, a type Great Expectations can name (it has no type name that
    matches a zoned column), so a suite drafted from a split passes it (govtrain/data/suite_draft.py)."""
    zoned = [str(c) for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
    for column in zoned:
        frame[column] = frame[column].dt.tz_convert("UTC").dt.tz_localize(None)
    return frame, zoned


def prepare(config: Config, out_paths: dict[str, Path], evidence_dir: Path, run_id: str) -> Record:
    """Split the table into Parquet files at out_paths; returns the evidence record."""
    spec = config.dataset
    evidence = StepEvidence("prepare", evidence_dir, run_id=run_id, config_digest=config.digest())
    check_columns(config)
    frame, tokens = read_table_counted(spec.path, spec.file_format, required_columns(config), spec.csv)
    if frame.empty:
        raise DataError(f"{spec.path}: has a header but no rows")
    if len(frame) < 30:
        raise DataError(f"{spec.path}: only {len(frame)} rows; need at least 30 to split")
    frame, zoned = utc_without_zone(check_table(frame, config))
    evidence.add_input(spec.path.name, spec.path, rows=len(frame))

    labels = split_labels(frame, config)
    task = split_task(frame, labels, config)
    parts = {name: frame[labels == name].reset_index(drop=True) for name in SPLITS}
    for name, part in parts.items():
        out = Path(out_paths[name])
        out.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(out, index=False)
        evidence.add_data_output(f"data/{name}.parquet", out, rows=len(part))
        evidence.metrics[f"{name}_rows"] = len(part)
        evidence.metrics.update({f"{name}_{k}": v for k, v in task.summary(part[spec.target]).items()})
    evidence.details = {
        "task": {**task.to_dict(), "rule": "stated in dataset.task" if spec.task else "inferred from the target "
                 "(rule: govtrain/model/task.py)"},
        "strategy": config.split.strategy,
        "seed": config.split.seed,
        "columns": {"numeric": spec.numeric, "categorical": spec.categorical, "target": spec.target,
                    "entity_id": spec.entity_id, "timestamp": spec.timestamp, "sensitive": spec.sensitive},
        # What the reader read as missing, per column and token ("": the empty cell), and pandas' default
        # missing-value tokens it kept as text values; the rule that decided (govtrain/data/io.py NA_RULE).
        "missing_tokens": tokens.missing,
        "tokens_kept_as_text": tokens.kept_as_text,
        "missing_rule": tokens.rule,
        "times_stored_as_utc_without_zone": zoned,
    }
    evidence.metrics["cells_read_as_missing"] = sum(sum(t.values()) for t in tokens.missing.values())
    return evidence.finish("pass")
