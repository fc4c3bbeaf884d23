"""Who is acting, as MLflow's basic-auth app vouches for it.

With `mlflow server --app-name basic-auth` (`govtrain server --auth`, or the cluster's MLflow), the identity
is the user whose MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD the server accepts: we ask the server
for that user's own account (`users/get` answers a user about itself only), so a name nobody can log in
as is refused. Without the auth app (the embedded store, a plain server) nobody is authenticated: the
identity is the operating-system user, and records and reports say "identity not authenticated".
"""
from __future__ import annotations

import base64
import getpass
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from govtrain.governance.audit import NOT_AUTHENTICATED

USER_ENV, PASSWORD_ENV = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"


class IdentityError(RuntimeError):
    """The server asks for a login that was not given or that it refused; said in one line."""


@dataclass(frozen=True)
class Identity:
    name: str
    authenticated: bool
    by: str  # the server that vouched, or why nobody did

    def record(self) -> dict:
        return {"user": self.name, "authenticated": self.authenticated, "by": self.by}

    def same_person(self, other: str) -> bool:
        """Case-normalised, and user@host counts as user (an OS actor)."""
        mine, theirs = self.name.casefold(), other.casefold()
        return mine in (theirs, theirs.split("@")[0])


def _get(url: str, credentials: tuple[str, str] | None) -> tuple[int, dict]:
    request = urllib.request.Request(url)
    if credentials:
        token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 - http(s) checked by caller
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}
    except (urllib.error.URLError, OSError) as exc:
        raise IdentityError(f"{url.split('/api/')[0]}: cannot reach MLflow to check who is acting ({exc})") from exc


def whoami(tracking_uri: str) -> Identity:
    """The authenticated MLflow user, or the OS user marked not authenticated."""
    local = Identity(getpass.getuser(), False, f"{NOT_AUTHENTICATED}: operating-system user")
    if not tracking_uri.startswith(("http://", "https://")):
        return local
    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV, "")
    base = tracking_uri.rstrip("/")
    probe = f"{base}/api/2.0/mlflow/users/get?username={urllib.parse.quote(user or '-')}"
    status, body = _get(probe, (user, password) if user else None)
    if status == 404 and not body:
        return local  # no auth app on this server: nobody vouches for a name
    if status == 401:
        if not user:
            raise IdentityError(f"{base} runs MLflow's basic-auth app: set {USER_ENV} and {PASSWORD_ENV} to act")
        raise IdentityError(f"{base} refused the login of {user!r} ({USER_ENV}/{PASSWORD_ENV})")
    if status == 200 and user and body.get("user", {}).get("username") == user:
        return Identity(user, True, f"MLflow basic-auth at {base}")
    raise IdentityError(f"{base}: unexpected answer {status} when checking the login of {user!r}")
