"""`govtrain serve`: one registered version on 127.0.0.1, answering MLflow's scoring protocol, capturing
what it saw and answered.

The endpoints are those of `mlflow models serve` (`POST /invocations` with `dataframe_split` or
`dataframe_records`, answering `{"predictions": [...]}`; `GET /ping`, `/health`, `/version`), so a client of
one talks to the other. Each answer carries `X-Request-Id` (the caller's own, when it sent one): the key
delayed labels are joined on (`govtrain labels`). A request the model should not answer gets a 4xx naming the
column and cause (serving/checks.py), and is counted in the capture.
"""
from __future__ import annotations

import re
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from govtrain.governance.evidence import code_version
from govtrain.serving.capture import CaptureWriter
from govtrain.serving.checks import Refusal, RowChecks

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a caller's id kept as is; anything else replaced


@dataclass
class Served:
    model: Any  # govtrain.model.network.LoadedModel
    name: str
    version: str
    checks: RowChecks
    capture: CaptureWriter | None


def output_types(model: Any) -> dict[str, pa.DataType]:
    """The answer's columns and their Arrow types (label: string; probabilities and predictions: float64)."""
    task = model.task
    if task.kind == "regression":
        names = ["prediction", *(["lower", "upper"] if task.interval is not None else [])]
        return {n: pa.float64() for n in names}
    probabilities = ["probability"] if task.kind == "binary" else [f"probability_{c}" for c in task.classes]
    return {"label": pa.string(), **{n: pa.float64() for n in probabilities}}


def parse(body: Any) -> pd.DataFrame | str:
    """The request's rows as MLflow's scoring server reads them, or why they cannot be read."""
    if not isinstance(body, dict):
        return "the body must be a JSON object with dataframe_split or dataframe_records"
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        if not isinstance(split, dict) or "columns" not in split or "data" not in split:
            return "dataframe_split needs columns and data"
        try:
            return pd.DataFrame(split["data"], columns=split["columns"])
        except (ValueError, TypeError) as exc:
            return f"dataframe_split: {exc}"
    if "dataframe_records" in body:
        records = body["dataframe_records"]
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            return "dataframe_records must be a list of objects"
        return pd.DataFrame.from_records(records)
    return "the body needs dataframe_split or dataframe_records (MLflow's scoring protocol)"


def refuse(served: Served, request_id: str, rows: int, refusal: Refusal) -> JSONResponse:
    if served.capture is not None:
        served.capture.reject(request_id, rows, refusal.status, refusal.column, refusal.cause, refusal.kind)
    return JSONResponse({"error_code": "BAD_REQUEST", "message": refusal.cause, "column": refusal.column},
                        status_code=refusal.status, headers={"X-Request-Id": request_id})


def create_app(served: Served) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202 - FastAPI's lifespan protocol
        yield
        if served.capture is not None:  # SIGTERM or Ctrl-C: the open journal becomes a Parquet part
            served.capture.close()

    app = FastAPI(title=f"govtrain {served.name}/{served.version}", lifespan=lifespan)

    @app.get("/ping")
    @app.get("/health")
    def ping() -> dict:
        return {"status": "ok"}

    @app.get("/version")
    def version() -> dict:
        return {"govtrain": code_version(), "model": served.name, "version": served.version,
                "capture": served.capture is not None}

    @app.post("/invocations")
    async def invocations(request: Request) -> JSONResponse:
        given = request.headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        try:
            body = await request.json()
        except ValueError:
            return refuse(served, request_id, 0, Refusal(400, None, "the body is not JSON"))
        frame = parse(body)
        if isinstance(frame, str):
            return refuse(served, request_id, 0, Refusal(400, None, frame))
        typed, refusal = served.checks.check(frame)
        if refusal is not None:
            return refuse(served, request_id, len(frame), refusal)
        answer = served.model.predict(typed)
        if served.capture is not None:  # on disk before the answer leaves
            served.capture.write(request_id, typed, answer)
        return JSONResponse({"predictions": answer.to_dict(orient="records")}, headers={"X-Request-Id": request_id})

    return app
