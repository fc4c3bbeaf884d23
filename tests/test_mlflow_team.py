"""The set-up jobs of a team's MLflow server, run for real: MLflow's own upgrade commands on empty
databases, the init container's wait, users created through a real basic-auth server's API, and the
artifact bucket job against botocore's S3 stubber."""
import base64
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from govtrain.registry.team import (
    TeamSetupError,
    auth_schema_state,
    ensure_bucket,
    ensure_users,
    read_users,
    schema_state,
    upgrade_databases,
    wait_for_schema,
)
from tests.conftest import free_port


@pytest.fixture
def databases(tmp_path):
    auth_ini = tmp_path / "basic_auth.ini"
    auth_ini.write_text("[mlflow]\ndefault_permission = READ\n"
                        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
                        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    return f"sqlite:///{tmp_path / 'mlflow.db'}", auth_ini


@pytest.mark.slow  # MLflow's upgrade commands as subprocesses
def test_the_init_container_waits_until_the_upgrade_job_has_run(databases):
    tracking, auth_ini = databases
    with pytest.raises(TeamSetupError, match="tracking database has no MLflow tables yet .*mlflow-db-upgrade Job"):
        wait_for_schema(tracking, auth_ini, timeout=0.3, poll=0.1, log=lambda _: None)
    upgrade_databases(tracking, auth_ini, log=lambda _: None)
    current, head = schema_state(tracking)
    assert current == head and head
    auth_current, auth_head = auth_schema_state(f"sqlite:///{auth_ini.parent / 'auth.db'}")
    assert auth_current == auth_head and auth_head
    wait_for_schema(tracking, auth_ini, timeout=5, poll=0.1, log=lambda _: None)  # returns at once


@pytest.mark.slow  # two MLflow upgrade subprocesses
def test_the_wait_names_an_auth_database_that_is_behind(databases):
    tracking, auth_ini = databases
    upgrade_databases(tracking, None, log=lambda _: None)  # the tracking database only
    with pytest.raises(TeamSetupError, match="auth database has no MLflow tables yet"):
        wait_for_schema(tracking, auth_ini, timeout=0.3, poll=0.1, log=lambda _: None)


def test_users_file_lines_are_checked(tmp_path):
    good = tmp_path / "users"
    good.write_text("# the pipeline's identity\ngovtrain-pipeline:s3cret:with:colons\n\nalice:pw\n")
    assert read_users(good) == {"govtrain-pipeline": "s3cret:with:colons", "alice": "pw"}
    bad = tmp_path / "bad"
    bad.write_text("alice\n")
    with pytest.raises(TeamSetupError, match="line 1: expected name:password"):
        read_users(bad)


def request(url: str, user: str, password: str) -> int:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req = urllib.request.Request(f"{url}/api/2.0/mlflow/experiments/search?max_results=1",
                                 headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except urllib.error.URLError:
        return 0  # not listening yet


@pytest.mark.slow
def test_users_are_created_once_through_a_real_basic_auth_server(databases, tmp_path, monkeypatch):
    tracking, auth_ini = databases
    upgrade_databases(tracking, auth_ini, log=lambda _: None)
    admin_password, port = secrets.token_urlsafe(16), free_port()
    env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(auth_ini), "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
           "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(32)}  # one per deployment, shared by replicas
    with open(tmp_path / "server.log", "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--backend-store-uri", tracking,
             "--artifacts-destination", (tmp_path / "artifacts").as_uri()],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while request(url, "admin", admin_password) != 200:
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "server.log").read_text()[-2000:]
            time.sleep(0.5)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", admin_password)
        users = {"govtrain-pipeline": secrets.token_urlsafe(12), "alice": secrets.token_urlsafe(12)}
        assert ensure_users(url, users, log=lambda _: None) == ["govtrain-pipeline", "alice"]
        assert ensure_users(url, {**users, "alice": "changed"}, log=lambda _: None) == []  # left as it is
        assert request(url, "alice", users["alice"]) == 200
        assert request(url, "alice", "changed") == 401
        assert request(url, "mallory", "guess") == 401
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(Exception, match="401|Unauthorized|credentials"):
            ensure_users(url, {"bob": "pw"}, log=lambda _: None)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_the_bucket_job_creates_a_missing_bucket_once():
    import boto3
    from botocore.stub import Stubber

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y",
                      endpoint_url="http://127.0.0.1:9")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", service_error_code="404", http_status_code=404,
                              expected_params={"Bucket": "mlflow-artifacts"})
        stub.add_response("create_bucket", {}, {"Bucket": "mlflow-artifacts"})
        assert ensure_bucket("mlflow-artifacts", client=s3, log=lambda _: None) is True
        stub.add_response("head_bucket", {}, {"Bucket": "mlflow-artifacts"})
        assert ensure_bucket("mlflow-artifacts", client=s3, log=lambda _: None) is False
        stub.add_client_error("head_bucket", service_error_code="403", http_status_code=403)
        with pytest.raises(TeamSetupError, match="bucket mlflow-artifacts"):
            ensure_bucket("mlflow-artifacts", client=s3, log=lambda _: None)
        stub.assert_no_pending_responses()
