"""Authenticated identities against a real `mlflow server --app-name basic-auth` (as `govtrain server --auth`
starts it), users created through its API: who registered and who approved are the logged-in users, and
separation of duties compares them case-normalised on promote and rollback.

Measured before: `--approver` was free text compared case-sensitively with the OS user of the registering
process, so `--approver Root` or any other name passed, and rollback had no check."""
import getpass
import secrets

import pytest
import yaml
from conftest import base_config, free_port

from govtrain.core.config import load_config
from govtrain.governance.chain import read_chain
from govtrain.pipelines.run import run_local
from govtrain.registry.identity import IdentityError, whoami
from govtrain.registry.lifecycle import Refused, promote, rollback
from govtrain.registry.server import EmbeddedServer
from govtrain.registry.team import ensure_users, grant_role

pytestmark = pytest.mark.slow  # real pipeline runs, MLflow servers or DDP workers


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """A basic-auth server with users carol, CAROL (a second account whose name differs only in case), alice
    and bob."""
    state = tmp_path_factory.mktemp("auth-state")
    admin = secrets.token_urlsafe(16)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLFLOW_AUTH_ADMIN_PASSWORD", admin)
        server = EmbeddedServer(state, free_port(), auth=True).__enter__()
    try:
        server.wait_healthy(120)
        passwords = {name: secrets.token_urlsafe(12) for name in ("carol", "CAROL", "alice", "bob", "eve")}
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            env.setenv("MLFLOW_TRACKING_PASSWORD", admin)
            ensure_users(server.url, passwords, log=lambda _: None)
            # Least privilege: everyone reads; each gets EDIT on what their role writes; eve gets nothing.
            for user, role in (("carol", "registrar"), ("alice", "registrar"), ("alice", "approver"),
                               ("carol", "approver"), ("bob", "approver")):
                grant_role(server.url, user, role, "auth-credit", "govtrain", log=lambda _: None)
        for store in ("basic_auth.db", "mlflow.db"):  # password hashes and the registry: the owner's only
            assert (state / store).stat().st_mode & 0o777 == 0o600
        assert "default_permission = READ" in (state / "basic_auth.ini").read_text()
        yield server.url, passwords
    finally:
        server.__exit__(None, None, None)


def login(monkeypatch, passwords, name, password=None):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password or passwords[name])


def test_registrations_and_approvals_are_the_logged_in_users(team, small_data, tmp_path, isolated_state,
                                                            monkeypatch):
    url, passwords = team
    raw = base_config(small_data.data)
    raw["registry"] = {"tracking_uri": url, "model_name": "auth-credit"}
    raw["governance"] = {"chain_dir": str(tmp_path / "chains")}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    config = load_config(tmp_path / "config.yaml")

    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    with pytest.raises(IdentityError, match="runs MLflow's basic-auth app: set MLFLOW_TRACKING_USERNAME"):
        whoami(url)
    login(monkeypatch, passwords, "alice", "a guess")
    with pytest.raises(IdentityError, match="refused the login of 'alice'"):
        whoami(url)

    login(monkeypatch, passwords, "carol")
    v1 = run_local(config, isolated_state, show_progress=False)
    register = next(r for r in v1.ledger["records"] if r["step"] == "register")
    assert register["details"]["registered_by"] == {"user": "carol", "authenticated": True,
                                                    "by": f"MLflow basic-auth at {url}"}
    version = v1.registration["version"]

    # Impersonation: whoever logs in is the approver, whatever --approver says.
    with pytest.raises(Refused, match="approver 'carol' registered it"):
        promote(config, "auth-credit", version, None, "self-approval")
    with pytest.raises(Refused, match="--approver 'alice' is not the authenticated MLflow user 'carol'"):
        promote(config, "auth-credit", version, "alice", "claiming to be alice")  # carol is still logged in
    login(monkeypatch, passwords, "CAROL")
    with pytest.raises(Refused, match="approver 'CAROL' registered it \\(as 'carol'"):
        promote(config, "auth-credit", version, None, "a second account, the same name")
    login(monkeypatch, passwords, "alice")
    with pytest.raises(Refused, match="--approver 'Carol' is not the authenticated MLflow user 'alice'"):
        promote(config, "auth-credit", version, "Carol", "a typed name")
    move = promote(config, "auth-credit", version, None, "meets the bar")
    assert move.record["details"]["approver"] == "alice"
    assert move.record["details"]["approver_identity"]["authenticated"] is True

    # A second version registered by alice, promoted by carol; rolling back to carol's own version is
    # refused for carol and done by bob.
    v2 = run_local(config, isolated_state, show_progress=False)
    login(monkeypatch, passwords, "carol")
    promote(config, "auth-credit", v2.registration["version"], None, "better on paper")
    with pytest.raises(Refused, match="approver 'carol' registered it"):
        rollback(config, "auth-credit", None, "back to my own version")
    login(monkeypatch, passwords, "bob")
    back = rollback(config, "auth-credit", None, "regressed")
    assert back.to_version == version and back.record["details"]["approver"] == "bob"
    approvers = [(r["step"], r["details"]["approver"]) for r in read_chain(config.chain_dir, "auth-credit")
                 if r["step"] in ("promote", "rollback")]
    assert approvers == [("promote", "alice"), ("promote", "carol"), ("rollback", "bob")]

    # A user with no grant reads, and cannot move the champion or edit a version in MLflow directly.
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    login(monkeypatch, passwords, "eve")
    client = MlflowClient(url)
    assert client.get_model_version_by_alias("auth-credit", "champion").version == version
    for write in (lambda: client.set_registered_model_alias("auth-credit", "champion", v2.registration["version"]),
                  lambda: client.set_model_version_tag("auth-credit", version, "govtrain.gate.auc", "pass"),
                  lambda: client.update_model_version("auth-credit", version, description="edited")):
        with pytest.raises(MlflowException, match="Permission denied"):
            write()


def test_without_the_auth_app_identities_are_said_to_be_unauthenticated(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")  # a name nobody checks
    who = whoami("sqlite:///nowhere.db")
    assert (who.name, who.authenticated) == (getpass.getuser(), False)
    assert who.by.startswith("identity not authenticated")
