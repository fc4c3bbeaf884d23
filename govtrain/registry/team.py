"""MLflow for a team on a cluster: the jobs that run before and beside the tracking server.

- upgrade_databases: the one-off Job that runs MLflow's own `mlflow db upgrade` on the tracking database
  and the basic-auth app's `db upgrade` on its user database.
- wait_for_schema: the server's init container waits until that Job has brought both databases to
  MLflow's head revisions, so replicas never race to create tables on an empty database.
- ensure_users: the basic-auth app's users, created from a Secret through the app's own API (as admin),
  once; existing users are left as they are.
- grant_role: least privilege on a server whose default permission is READ (MLflow's own template):
  a registrar, an approver or the drift monitor gets EDIT on exactly the experiment and model it writes.
- ensure_bucket: the artifact bucket, created if missing (MinIO or any S3 API).
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path


class TeamSetupError(RuntimeError):
    """One line: what is not ready and why."""


def auth_database_uri(auth_config: Path) -> str:
    """The basic-auth app's user database, as its own config file (MLFLOW_AUTH_CONFIG_PATH) names it."""
    import configparser

    parser = configparser.ConfigParser()
    if not parser.read(auth_config):
        raise TeamSetupError(f"{auth_config}: auth config file not found")
    try:
        return parser["mlflow"]["database_uri"]
    except KeyError as exc:
        raise TeamSetupError(f"{auth_config}: [mlflow] database_uri is missing") from exc


def upgrade_databases(backend_uri: str, auth_config: Path | None, log: Callable[[str], None] = print) -> None:
    """MLflow's own upgrade commands, run once by a Job before any server replica starts."""
    import subprocess
    import sys

    commands = [("tracking", [sys.executable, "-m", "mlflow", "db", "upgrade", backend_uri])]
    if auth_config is not None:
        commands.append(("auth", [sys.executable, "-m", "mlflow.server.auth", "db", "upgrade", "--url",
                                  auth_database_uri(auth_config)]))
    for name, command in commands:
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise TeamSetupError(f"{name} database upgrade failed (exit {done.returncode}): {last}")
        log(f"{name} database upgraded to MLflow's head revision")


def auth_schema_state(uri: str) -> tuple[str | None, str]:
    """(the auth database's revision or None, the basic-auth app's head revision)."""
    import sqlalchemy
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from mlflow.server.auth.db.utils import _get_alembic_config

    engine = sqlalchemy.create_engine(uri)
    try:
        head = ScriptDirectory.from_config(_get_alembic_config(uri)).get_current_head()
        with engine.connect() as conn:
            current = MigrationContext.configure(conn, opts={"version_table": "alembic_version_auth"}
                                                 ).get_current_revision()
    finally:
        engine.dispose()
    return current, head or ""


def schema_state(uri: str) -> tuple[str | None, str]:
    """(the database's alembic revision or None when it has no tables, MLflow's head revision)."""
    from mlflow.store.db.utils import (
        _all_tables_exist,
        _get_latest_schema_revision,
        _get_schema_version,
        create_sqlalchemy_engine,
    )

    engine = create_sqlalchemy_engine(uri)
    try:
        current = _get_schema_version(engine) if _all_tables_exist(engine) else None
    finally:
        engine.dispose()
    return current, _get_latest_schema_revision()


def _not_ready(name: str, state: Callable[[str], tuple[str | None, str]], uri: str) -> str | None:
    """Why the database is not at its head revision yet, or None when it is."""
    try:
        current, head = state(uri)
    except Exception as exc:  # the database may not accept connections yet  # noqa: BLE001
        return f"{name} database not reachable ({type(exc).__name__})"
    if current is None:
        return f"{name} database has no MLflow tables yet"
    return None if current == head else f"{name} database at revision {current}, MLflow wants {head}"


def wait_for_schema(uri: str, auth_config: Path | None, timeout: float, poll: float = 5.0,
                    log: Callable[[str], None] = print) -> None:
    """Block until the tracking (and the auth) database is at MLflow's head revision."""
    checks = [("tracking", schema_state, uri)]
    if auth_config is not None:
        checks.append(("auth", auth_schema_state, auth_database_uri(auth_config)))
    deadline = time.monotonic() + timeout
    while True:
        why = next((w for name, state, target in checks if (w := _not_ready(name, state, target))), None)
        if why is None:
            log("databases at MLflow's head revisions")
            return
        if time.monotonic() > deadline:
            raise TeamSetupError(f"not ready after {timeout:.0f} s: {why} (has the mlflow-db-upgrade Job run?)")
        log(f"waiting: {why}")
        time.sleep(poll)


def read_users(path: Path) -> dict[str, str]:
    """`name:password` per line; # comments and blank lines ignored."""
    users = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, password = line.partition(":")
        if not sep or not name.strip() or not password:
            raise TeamSetupError(f"{path}: line {number}: expected name:password")
        users[name.strip()] = password
    return users


def ensure_users(tracking_uri: str, users: dict[str, str], log: Callable[[str], None] = print) -> list[str]:
    """Create the users the basic-auth app does not have yet; returns the names created. Authenticates
    as the admin from MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD."""
    from mlflow.exceptions import RestException
    from mlflow.server.auth.client import AuthServiceClient

    client, created = AuthServiceClient(tracking_uri), []
    for name, password in users.items():
        try:
            client.get_user(name)
            log(f"user {name}: exists, left as it is")
            continue
        except RestException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise TeamSetupError(f"user {name}: {exc.message}") from exc
        client.create_user(name, password)
        created.append(name)
        log(f"user {name}: created")
    return created


# What each role writes, so what it is granted EDIT on (everything else it may only read):
#   registrar  logs the pipeline run (experiment) and creates versions, tags and the chain anchor (model)
#   approver   moves the champion alias and rewrites the card and anchor (model)
#   monitor    logs drift runs (experiment) and moves the chain anchor (model)
ROLES = {"registrar": ("experiment", "model"), "approver": ("model",), "monitor": ("experiment", "model")}


def grant_role(tracking_uri: str, user: str, role: str, model: str, experiment: str,
               log: Callable[[str], None] = print) -> list[str]:
    """EDIT for `user` on what `role` writes (ROLES), as the admin named by MLFLOW_TRACKING_USERNAME/PASSWORD.
    The experiment and registered model are created first if missing, so a grant can precede the first run.
    Returns one line per grant."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException, RestException
    from mlflow.server.auth.client import AuthServiceClient

    if role not in ROLES:
        raise TeamSetupError(f"role {role!r}: one of {', '.join(ROLES)}")
    auth, tracking, done = AuthServiceClient(tracking_uri), MlflowClient(tracking_uri), []
    for kind in ROLES[role]:
        if kind == "model":
            try:
                tracking.get_registered_model(model)
            except MlflowException:
                tracking.create_registered_model(model)
            resource_type, resource_id, label = "registered_model", model, f"model {model}"
        else:
            found = tracking.get_experiment_by_name(experiment)
            resource_id = found.experiment_id if found else tracking.create_experiment(experiment)
            resource_type, label = "experiment", f"experiment {experiment}"
        try:  # MLflow's unified per-user grant (3.x)
            auth.grant_user_permission(user, resource_type, resource_id, "EDIT")
            line = f"{user}: EDIT on {label} ({role})"
        except RestException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise TeamSetupError(f"{role} {user}: {exc.message}") from exc
            held = auth.get_user_permission(user, resource_type, resource_id).permission
            if held in ("EDIT", "MANAGE"):
                line = f"{user}: already {held} on {label} ({role})"
            else:  # a narrower grant (READ, NO_PERMISSIONS) is replaced
                auth.revoke_user_permission(user, resource_type, resource_id)
                auth.grant_user_permission(user, resource_type, resource_id, "EDIT")
                line = f"{user}: EDIT on {label}, was {held} ({role})"
        done.append(line)
        log(line)
    return done


def ensure_bucket(bucket: str, client=None, log: Callable[[str], None] = print) -> bool:
    """Create the S3 bucket if it does not exist (endpoint and keys from MLFLOW_S3_ENDPOINT_URL and the
    AWS_* variables); True when it was created."""
    import boto3
    from botocore.exceptions import ClientError

    s3 = client or boto3.client("s3", endpoint_url=os.environ.get("MLFLOW_S3_ENDPOINT_URL"))
    try:
        s3.head_bucket(Bucket=bucket)
        log(f"bucket {bucket}: exists")
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
            raise TeamSetupError(f"bucket {bucket}: {exc}") from exc
    s3.create_bucket(Bucket=bucket)
    log(f"bucket {bucket}: created")
    return True
