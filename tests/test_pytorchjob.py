"""The PyTorchJob backend: manifests checked against the CRD schema and the operator's webhook rules,
the launcher's control flow against a stand-in API server, and the train step end to end with the
stand-in playing the operator (real torchrun workers started from the manifest's own command)."""
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from fake_kube import FakeKube, condition, crd_schema
from kubernetes import client as k8s

from govtrain.components.prepare import prepare
from govtrain.components.train.launcher import JobError, PyTorchJobLauncher
from govtrain.components.train.pytorchjob import (
    ManifestError,
    build_pytorchjob,
    check_webhook_rules,
)
from govtrain.components.train.step import TrainingError, train


@pytest.fixture
def job_config(small_data, write_config, tmp_path):
    def _config(cluster=None, **training):
        pytorchjob = {"poll_seconds": 0.2, **training.pop("pytorchjob", {})}
        return write_config(small_data.data, training={"backend": "pytorchjob", "pytorchjob": pytorchjob, **training},
                            cluster={"work_mount": str(tmp_path / "work"), **(cluster or {})})
    return _config


def api_for(fake: FakeKube) -> k8s.ApiClient:
    return k8s.ApiClient(k8s.Configuration(host=fake.url))


@pytest.mark.parametrize("training", [
    {"workers": 2},
    {"workers": 1},
    {"workers": 4, "pytorchjob": {"gpus": 2, "nproc_per_node": 2,
                                  "elastic": {"min_replicas": 2, "max_replicas": 4, "max_restarts": 5}}},
])
def test_generated_jobs_satisfy_the_crd_schema_and_webhook_rules(job_config, training):
    config = job_config(**training)
    job = build_pytorchjob(config, "Run_2026.11.25", tracking_uri="http://mlflow.govtrain:5000")
    jsonschema.validate(job, crd_schema())
    check_webhook_rules(job)

    spec = job["spec"]
    replicas = spec["pytorchReplicaSpecs"]
    assert job["metadata"]["name"] == "govtrain-run-2026-11-25"
    assert replicas["Master"]["replicas"] == 1
    assert replicas.get("Worker", {}).get("replicas", 0) == training["workers"] - 1
    pod = replicas["Master"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["name"] == "pytorch" and container["image"] == config.training.image
    assert container["command"][:3] == ["python", "-m", "torch.distributed.run"]
    assert "govtrain.components.train.worker" in container["command"]
    assert replicas["Master"]["restartPolicy"] == "OnFailure"
    assert spec["runPolicy"] == {"backoffLimit": 3, "activeDeadlineSeconds": 21600, "cleanPodPolicy": "Running",
                                 "ttlSecondsAfterFinished": 3600}
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.govtrain:5000"} in container["env"]
    assert {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
        "name": "govtrain-mlflow", "key": "AWS_SECRET_ACCESS_KEY", "optional": True}}} in container["env"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "govtrain-work"
    gpus = training.get("pytorchjob", {}).get("gpus", 0)
    assert container["resources"]["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
    if "elastic" in training.get("pytorchjob", {}):
        assert spec["elasticPolicy"]["maxRestarts"] == 5 and spec["nprocPerNode"] == "2"
        assert container["command"][container["command"].index("--max-restarts") + 1] == "5"


def test_webhook_rules_refuse_what_the_operator_would(job_config):
    config = job_config(workers=2)
    cases = {
        "Master.replicas must be exactly 1": lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"].update(replicas=2),
        "no container named 'pytorch'": lambda j: j["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
        ["containers"][0].update(name="trainer"),
        "has no image": lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
        .update(image=""),
        "Worker.replicas >= 1": lambda j: (j["spec"].update(elasticPolicy={"maxRestarts": 1}),
                                           j["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas=0)),
        "not a DNS-1035 label": lambda j: j["metadata"].update(name="Bad_Name"),
    }
    for message, spoil in cases.items():
        job = build_pytorchjob(config, "run", tracking_uri=None)
        spoil(job)
        with pytest.raises(ManifestError, match=message.replace("(", r"\(").replace(".", r"\.")):
            check_webhook_rules(job)


def test_the_crd_schema_rejects_a_malformed_job(job_config):
    job = build_pytorchjob(job_config(), "run", tracking_uri=None)
    job["spec"]["runPolicy"]["backoffLimit"] = "three"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(job, crd_schema())


def test_launcher_waits_for_succeeded_streams_the_master_log_and_deletes_the_job(job_config):
    statuses = [[condition("Created")], [condition("Created"), condition("Running")],
                [condition("Running"), condition("Succeeded", "done")]]
    lines = []
    with FakeKube(statuses=statuses, master_log="epoch 1/2 loss 0.6\nepoch 2/2 loss 0.5\n") as fake:
        job = build_pytorchjob(job_config(), "ok", tracking_uri=None)
        final = PyTorchJobLauncher(api_for(fake), "govtrain", poll_seconds=0.05, log=lines.append).run(job, 30)
    assert final["status"]["conditions"][-1]["type"] == "Succeeded"
    assert fake.gets["govtrain-ok"] == 3
    assert "[master] epoch 2/2 loss 0.5" in lines
    assert fake.deleted == ["govtrain-ok"]


def test_launcher_fails_on_a_failed_job_with_the_operators_message(job_config):
    # Running, then Failed: a "Succeeded or Failed" wait would report success here.
    statuses = [[condition("Running")],
                [condition("Running"), condition("Failed", "1 Worker replica(s) failed: OOMKilled",
                                                 "PyTorchJobFailed")]]
    with FakeKube(statuses=statuses) as fake:
        job = build_pytorchjob(job_config(), "oom", tracking_uri=None)
        with pytest.raises(JobError, match="govtrain/govtrain-oom failed: PyTorchJobFailed: 1 Worker replica"):
            PyTorchJobLauncher(api_for(fake), "govtrain", poll_seconds=0.05, log=lambda _: None).run(job, 30)
    assert fake.deleted == ["govtrain-oom"]


def test_launcher_gives_up_at_the_timeout_and_deletes_the_job(job_config):
    with FakeKube(statuses=[[condition("Running")]]) as fake:
        job = build_pytorchjob(job_config(), "slow", tracking_uri=None)
        started = time.monotonic()
        with pytest.raises(JobError, match="did not succeed within 1 s"):
            PyTorchJobLauncher(api_for(fake), "govtrain", poll_seconds=0.1, log=lambda _: None).run(job, 1)
    assert time.monotonic() - started < 10
    assert fake.deleted == ["govtrain-slow"]


def test_launcher_deletes_the_job_when_the_step_is_cancelled(job_config):
    cancel = threading.Event()
    with FakeKube(statuses=[[condition("Running")]]) as fake:
        job = build_pytorchjob(job_config(), "cancel", tracking_uri=None)
        threading.Timer(0.5, cancel.set).start()
        with pytest.raises(JobError, match="cancelled"):
            PyTorchJobLauncher(api_for(fake), "govtrain", poll_seconds=0.1, log=lambda _: None).run(job, 60, cancel)
    assert fake.deleted == ["govtrain-cancel"]


def test_launcher_reports_a_refused_create(job_config):
    with FakeKube() as fake:
        job = build_pytorchjob(job_config(), "bad", tracking_uri=None)
        job["spec"]["nprocPerNode"] = 2  # the CRD wants a string: the API server answers 422
        with pytest.raises(JobError, match=r"create refused \(422"):
            PyTorchJobLauncher(api_for(fake), "govtrain", poll_seconds=0.1, log=lambda _: None).run(job, 5)


@pytest.mark.slow
def test_train_step_runs_the_job_through_the_operator_path(job_config, tmp_path, monkeypatch):
    config = job_config(workers=2, epochs=2)
    (tmp_path / "work").mkdir()
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "cluster-run")
    with FakeKube(operator=True, logs_dir=tmp_path) as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        record = train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-train", "cluster-run")
    assert record["metrics"]["world_size"] == 2 and record["metrics"]["epochs"] == 2
    assert record["details"]["backend"] == "pytorchjob"
    assert record["details"]["pytorchjob_conditions"][-1]["type"] == "Succeeded"
    assert {Path(f["name"]).name for f in record["outputs"]} >= {"model.safetensors", "model.json", "pytorchjob.yaml"}
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert "[master] epoch 2/2" in (tmp_path / "ev-train" / "files" / "train" / "train.log").read_text()
    assert fake.deleted == ["govtrain-cluster-run"]


@pytest.mark.slow
def test_train_step_fails_with_the_job_failure_and_no_model(job_config, tmp_path, monkeypatch):
    config = job_config(workers=2, epochs=1)
    (tmp_path / "work").mkdir()
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", "broken")
    (tmp_path / "work" / "runs" / "broken" / "job").mkdir(parents=True)
    with FakeKube(operator=True, logs_dir=tmp_path) as fake:
        monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
        # The pods read the job from the work volume; a job file they cannot parse makes them exit 1.
        original = build_pytorchjob
        monkeypatch.setattr("govtrain.components.train.pytorchjob.build_pytorchjob", lambda *a,
                            **k: corrupt(original(*a, **k)))
        with pytest.raises(TrainingError, match="failed: PyTorchJobFailed: .*replica"):
            train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-train", "broken")
    assert not (tmp_path / "model" / "model.safetensors").exists()
    assert not (tmp_path / "ev-train" / "HEAD").exists()  # no train record without a model


def corrupt(job: dict) -> dict:
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        command = replica["template"]["spec"]["containers"][0]["command"]
        command[command.index("--job") + 1] = "/nonexistent/job"
    return job


def test_compiled_pipeline_mounts_the_work_volume_and_local_runs_carry_no_platform_spec(job_config, tmp_path):
    import yaml

    from govtrain.pipelines.run import compile_pipeline

    out = compile_pipeline(tmp_path / "pipeline.yaml", job_config(cluster={"work_volume_claim": "shared-rwx"}))
    docs = list(yaml.safe_load_all(out.read_text()))
    assert len(docs) == 2  # the pipeline spec, then the Kubernetes platform spec
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert "exec-train-op" in executors and set(executors) == set(docs[0]["deploymentSpec"]["executors"])
    mount = executors["exec-train-op"]["pvcMount"][0]
    assert mount["mountPath"] == str(tmp_path / "work")
    assert mount["pvcNameParameter"]["runtimeValue"]["constant"] == "shared-rwx"

    # What kfp.local runs is compiled without a config: no platform spec at all.
    local = compile_pipeline(tmp_path / "local.yaml")
    assert len(list(yaml.safe_load_all(local.read_text()))) == 1


def test_gpu_pods_get_the_gpu_node_selector_and_tolerations(job_config):
    cluster = {"gpu_node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
               "gpu_tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]}
    gpu_job = build_pytorchjob(job_config(cluster=cluster, pytorchjob={"gpus": 1}), "gpu", tracking_uri=None)
    pod = gpu_job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["nodeSelector"] == cluster["gpu_node_selector"]
    assert pod["tolerations"] == cluster["gpu_tolerations"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    jsonschema.validate(gpu_job, crd_schema())
    cpu_job = build_pytorchjob(job_config(cluster=cluster), "cpu", tracking_uri=None)
    assert "nodeSelector" not in cpu_job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]


def test_launcher_reports_an_unreachable_api_server(job_config):
    from fake_kube import free_port

    api = k8s.ApiClient(k8s.Configuration(host=f"http://127.0.0.1:{free_port()}"))
    api.configuration.retries = 0
    job = build_pytorchjob(job_config(), "offline", tracking_uri=None)
    with pytest.raises(JobError, match="Kubernetes API unreachable"):
        PyTorchJobLauncher(api, "govtrain", poll_seconds=0.1, log=lambda _: None).run(job, 5)
