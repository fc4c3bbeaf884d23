"""Secrets planted where people paste them (a tracking URI with user:password@, a token in a query, a webhook
URL that is its own token) are refused or redacted, never written; and inputs past their bounds (a config or
suite too big, too deep, an alias bomb) are one line each. Issue 34, items 8 and 10."""
import json
from pathlib import Path

import pytest
import yaml

from govtrain.components.validate import MAX_EXPECTATIONS, load_suite
from govtrain.core.config import ConfigError, load_config
from govtrain.core.secrets import redact, url_credential
from govtrain.data.io import DataError
from govtrain.monitoring.webhook import post
from tests.test_cli import assert_one_line_error, govtrain

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "pl4nted-S3CRET"


def demo_config(tmp_path, **registry):
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw["registry"] = {**raw.get("registry", {}), **registry}
    path = tmp_path / "planted.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("uri,what", [
    (f"http://alice:{PLANTED}@127.0.0.1:5000", "a password (user:password@)"),
    (f"https://mlflow.example.com/?token={PLANTED}", "a credential in its query (token=)"),
    (f"https://mlflow.example.com/api?x=1&api_key={PLANTED}", "a credential in its query (api_key=)"),
])
def test_a_tracking_uri_with_a_credential_is_refused_naming_the_key_and_the_variable(tmp_path, uri, what):
    path = demo_config(tmp_path, tracking_uri=uri)
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    line = str(refused.value)
    assert line.startswith(f"{path}: registry.tracking_uri: holds {what}") and "MLFLOW_TRACKING_PASSWORD" in line
    assert PLANTED not in line
    if "@" not in uri:
        return  # the CLI path once (each call is a process start)
    for command in (["run", "--config", path], ["compile", "--out", tmp_path / "p.yaml", "--config", path]):
        result = govtrain(*command)
        assert_one_line_error(result, "registry.tracking_uri: holds")
        assert PLANTED not in result.stderr + result.stdout
    assert not (tmp_path / "p.yaml").exists()  # nothing compiled, so nothing to leak


def test_a_credential_in_mlflow_tracking_uri_is_refused_by_model_commands(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://bob:{PLANTED}@127.0.0.1:9")
    result = govtrain("history", "--model", "credit")
    assert_one_line_error(result, "MLFLOW_TRACKING_URI holds a password", "MLFLOW_TRACKING_USERNAME")
    assert PLANTED not in result.stderr


def test_an_artefact_link_with_a_signed_query_is_refused(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "demo.yaml").read_text())
    raw["governance"] = {"artefacts": {"GOVERN 1.2": {"url": f"https://b.s3.amazonaws.com/p.pdf?X-Amz-Signature={PLANTED}"}}}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match=r"governance.artefacts.GOVERN 1.2.url: holds a credential in its query") as e:
        load_config(path)
    assert PLANTED not in str(e.value)


def test_redact_masks_credentials_and_leaves_the_rest():
    assert redact(f"connect to https://u:{PLANTED}@h:5000/api failed") == "connect to https://u:***@h:5000/api failed"
    assert redact(f"GET /hook?id=7&token={PLANTED}&x=1") == "GET /hook?id=7&token=***&x=1"
    assert redact("no secret in http://h:5000/a?page=2") == "no secret in http://h:5000/a?page=2"
    assert url_credential("http://h:5000/a?page=2") is None


def test_a_webhook_url_without_a_scheme_is_refused_without_writing_it():
    """Before: the whole token URL went into the signed `notify` record through the error line."""
    outcome = post(f"hooks.example.com/services/T000/B000/{PLANTED}", b"{}", None)
    assert outcome["delivered"] is False and PLANTED not in json.dumps(outcome)
    assert outcome["error"].endswith("not one with no scheme (value not shown)")
    outcome = post(f"https://u:{PLANTED}@127.0.0.1:9/hook", b"{}", None, attempts=1, backoff=0, timeout=1)
    assert outcome["delivered"] is False and PLANTED not in json.dumps(outcome)


def test_a_config_past_its_bounds_is_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("dataset:\n  path: x.csv\n  target: y\n# " + "x" * (1024 * 1024) + "\n")
    with pytest.raises(ConfigError, match=r"big.yaml: \d+ bytes; a config may be at most 1048576 bytes"):
        load_config(big)
    deep = tmp_path / "deep.yaml"
    deep.write_text("dataset: " + "[" * 40 + "]" * 40 + "\n")
    with pytest.raises(ConfigError, match="deep.yaml: config nested deeper than 32 levels"):
        load_config(deep)
    bomb = tmp_path / "bomb.yaml"  # the billion laughs: nine levels of nine aliases each
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [{','.join(['*a' + str(i - 1)] * 9)}]" for i in range(1, 9)]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="bomb.yaml: config holds more than 100000 values"):
        load_config(bomb)
    result = govtrain("run", "--config", bomb)
    assert_one_line_error(result, "holds more than 100000 values")


def test_a_suite_past_its_bounds_is_one_line(tmp_path):
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"expectations": [], "notes": "x" * (9 * 1024 * 1024)}))
    with pytest.raises(DataError, match=r"huge.json: \d+ bytes; an expectation suite may be at most 8388608 bytes"):
        load_suite(huge)
    many = tmp_path / "many.json"
    expectation = {"type": "expect_column_to_exist", "kwargs": {"column": "a"}}
    many.write_text(json.dumps({"expectations": [expectation] * (MAX_EXPECTATIONS + 1)}))
    with pytest.raises(DataError, match=f"many.json: {MAX_EXPECTATIONS + 1} expectations; a suite may hold at most"):
        load_suite(many)
    deep = tmp_path / "deep.json"
    deep.write_text(json.dumps({"expectations": [], "meta": json.loads("[" * 50 + "]" * 50)}))
    with pytest.raises(DataError, match="deep.json: suite nested deeper than 32 levels"):
        load_suite(deep)
