"""A real `mlflow server` on the embedded store (sqlite + a local artifact root in the state folder),
on 127.0.0.1 only. `govtrain server`/`ui` and the tests start it the same way."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from govtrain.core.state import embedded_tracking_uri


class EmbeddedServer:
    def __init__(self, state: Path, port: int):
        self.state, self.port = Path(state), port
        self.url = f"http://127.0.0.1:{port}"
        self.store = embedded_tracking_uri(self.state)
        self.proc: subprocess.Popen  # started by __enter__

    def __enter__(self) -> EmbeddedServer:
        self.state.mkdir(parents=True, exist_ok=True)
        log = open(self.state / "mlflow-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", self.store,
             "--artifacts-destination", (self.state / "mlartifacts").as_uri()],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        return self

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.proc.returncode}; see "
                                   f"{self.state / 'mlflow-server.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"mlflow server did not answer {self.url}/health within {timeout:.0f} s")

    def wait(self) -> int:
        try:
            return self.proc.wait()
        except KeyboardInterrupt:
            return 0

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
