"""prepare for a table too large to hold: the splits written a record batch at a time, in bounded memory.

Where the switch is: a Parquet table (a file, a folder or an object store) of split.stream_from_rows rows or
more, 1,000,000 by default. Below it, prepare holds the table and splits it exactly as it always has (stratified
by class, each pair of copies kept in one split), because there every row counts: a 10% test split of 300 rows
drifts off balance by chance. From 1,000,000 rows up, a split of 100,000 rows or more keeps any class's share
within 0.5 points of the table's (three standard errors) without stratifying, and holding the table costs about
1.5 KB a row at 30 columns, so the exactness no longer buys anything worth the memory. A CSV is always read
whole: convert a large one to Parquet.

How each row's split is chosen, per batch, from the row alone:
- random: a seeded hash (splitmix64) of the row's number in the table; copies are not grouped, because a
  stream cannot know how often a row recurs before it has read them all: leakage's duplicate gates judge them;
- group: a seeded hash of the entity id as text, so every row of an entity goes to one split;
- time: cut-offs from a first pass that holds the timestamp column alone (8 bytes a row): rows before the
  train cut-off train, rows from the test cut-off on test; rows at a cut-off's instant all go to the later split.

Memory: one batch of BATCH_ROWS rows as pandas, the three splits' write buffers (ROW_GROUP rows each, written as
Parquet row groups of that size), and tallies whose size does not grow with rows (the target's distinct values up
to MAX_CLASSES, each column's first value). Nothing is left behind when a check fails: the splits are written
under temporary names and renamed when every check has passed.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from govtrain.core.config import Config
from govtrain.data import sources
from govtrain.data.io import SPLITS, DataError
from govtrain.data.table_checks import check_informative, check_table
from govtrain.model.task import MAX_CLASSES, Task, TaskError, infer_kind, label_keys

BATCH_ROWS = 65_536
ROW_GROUP = 65_536


def table_rows(config: Config) -> int | None:
    """The table's rows from its Parquet footers (None for a CSV, which is never streamed)."""
    spec = config.dataset
    if spec.file_format != "parquet":
        return None
    try:
        return sources.open_parquet(spec.path).count_rows()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"{spec.path}: cannot read as Parquet: {str(exc).splitlines()[0]}") from exc


def splitmix(values: np.ndarray, seed: int) -> np.ndarray:
    """A position in [0, 1) per uint64 key, the same for a key whatever batch it arrives in (splitmix64)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def parsed_times(values: pd.Series) -> np.ndarray:
    """A timestamp column as int64 UTC nanoseconds (check_table has refused what does not parse)."""
    parsed = values if pd.api.types.is_datetime64_any_dtype(values) else pd.to_datetime(
        values, errors="coerce", utc=True, format="mixed")
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64)


@dataclass
class TargetTally:
    """What the whole target says, from its batches: its distinct values (up to MAX_CLASSES), per split the class
    counts and the first row of each class (classification) or the moments (regression)."""
    distinct: pd.Series | None = None
    many: bool = False
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {s: {} for s in SPLITS})
    first_row: dict[str, int] = field(default_factory=dict)
    moments: dict[str, tuple[int, float, float]] = field(default_factory=lambda: {s: (0, 0.0, 0.0) for s in SPLITS})
    uniques: dict[str, pd.Series] = field(default_factory=dict)

    def see(self, values: pd.Series) -> None:
        if self.many:
            return
        joined = values.drop_duplicates() if self.distinct is None else pd.concat([self.distinct, values])
        self.distinct = joined.drop_duplicates().reset_index(drop=True)
        self.many = len(self.distinct) > MAX_CLASSES

    def kind(self, config: Config) -> str:
        if config.dataset.task:
            return config.dataset.task
        assert self.distinct is not None
        if self.many:  # more distinct values than any classification holds
            return "regression" if pd.api.types.is_numeric_dtype(self.distinct) else "multiclass"
        return infer_kind(self.distinct)

    def add(self, split: str, values: pd.Series, kind: str, offset: int, rows: np.ndarray) -> None:
        if kind == "regression":
            numbers = values.to_numpy(dtype=float)
            n, mean, m2 = self.moments[split]
            b_n, b_mean = len(numbers), float(numbers.mean())
            b_m2 = float(((numbers - b_mean) ** 2).sum())
            total = n + b_n  # Chan et al.'s pairwise update: exact to rounding, whatever the batch order
            delta = b_mean - mean
            self.moments[split] = (total, mean + delta * b_n / total, m2 + b_m2 + delta ** 2 * n * b_n / total)
            return
        keys = label_keys(values)
        counted = self.counts[split]
        for key, count in keys.value_counts().items():
            counted[str(key)] = counted.get(str(key), 0) + int(count)
        firsts = pd.Series(rows + offset + 1, index=keys.to_numpy()).groupby(level=0).min()
        for key, row in firsts.items():
            self.first_row.setdefault(str(key), int(row))
        seen = self.uniques.get(split)
        self.uniques[split] = (values if seen is None else pd.concat([seen, values])).drop_duplicates()


@dataclass
class ColumnTally:
    """Whether a feature can inform a model, over the whole table: any value present, any two values different."""
    present: int = 0
    first: object = None
    varied: bool = False

    def see(self, values: pd.Series) -> None:
        present = values.dropna()
        if present.empty:
            return
        if self.first is None:
            self.first = present.iloc[0]
        self.varied = self.varied or bool((present != self.first).any())
        self.present += len(present)

    def why_not(self, rows: int) -> str | None:
        if self.present == 0:
            return "is empty in every row"
        if not self.varied and self.present == rows:
            return f"holds the same value {str(self.first)[:40]!r} in every row"
        return None


class SplitWriter:
    """One split as a Parquet file of ROW_GROUP-row groups, written under a temporary name until kept."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path, self.schema = Path(path), schema
        self.partial = self.path.with_name(self.path.name + ".partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(self.partial, schema)
        self.buffer: list[pa.Table] = []
        self.buffered = self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        self.buffer.append(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        self.buffered += len(frame)
        self.rows += len(frame)
        if self.buffered >= ROW_GROUP:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.writer.write_table(pa.concat_tables(self.buffer), row_group_size=ROW_GROUP)
        self.buffer, self.buffered = [], 0

    def keep(self) -> None:
        self.flush()
        self.writer.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        self.writer.close()
        self.partial.unlink(missing_ok=True)


def out_schema(source: pa.Schema, config: Config, columns: list[str], kind: str) -> pa.Schema:
    """The splits' columns as the in-memory prepare writes them: numerics (and a regression target) float64, the
    timestamp as UTC wall-clock nanoseconds, everything else as the source holds it."""
    spec = config.dataset
    floats = {*spec.numeric, *([spec.target] if kind == "regression" else [])}
    kept = source.field(spec.timestamp).type if spec.timestamp else None
    # pandas keeps a stored unit; a timestamp parsed from text is nanoseconds
    stamp = pa.timestamp(kept.unit if kept is not None and pa.types.is_timestamp(kept) else "ns")
    types = {name: pa.float64() if name in floats else stamp if name == spec.timestamp
             else source.field(name).type for name in columns}
    return pa.schema([(name, types[name]) for name in columns])


def first_pass(config: Config, rows: int) -> tuple[TargetTally, np.ndarray | None]:
    """The target's distinct values, and for a time split the timestamp column as int64 nanoseconds."""
    spec, tally = config.dataset, TargetTally()
    time = config.split.strategy == "time"
    times = np.empty(rows, dtype=np.int64) if time else None
    columns = [spec.target, *([spec.timestamp] if spec.timestamp and time else [])]
    offset = 0
    for batch in sources.batches(config.dataset.path, columns, BATCH_ROWS):
        frame = batch.to_pandas()
        tally.see(frame[spec.target].dropna())
        if times is not None:  # a value that is not a date is refused, by row, in the second pass
            times[offset:offset + len(frame)] = parsed_times(frame[spec.timestamp])
        offset += len(frame)
    return tally, times


def positions(frame: pd.DataFrame, config: Config, offset: int, cuts: tuple[int, int] | None) -> np.ndarray:
    """Each row's place in [0, 1), or for a time split its split's index (0, 1, 2) scaled into it."""
    split, spec = config.split, config.dataset
    if split.strategy == "random":
        return splitmix(np.arange(offset, offset + len(frame), dtype=np.uint64), split.seed)
    if split.strategy == "group":
        keys = pd.util.hash_pandas_object(frame[spec.entity_id].astype(str), index=False).to_numpy()
        return splitmix(keys, split.seed)
    assert cuts is not None
    times = parsed_times(frame[spec.timestamp])
    fr = split.fractions
    return np.where(times < cuts[0], 0.0, np.where(times < cuts[1], fr.train, fr.train + fr.val))


def labels_of(position: np.ndarray, config: Config) -> np.ndarray:
    fr = config.split.fractions
    return np.where(position < fr.train, "train", np.where(position < fr.train + fr.val, "val", "test"))


def task_of(tally: TargetTally, kind: str, config: Config) -> Task:
    """The task fitted on the train split's tallies; every class of val and test must be one train has."""
    spec = config.dataset
    for name in SPLITS:
        distinct = len(tally.counts[name]) if kind != "regression" else (2 if tally.moments[name][2] > 0 else 1)
        if distinct < 2:
            raise DataError(f"{spec.path}: the {name} split has fewer than two distinct targets; add rows or change "
                            f"split.fractions")
    if kind == "regression":
        n, mean, m2 = tally.moments["train"]
        return Task("regression", spec.target, label_type="float", mean=mean, std=float(np.sqrt(m2 / (n - 1))) or 1.0,
                    inferred=spec.task is None)
    try:
        task = Task.fit(tally.uniques["train"].rename(spec.target), kind, spec.positive_label)
    except TaskError as exc:
        raise DataError(f"{spec.path}: {exc}") from exc
    for key in sorted(set(tally.counts["val"]) | set(tally.counts["test"]), key=lambda k: tally.first_row[k]):
        if key not in task.classes:
            count = sum(tally.counts[s].get(key, 0) for s in SPLITS)
            raise DataError(f"{spec.path}: target {spec.target!r} holds {key!r} in row {tally.first_row[key]}, a class "
                            f"of {count} row(s) none of which is in the train split; a class this rare cannot be "
                            "learned and tested: add rows of it or drop them")
    return task


def summary(tally: TargetTally, task: Task, split: str, rows: int) -> dict[str, float]:
    """Task.summary's figures from the tallies."""
    if task.kind == "regression":
        n, mean, m2 = tally.moments[split]
        return {"target_mean": round(mean, 6), "target_std": round(float(np.sqrt(m2 / (n - 1))), 6)}
    counts = tally.counts[split]
    shares = [counts.get(name, 0) / rows for name in task.classes]
    if task.kind == "binary":
        return {"positive_rate": round(shares[1], 6)}
    return {f"share_{name}": round(share, 6) for name, share in zip(task.classes, shares, strict=True)}


def split_stream(config: Config, columns: list[str], out_paths: dict[str, Path]) -> dict:
    """Check and split the table a batch at a time into out_paths; returns rows, task and summaries per split."""
    spec = config.dataset
    dataset = sources.open_parquet(spec.path)
    rows = dataset.count_rows()
    tally, times = first_pass(config, rows)
    if tally.distinct is not None and len(tally.distinct) == 1:  # none at all: the second pass names the row
        raise DataError(f"{spec.path}: target {spec.target!r} has a single value ({str(tally.distinct.iloc[0])[:40]!r}"
                        " in every row)")
    kind = tally.kind(config)
    if kind != "regression" and tally.many:
        raise DataError(f"{spec.path}: target {spec.target!r} has more than {MAX_CLASSES} distinct values, more than "
                        f"{MAX_CLASSES} classes (set dataset.task: regression if it is a number)")
    cuts = None
    if times is not None:
        fr = config.split.fractions
        ordered = np.sort(times)
        cuts = (int(ordered[int(fr.train * rows)]), int(ordered[min(rows - 1, int((fr.train + fr.val) * rows))]))
        del ordered, times
    schema = out_schema(dataset.schema, config, columns, kind)
    writers = {name: SplitWriter(out_paths[name], schema) for name in SPLITS}
    features = {c: ColumnTally() for c in spec.features}
    try:
        offset = 0
        for batch in sources.batches(config.dataset.path, columns, BATCH_ROWS):
            frame = check_table(batch.to_pandas(), config, offset, kind)
            if spec.timestamp and isinstance(frame[spec.timestamp].dtype, pd.DatetimeTZDtype):
                frame[spec.timestamp] = frame[spec.timestamp].dt.tz_convert("UTC").dt.tz_localize(None)
            for column, seen in features.items():
                seen.see(frame[column])
            labels = labels_of(positions(frame, config, offset, cuts), config)
            for name in SPLITS:
                picked = np.flatnonzero(labels == name)
                if len(picked):
                    part = frame.iloc[picked].reset_index(drop=True)
                    tally.add(name, part[spec.target], kind, offset, picked)
                    writers[name].write(part)
            offset += len(frame)
        check_informative([(c, "numeric" if c in spec.numeric else "categorical", why)
                           for c, seen in features.items() for why in [seen.why_not(rows)] if why], spec.path)
        task = task_of(tally, kind, config)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    for writer in writers.values():
        writer.keep()
    return {"rows": rows, "task": task, "split_rows": {n: w.rows for n, w in writers.items()},
            "summaries": {n: summary(tally, task, n, w.rows) for n, w in writers.items()},
            "time_cuts": None if cuts is None else [str(pd.Timestamp(c)) for c in cuts]}
