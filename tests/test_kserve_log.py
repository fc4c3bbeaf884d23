"""What KServe's payload logger writes on a cluster, read back as govtrain's capture. The objects are written as
KServe's agent writes them (v0.18+, pkg/logger): its logRecord columns in its order (marshaller_record.go), the
payload base64 in `bytes`, one object per batch named by the batch's first event
(store.go: <prefix>/<namespace>/<service>/<component>/<path>/<id>-<request|response>.parquet)."""
import base64
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from govtrain.serving.kserve_log import REQUEST, RESPONSE, LogError, read_kserve_log

# KServe's logRecord, field by field (pkg/logger/marshaller_record.go, v0.20.0)
LOG_RECORD = pa.schema([("url", pa.string()), ("bytes", pa.string()), ("contentType", pa.string()),
                        ("reqType", pa.string()), ("id", pa.string()), ("sourceUri", pa.string()),
                        ("inferenceService", pa.string()), ("namespace", pa.string()), ("component", pa.string()),
                        ("endpoint", pa.string()), ("metadata", pa.string()), ("annotations", pa.string()),
                        ("certName", pa.string()), ("tlsSkipVerify", pa.bool_())])


def v2_tensor(name: str, values: pd.Series) -> dict:
    numeric = pd.api.types.is_numeric_dtype(values)
    return {"name": name, "shape": [len(values)], "datatype": "FP64" if numeric else "BYTES",
            "data": values.astype(float).tolist() if numeric else values.astype(str).tolist()}


def v2_request(rows: pd.DataFrame) -> dict:
    """The open inference protocol v2 body MLServer's pandas codec takes: one input per column."""
    return {"inputs": [v2_tensor(c, rows[c]) for c in rows.columns], "parameters": {"content_type": "pd"}}


def v2_response(answer: pd.DataFrame) -> dict:
    return {"model_name": "svc", "id": "x", "parameters": {"content_type": "pd"},
            "outputs": [v2_tensor(c, answer[c]) for c in answer.columns]}


def event(kind: str, request_id: str, body: dict, version: str = "3", model: str = "credit") -> dict:
    return {"url": "s3://mlflow-artifacts/capture", "bytes": base64.b64encode(json.dumps(body).encode()).decode(),
            "contentType": "application/json", "reqType": kind, "id": request_id, "sourceUri": "pod-1",
            "inferenceService": "credit", "namespace": "govtrain", "component": "predictor", "endpoint": "default",
            "metadata": "{}", "annotations": json.dumps({"govtrain/model": model, "govtrain/version": version}),
            "certName": "", "tlsSkipVerify": False}


def write_objects(folder: Path, events: list[dict], batch: int = 100, path: str = "v3") -> list[Path]:
    """Events in batches, each one Parquet object under KServe's key layout."""
    prefix = folder / "govtrain" / "credit" / "predictor" / path
    prefix.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, len(events), batch):
        chunk = events[start:start + batch]
        kind = chunk[0]["reqType"].rsplit(".", 1)[1]
        target = prefix / f"{chunk[0]['id']}-{kind}.parquet"
        pq.write_table(pa.Table.from_pylist(chunk, schema=LOG_RECORD), target)
        written.append(target)
    return written


def traffic(requests: int, rows: int = 3, seed: int = 0) -> tuple[list[dict], pd.DataFrame]:
    rng = np.random.default_rng(seed)
    events, frames = [], []
    for i in range(requests):
        inputs = pd.DataFrame({"income": rng.normal(50_000, 9_000, rows),
                               "region": rng.choice(["north", "south"], rows)})
        answer = pd.DataFrame({"label": rng.integers(0, 2, rows).astype(str), "probability": rng.random(rows)})
        events += [event(REQUEST, f"r{i}", v2_request(inputs)), event(RESPONSE, f"r{i}", v2_response(answer))]
        frames.append(pd.concat([inputs.add_prefix("in."), answer.add_prefix("out.")], axis=1)
                      .assign(request_id=f"r{i}"))
    return events, pd.concat(frames, ignore_index=True)


def test_logged_requests_come_back_as_capture_rows_paired_by_id(tmp_path):
    events, expected = traffic(40)
    lost = event(REQUEST, "no-answer", v2_request(pd.DataFrame({"income": [1.0], "region": ["north"]})))
    write_objects(tmp_path / "log", [*events, lost], batch=7)  # batches cut across request/response pairs
    found = read_kserve_log(str(tmp_path / "log"), tmp_path / "copies")
    rows = found.rows.sort_values(["request_id", "row"], key=lambda c: c.map(
        lambda v: int(v[1:]) if isinstance(v, str) and v[1:].isdigit() else v)).reset_index(drop=True)
    assert len(rows) == 120 and rows["request_id"].nunique() == 40
    assert rows["in.income"].to_numpy() == pytest.approx(expected["in.income"].to_numpy())
    assert (rows["in.region"].to_numpy() == expected["in.region"].to_numpy()).all()
    assert rows["out.probability"].to_numpy() == pytest.approx(expected["out.probability"].to_numpy())
    assert set(rows["model"]) == {"credit"} and set(rows["version"]) == {"3"} and set(rows["row"]) == {0, 1, 2}
    assert [r["request_id"] for r in found.rejected] == ["no-answer"]
    assert found.rejected[0]["kind"] == "no 200 response" and found.rejected[0]["rows"] == 1
    assert len(found.files) == 12 and all(f.parent == tmp_path / "copies" for f in found.files)  # what was judged


def test_the_window_follows_the_objects_time_and_the_version_its_annotation(tmp_path):
    old = [{**e, "id": "old-" + e["id"]} for e in traffic(5, seed=1)[0]]
    new, _ = traffic(5, seed=2)
    other = [{**e, "annotations": json.dumps({"govtrain/version": "2"}), "id": "v2-" + e["id"]} for e in new]
    stranger = [{**e, "annotations": json.dumps({"govtrain/model": "fraud", "govtrain/version": "3"}),
                 "id": "f-" + e["id"]} for e in new]
    early = write_objects(tmp_path / "log", old, path="v3a")
    write_objects(tmp_path / "log", new, path="v3b")
    write_objects(tmp_path / "log", other, path="v2")
    write_objects(tmp_path / "log", stranger, path="v3f")
    hour_ago = time.time() - 3600
    for path in early:
        os.utime(path, (hour_ago, hour_ago))
    since = datetime.fromtimestamp(time.time() - 1800, UTC)
    found = read_kserve_log(str(tmp_path / "log"), tmp_path / "c1", since=since, version="3", model="credit")
    assert sorted(found.rows["request_id"].unique()) == [f"r{i}" for i in range(5)] and len(found.rows) == 15
    assert found.rows["in.income"].iloc[0] != pytest.approx(traffic(5, seed=1)[1]["in.income"].iloc[0])
    everything = read_kserve_log(f"file://{tmp_path / 'log'}", tmp_path / "c2")  # a URI reads the same
    assert len(everything.rows) == 60


def test_mlflow_payloads_and_a_broken_object_are_read_or_refused_in_one_line(tmp_path):
    split = {"dataframe_split": {"columns": ["income", "region"], "data": [[1.0, "north"], [2.0, "south"]]}}
    answer = {"predictions": [{"label": "0", "probability": 0.2}, {"label": "1", "probability": 0.9}]}
    write_objects(tmp_path / "log", [event(REQUEST, "m1", split), event(RESPONSE, "m1", answer)])
    found = read_kserve_log(str(tmp_path / "log"), tmp_path / "c")
    assert found.rows["out.probability"].tolist() == [0.2, 0.9]
    assert found.rows["in.region"].tolist() == ["north", "south"]
    short = {"outputs": [{"name": "label", "shape": [1], "datatype": "BYTES", "data": ["0"]}]}
    write_objects(tmp_path / "bad", [event(REQUEST, "b1", split), event(RESPONSE, "b1", short)])
    with pytest.raises(LogError, match=r"b1-request\.parquet: response b1 has 1 row\(s\) for 2 input row\(s\)"):
        read_kserve_log(str(tmp_path / "bad"), tmp_path / "c3")
    (tmp_path / "junk" / "x").mkdir(parents=True)
    (tmp_path / "junk" / "x" / "a-request.parquet").write_bytes(b"not parquet")
    with pytest.raises(LogError, match=r"a-request\.parquet: not a KServe logger Parquet object"):
        read_kserve_log(str(tmp_path / "junk"), tmp_path / "c4")
