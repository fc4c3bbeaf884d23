"""Open a registered version for serving: its ledger verified, its model and reference sample loaded."""
from __future__ import annotations

import signal
import socket
import tempfile
from pathlib import Path

import pandas as pd

from govtrain.core.config import Config
from govtrain.core.state import state_dir
from govtrain.serving.app import Served, create_app, output_types
from govtrain.serving.capture import CaptureWriter, capture_folder
from govtrain.serving.checks import RowChecks


class ServeError(ValueError):
    """One line for the user: why the version cannot be served."""


def open_served(config: Config, ref: str, capture: bool = True, rotate_rows: int = 50_000,
                max_bytes: int = 1 << 30) -> Served:
    """The version behind `ref`, refused unless its sealed ledger verifies with this machine's trusted keys."""
    from govtrain.registry.models import reference_sample, verified_version

    folder = Path(tempfile.mkdtemp(prefix="govtrain-serve-"))
    version, _, model = verified_version(config, ref, folder / "model")
    reference = pd.read_parquet(reference_sample(version, folder / "reference"))
    writer = None
    if capture:
        writer = CaptureWriter(capture_folder(state_dir(), version.name, str(version.version)), version.name,
                               str(version.version), list(model.features.numeric), list(model.features.categorical),
                               output_types(model), rotate_rows=rotate_rows, max_bytes=max_bytes)
    return Served(model, version.name, str(version.version), RowChecks.of(model.features, reference), writer)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is not taken
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def run_server(served: Served, port: int) -> None:
    """Serve on 127.0.0.1 until SIGTERM or Ctrl-C (uvicorn stops accepting, finishes what is in flight, then
    the capture's open journal is rotated into Parquet)."""
    import uvicorn

    if not port_free(port):
        raise ServeError(f"port {port} on 127.0.0.1 is taken; pass --port")
    # uvicorn shuts down on SIGTERM/SIGINT, then raises the signal again for the handler it found: this one
    # lets the command return (exit 0, the capture closed) instead of dying by the signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.run(create_app(served), host="127.0.0.1", port=port, log_level="warning", access_log=False)
