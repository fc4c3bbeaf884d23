"""A real `mlflow server` on the embedded store (sqlite + a local artifact root in the state folder),
on 127.0.0.1 only. `govtrain server`/`ui` and the tests start it the same way.

With auth=True it runs MLflow's basic-auth app (users in <state>/basic_auth.db). Every user may read and
nothing more (default_permission READ, as MLflow's own template): the admin grants each registrar, approver
and monitor EDIT on what its role writes (`govtrain mlflow grant`, registry/team.py); who did what is then
vouched for by the server. The stores that hold credentials or registry data are made 0600. The
admin's password comes from MLFLOW_AUTH_ADMIN_PASSWORD (MLflow's own variable; `govtrain server --auth
--admin-password-file F` sets it from a file) and is needed only the first time, when the admin is made."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from govtrain.core.state import embedded_tracking_uri, private_file


class PortTaken(RuntimeError):
    """Another process listens on the port: a second server would answer /health with the first one's."""


def port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise PortTaken(f"port {port} on 127.0.0.1 is taken (a govtrain server already running? it serves "
                            f"http://127.0.0.1:{port}); another port: --port N") from None


def stop_on_sigterm() -> None:
    """SIGTERM (kill PID, a service manager) leaves through the `with` as Ctrl-C does, so the server's
    process group is stopped, not orphaned."""
    def leave(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


class EmbeddedServer:
    def __init__(self, state: Path, port: int, auth: bool = False):
        self.state, self.port, self.auth = Path(state), port, auth
        self.url = f"http://127.0.0.1:{port}"
        self.store = embedded_tracking_uri(self.state)
        self.proc: subprocess.Popen  # started by __enter__

    def __enter__(self) -> EmbeddedServer:
        port_free(self.port)
        self.state.mkdir(parents=True, exist_ok=True)
        private_file(self.state / "mlflow.db")
        env = dict(os.environ)
        app = []
        if self.auth:
            env.update(self._auth_env())
            app = ["--app-name", "basic-auth"]
        log = open(self.state / "mlflow-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", *app, "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", self.store,
             "--artifacts-destination", (self.state / "mlartifacts").as_uri()],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        log.close()
        return self

    def _auth_env(self) -> dict[str, str]:
        import secrets

        from govtrain.registry.team import upgrade_databases

        users = self.state / "basic_auth.db"
        if not users.exists() and not os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
            raise RuntimeError("the first `govtrain server --auth` makes the admin: set MLFLOW_AUTH_ADMIN_PASSWORD "
                               "or pass --admin-password-file")
        ini = self.state / "basic_auth.ini"
        private_file(users)
        ini.write_text(f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{users}\n"
                       f"admin_username = {os.environ.get('MLFLOW_AUTH_ADMIN_USERNAME', 'admin')}\n"
                       "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
                       "auth_cache_ttl_seconds = 60\n")  # one PBKDF2 check per user a minute, not per request
        upgrade_databases(self.store, ini, log=lambda _: None)
        # Sessions of the UI are signed with this; one per server start is enough on one machine.
        return {"MLFLOW_AUTH_CONFIG_PATH": str(ini),
                "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY",
                                                                 secrets.token_urlsafe(32))}

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
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # a loaded machine: graceful shutdown is not worth a minute
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
