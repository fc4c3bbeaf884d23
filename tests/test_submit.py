"""`govtrain submit` and `compile` for a cluster: what reaches the KFP API (a stand-in of its two
v2beta1 endpoints on 127.0.0.1), how it authenticates behind Kubeflow's auth proxy, and the one-line
refusals of a config that only works on this machine."""
import json
import re
from pathlib import Path

import pytest
import yaml

from govtrain.core.config import ConfigError, load_config
from govtrain.pipelines.submit import KfpAuth, check_cluster_config, submit
from tests.loopback import Loopback, QuietHandler
from tests.test_cli import assert_one_line_error, govtrain

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "configs" / "cluster.yaml"


class FakeKfp(Loopback):
    """The two KFP v2beta1 endpoints `create_run_from_pipeline_package` calls, on 127.0.0.1; it keeps the
    Authorization and Cookie headers of every request."""

    def __init__(self):
        self.runs: list[dict] = []
        self.headers: list[dict[str, str | None]] = []
        fake = self

        class Handler(QuietHandler):
            def _json(self, body: dict) -> None:
                fake.headers.append({"authorization": self.headers.get("Authorization"),
                                     "cookie": self.headers.get("Cookie")})
                self.reply(200, body)

            def do_GET(self):
                self._json({"experiments": []} if self.path.startswith("/apis/v2beta1/experiments") else {})

            def do_POST(self):
                body = json.loads(self.body())
                if self.path.startswith("/apis/v2beta1/experiments"):
                    return self._json({**body, "experiment_id": "exp-1"})
                fake.runs.append(body)
                self._json({**body, "run_id": "run-42", "state": "PENDING"})

        super().__init__(Handler)


@pytest.fixture
def no_kfp_context(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)


@pytest.mark.slow  # multi-second: make test and CI run it, make test-fast does not
def test_submit_sends_the_compiled_pipeline_with_the_config_and_service_account(tmp_path, no_kfp_context):
    config = load_config(CLUSTER)
    with FakeKfp() as kfp_api:
        result = submit(config, CLUSTER, tmp_path / "p.yaml", kfp_api.url, None, "govtrain", "nightly",
                        dry_run=False)
    assert result.run_id == "run-42" and result.url == f"{kfp_api.url}/#/runs/details/run-42"
    [run] = kfp_api.runs
    assert run["display_name"] == "nightly" and run["experiment_id"] == "exp-1"
    assert run["service_account"] == "govtrain-pipeline"
    assert json.loads(run["runtime_config"]["parameters"]["config_json"]) == json.loads(config.to_json())
    assert "run_id" not in run["runtime_config"]["parameters"]  # the backend gives each run its own
    assert "platform_spec" in run["pipeline_spec"]
    assert run["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "govtrain-training"
    assert {h["authorization"] for h in kfp_api.headers} == {None}  # nothing given, nothing sent


@pytest.mark.parametrize("how", ["token", "token_file", "pod"])
def test_submit_authenticates_with_a_bearer_token(tmp_path, no_kfp_context, monkeypatch, how):
    secret = "eyJhbGciOi.not-a-real-token"
    auth = KfpAuth()
    if how == "token":
        auth.token = secret
    elif how == "token_file":
        (tmp_path / "token").write_text(secret + "\n")
        auth.token_file = tmp_path / "token"
    else:  # a pod with Kubeflow's projected pipelines token (PodDefault "access-ml-pipeline")
        (tmp_path / "sa-token").write_text(secret)
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
        monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "sa-token"))
    with FakeKfp() as kfp_api:
        submit(load_config(CLUSTER), CLUSTER, tmp_path / "p.yaml", kfp_api.url, None, "govtrain", None,
               dry_run=False, auth=auth)
    assert kfp_api.runs and {h["authorization"] for h in kfp_api.headers} == {f"Bearer {secret}"}


def test_submit_passes_the_auth_proxy_cookie(tmp_path, no_kfp_context):
    with FakeKfp() as kfp_api:
        submit(load_config(CLUSTER), CLUSTER, tmp_path / "p.yaml", kfp_api.url, None, "govtrain", None,
               dry_run=False, auth=KfpAuth(cookies="oauth2_proxy_kubeflow=abc123"))
    assert {h["cookie"] for h in kfp_api.headers} == {"oauth2_proxy_kubeflow=abc123"}


@pytest.mark.slow  # starts the govtrain command
def test_submit_refuses_an_empty_token_file_in_one_line(tmp_path, no_kfp_context):
    (tmp_path / "empty").write_text("\n")
    result = govtrain("submit", "--host", "http://127.0.0.1:9", "--config", CLUSTER, "--out", tmp_path / "p.yaml",
                      "--token-file", tmp_path / "empty")
    assert_one_line_error(result, "--token-file")
    assert "the file is empty" in result.stderr


@pytest.mark.parametrize("key,value,message", [
    ("registry.tracking_uri", "sqlite:////home/me/mlflow.db", "needs the MLflow server's http(s) URL"),
    ("dataset.path", "/home/me/credit.parquet", "dataset.path: /home/me/credit.parquet is a path on this machine"),
    ("validation.suite", "/home/me/suite.json", "validation.suite: /home/me/suite.json is a path on this machine"),
])
def test_compile_refuses_what_only_works_on_this_machine(tmp_path, key, value, message):
    raw = yaml.safe_load(CLUSTER.read_text())
    section, name = key.split(".")
    raw[section][name] = value
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_cluster_config(load_config(path), path)


@pytest.mark.slow  # starts the govtrain command
def test_compile_says_so_in_one_line_and_writes_nothing(tmp_path):
    raw = yaml.safe_load(CLUSTER.read_text())
    raw["dataset"]["path"] = "/home/me/credit.parquet"
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = govtrain("compile", "--config", path, "--out", tmp_path / "p.yaml")
    assert_one_line_error(result, "dataset.path: /home/me/credit.parquet is a path on this machine")
    assert not (tmp_path / "p.yaml").exists()


def test_one_namespace_for_the_steps_their_job_and_mlflow(tmp_path):
    raw = yaml.safe_load(CLUSTER.read_text())
    raw["cluster"]["namespace"] = "govtrain-dev"
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="tracking_uri names namespace 'govtrain' but cluster.namespace is "
                                          "'govtrain-dev'"):
        check_cluster_config(load_config(path), path)
    with pytest.raises(ConfigError, match="--namespace team-a: .* sets cluster.namespace 'govtrain'"):
        submit(load_config(CLUSTER), CLUSTER, tmp_path / "p.yaml", "http://127.0.0.1:9", "team-a", "govtrain",
               None, dry_run=False)


@pytest.mark.slow  # starts the govtrain command
def test_the_shipped_cluster_config_compiles(tmp_path):
    result = govtrain("compile", "--config", CLUSTER, "--out", tmp_path / "p.yaml")
    assert result.returncode == 0, result.stderr
