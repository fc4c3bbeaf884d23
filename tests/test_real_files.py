"""Real files as users save them (issue 15, item 5): a UTF-8 byte-order mark, compressed CSV, `;` with decimal
commas, other encodings and missing-value markers, read by the one reader behind prepare, drift, evaluate and
`expectations init`; and the lines that name the real cause when the name and the bytes disagree.

The table is statsmodels' `fair` survey (6,366 rows, 9 columns), shipped inside the package.

Measured before: a BOM header gave "numeric feature … not found"; data.csv.gz gave "Parquet magic bytes not
found", or with format: csv "line 1 is not UTF-8"; there was no option for `;` and decimal commas."""
import bz2
import gzip
import lzma
from pathlib import Path

import pandas as pd
import pytest
import statsmodels

from govtrain.core.config import CsvOptions, format_by_suffix
from govtrain.data.io import DataError, read_table, table_columns

FAIR = Path(statsmodels.__file__).parent / "datasets" / "fair" / "fair.csv"


@pytest.fixture(scope="module")
def fair():
    return pd.read_csv(FAIR)


def european(frame: pd.DataFrame) -> bytes:
    """As a spreadsheet in much of Europe saves it: BOM, `;` between fields, decimal commas."""
    return b"\xef\xbb\xbf" + frame.to_csv(index=False, sep=";", decimal=",").encode()


@pytest.mark.parametrize("suffix,compress", [("", lambda b: b), (".gz", gzip.compress), (".bz2", bz2.compress),
                                             (".xz", lzma.compress)])
def test_bom_semicolons_decimal_commas_and_compression_read_as_the_original(fair, tmp_path, suffix, compress):
    path = tmp_path / f"fair.csv{suffix}"
    path.write_bytes(compress(european(fair)))
    options = CsvOptions(delimiter=";", decimal=",")
    assert format_by_suffix(path) == "csv"
    assert table_columns(path, "csv", options) == list(fair.columns)  # no "\ufeff" glued to the first name
    read = read_table(path, options=options, columns=["rate_marriage", "affairs"])
    pd.testing.assert_frame_equal(read, fair[["rate_marriage", "affairs"]])
    assert read["affairs"].dtype == "float64" and read["affairs"].iloc[0] == pytest.approx(0.1111111)


def test_a_plain_bom_csv_and_other_encodings_and_missing_markers(fair, tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + fair.to_csv(index=False).encode())
    pd.testing.assert_frame_equal(read_table(bom), fair)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("city,n\nZürich,1\nMálaga,?\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin.csv: line 2 is not UTF-8 .*set dataset.csv.encoding"):
        read_table(latin)
    frame = read_table(latin, options=CsvOptions(encoding="latin-1", na_values=["?"]))
    assert frame["city"].tolist() == ["Zürich", "Málaga"] and frame["n"].isna().tolist() == [False, True]


@pytest.mark.parametrize("name,content,line", [
    ("fair.csv", gzip.compress(b"a,b\n1,2\n"), "fair.csv: gzip-compressed file: name it fair.csv.gz"),
    ("fair.csv.bz2", gzip.compress(b"a,b\n1,2\n"), "fair.csv.bz2: gzip-compressed file: name it fair.csv.gz"),
    ("fair.csv.gz", b"a,b\n1,2\n", "fair.csv.gz: named .gz but not gzip-compressed (it starts with b'a,b\\n')"),
    ("fair.parquet", gzip.compress(b"PAR1"), "fair.parquet: gzip-compressed; Parquet compresses itself"),
])
def test_a_name_that_disagrees_with_the_bytes_is_named_as_the_real_cause(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as caught:
        read_table(path)
    assert str(caught.value).startswith(f"{tmp_path}/{line}")


def test_semicolons_without_the_option_say_which_option(fair, tmp_path):
    path = tmp_path / "fair.csv"
    path.write_bytes(european(fair))
    with pytest.raises(DataError, match="the header is one column holding ';': set dataset.csv.delimiter to ';'"):
        read_table(path)


@pytest.mark.slow
def test_the_whole_pipeline_runs_on_a_compressed_european_csv(small_data, write_config, isolated_state, tmp_path):
    from govtrain.pipelines.run import run_local

    frame = pd.read_parquet(small_data.data)
    path = tmp_path / "credit.csv.gz"
    path.write_bytes(gzip.compress(european(frame)))
    config = write_config(path, dataset={"path": str(path), "csv": {"delimiter": ";", "decimal": ","}},
                          registry={"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"})
    run = run_local(config, isolated_state, show_progress=False)
    assert run.registered
    prepare = next(r for r in run.ledger["records"] if r["step"] == "prepare")
    assert sum(out["rows"] for out in prepare["outputs"] if out.get("kind") == "data") == len(frame)
