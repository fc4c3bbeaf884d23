"""Issue 32: `govtrain server` stops the MLflow server it started on SIGTERM as on Ctrl-C (before, `kill PID`
left mlflow and uvicorn serving as orphans), and a second start on a taken port says so instead of printing
the first server's URL and exiting 0."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import free_port


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start(port: int, home) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "govtrain.pipelines.cli", "server", "--port", str(port)],
                            env={**os.environ, "GOVTRAIN_HOME": str(home)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_sigterm_stops_the_server_it_started_and_a_second_start_on_its_port_is_refused(tmp_path):
    port = free_port()
    server = start(port, tmp_path / "state")
    try:
        deadline = time.monotonic() + 120
        while not answers(port):
            assert server.poll() is None, server.stderr.read()
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.5)

        second = subprocess.run([sys.executable, "-m", "govtrain.pipelines.cli", "server", "--port", str(port)],
                                env={**os.environ, "GOVTRAIN_HOME": str(tmp_path / "other")}, capture_output=True,
                                text=True, timeout=120)
        assert second.returncode == 2
        assert second.stderr.strip() == (f"error: port {port} on 127.0.0.1 is taken (a govtrain server already "
                                          f"running? it serves http://127.0.0.1:{port}); another port: --port N")

        os.kill(server.pid, signal.SIGTERM)  # what `kill PID` and a service manager send
        assert server.wait(timeout=30) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 15
        while answers(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not answers(port), "mlflow server still serving after its govtrain server was stopped"
        with socket.socket() as probe:
            # SO_REUSEADDR: the probes' closed connections may sit in TIME_WAIT on the port; a listener still
            # holding it would make this bind fail all the same
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))  # nothing holds the port any more
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)  # the group this test created
