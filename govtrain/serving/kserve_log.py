"""What KServe's payload logger captured on a cluster, read back as govtrain's own capture (serving/capture.py).

`govtrain deploy` turns on the InferenceService's `logger` (mode all, Parquet in the artifact store). Its agent
(KServe v0.18+, pkg/logger) writes each batch of CloudEvents as one Parquet object at
`<logger url>/<namespace>/<inference service>/<component>/<storage path>/<first id>-<request|response>.parquet`,
one row per event with the columns of its `logRecord` (pkg/logger/marshaller_record.go): the payload in `bytes`
(base64), the event kind in `reqType`, the request id in `id` (the caller's `Ce-Id` header, or a UUID) and the
InferenceService's matched annotations in `annotations` (JSON). A response is logged only when it was HTTP 200.

Rows come out as the local capture's: request_id, row, time, model, version, `in.<feature>`, `out.<output>`.
The time is the object's modification time (the record carries none; a batch is written when it fills or its
interval passes). A logged request with no logged response is counted as refused ("no 200 response"): KServe
keeps no cause. Payloads: the open inference protocol v2 (MLServer: one input per column, one output per
answer column) or MLflow's scoring protocol (`dataframe_split`, `dataframe_records`; `predictions`).

Never run against a real KServe logger here (no cluster): the layout above is read from KServe's code, and the
tests write objects in exactly that schema.
"""
from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from govtrain.serving.capture import IN, OUT, Captured

REQUEST, RESPONSE = "org.kubeflow.serving.inference.request", "org.kubeflow.serving.inference.response"
# The columns of KServe's logRecord that a reader needs (the rest: url, contentType, sourceUri, namespace, ...).
COLUMNS = ("bytes", "reqType", "id", "inferenceService", "annotations")
MODEL_ANNOTATION, VERSION_ANNOTATION = "govtrain/model", "govtrain/version"


class LogError(ValueError):
    """A logged object that cannot be read; one line names it and the cause."""


def open_location(uri: str) -> tuple[pafs.FileSystem, str]:
    """A local folder or an object-store URI (s3://, gs://, file://) through pyarrow's filesystems; credentials
    come from the environment (AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...), never from the config."""
    if "://" not in uri:
        return pafs.LocalFileSystem(), str(Path(uri).resolve())
    return pafs.FileSystem.from_uri(uri)


def payload_frame(body: dict[str, Any], key: str) -> pd.DataFrame:
    """The columns of one request (key "inputs") or response ("outputs") body."""
    if key in body and isinstance(body[key], list):  # protocol v2: one tensor per column
        columns = {}
        for tensor in body[key]:
            data = tensor.get("data", [])
            flat = [v for row in data for v in (row if isinstance(row, list) else [row])]
            columns[str(tensor["name"])] = flat
        return pd.DataFrame(columns)
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        return pd.DataFrame(split["data"], columns=split.get("columns"))
    if "dataframe_records" in body:
        return pd.DataFrame(body["dataframe_records"])
    if "predictions" in body:
        answer = body["predictions"]
        return pd.DataFrame(answer) if answer and isinstance(answer[0], dict) else pd.DataFrame({"prediction": answer})
    raise ValueError(f"neither a v2 '{key}' list nor an MLflow payload (keys: {', '.join(sorted(body)) or 'none'})")


def decode(text: str) -> dict[str, Any]:
    body = json.loads(base64.b64decode(text)) if text else {}
    if not isinstance(body, dict):
        raise ValueError("the payload is not a JSON object")
    return body


def read_kserve_log(uri: str, dest: Path, since: datetime | None = None, until: datetime | None = None,
                    version: str | None = None, model: str | None = None) -> Captured:
    """Every logged request answered with a 200 in since < object time <= until (and, given `model` and
    `version`, logged under those govtrain/model and govtrain/version annotations), as capture rows. Each object
    read is copied to `dest` first, so the monitor's digests name exactly the bytes it judged."""
    fs, root = open_location(uri)
    try:
        listed = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (FileNotFoundError, OSError) as exc:
        raise LogError(f"{uri}: cannot list the KServe log ({exc})") from exc
    objects = sorted((i for i in listed if i.type == pafs.FileType.File and i.path.endswith(".parquet")),
                     key=lambda i: (i.mtime, i.path))
    dest.mkdir(parents=True, exist_ok=True)
    events, files = [], []
    for info in objects:
        moment = info.mtime.replace(tzinfo=UTC) if info.mtime.tzinfo is None else info.mtime
        if (since is not None and moment <= since) or (until is not None and moment > until):
            continue
        local = dest / info.path[len(root):].strip("/").replace("/", "__")
        with fs.open_input_stream(info.path) as source:
            local.write_bytes(source.read())
        try:
            table = pq.read_table(local, columns=list(COLUMNS))
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a file that is not its Parquet
            raise LogError(f"{info.path}: not a KServe logger Parquet object ({exc})") from exc
        files.append(local)
        for row in table.to_pylist():
            events.append({**row, "time": moment, "object": info.path})
    return assemble(events, files, version, model)


def assemble(events: list[dict[str, Any]], files: list[Path], version: str | None, model: str | None) -> Captured:
    """Pairs each request with its response by id, one capture row per input row."""
    requests = {e["id"]: e for e in events if e["reqType"] == REQUEST}
    responses = {e["id"]: e for e in events if e["reqType"] == RESPONSE}
    frames, rejected = [], []
    for request_id, event in requests.items():
        notes = json.loads(event["annotations"]) if event.get("annotations") else {}
        if (version is not None and notes.get(VERSION_ANNOTATION, version) != version) or \
                (model is not None and notes.get(MODEL_ANNOTATION, model) != model):
            continue  # another version or model logged under the same root
        try:
            inputs = payload_frame(decode(event["bytes"]), "inputs")
        except ValueError as exc:
            raise LogError(f"{event['object']}: request {request_id}: {exc}") from exc
        answer = responses.get(request_id)
        if answer is None:
            rejected.append({"request_id": request_id, "time": event["time"].isoformat(), "rows": len(inputs),
                             "status": None, "column": None, "kind": "no 200 response",
                             "cause": "KServe logs a response only when it is HTTP 200"})
            continue
        try:
            outputs = payload_frame(decode(answer["bytes"]), "outputs")
        except ValueError as exc:
            raise LogError(f"{answer['object']}: response {request_id}: {exc}") from exc
        if len(outputs) != len(inputs):
            raise LogError(f"{answer['object']}: response {request_id} has {len(outputs)} row(s) for "
                           f"{len(inputs)} input row(s)")
        frame = pd.concat([inputs.add_prefix(IN), outputs.add_prefix(OUT)], axis=1)
        frame.insert(0, "version", notes.get(VERSION_ANNOTATION, version))
        frame.insert(0, "model", notes.get(MODEL_ANNOTATION, event.get("inferenceService")))
        frame.insert(0, "time", pd.Timestamp(answer["time"]))
        frame.insert(0, "row", range(len(frame)))
        frame.insert(0, "request_id", request_id)
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["request_id", "row", "time"])
    if len(rows):
        rows = rows.sort_values(["time", "request_id", "row"], kind="stable").reset_index(drop=True)
    return Captured(rows, files, rejected, [])
