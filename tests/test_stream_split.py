"""prepare on a table it splits a batch at a time (data/stream_split.py), and tables where they live: a folder of
Parquet files with hive partitions, a file:// URI. Small batches stand in for a large table: every check must
hold across batch boundaries, where a per-batch rule would go wrong."""
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from govtrain.components.prepare import prepare
from govtrain.data import stream_split
from govtrain.data.io import DataError
from govtrain.pipelines import demo_data

SPLITS = ("train", "val", "test")


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(stream_split, "BATCH_ROWS", 700)
    monkeypatch.setattr(stream_split, "ROW_GROUP", 500)


def run(config, folder: Path):
    paths = {s: folder / f"{s}.parquet" for s in SPLITS}
    return paths, prepare(config, paths, folder / "ev", "t1")


def frames(paths) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(p) for s, p in paths.items()}


def test_time_split_streamed_matches_the_held_one(small_data, write_config, tmp_path, small_batches):
    held = write_config(small_data.data, split={"strategy": "time"})
    streamed = write_config(small_data.data, split={"strategy": "time", "stream_from_rows": 30})
    held_paths, held_record = run(held, tmp_path / "held")
    paths, record = run(streamed, tmp_path / "streamed")
    assert record["details"]["streamed"]["rows"] == small_data.rows
    assert "streamed" not in held_record["details"]
    for name, frame in frames(paths).items():
        expected = pd.read_parquet(held_paths[name])
        # the demo's timestamps are distinct, so the cut-offs give the held split's rows, in the table's order
        pd.testing.assert_frame_equal(frame, expected)
        assert record["metrics"][f"{name}_positive_rate"] == held_record["metrics"][f"{name}_positive_rate"]
    assert record["details"]["task"]["classes"] == held_record["details"]["task"]["classes"]
    assert pq.ParquetFile(paths["train"]).metadata.num_row_groups > 1  # written in bounded row groups


def test_group_and_random_streams_split_by_seeded_hashes(small_data, write_config, tmp_path, small_batches):
    for strategy in ("group", "random"):
        config = write_config(small_data.data, split={"strategy": strategy, "stream_from_rows": 30, "seed": 5})
        paths, record = run(config, tmp_path / strategy)
        parts = frames(paths)
        assert sum(len(f) for f in parts.values()) == small_data.rows
        assert 0.64 < len(parts["train"]) / small_data.rows < 0.76  # the configured 0.7, within sampling error
        if strategy == "group":
            ids = {s: set(f[demo_data.ENTITY]) for s, f in parts.items()}
            assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
        _, again = run(config, tmp_path / f"{strategy}-again")  # the same seed, the same bytes
        assert [o["sha256"] for o in again["outputs"]] == [o["sha256"] for o in record["outputs"]]
        other = write_config(small_data.data, split={"strategy": strategy, "stream_from_rows": 30, "seed": 6})
        _, moved = run(other, tmp_path / f"{strategy}-seed6")
        assert moved["outputs"][0]["sha256"] != record["outputs"][0]["sha256"]


def write_broken(source: Path, folder: Path, change) -> Path:
    frame = pd.read_parquet(source)
    change(frame)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "credit.parquet")
    return folder / "credit.parquet"


def no_splits_left(folder: Path) -> bool:
    return not list(folder.glob("*.parquet*"))


def test_a_bad_row_past_the_first_batch_is_named_and_nothing_is_kept(small_data, write_config, tmp_path,
                                                                      small_batches):
    def infinite(frame):
        frame.loc[1999, "income"] = np.inf

    def empty_target(frame):
        frame[demo_data.TARGET] = frame[demo_data.TARGET].astype("float64")
        frame.loc[1500, demo_data.TARGET] = np.nan

    cases = {"infinite": (infinite, "numeric feature 'income' is infinite in row 2000"),
             "target": (empty_target, "target 'default' is empty in row 1501")}
    for name, (change, said) in cases.items():
        path = write_broken(small_data.data, tmp_path / name, change)
        config = write_config(path, split={"stream_from_rows": 30})
        with pytest.raises(DataError, match=said):
            run(config, tmp_path / name / "out")
        assert no_splits_left(tmp_path / name / "out")


def test_whole_table_rules_read_every_batch(small_data, write_config, tmp_path, small_batches):
    # constant in the first batches, different later: informative; constant in every row: refused
    def late_change(frame):
        frame["credit_score"] = 600.0
        frame.loc[len(frame) - 1, "credit_score"] = 601.0

    def constant(frame):
        frame["credit_score"] = 600.0

    passes = write_config(write_broken(small_data.data, tmp_path / "late", late_change), split={"stream_from_rows": 30})
    run(passes, tmp_path / "late" / "out")
    refused = write_config(write_broken(small_data.data, tmp_path / "flat", constant), split={"stream_from_rows": 30})
    with pytest.raises(DataError, match="feature 'credit_score' holds the same value '600.0' in every row"):
        run(refused, tmp_path / "flat" / "out")
    assert no_splits_left(tmp_path / "flat" / "out")


def test_a_class_only_val_or_test_holds_is_named_by_its_row(small_data, write_config, tmp_path, small_batches):
    frame = pd.read_parquet(small_data.data)
    config = write_config(small_data.data, split={"strategy": "time", "stream_from_rows": 30})
    newest = int(frame[demo_data.TIMESTAMP].to_numpy().argmax())  # a time split puts it in test

    def rare(frame):
        frame.loc[newest, demo_data.TARGET] = 2

    path = write_broken(small_data.data, tmp_path / "rare", rare)
    config = write_config(path, split={"strategy": "time", "stream_from_rows": 30})
    with pytest.raises(DataError, match=f"holds '2' in row {newest + 1}, a class of 1 row"):
        run(config, tmp_path / "rare" / "out")


def test_a_folder_with_hive_partitions_and_a_file_uri(small_data, write_config, tmp_path, small_batches):
    """A folder of Parquet parts, partitioned by region: the partition key is read back as a column (here a
    categorical feature), the record lists every part by digest; the same folder by a file:// URI splits alike."""
    folder = tmp_path / "table"
    ds.write_dataset(pq.read_table(small_data.data), folder, format="parquet", partitioning=["region"],
                     partitioning_flavor="hive")
    (folder / "_SUCCESS").write_text("")  # what Spark leaves beside its parts: skipped
    for stream_from in (1_000_000, 30):
        config = write_config(folder, split={"stream_from_rows": stream_from})
        paths, record = run(config, tmp_path / f"out{stream_from}")
        parts = frames(paths)
        assert sum(len(f) for f in parts.values()) == small_data.rows
        assert set(parts["train"]["region"]) == set(pd.read_parquet(small_data.data)["region"])
        source = record["inputs"][0]
        assert source["name"] == "table" and source["rows"] == small_data.rows
        assert len(source["parts"]) == 4 and all(len(p["sha256"]) == 64 for p in source["parts"])
        assert all(p["file"].startswith("region=") for p in source["parts"])
    uri = write_config(f"file://{folder}", split={"stream_from_rows": 30})
    _, by_uri = run(uri, tmp_path / "uri")
    assert [o["sha256"] for o in by_uri["outputs"]] == [o["sha256"] for o in record["outputs"]]
    assert by_uri["inputs"][0]["sha256"] == record["inputs"][0]["sha256"]


def test_a_uri_with_a_secret_in_it_is_refused(write_config, tmp_path):
    with pytest.raises(Exception, match="may hold no secret"):
        write_config("s3://KEYID:hunter2@bucket/table")
