"""A registered version serves where govtrain is not installed (`mlflow models serve` as a real process
on 127.0.0.1, govtrain hidden from its interpreter), and `govtrain deploy` renders the InferenceService
KServe would accept for it: the vendored v0.20.0 CRD schema, KServe's admission rules, and a refusal of
versions a runtime without govtrain could not load."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from functools import cache
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from govtrain.core.config import load_config
from govtrain.pipelines.deploy import (
    DeployError,
    build_inference_service,
    build_serving_runtime,
    check_webhook_rules,
    storage_uri,
)
from govtrain.registry.models import client_for, load_version_model, parse_ref, resolve
from govtrain.registry.serving import ServableModel, servable_model
from tests.conftest import ROOT, free_port
from tests.fake_kube import validate
from tests.test_cli import govtrain

ISVC_CRD = ROOT / "infra" / "crds" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
RUNTIME_CRD = ROOT / "infra" / "crds" / "kserve" / "serving.kserve.io_servingruntimes.yaml"
# Imported first by every interpreter started with it on PYTHONPATH: drops the editable install's
# finder, so `import govtrain` finds only what the served model ships (its MLflow code_paths).
HIDE_GOVTRAIN = '''import sys
sys.meta_path[:] = [f for f in sys.meta_path
                    if "__editable__" not in (getattr(f, "__module__", None) or type(f).__module__)]
'''


@cache
def isvc_schema() -> dict:
    crd = yaml.load(ISVC_CRD.read_text(), Loader=yaml.CSafeLoader)  # 2 MB: the C loader, once
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")["schema"]["openAPIV3Schema"]


@cache
def runtime_schema() -> dict:
    crd = yaml.load(RUNTIME_CRD.read_text(), Loader=yaml.CSafeLoader)
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")["schema"]["openAPIV3Schema"]


def ask_served(mlflow_server: str, ref: str, rows: pd.DataFrame, tmp_path: Path) -> list[dict]:
    """Serve `models:/<ref>` with `mlflow models serve` (a real process on 127.0.0.1, govtrain hidden from its
    interpreter), post the rows over REST, stop the server by its process group; returns the predictions."""
    (tmp_path / "hide").mkdir(exist_ok=True)
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE_GOVTRAIN)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "hide"), "MLFLOW_TRACKING_URI": mlflow_server,
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    probe = subprocess.run([sys.executable, "-c", "import govtrain"], env=env, cwd=tmp_path, capture_output=True)
    assert probe.returncode != 0  # the serving interpreter really has no govtrain

    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{ref}",
                                   "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                                  env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                                 headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    return json.loads(response.read())["predictions"]
            except (urllib.error.URLError, ConnectionError):
                log_text = (tmp_path / "serve.log").read_text(errors="replace")
                assert server.poll() is None and time.monotonic() < deadline, log_text[-3000:]
                time.sleep(1)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


@pytest.mark.slow
def test_a_registered_version_serves_over_rest_where_govtrain_is_not_installed(served, small_data, mlflow_server,
                                                                                 tmp_path):
    run, ref = served
    rows = pd.read_parquet(run.run_dir / "data" / "test.parquet").head(20)
    answer = ask_served(mlflow_server, ref, rows, tmp_path)
    served_scores = [p["probability"] for p in answer]
    local = load_version_model(resolve(client_for(mlflow_server), parse_ref(ref)), tmp_path / "local")
    assert served_scores == pytest.approx(local.predict_proba(rows).tolist(), abs=1e-6)
    assert [p["label"] for p in answer] == (local.predict_proba(rows) >= 0.5).astype(int).tolist()


@pytest.mark.slow
def test_the_logged_model_carries_its_code_exact_requirements_and_a_signature(served, mlflow_server):
    _, ref = served
    model = servable_model(mlflow_server, ref)
    assert model.problems() == [] and model.signature and model.code_paths
    names = {r.split("==")[0].lower() for r in model.requirements}
    assert {"torch", "safetensors", "pandas", "numpy", "mlflow"} <= names and "govtrain" not in names
    info = mlflow.models.get_model_info(f"models:/{ref}")
    inputs = {c["name"]: c["type"] for c in info.signature.inputs.to_dict()}
    assert inputs["income"] == "double" and inputs["region"] == "string"


@pytest.mark.slow
def test_deploy_renders_an_inference_service_kserve_accepts(served, mlflow_server, tmp_path):
    run, ref = served
    out = tmp_path / "isvc.yaml"
    result = govtrain("deploy", "--model", ref, "--config", ROOT / "configs" / "cluster.yaml", "--tracking-uri",
                      mlflow_server, "--dry-run", "--out", out)
    assert result.returncode == 0, result.stderr
    runtime, isvc = yaml.safe_load_all(out.read_text())
    validate(runtime, runtime_schema())
    assert isvc["spec"]["predictor"]["model"]["runtime"] == runtime["metadata"]["name"] == "govtrain-mlserver"
    validate(isvc, isvc_schema())
    check_webhook_rules(isvc)
    assert isvc["metadata"] == {
        "name": "served-credit", "namespace": "govtrain",
        "labels": {"app.kubernetes.io/part-of": "govtrain", "govtrain/model": "served-credit",
                   "govtrain/version": run.registration["version"]},
        "annotations": {"govtrain/model": "served-credit", "govtrain/version": run.registration["version"],
                        "govtrain/ledger-root": run.ledger["root"], "sidecar.istio.io/inject": "false"}}
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "mlflow"} and model["protocolVersion"] == "v2"
    # The embedded test server proxies artifacts (mlflow-artifacts:/...); on the cluster the same path
    # lies under the server's --artifacts-destination.
    assert model["storageUri"].startswith("s3://mlflow-artifacts/") and model["storageUri"].endswith("/artifacts")
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "govtrain-serving"
    assert "dry run: nothing applied" in result.stdout


@pytest.mark.slow
def test_deploy_refuses_a_version_logged_without_code_pins_or_signature(served, mlflow_server):
    run, _ = served
    client = client_for(mlflow_server)
    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=str(ROOT / "govtrain" / "model" / "pyfunc.py"),
                                       artifacts={"model_dir": str(run.run_dir / "files" / "train")},
                                       pip_requirements=["torch", "govtrain"])
    client.create_registered_model("old-style")
    version = client.create_model_version("old-style", source=f"models:/{info.model_id}", model_id=info.model_id)
    with pytest.raises(DeployError, match="not servable without govtrain: its MLmodel has no signature"):
        build_inference_service(load_config(ROOT / "configs" / "cluster.yaml"),
                                servable_model(mlflow_server, f"old-style/{version.version}"))


def good_model(**changes) -> ServableModel:
    fields = {"name": "Credit Risk", "version": "3", "artifact_uri": "mlflow-artifacts:/1/models/m-1/artifacts",
              "ledger_root": "ab" * 32, "signature": True, "code_paths": True,
              "requirements": ["mlflow==3.17.2", "torch==2.13.0"]}
    return ServableModel(**{**fields, **changes})


def test_deploy_logs_every_request_as_parquet_on_a_runtime_that_carries_the_model(tmp_path):
    """The payload logger as KServe's webhook and agent take it (v0.20.0), keyed per version, and the
    ServingRuntime shaped as the stock kserve-mlserver with the serving image; both pass their CRD schemas."""
    config = load_config(ROOT / "configs" / "cluster.yaml")
    isvc = build_inference_service(config, good_model())
    logger = isvc["spec"]["predictor"]["logger"]
    assert logger == {"mode": "all", "url": "s3://mlflow-artifacts/capture",
                      "storage": {"key": "govtrain-capture", "path": "v3", "parameters": {"format": "parquet"}},
                      "batchSize": 100, "batchInterval": "60s",
                      "metadataAnnotations": ["govtrain/model", "govtrain/version"]}
    assert isvc["metadata"]["annotations"]["govtrain/version"] == "3"
    validate(isvc, isvc_schema())
    runtime = build_serving_runtime(config)
    validate(runtime, runtime_schema())
    assert runtime["metadata"]["annotations"] == {"serving.kserve.io/server-type": "mlserver"}
    assert runtime["spec"]["supportedModelFormats"] == [{"name": "mlflow", "version": "2", "autoSelect": False}]
    container = runtime["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/govtrain/govtrain-serving:0.1.0" and container["command"][0] == "mlserver"
    no_logger = config.model_copy(update={"cluster": config.cluster.model_copy(update={"capture_uri": None})})
    assert "logger" not in build_inference_service(no_logger, good_model())["spec"]["predictor"]
    for spoil, message in [(lambda lg: lg.update(mode="everything"), "invalid logger type"),
                           (lambda lg: lg["storage"].pop("key"), "path, parameters and key are all required"),
                           (lambda lg: lg.update(url="http://dumper.default"), "stores blobs only under"),
                           (lambda lg: lg["storage"]["parameters"].update(format="avro"), "silently becomes json")]:
        bad = build_inference_service(config, good_model())
        spoil(bad["spec"]["predictor"]["logger"])
        with pytest.raises(DeployError, match=message):
            check_webhook_rules(bad)


def test_what_deploy_checks_and_refuses():
    config = load_config(ROOT / "configs" / "cluster.yaml")
    isvc = build_inference_service(config, good_model())
    validate(isvc, isvc_schema())
    assert isvc["metadata"]["name"] == "credit-risk"
    assert isvc["spec"]["predictor"]["model"]["storageUri"] == "s3://mlflow-artifacts/1/models/m-1/artifacts"
    assert storage_uri(config, "gs://bucket/models/m-1") == "gs://bucket/models/m-1"
    for changes, message in [({"requirements": ["mlflow==3.17.2", "torch"]}, "'torch' is not pinned"),
                             ({"signature": False}, "no signature"), ({"code_paths": False}, "ships no code"),
                             ({"artifact_uri": "file:///home/me/mlartifacts/1"}, "cannot download from")]:
        with pytest.raises(DeployError, match=message):
            build_inference_service(config, good_model(**changes))
    for spoil, message in [(lambda i: i["spec"]["predictor"]["model"].update(protocolVersion="v1"), "v2 only"),
                           (lambda i: i["metadata"].update(name="Credit_Risk"), "DNS-1035"),
                           (lambda i: i["spec"]["predictor"].update(sklearn={}), "exactly one"),
                           (lambda i: i["spec"]["predictor"]["model"].update(storageUri="ftp://x"), "scheme")]:
        bad = build_inference_service(config, good_model())
        spoil(bad)
        with pytest.raises(DeployError, match=message):
            check_webhook_rules(bad)
