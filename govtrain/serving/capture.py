"""What a served model saw and answered, row by row, for the monitor and for delayed labels.

Layout under $GOVTRAIN_HOME/capture/<model>/<version>/:

- `journal-<start>-<host>-<pid>.arrows`: the open file, an Arrow IPC stream. Each answered request is one record
  batch, written and flushed to the operating system before its 2xx leaves, so a server killed by SIGKILL
  loses no answered request: the stream reads back up to its last whole batch.
- `part-<first>-<last>-<host>-<pid>.parquet`: a closed journal, rotated at `rotate_rows` rows and at shutdown.
- `rejected-<start>-<host>-<pid>.jsonl`: requests refused with a 4xx (request id, time, column, cause, rows).
- `dropped.jsonl`: parts deleted to keep the folder under `max_bytes` (oldest first), with their rows.

Columns: request_id, row, time (UTC), model, version, `in.<feature>` (float64 or string) and `out.<output>`
(what the model answered: label, probabilities, prediction, interval).
"""
from __future__ import annotations

import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from govtrain.core.files import sync_folder

IN, OUT = "in.", "out."
# Who writes a file: host and process, so that servers sharing one volume (pods, which often all run as PID 1
# or 7) never write the same name.
def writer() -> str:
    return f"{re.sub(r'[^A-Za-z0-9.-]', '_', socket.gethostname())}-{os.getpid()}"


def capture_folder(home: Path, model: str, version: str) -> Path:
    return home / "capture" / model / str(version)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S.%fZ")


@dataclass
class CaptureWriter:
    """One server process's capture of one model version (thread-safe: uvicorn answers in a thread pool)."""
    folder: Path
    model: str
    version: str
    numeric: list[str]
    categorical: list[str]
    outputs: dict[str, pa.DataType]  # the model's answer columns and their types
    rotate_rows: int = 50_000
    max_bytes: int = 1 << 30
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _journal: Path | None = None
    _sink: object | None = None
    _writer: ipc.RecordBatchStreamWriter | None = None
    _rows: int = 0
    _first: datetime | None = None
    _rejected: Path | None = None
    rows_written: int = 0

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.schema = pa.schema([
            ("request_id", pa.string()), ("row", pa.int32()), ("time", pa.timestamp("us", tz="UTC")),
            ("model", pa.string()), ("version", pa.string()),
            *[(IN + c, pa.float64()) for c in self.numeric], *[(IN + c, pa.string()) for c in self.categorical],
            *[(OUT + name, kind) for name, kind in self.outputs.items()]])

    def write(self, request_id: str, inputs: pd.DataFrame, answer: pd.DataFrame) -> None:
        """The request's rows and the model's answer, on disk (flushed to the OS) when this returns.

        Arrow arrays straight from the typed columns (serving/checks.py typed them): going through a pandas
        frame cost 2.1 ms a one-row request, this about a tenth of it."""
        n = len(inputs)
        now = np.full(n, np.datetime64(datetime.now(UTC).replace(tzinfo=None), "us"))
        arrays = [pa.array([request_id] * n, pa.string()), pa.array(np.arange(n, dtype=np.int32)),
                  pa.array(now, pa.timestamp("us", tz="UTC")), pa.array([self.model] * n, pa.string()),
                  pa.array([self.version] * n, pa.string())]
        arrays += [pa.array(inputs[c].to_numpy(dtype=np.float64, na_value=np.nan), pa.float64(), from_pandas=True)
                   for c in self.numeric]
        arrays += [pa.array(inputs[c].to_numpy(dtype=object, na_value=None), pa.string()) for c in self.categorical]
        for name, kind in self.outputs.items():  # a label keeps its text (0 and 1 as "0" and "1")
            values = answer[name].to_numpy()
            arrays.append(pa.array([None if v is None else str(v) for v in values], pa.string()) if kind == pa.string()
                          else pa.array(values.astype(np.float64), pa.float64()))
        batch = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        with self._lock:
            if self._writer is None:
                self._open(datetime.now(UTC))
            assert self._writer is not None and self._sink is not None
            self._writer.write_batch(batch)
            self._sink.flush()  # type: ignore[attr-defined]
            self._rows += n
            self.rows_written += n
            if self._rows >= self.rotate_rows:
                self._rotate()

    def reject(self, request_id: str, rows: int, status: int, column: str | None, cause: str, kind: str) -> None:
        line = json.dumps({"request_id": request_id, "time": datetime.now(UTC).isoformat(), "model": self.model,
                           "version": self.version, "rows": rows, "status": status, "column": column,
                           "kind": kind, "cause": cause})
        with self._lock:
            if self._rejected is None:
                self._rejected = self.folder / f"rejected-{stamp(datetime.now(UTC))}-{writer()}.jsonl"
            with self._rejected.open("a") as out:
                out.write(line + "\n")

    def close(self) -> None:
        """Rotate the open journal into Parquet (shutdown: nothing answered is lost)."""
        with self._lock:
            if self._writer is not None:
                self._rotate()

    def _open(self, now: datetime) -> None:
        self._journal = self.folder / f"journal-{stamp(now)}-{writer()}.arrows"
        self._sink = self._journal.open("wb")
        self._writer = ipc.new_stream(self._sink, self.schema)
        self._rows, self._first = 0, now

    def _rotate(self) -> None:
        assert self._writer is not None and self._journal is not None and self._first is not None
        self._writer.close()
        self._sink.close()  # type: ignore[attr-defined]
        table = read_journal(self._journal)
        last = datetime.now(UTC)
        part = self.folder / f"part-{stamp(self._first)}-{stamp(last)}-{writer()}.parquet"
        partial = part.with_suffix(".parquet.partial")
        pq.write_table(table, partial, row_group_size=10_000)
        with partial.open("rb") as handle:
            os.fsync(handle.fileno())
        partial.replace(part)
        self._journal.unlink()
        sync_folder(self.folder)
        self._writer = self._sink = self._journal = None
        self._rows = 0
        self._bound()

    def _bound(self) -> None:
        """Delete the oldest parts beyond max_bytes, and say so in dropped.jsonl."""
        parts = sorted(self.folder.glob("part-*.parquet"))
        total = sum(p.stat().st_size for p in parts)
        while parts and total > self.max_bytes:
            oldest = parts.pop(0)
            rows = pq.ParquetFile(oldest).metadata.num_rows
            total -= oldest.stat().st_size
            oldest.unlink()
            with (self.folder / "dropped.jsonl").open("a") as out:
                out.write(json.dumps({"file": oldest.name, "rows": rows, "time": datetime.now(UTC).isoformat(),
                                      "reason": f"capture over {self.max_bytes} bytes"}) + "\n")


def read_journal(path: Path) -> pa.Table:
    """An Arrow stream up to its last whole record batch (a killed server's journal ends mid-batch)."""
    batches = []
    with path.open("rb") as source:
        try:
            reader = ipc.open_stream(source)
        except (pa.ArrowInvalid, OSError):
            return pa.table({})
        schema = reader.schema
        while True:
            try:
                batches.append(reader.read_next_batch())
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError):  # a torn last batch: what was flushed before it stands
                break
    return pa.Table.from_batches(batches, schema=schema)


@dataclass
class Captured:
    rows: pd.DataFrame  # every captured row in the window, oldest first
    files: list[Path]  # the files read (parts and journals), for the monitor's digests
    rejected: list[dict]  # refused requests in the window
    dropped: list[dict]  # parts deleted by the size bound


def read_capture(folder: Path, since: datetime | None = None, until: datetime | None = None) -> Captured:
    """Every captured row with since < time <= until, from closed parts and open (or killed) journals."""
    tables, files = [], []
    for path in sorted([*folder.glob("part-*.parquet"), *folder.glob("journal-*.arrows")]):
        table = pq.read_table(path) if path.suffix == ".parquet" else read_journal(path)
        if table.num_rows:
            tables.append(table)
            files.append(path)
    rows = pa.concat_tables(tables).to_pandas() if tables else pd.DataFrame(columns=["request_id", "row", "time"])
    if len(rows):
        keep = pd.Series(True, index=rows.index)
        if since is not None:
            keep &= rows["time"] > pd.Timestamp(since)
        if until is not None:
            keep &= rows["time"] <= pd.Timestamp(until)
        rows = rows[keep].sort_values(["time", "request_id", "row"], kind="stable").reset_index(drop=True)
    rejected = []
    for path in sorted(folder.glob("rejected-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:  # a torn last line of a killed server
                continue
            moment = datetime.fromisoformat(item["time"])
            if (since is None or moment > since) and (until is None or moment <= until):
                rejected.append(item)
    dropped_file = folder / "dropped.jsonl"
    dropped = [json.loads(line) for line in dropped_file.read_text().splitlines()] if dropped_file.is_file() else []
    return Captured(rows, files, rejected, dropped)

