"""prepare: read the user's table, check its columns, split it, write train/val/test Parquet."""

from pathlib import Path

import numpy as np
import pandas as pd

from govtrain.core.config import Config
from govtrain.data import sources
from govtrain.data.io import NA_RULE, SPLITS, DataError, read_table_counted, table_columns
from govtrain.data.stream_split import split_stream, table_rows
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


def content_columns(frame: pd.DataFrame, config: Config) -> list[str]:
    """What makes two rows copies: every column but the entity id and the timestamp (leakage's "content")."""
    return [str(c) for c in frame.columns if c not in {config.dataset.entity_id, config.dataset.timestamp}]


def held_twice(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(a code per row for equal values in `columns`, whether that value is held by exactly two rows)."""
    digest = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy()
    codes = pd.factorize(digest)[0]
    return codes, np.bincount(codes)[codes] == 2


def copy_groups(frame: pd.DataFrame, config: Config, by_features: bool = True) -> np.ndarray:
    """A code per row, shared by the two rows of a pair: the same features held by exactly two rows (one case
    recorded twice, its outcome or not the same: a catalogue's configuration priced twice), else the same
    content (features, sensitive columns and target) held exactly twice. Every other row is its own group.
    A stratified split takes content pairs only (by_features False): a pair must share its class, or a tiny
    table's splits drift off balance. Values the table holds three times or more are a pattern of the data
    (titanic's 24 kinds of passenger, all-zero stat lines), which the leakage checks also explain by that rule:
    grouping those would put whole kinds of row in one split."""
    n = len(frame)
    content, content_pair = held_twice(frame, content_columns(frame, config))
    if not by_features:
        return np.where(content_pair, content, 2 * n + np.arange(n))
    features, feature_pair = held_twice(frame, list(config.dataset.features))
    return np.where(feature_pair, features, np.where(content_pair, n + content, 2 * n + np.arange(n)))


def spread_in(groups: np.ndarray, order: np.ndarray, offset: float) -> np.ndarray:
    """Positions in [0, 1) for rows taken group by group in `order` (a permutation of the groups): the rows of a
    copy group share one position, so identical rows land in one split, and the split fractions hold in rows.
    Without copies every group is one row, numbered in row order, and this is the plain row permutation."""
    codes = np.unique(groups, return_inverse=True)[1]
    sizes = np.bincount(codes)
    start = np.empty(len(sizes))
    start[order] = np.cumsum(sizes[order]) - sizes[order]
    return ((start + offset) / len(codes))[codes]


def split_copies(frame: pd.DataFrame, config: Config) -> np.ndarray:
    """The copy groups a random split keeps together: content pairs only where it stratifies by class."""
    stratified = config.split.stratify and classes_of(frame, config) is not None
    return copy_groups(frame, config, by_features=not stratified)


def split_labels(frame: pd.DataFrame, config: Config, copies: np.ndarray | None = None) -> np.ndarray:
    """An array of "train"/"val"/"test", one per row, by the configured strategy (`copies`: split_copies, when
    the caller has it already)."""
    fr, strategy, seed = config.split.fractions, config.split.strategy, config.split.seed
    n = len(frame)
    strata = classes_of(frame, config) if strategy == "random" and config.split.stratify else None
    if strategy == "random":
        # Identical rows go to one split together: a table that holds the same record twice (a re-export, a
        # survey answered twice, cars listed once per dealer) would otherwise put copies of its own test rows
        # in train. Leakage still checks every pair, for splits made elsewhere and for near copies.
        copies = split_copies(frame, config) if copies is None else copies
        rng = np.random.default_rng(seed)
        position = np.empty(n)
        if strata is not None:
            # Each class spread over the splits in the configured fractions, as scikit-learn's stratify= does:
            # a small table's splits then share its class balance instead of drifting apart by chance.
            for stratum in np.unique(strata):
                rows = np.flatnonzero(strata == stratum)
                order = rng.permutation(len(np.unique(copies[rows])))
                position[rows] = spread_in(copies[rows], order, rng.random())
        else:
            position[:] = spread_in(copies, rng.permutation(len(np.unique(copies))), 0.0)
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


def copies_kept(groups: np.ndarray, labels: np.ndarray, config: Config) -> dict[str, object]:
    """How many pairs of copies (split_copies) the table holds, and whether the split kept each in one split."""
    paired = np.bincount(groups, minlength=1)[groups] == 2
    repeats = int(paired.sum() // 2)
    crossing = int(pd.DataFrame({"g": groups[paired], "s": labels[paired]}).groupby("g")["s"].nunique().gt(1).sum())
    rule = ("random split: two rows with the same features (stratified: the same content, every column but "
            "entity id and timestamp), held by exactly those two rows, share one split; values held three times "
            "or more are a pattern of the data and are split like any row") if config.split.strategy == "random" else \
        f"{config.split.strategy} split: copies follow the strategy; leakage checks them"
    return {"copied_pairs": repeats, "pairs_across_splits": crossing, "rule": rule}


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


def add_table_input(evidence: StepEvidence, config: Config, rows: int) -> None:
    """The user's table as the record's input: one file by its digest, a folder or object store by its parts'."""
    path = config.dataset.path
    if sources.is_parquet_set(path):
        found = sources.parts(path)
        evidence.add_input_digest(sources.name_of(path), sources.digest_of(found), rows=rows, parts=found)
    else:
        evidence.add_input(Path(path).name, path, rows=rows)


def details_of(config: Config, task: Task) -> dict:
    spec = config.dataset
    return {"task": {**task.to_dict(), "rule": "stated in dataset.task" if spec.task else "inferred from the target "
                     "(rule: govtrain/model/task.py)"},
            "strategy": config.split.strategy,
            "seed": config.split.seed,
            "columns": {"numeric": spec.numeric, "categorical": spec.categorical, "target": spec.target,
                        "entity_id": spec.entity_id, "timestamp": spec.timestamp, "sensitive": spec.sensitive}}


def prepare_streamed(config: Config, out_paths: dict[str, Path], evidence: StepEvidence) -> Record:
    """prepare for a table of split.stream_from_rows rows or more (data/stream_split.py): the same record, with how the
    stream split it in place of the copies kept together."""
    split = split_stream(config, required_columns(config), out_paths)
    add_table_input(evidence, config, split["rows"])
    for name in SPLITS:
        evidence.add_data_output(f"data/{name}.parquet", out_paths[name], rows=split["split_rows"][name])
        evidence.metrics[f"{name}_rows"] = split["split_rows"][name]
        evidence.metrics.update({f"{name}_{k}": v for k, v in split["summaries"][name].items()})
    rule = {"random": "a seeded splitmix64 hash of each row's number in the table; copies are not grouped (a stream "
                      "cannot count a row's copies before reading them all): leakage's duplicate gates judge them",
            "group": "a seeded hash of the entity id as text: every row of an entity in one split",
            "time": "cut-offs from a pass over the timestamp alone; rows at a cut-off's instant go to the later "
                    "split"}[config.split.strategy]
    evidence.details = {**details_of(config, split["task"]),
                        "streamed": {"rows": split["rows"], "from_rows": config.split.stream_from_rows, "rule": rule,
                                     "time_cuts": split["time_cuts"],
                                     "why": "govtrain/data/stream_split.py: a table this large is split a batch at "
                                            "a time; below from_rows it is held and split exactly (stratified, "
                                            "copies kept together)"},
                        "missing_tokens": {}, "tokens_kept_as_text": {}, "missing_rule": NA_RULE,
                        "times_stored_as_utc_without_zone": [config.dataset.timestamp] if config.dataset.timestamp
                        else [], "copies": {"copied_pairs": None, "pairs_across_splits": None, "rule": rule}}
    return evidence.finish("pass")


def prepare(config: Config, out_paths: dict[str, Path], evidence_dir: Path, run_id: str) -> Record:
    """Split the table into Parquet files at out_paths; returns the evidence record."""
    spec = config.dataset
    evidence = StepEvidence("prepare", evidence_dir, run_id=run_id, config_digest=config.digest())
    check_columns(config)
    rows = table_rows(config)
    if rows is not None and rows >= config.split.stream_from_rows:
        return prepare_streamed(config, out_paths, evidence)
    frame, tokens = read_table_counted(spec.path, spec.file_format, required_columns(config), spec.csv)
    if frame.empty:
        raise DataError(f"{spec.path}: has a header but no rows")
    if len(frame) < 30:
        raise DataError(f"{spec.path}: only {len(frame)} rows; need at least 30 to split")
    frame, zoned = utc_without_zone(check_table(frame, config))
    add_table_input(evidence, config, len(frame))

    copies = split_copies(frame, config)
    labels = split_labels(frame, config, copies)
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
        **details_of(config, task),
        # What the reader read as missing, per column and token ("": the empty cell), and pandas' default
        # missing-value tokens it kept as text values; the rule that decided (govtrain/data/io.py NA_RULE).
        "missing_tokens": tokens.missing,
        "tokens_kept_as_text": tokens.kept_as_text,
        "missing_rule": tokens.rule,
        "times_stored_as_utc_without_zone": zoned,
        "copies": copies_kept(copies, labels, config),
    }
    evidence.metrics["copied_pairs"] = evidence.details["copies"]["copied_pairs"]
    evidence.metrics["cells_read_as_missing"] = sum(sum(t.values()) for t in tokens.missing.values())
    return evidence.finish("pass")
