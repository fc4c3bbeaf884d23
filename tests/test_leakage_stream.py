"""leakage streamed (stream_step.py): the spill's partitions, what it leaves behind, the parts that differ from
the held path by design. That both paths reach the same gates on every planted leak is asserted in
test_data_gates.py and test_tasks.py (conftest.assert_streamed_agrees)."""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from govtrain.components.leakage import leakage, spill, stream_twins
from govtrain.components.leakage.encode import MISSING
from govtrain.components.leakage.spill import Spill, partitions_for
from govtrain.components.leakage.stream_read import string_codes
from govtrain.components.leakage.stream_tally import CodeTally
from govtrain.components.prepare import prepare


def test_every_row_of_a_key_lands_in_one_partition_and_recurring_counts_over_all_splits(tmp_path):
    rng = np.random.default_rng(0)
    keys = {s: rng.integers(0, 50, n).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            for s, n in (("train", 800), ("val", 100), ("test", 100))}
    store = Spill(tmp_path / "spill", list(keys), 1000, per_partition=64)
    assert store.parts == 16 == partitions_for(1000, 64) and partitions_for(64, 64) == 1
    for split, k in keys.items():
        for start in range(0, len(k), 128):  # written a batch at a time, as spill_rows does
            rows = np.arange(start, min(start + 128, len(k)))
            store.add("content", split, k[rows], rows, rows.astype(float))
    where: dict[int, set] = {}
    for p, part in enumerate(store.partitions("content")):
        for records in part.values():
            for key in records["key"]:
                where.setdefault(int(key), set()).add(p)
    assert all(len(parts) == 1 for parts in where.values()) and len(where) == 50
    assert len({p for parts in where.values() for p in parts}) > 4  # the keys spread over the partitions
    every = np.concatenate(list(keys.values()))
    values, counts = np.unique(every, return_counts=True)
    rows = np.array([3, 1, 77, 50])
    expected = counts[np.searchsorted(values, keys["val"][rows])] >= 3
    assert (store.recurring("content", "val", rows) == expected).all()
    store.close()
    assert not (tmp_path / "spill").exists()


def test_codes_are_equal_exactly_for_equal_strings_and_folded_for_case_and_spacing():
    array = pa.array(["Loan ", "loan", "LOAN", "car", None, "loan", "  Car  hire"])
    codes, folded = string_codes(array), string_codes(array, fold=True)
    assert codes[1] == codes[5] and len(set(codes[[0, 1, 2, 3]])) == 4 and codes[4] == MISSING
    assert folded[0] == folded[1] == folded[2] != folded[3] and folded[4] == MISSING
    assert string_codes(pa.array(["car hire"]), fold=True)[0] == folded[6]  # the same hash in any batch
    assert string_codes(pa.array([True, False, True]))[0] == string_codes(pa.array(["true"]))[0]  # compared as text


def test_a_tally_keeps_first_rows_in_order_and_stops_counting_past_its_cap():
    tally = CodeTally(cap=5)
    tally.add(np.array([30, 10, MISSING, 30]), offset=0)
    tally.add(np.array([20, 10]), offset=4)
    assert tally.missing and dict(zip(tally.keys, tally.counts, strict=True)) == {10: 2, 20: 1, 30: 2}
    assert list(tally.in_order(np.array([10, 20, 30, MISSING]))) == [1, 4, 0, MISSING]  # first rows: held order
    assert list(tally.holds(np.array([20, 40, MISSING]))) == [True, False, True]
    tally.add(np.array([1, 2, 3, 4]), offset=6)
    assert tally.over and len(tally.keys) == 0  # past the cap: the column is id-like, its codes let go


@pytest.fixture
def streamed_split(small_data, write_config, tmp_path, monkeypatch):
    config = write_config(small_data.data)
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "t1")
    config.split.stream_from_rows = 30
    monkeypatch.setattr(spill, "PARTITION_ROWS", 64)
    return config, paths


def test_a_failing_streamed_check_leaves_no_spill_behind(streamed_split, tmp_path, monkeypatch):
    config, paths = streamed_split

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(stream_twins, "near_duplicates", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-leak", "t1")
    assert not list(tmp_path.rglob(".leakage-spill-*"))


def test_a_column_of_more_categories_than_the_cap_is_id_like_and_named(streamed_split, tmp_path, monkeypatch):
    """Past stream_tally.DISTINCT_CAP train categories a column's categories are let go: the streamed path calls it
    id-like (its unseen values leave the share, the report names it), where the held path counts it out."""
    from govtrain.components.leakage import stream_tally

    config, paths = streamed_split
    column = config.dataset.categorical[0]
    for split, path in paths.items():  # every row its own category: id-like on both paths
        frame = pd.read_parquet(path)
        frame[column] = [f"{split}-{i}" for i in range(len(frame))]
        frame.to_parquet(path, index=False)
    monkeypatch.setattr(stream_tally, "DISTINCT_CAP", 40)
    record = leakage(config, paths, tmp_path / "ev-prepare", tmp_path / "ev-leak", "t1")
    report = json.loads((tmp_path / "ev-leak" / "files" / "leakage" / "leakage.json").read_text())
    assert report["streamed"]["hash_partitions"] > 1
    unseen = report["unseen_categories"]["test"]
    assert column in unseen["id_like_columns"] and column not in unseen["columns"]
    check = next(c for c in record["checks"] if c["id"] == "leakage.unseen_categories.test")
    assert check["passed"] and f"left out as id-like (mostly unique in train): {column}" in check["reference"]
