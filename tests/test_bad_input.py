"""The catalogue of malformed inputs: each `govtrain run` must exit non-zero with one line naming the
file and the column, row or key; print no traceback; register nothing; and leave a sealed ledger whose
last record is the error. The runs go in parallel (each is its own process) to keep the suite short."""
import gzip
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import base_config

from govtrain.governance.ledger import verify
from govtrain.pipelines import demo_data

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers

ROWS = 400


def csv(frame: pd.DataFrame, path: Path, **kwargs) -> Path:
    frame.to_csv(path, index=False, **kwargs)
    return path


def parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False)
    return path


def edit(column, rows, value):
    def change(frame):
        frame[column] = frame[column].astype(object)
        frame.loc[rows, column] = value
        return frame
    return change


def raw_bytes(data: bytes, name: str = "credit.csv"):
    def write(frame, folder):
        (folder / name).write_bytes(data(frame) if callable(data) else data)
        return folder / name
    return write


def non_utf8(frame):
    text = frame.to_csv(index=False).encode()
    lines = text.split(b"\n")
    lines[5] = lines[5].replace(b"north", b"nor\xe9th", 1).replace(b"south", b"sou\xe9th", 1).replace(
        b"east", b"ea\xe9st", 1).replace(b"west", b"we\xe9st", 1)
    return b"\n".join(lines)


def ragged(frame):
    lines = frame.to_csv(index=False).split("\n")
    lines[6] += ",surplus"
    return "\n".join(lines).encode()


def short_row(frame):
    lines = frame.to_csv(index=False).split("\n")
    lines[9] = lines[9].rsplit(",", 2)[0]  # the last two fields of line 10 missing
    return "\n".join(lines).encode()


def nested(frame, folder):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    address = pa.array([{"street": "Main", "number": i} for i in range(len(frame))])
    pq.write_table(table.append_column("address", address), folder / "credit.parquet")
    return folder / "credit.parquet"


def directory(frame, folder):
    (folder / "credit.parquet").mkdir()
    return folder / "credit.parquet"


def unreadable(frame, folder):
    path = parquet(frame, folder / "credit.parquet")
    path.chmod(0o000)
    return path


def truncated(frame, folder):
    path = parquet(frame, folder / "credit.parquet")
    path.write_bytes(path.read_bytes()[:300])
    return path


# name: (frame change, writer ("csv", "parquet" or a function of (frame, folder)), config change, fragments)
CASES = {
    "missing file": (None, lambda f, d: d / "nope.parquet", {}, ["config.yaml: dataset.path is",
                                                                 "nope.parquet, which does not exist (a relative "
                                                                 "path is resolved against the config file's folder"]),
    "empty file": (None, raw_bytes(b""), {}, ["credit.csv: the file is empty"]),
    "header only": (lambda f: f.iloc[:0], "csv", {}, ["credit.csv: has a header but no rows"]),
    "wrong delimiter": (None, lambda f, d: csv(f, d / "credit.csv", sep=";"), {},
                        ["credit.csv: the header is one column holding ';'"]),
    "non-UTF-8 bytes": (None, raw_bytes(non_utf8), {}, ["credit.csv: line 6 is not UTF-8"]),
    "gzip saved as .csv": (None, raw_bytes(lambda f: gzip.compress(f.to_csv(index=False).encode())), {},
                           ["credit.csv: gzip-compressed file: name it credit.csv.gz"]),
    "named .csv.gz, not gzip": (None, raw_bytes(lambda f: f.to_csv(index=False).encode(), "credit.csv.gz"), {},
                                ["credit.csv.gz: named .gz but not gzip-compressed"]),
    "corrupt parquet": (None, truncated, {}, ["credit.parquet: cannot read as parquet"]),
    "duplicated column names": (None,
                                raw_bytes(lambda f: f.rename(columns={"income": "age"}).to_csv(index=False).encode()),
                                {}, ["credit.csv: column 'age' appears twice (columns 3 and 4)"]),
    "missing target column": (lambda f: f.drop(columns=[demo_data.TARGET]), "parquet", {},
                              ["credit.parquet: target 'default' not found (config dataset.target)"]),
    "target with a single class": (lambda f: f.assign(default=0), "parquet", {},
                                   ["credit.parquet: target 'default' has a single value ('0' in every row)"]),
    "a third label in a binary task": (edit(demo_data.TARGET, 16, 2), "csv", {"dataset": {"task": "binary"}},
                                       ["credit.csv: target 'default' has 3 classes, but dataset.task is binary"]),
    "text labels in a regression task": (lambda f: f.assign(default=np.where(f[demo_data.TARGET] == 1, "yes", "no")),
                                         "csv", {"dataset": {"task": "regression"}},
                                         ["credit.csv: target 'default' holds", "in row 1; a regression target must "
                                          "be a number"]),
    "empty target value": (edit(demo_data.TARGET, 11, None), "csv", {},
                           ["credit.csv: target 'default' is empty in row 12"]),
    "all-null feature": (lambda f: f.assign(income=np.nan), "parquet", {},
                         ["credit.parquet: feature 'income' is empty in every row (remove it from dataset.numeric)"]),
    "mixed types in a column": (edit("age", 8, "forty"), "csv", {},
                                ["credit.csv: numeric feature 'age' holds 'forty' in row 9"]),
    "inf in a numeric": (edit("income", 3, np.inf), "parquet", {},
                         ["credit.parquet: numeric feature 'income' is infinite in row 4"]),
    "-inf in a numeric (CSV)": (edit("loan_amount", 20, -np.inf), "csv", {},
                                ["credit.csv: numeric feature 'loan_amount' is infinite in row 21"]),
    "unparseable timestamp": (edit(demo_data.TIMESTAMP, 2, "yesterday"), "csv", {},
                              ["credit.csv: timestamp 'application_date' is 'yesterday', not a date in row 3"]),
    "null entity id": (edit(demo_data.ENTITY, 5, None), "parquet", {},
                       ["credit.parquet: entity_id 'customer_id' is empty in row 6"]),
    "missing sensitive attribute": (lambda f: f.drop(columns=["gender"]), "parquet", {},
                                    ["credit.parquet: sensitive attribute 'gender' not found (config "
                                     "dataset.sensitive)"]),
    "empty sensitive attribute": (edit("gender", 1, None), "parquet", {},
                                  ["credit.parquet: sensitive attribute 'gender' is empty in row 2"]),
    "config names an absent column": (None, "parquet", {"dataset": {"numeric": [*demo_data.NUMERIC, "salary"]}},
                                      ["credit.parquet: numeric feature 'salary' not found (config dataset.numeric)"]),
    "split fractions not summing to 1": (None, "parquet",
                                         {"split": {"fractions": {"train": 0.7, "val": 0.2, "test": 0.2}}},
                                         ["config.yaml: split.fractions: train + val + test must sum to 1"]),
    "unknown config key": (None, "parquet", {"leakage": {"exact_duplicates": {"treshold": 0.1}}},
                           ["config.yaml: leakage.exact_duplicates.treshold: Extra inputs are not permitted"]),
    "fewer rows than a split needs": (lambda f: f.iloc[:20], "parquet", {},
                                      ["credit.parquet: only 20 rows; need at least 30 to split"]),
    "a split with one class": (lambda f: f.iloc[:60].assign(default=[1] + [0] * 59), "parquet", {},
                               ["credit.parquet: the", "split has fewer than two distinct targets"]),
    "extremely long string": (edit("purpose", 7, "x" * 5000), "parquet", {},
                              ["credit.parquet: categorical feature 'purpose' has a 5000-character value in row 8"]),
    "empty folder": (None, directory, {}, ["credit.parquet: the folder holds no Parquet files"]),
    "no read permission": (None, unreadable, {}, ["credit.parquet: no permission to read it"]),
    "nested parquet column": (None, nested, {}, ["credit.parquet: column 'address' is nested"]),
    "ragged CSV rows": (None, raw_bytes(ragged), {}, ["credit.csv:", "line 7"]),
    "short CSV row": (None, raw_bytes(short_row), {}, ["credit.csv: line 10 has 16 fields; the header has 18"]),
    "a column of one value": (lambda f: f.assign(region="north"), "parquet", {},
                              ["credit.parquet: feature 'region' holds the same value 'north' in every row"]),
    "three uninformative columns": (lambda f: f.assign(age=7.0, income=np.nan, region="north"), "parquet", {},
                                    ["credit.parquet: 3 features cannot inform a model: 'age' holds the same value "
                                     "'7.0' in every row; 'income' is empty in every row; 'region' holds the same "
                                     "value 'north' in every row (remove them from dataset.categorical and "
                                     "dataset.numeric)"]),
    "suite with an unknown severity": (None, "parquet", "bad-severity",
                                       ["bad_suite.json: expectations[0].meta.severity is 'urgent'"]),
}


def prepare_case(name: str, folder: Path, source: pd.DataFrame) -> tuple[list[str], dict]:
    change, writer, config_change, _ = CASES[name]
    folder.mkdir(parents=True)
    frame = change(source.copy()) if change else source.copy()
    if writer == "csv":
        data = csv(frame, folder / "credit.csv")
    elif writer == "parquet":
        data = parquet(frame, folder / "credit.parquet")
    else:
        data = writer(frame, folder)
    raw = base_config(data)
    if config_change == "bad-severity":
        suite = {"name": "bad", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "age"},
                                                  "meta": {"severity": "urgent"}}]}
        (folder / "bad_suite.json").write_text(json.dumps(suite))
        raw["validation"]["suite"] = str(folder / "bad_suite.json")
    else:
        for section, values in config_change.items():
            raw[section] = {**raw.get(section, {}), **values}
    (folder / "config.yaml").write_text(yaml.safe_dump(raw))
    state = folder / "state"
    state.mkdir()
    env = {**os.environ, "GOVTRAIN_HOME": str(state)}
    command = [sys.executable, "-m", "govtrain.pipelines.cli", "run", "--config", str(folder / "config.yaml")]
    return command, env


def run_case(name: str, folder: Path, source: pd.DataFrame) -> dict:
    command, env = prepare_case(name, folder, source)
    if name == "no read permission" and os.geteuid() == 0:
        # root reads anything: run without the capabilities that let it (util-linux setpriv)
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, cwd=folder)
    return {"returncode": result.returncode, "stdout": result.stdout, "stderr": result.stderr,
            "state": folder / "state"}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    source = pd.read_parquet(demo_data.write_demo_data(root / "demo", ROWS, seed=11).data)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_case, name, root / f"case{i}", source) for i, name in enumerate(CASES)}
        return {name: future.result() for name, future in futures.items()}


def test_the_catalogue_has_at_least_25_malformed_inputs():
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_input_fails_cleanly_and_is_sealed(outcomes, name):
    """Every refusal is one line; every run refused after its config loaded is sealed."""
    outcome = outcomes[name]
    lines = outcome["stderr"].strip().splitlines()
    assert outcome["returncode"] == 2, outcome["stderr"] + outcome["stdout"][-2000:]
    assert len(lines) == 1 and lines[0].startswith("error: "), outcome["stderr"]
    assert "Traceback" not in outcome["stderr"] + outcome["stdout"]
    for fragment in CASES[name][3]:
        assert fragment in lines[0], lines[0]

    if CASES[name][3][0].startswith("config.yaml:"):  # a config that never loaded starts no run (issue 32)
        assert not (outcome["state"] / "runs").exists() and "sealed evidence" not in lines[0]
        return
    runs = [p for p in (outcome["state"] / "runs").iterdir() if p.is_dir()]
    assert len(runs) == 1, runs  # one sealed ledger for the refused run, nothing registered
    assert not (runs[0] / "registration.json").exists()
    assert not (outcome["state"] / "mlflow.db").exists() or "registered" not in outcome["stdout"]
    assert str(runs[0]) in lines[0]
    ledger = json.loads((runs[0] / "ledger.json").read_text())
    assert ledger["outcome"].startswith("error at ")
    error = [r for r in ledger["records"] if r["decision"] == "error"]
    assert len(error) == 1 and CASES[name][3][0].split(": ", 1)[-1][:30] in error[0]["details"]["error"]
    # Signed by that state folder's own key, made on first use (not this test process's key).
    assert verify(runs[0], trusted_keys=(outcome["state"] / "keys" / "trusted.pub").read_text().split()).ok


# --- limits checked before a table is read whole -----------------------------------------------------
def test_a_header_wider_than_the_limit_is_refused_before_reading(tmp_path, monkeypatch):
    from govtrain.data.io import DataError, read_table

    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(12)) + "\n" + ",".join("1" * 12) + "\n")
    monkeypatch.setenv("GOVTRAIN_MAX_COLUMNS", "10")
    with pytest.raises(DataError, match=r"wide\.csv: 12 columns, more than 10 \(\$GOVTRAIN_MAX_COLUMNS\)"):
        read_table(wide)


@pytest.mark.parametrize("body,line", [
    (b"a,b\n1,2\n" + b"x" * 3_000_000 + b"\n4,5\n", 3),  # one huge cell in the middle
    (b"a,b\n" + b"y" * (1 << 20) + b"\n" + b"z" * ((1 << 20) + 5) + b"\n", 3),  # a line across the chunk edge
    (b"a,b\n" + b"w" * ((1 << 20) + 1), 2),  # no final newline
    (b"h" * ((1 << 20) + 1) + b"\n1\n", 1),  # the header itself
])
def test_a_line_longer_than_the_limit_is_named_before_reading(tmp_path, body, line):
    from govtrain.data.io import DataError, read_table

    path = tmp_path / "long.csv"
    path.write_bytes(body)
    with pytest.raises(DataError, match=rf"long\.csv: line {line} is longer than 1048576 bytes"):
        read_table(path)


def test_a_line_at_the_limit_is_read(tmp_path):
    from govtrain.data.io import read_table

    path = tmp_path / "edge.csv"
    path.write_bytes(b"a\n" + b"7" * (1 << 20) + b"\n")
    assert len(read_table(path)) == 1
