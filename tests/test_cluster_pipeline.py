"""The compiled cluster pipeline read the way the KFP backend reads it (IR tests, no cluster).

The backend's rules encoded here, from its driver (backend/src/v2/driver): a pipeline parameter's
default reaches every run as literal text; placeholders such as {{$.pipeline_job_uuid}} are filled in
per run only in constant task inputs (KFP's own test data, sdk/python/test_data/pipelines/
pipeline_with_placeholders.py, passes them that way). Caching is keyed on a task's inputs.
"""
import json
import re
from pathlib import Path

import pytest
import yaml
from kfp import components

from govtrain.core.config import load_config
from govtrain.pipelines.run import compile_pipeline
from govtrain.pipelines.submit import submit

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{\{\$\.[^}]+\}\}")


def compiled(tmp_path: Path, pipeline: str = "training", **cluster) -> tuple[dict, dict]:
    config = load_config(ROOT / "configs" / "cluster.yaml")
    if cluster:
        config = config.model_copy(update={"cluster": config.cluster.model_copy(update=cluster)})
    out = compile_pipeline(tmp_path / f"{pipeline}.yaml", config, pipeline)
    spec, platform = list(yaml.safe_load_all(out.read_text()))
    return spec, platform


def tasks(spec: dict):
    """Every (dag, task name, task) in the root and in every sub-dag (exit handler, conditions)."""
    dags = [("root", spec["root"]["dag"])] + [(n, c["dag"]) for n, c in spec["components"].items() if "dag" in c]
    for dag_name, dag in dags:
        for name, task in dag["tasks"].items():
            yield dag_name, name, task


def backend_run(spec: dict, job_uuid: str, arguments: dict | None = None) -> dict[str, str]:
    """Each executor task's run_id as the backend would resolve it for one run."""
    params = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    runtime = {k: (arguments or {}).get(k, v.get("defaultValue")) for k, v in params.items()}  # literal copy
    resolved = {}
    for _, name, task in tasks(spec):
        source = task.get("inputs", {}).get("parameters", {}).get("run_id")
        if source is None:
            continue
        if "runtimeValue" in source:
            resolved[name] = source["runtimeValue"]["constant"].replace("{{$.pipeline_job_uuid}}", job_uuid)
        else:  # a pipeline parameter, passed down unchanged
            resolved[name] = runtime[source["componentInputParameter"].removeprefix("pipelinechannel--")]
    return resolved


@pytest.mark.parametrize("pipeline", ["training", "drift", "monitor"])
def test_no_pipeline_parameter_default_holds_a_placeholder(tmp_path, pipeline):
    for config in (None, load_config(ROOT / "configs" / "cluster.yaml")):
        out = compile_pipeline(tmp_path / f"{pipeline}-{config is None}.yaml", config, pipeline)
        spec = next(yaml.safe_load_all(out.read_text()))
        for name, param in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
            assert not PLACEHOLDER.search(str(param.get("defaultValue", ""))), (pipeline, name)


def test_two_runs_of_one_compiled_pipeline_get_two_run_ids(tmp_path):
    spec, _ = compiled(tmp_path)
    first, second = backend_run(spec, "7f7c0f1e-aaaa"), backend_run(spec, "0b1d2c3e-bbbb")
    assert set(first) >= {"prepare-op", "train-op", "register-op", "seal-on-exit-op", "seal-op", "seal-op-2"}
    assert set(first.values()) == {"7f7c0f1e-aaaa"} and set(second.values()) == {"0b1d2c3e-bbbb"}


def test_the_placeholder_check_fails_on_the_old_parameter_default():
    """The test above catches the bug it is for: a run_id parameter defaulting to the placeholder."""
    spec = {"root": {"inputDefinitions": {"parameters": {"run_id": {"defaultValue": "{{$.pipeline_job_uuid}}"}}},
                     "dag": {"tasks": {"prepare-op": {"inputs": {"parameters": {
                         "run_id": {"componentInputParameter": "run_id"}}}}}}}, "components": {}}
    assert backend_run(spec, "a") == backend_run(spec, "b") == {"prepare-op": "{{$.pipeline_job_uuid}}"}


def test_every_step_runs_the_configured_image_with_its_resources(tmp_path):
    digest = "registry.example.com/ml/govtrain@sha256:" + "ab" * 32
    spec, platform = compiled(tmp_path, image=digest)
    config = load_config(ROOT / "configs" / "cluster.yaml")
    executors = spec["deploymentSpec"]["executors"]
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(k8s) == set(executors)
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == digest, name
        assert k8s[name]["imagePullPolicy"] == "IfNotPresent", name  # a digest cannot move
        step = {"exec-train-op": "train", "exec-evaluate-op": "evaluate"}.get(name, "default")
        size = config.cluster.resources[step]
        assert (container["resources"]["resourceCpuRequest"], container["resources"]["resourceMemoryRequest"],
                container["resources"]["resourceCpuLimit"], container["resources"]["resourceMemoryLimit"]) == (
            size.cpu, size.memory, size.cpu_limit, size.memory_limit), name
    _, tagged = compiled(tmp_path)
    policies = {e["imagePullPolicy"] for e in tagged["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values()}
    assert policies == {"Always"}  # a tag can move: pull it every time


def test_credentials_are_required_keys_never_optional(tmp_path):
    _, platform = compiled(tmp_path)
    for name, settings in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        [secret] = settings["secretAsEnv"]
        assert secret["optional"] is False, name  # KFP < 2.15 ignores optional: it would only hide a missing key
        assert [k["secretKey"] for k in secret["keyToEnv"]] == [
            "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


@pytest.mark.parametrize("pipeline,signing", [("training", {"exec-register-op", "exec-seal-op", "exec-seal-op-2",
                                                                "exec-seal-on-exit-op"}),
                                               ("drift", {"exec-drift-op"}), ("monitor", {"exec-monitor-op"})])
def test_the_signing_key_is_mounted_only_where_evidence_is_sealed_or_appended(tmp_path, pipeline, signing):
    spec, platform = compiled(tmp_path, pipeline=pipeline)
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    mounted = {name for name, settings in executors.items() if settings.get("secretAsVolume")}
    assert mounted == signing
    for name in mounted:
        [volume] = executors[name]["secretAsVolume"]
        assert (volume["secretName"], volume["mountPath"], volume["optional"]) == (
            "govtrain-signing-key", "/var/run/govtrain/signing", False)
    with_env = {name for name, ex in spec["deploymentSpec"]["executors"].items()
                if any(e["name"] == "GOVTRAIN_SIGNING_KEY_FILE" for e in ex["container"].get("env", []))}
    assert with_env == signing  # prepare, validate, leakage, gates, train and evaluate never hold the key


def test_the_drift_task_is_never_cached_and_keys_its_record_by_run(tmp_path):
    spec, _ = compiled(tmp_path, pipeline="drift")
    [(_, name, task)] = list(tasks(spec))
    assert task["cachingOptions"] == {} or task["cachingOptions"].get("enableCache") is False, task["cachingOptions"]
    assert backend_run(spec, "night-1") == {name: "night-1"}
    training, _ = compiled(tmp_path)
    assert all(t["cachingOptions"].get("enableCache") for _, _, t in tasks(training) if "cachingOptions" in t)


def test_only_the_register_step_is_retried_by_the_backend(tmp_path):
    """Registration is idempotent per run (a retry completes the version it created), so the backend may
    retry it; no other step is retried (a retried train would redo the DDP job)."""
    spec, _ = compiled(tmp_path)
    retried = {name: task["retryPolicy"] for _, name, task in tasks(spec) if "retryPolicy" in task}
    assert list(retried) == ["register-op"]
    assert retried["register-op"]["maxRetryCount"] == 3 and retried["register-op"]["backoffDuration"] == "30s"


def test_compiled_cluster_pipeline_has_platform_settings_and_the_configured_image(tmp_path):
    config = load_config(ROOT / "configs" / "cluster.yaml")
    result = submit(config, ROOT / "configs" / "cluster.yaml", tmp_path / "p.yaml", None, None, "govtrain", None,
                    dry_run=True)
    assert components.load_component_from_file(str(result.package)).name == "govtrain-training"
    spec, platform = list(yaml.safe_load_all(result.package.read_text()))
    for name, executor in spec["deploymentSpec"]["executors"].items():
        container = executor["container"]
        assert container["image"] == config.cluster.image, name
        shell, flags, script, source = container["command"]
        assert (shell, flags) == ("sh", "-ec") and "python3 -m kfp.dsl.executor_main" in script, name
        assert "pip install" not in script, name  # everything is in the image; nothing installed at run time
        function = container["args"][container["args"].index("--function_to_execute") + 1]
        assert f"def {function}(" in source and name.removeprefix("exec-").removesuffix("-2").replace(
            "-", "_") == function
    for name, settings in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].items():
        assert settings["pvcMount"][0]["mountPath"] == "/mnt/govtrain", name
        assert settings["secretAsEnv"][0]["secretName"] == "govtrain-mlflow", name
    assert json.loads(spec["root"]["inputDefinitions"]["parameters"]["config_json"]["defaultValue"])[
        "training"]["backend"] == "pytorchjob"
