"""The cluster training backends (PyTorchJob, Trainer v2 TrainJob): manifests checked against the CRD
schemas and the controllers' webhook rules, the launcher's control flow against a stand-in API server
(transient errors, 409 adoption, owner references, replica logs), and the train step end to end with
the stand-in playing the controller (real torchrun workers started from the manifest's own command)."""
import re
import threading
import time
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml
from fake_kube import ROOT, FakeKube, condition, crd_schema, validate
from kubernetes import client as k8s

from govtrain.components.prepare import prepare
from govtrain.components.train.cluster_job import PYTORCHJOB, TRAINJOB, ManifestError
from govtrain.components.train.launcher import JobError, JobLauncher, owner_reference
from govtrain.components.train.pytorchjob import build_pytorchjob, check_webhook_rules
from govtrain.components.train.step import TrainingError, train
from govtrain.components.train.trainjob import build_trainjob
from govtrain.components.train.trainjob import check_webhook_rules as trainjob_rules
from govtrain.governance.evidence import head_record


@pytest.fixture
def job_config(small_data, write_config, tmp_path):
    def _config(cluster=None, backend="pytorchjob", **training):
        pytorchjob = {"poll_seconds": 0.2, **training.pop("pytorchjob", {})}
        trainjob = {"poll_seconds": 0.2, **training.pop("trainjob", {})}
        return write_config(small_data.data, training={"backend": backend, "pytorchjob": pytorchjob,
                                                       "trainjob": trainjob, **training},
                            cluster={"work_mount": str(tmp_path / "work"), **(cluster or {})})
    return _config


def api_for(fake: FakeKube) -> k8s.ApiClient:
    return k8s.ApiClient(k8s.Configuration(host=fake.url))


def launcher(api, poll: float = 0.05, log=lambda _: None, kind=PYTORCHJOB, **kwargs) -> JobLauncher:
    return JobLauncher(api, kind, "govtrain", poll_seconds=poll, log=log, backoff_seconds=0.01, **kwargs)


@pytest.mark.parametrize("training", [
    {"workers": 2},
    {"workers": 1},
    {"workers": 4, "pytorchjob": {"gpus": 2, "nproc_per_node": 2,
                                  "elastic": {"min_replicas": 2, "max_replicas": 4, "max_restarts": 5}}},
])
def test_generated_jobs_satisfy_the_crd_schema_and_webhook_rules(job_config, training):
    config = job_config(**training)
    job = build_pytorchjob(config, "Run_2026.11.25", tracking_uri="http://mlflow.govtrain:5000")
    validate(job, crd_schema())
    check_webhook_rules(job)

    spec = job["spec"]
    replicas = spec["pytorchReplicaSpecs"]
    assert job["metadata"]["name"] == "govtrain-run-2026-11-25"
    assert replicas["Master"]["replicas"] == 1
    assert replicas.get("Worker", {}).get("replicas", 0) == training["workers"] - 1
    pod = replicas["Master"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["name"] == "pytorch" and container["image"] == config.cluster.image
    assert container["command"][:3] == ["python", "-m", "torch.distributed.run"]
    assert "govtrain.components.train.worker" in container["command"]
    assert replicas["Master"]["restartPolicy"] == "OnFailure"
    assert spec["runPolicy"] == {"backoffLimit": 3, "activeDeadlineSeconds": 21600, "cleanPodPolicy": "Running",
                                 "ttlSecondsAfterFinished": 3600}
    assert {"name": "MLFLOW_TRACKING_URI", "value": "http://mlflow.govtrain:5000"} in container["env"]
    assert {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {
        "name": "govtrain-mlflow", "key": "AWS_SECRET_ACCESS_KEY"}}} in container["env"]  # required, never optional
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
        validate(job, crd_schema())


def test_launcher_waits_for_succeeded_streams_the_master_log_and_deletes_the_job(job_config):
    statuses = [[condition("Created")], [condition("Created"), condition("Running")],
                [condition("Running"), condition("Succeeded", "done")]]
    lines = []
    with FakeKube(statuses=statuses, master_log="epoch 1/2 loss 0.6\nepoch 2/2 loss 0.5\n") as fake:
        job = build_pytorchjob(job_config(), "ok", tracking_uri=None)
        final = launcher(api_for(fake), log=lines.append).run(job, 30)
    assert final["status"]["conditions"][-1]["type"] == "Succeeded"
    assert fake.gets["govtrain-ok"] == 3
    assert "[rank0] epoch 2/2 loss 0.5" in lines
    assert fake.deleted == ["govtrain-ok"]


def test_launcher_fails_on_a_failed_job_with_the_operators_message(job_config):
    # Running, then Failed: a "Succeeded or Failed" wait would report success here.
    statuses = [[condition("Running")],
                [condition("Running"), condition("Failed", "1 Worker replica(s) failed: OOMKilled",
                                                 "PyTorchJobFailed")]]
    with FakeKube(statuses=statuses) as fake:
        job = build_pytorchjob(job_config(), "oom", tracking_uri=None)
        with pytest.raises(JobError, match="govtrain/govtrain-oom failed: PyTorchJobFailed: 1 Worker replica"):
            launcher(api_for(fake)).run(job, 30)
    assert fake.deleted == ["govtrain-oom"]


def test_launcher_gives_up_at_the_timeout_and_deletes_the_job(job_config):
    with FakeKube(statuses=[[condition("Running")]]) as fake:
        job = build_pytorchjob(job_config(), "slow", tracking_uri=None)
        started = time.monotonic()
        with pytest.raises(JobError, match="did not succeed within 1 s"):
            launcher(api_for(fake), 0.1).run(job, 1)
    assert time.monotonic() - started < 10
    assert fake.deleted == ["govtrain-slow"]


def test_launcher_deletes_the_job_when_the_step_is_cancelled(job_config):
    cancel = threading.Event()
    with FakeKube(statuses=[[condition("Running")]]) as fake:
        job = build_pytorchjob(job_config(), "cancel", tracking_uri=None)
        threading.Timer(0.5, cancel.set).start()
        with pytest.raises(JobError, match="cancelled"):
            launcher(api_for(fake), 0.1).run(job, 60, cancel)
    assert fake.deleted == ["govtrain-cancel"]


def test_launcher_reports_a_refused_create(job_config):
    with FakeKube() as fake:
        job = build_pytorchjob(job_config(), "bad", tracking_uri=None)
        job["spec"]["nprocPerNode"] = 2  # the CRD wants a string: the API server answers 422
        with pytest.raises(JobError, match=r"create refused \(422"):
            launcher(api_for(fake), 0.1).run(job, 5)


def prepared(config, tmp_path: Path, run_id: str) -> dict[str, Path]:
    """The splits a train step reads, and the work volume folder it expects mounted."""
    (tmp_path / "work").mkdir()
    paths = {s: tmp_path / f"{s}.parquet" for s in ("train", "val", "test")}
    prepare(config, paths, tmp_path / "ev-prepare", run_id)
    return paths


def train_against(fake: FakeKube, config, paths: dict[str, Path], tmp_path: Path, monkeypatch, run_id: str):
    """The train step with the stand-in API server as its cluster (by kubeconfig, as outside a pod)."""
    monkeypatch.setenv("KUBECONFIG", str(fake.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return train(config, paths, tmp_path / "ev-prepare", tmp_path / "model", tmp_path / "ev-train", run_id)


@pytest.mark.slow
def test_train_step_runs_the_job_through_the_operator_path(job_config, tmp_path, monkeypatch):
    config = job_config(workers=2, epochs=2)
    paths = prepared(config, tmp_path, "cluster-run")
    with FakeKube(operator=True, logs_dir=tmp_path) as fake:
        record = train_against(fake, config, paths, tmp_path, monkeypatch, "cluster-run")
    assert record["metrics"]["world_size"] == 2 and record["metrics"]["epochs"] == 2
    assert record["details"]["backend"] == "pytorchjob"
    assert record["details"]["job_conditions"][-1]["type"] == "Succeeded"
    assert {Path(f["name"]).name for f in record["outputs"]} >= {"model.safetensors", "model.json",
                                                                  "training-job.yaml"}
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert "[rank0] epoch 2/2" in (tmp_path / "ev-train" / "files" / "train" / "train.log").read_text()
    assert fake.deleted == ["govtrain-cluster-run"]


@pytest.mark.slow
def test_train_step_fails_with_the_job_failure_and_no_model(job_config, tmp_path, monkeypatch):
    config = job_config(workers=2, epochs=1)
    paths = prepared(config, tmp_path, "broken")
    (tmp_path / "work" / "runs" / "broken" / "job").mkdir(parents=True)
    # The pods read the job from the work volume; a job file they cannot parse makes them exit 1.
    original = build_pytorchjob
    monkeypatch.setattr("govtrain.components.train.pytorchjob.build_pytorchjob", lambda *a,
                        **k: corrupt(original(*a, **k)))
    with FakeKube(operator=True, logs_dir=tmp_path) as fake:
        with pytest.raises(TrainingError, match="failed: JobFailed: .*exit code 1"):
            train_against(fake, config, paths, tmp_path, monkeypatch, "broken")
    assert not (tmp_path / "model" / "model.safetensors").exists()
    # An error record (mirrored to the work volume on a cluster, so the exit handler seals it) carries every
    # replica's log, collected before the job was deleted.
    record = head_record(tmp_path / "ev-train")
    assert record["decision"] == "error" and "exit code 1" in record["details"]["error"]
    logs = {Path(f["name"]).name for f in record["outputs"] if "replica-logs" in f["name"]}
    assert logs == {"govtrain-broken-master-0.log", "govtrain-broken-worker-0.log"}
    master_log = tmp_path / "ev-train" / "files" / "train" / "replica-logs" / "govtrain-broken-master-0.log"
    assert "nonexistent" in master_log.read_text()
    assert fake.deleted == ["govtrain-broken"]


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
    validate(gpu_job, crd_schema())
    cpu_job = build_pytorchjob(job_config(cluster=cluster), "cpu", tracking_uri=None)
    assert "nodeSelector" not in cpu_job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]


def test_launcher_reports_an_unreachable_api_server(job_config):
    from fake_kube import free_port

    api = k8s.ApiClient(k8s.Configuration(host=f"http://127.0.0.1:{free_port()}"))
    api.configuration.retries = 0
    job = build_pytorchjob(job_config(), "offline", tracking_uri=None)
    with pytest.raises(JobError, match="Kubernetes API unreachable"):
        launcher(api, 0.1, retries=1).run(job, 5)


# --- Trainer v2 ------------------------------------------------------------------------------------
RUNTIME = yaml.safe_load((ROOT / "infra" / "crds" / "trainer-v2" / "torch_distributed_runtime.yaml").read_text())


@cache
def runtime_schema() -> dict:
    crd = yaml.load((ROOT / "infra" / "crds" / "trainer-v2" / "trainer.kubeflow.org_clustertrainingruntimes.yaml"
                     ).read_text(), Loader=yaml.CSafeLoader)
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


@pytest.mark.parametrize("workers,gpus", [(1, 0), (2, 0), (4, 2)])
def test_generated_trainjobs_satisfy_the_crd_the_webhook_and_the_upstream_runtime(job_config, workers, gpus):
    cluster = {"gpu_node_selector": {"nvidia.com/gpu.present": "true"}, "namespace": "ml-team"}
    config = job_config(backend="trainjob", workers=workers, cluster=cluster, trainjob={"gpus": gpus})
    owner = {"apiVersion": "v1", "kind": "Pod", "name": "step-pod", "uid": "u-1", "controller": False,
             "blockOwnerDeletion": False}
    job = build_trainjob(config, "Run_2026.11.26", tracking_uri="http://mlflow.ml-team:5000", owner=owner)
    validate(job, crd_schema("trainjobs"))
    validate(RUNTIME, runtime_schema())  # the vendored runtime is itself a valid object
    trainjob_rules(job, runtime=RUNTIME)

    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["metadata"]["name"] == "govtrain-run-2026-11-26" and job["metadata"]["namespace"] == "ml-team"
    assert job["metadata"]["ownerReferences"] == [owner]
    assert job["spec"]["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org", "kind": "ClusterTrainingRuntime",
                                         "name": "torch-distributed"}
    trainer = job["spec"]["trainer"]
    assert trainer["numNodes"] == workers and trainer["image"] == config.cluster.image
    assert trainer["command"][:3] == ["python", "-m", "torch.distributed.run"]
    assert "govtrain.components.train.worker" in trainer["command"]
    assert not {e["name"] for e in trainer["env"]} & {"PET_NNODES", "PET_NODE_RANK", "PET_MASTER_ADDR"}
    assert trainer["resourcesPerNode"]["limits"].get("nvidia.com/gpu") == (str(gpus) if gpus else None)
    [patch] = job["spec"]["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]["spec"]
    assert node["name"] == "node" and pod["containers"][0]["name"] == "node"
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "govtrain-work"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert ("nodeSelector" in pod) == bool(gpus)


def test_trainjob_rules_refuse_what_trainer_v2_would(job_config):
    config = job_config(backend="trainjob")
    replicated = lambda j: j["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"][  # noqa: E731
        "replicatedJobs"][0]
    cases = {
        "must not have reserved envs: PET_NNODES": lambda j: j["spec"]["trainer"]["env"].append(
            {"name": "PET_NNODES", "value": "3"}),
        "replicated job 'trainer' is not in runtime 'torch-distributed'": lambda j: replicated(j).update(
            name="trainer"),
        "no container 'pytorch' in the runtime": lambda j: replicated(j)["template"]["spec"]["template"]["spec"][
            "containers"][0].update(name="pytorch"),
        "not a DNS-1035 label": lambda j: j["metadata"].update(name="Bad_Name"),
    }
    for message, spoil in cases.items():
        job = build_trainjob(config, "run", tracking_uri=None)
        spoil(job)
        with pytest.raises(ManifestError, match=re.escape(message)):
            trainjob_rules(job, runtime=RUNTIME)


def test_trainjob_launcher_waits_for_complete_not_for_succeeded(job_config):
    statuses = [[condition("Created")], [condition("Created"), condition("Complete", "done")]]
    with FakeKube(statuses=statuses, master_log="epoch 1/1\n") as fake:
        job = build_trainjob(job_config(backend="trainjob"), "v2", tracking_uri=None)
        lines: list[str] = []
        final = launcher(api_for(fake), log=lines.append, kind=TRAINJOB).run(job, 30)
    assert final["status"]["conditions"][-1]["type"] == "Complete"
    assert "submitted TrainJob govtrain/govtrain-v2" in lines and "[rank0] epoch 1/1" in lines
    assert fake.deleted == ["govtrain-v2"]


# --- the launcher against a flaky or shared API server --------------------------------------------
def test_launcher_retries_transient_api_errors_with_backoff(job_config):
    statuses = [[condition("Running")], [condition("Running"), condition("Succeeded")]]
    with FakeKube(statuses=statuses, faults={"POST": [503], "GET": [500, 429, 503]}) as fake:
        job = build_pytorchjob(job_config(), "flaky", tracking_uri=None)
        lines: list[str] = []
        final = launcher(api_for(fake), log=lines.append).run(job, 30)
    assert final["status"]["conditions"][-1]["type"] == "Succeeded"
    retries = [line for line in lines if "retrying in" in line]
    assert [line.split(": ")[2].split(";")[0] for line in retries] == [
        "503 Service Unavailable", "500 Internal Server Error", "429 Too Many Requests", "503 Service Unavailable"]
    assert fake.creates == ["govtrain-flaky"]  # the 503 was answered before anything was created


def test_launcher_gives_up_after_its_retries_and_still_deletes_the_job(job_config):
    with FakeKube(statuses=[[condition("Running")]], faults={"GET": [503] * 10}) as fake:
        job = build_pytorchjob(job_config(), "down", tracking_uri=None)
        with pytest.raises(JobError, match=r"cannot read status \(503"):
            launcher(api_for(fake), retries=2).run(job, 30)
    assert fake.deleted == ["govtrain-down"]


def test_a_retried_step_adopts_the_job_its_earlier_attempt_created(job_config):
    job = build_pytorchjob(job_config(), "retried", tracking_uri=None)
    statuses = [[condition("Running"), condition("Succeeded")]]
    with FakeKube(statuses=statuses, existing={"govtrain-retried": job}) as fake:
        lines: list[str] = []
        final = launcher(api_for(fake), log=lines.append).run(job, 30)
    assert final["status"]["conditions"][-1]["type"] == "Succeeded"
    assert "adopted PyTorchJob govtrain/govtrain-retried, created by an earlier attempt of this step" in lines
    assert fake.creates == ["govtrain-retried"] and fake.deleted == ["govtrain-retried"]


def test_a_foreign_job_of_the_same_name_is_refused_and_left_alone(job_config):
    job = build_pytorchjob(job_config(), "taken", tracking_uri=None)
    foreign = {**job, "metadata": {**job["metadata"], "labels": {"govtrain/run-id": "someone-else"}}}
    with FakeKube(existing={"govtrain-taken": foreign}) as fake:
        with pytest.raises(JobError, match=r"create refused \(409"):
            launcher(api_for(fake)).run(job, 5)
    assert fake.deleted == []


def test_a_failed_jobs_replica_logs_are_collected_before_it_is_deleted(job_config, tmp_path):
    statuses = [[condition("Running"), condition("Failed", "1 Worker replica(s) failed", "PyTorchJobFailed")]]
    with FakeKube(statuses=statuses) as fake:
        job = build_pytorchjob(job_config(workers=3), "crash", tracking_uri=None)
        with pytest.raises(JobError) as failure:
            launcher(api_for(fake), logs_dir=tmp_path / "logs").run(job, 30)
    names = sorted(p.name for p in failure.value.logs)
    assert names == ["govtrain-crash-master-0.log", "govtrain-crash-worker-0.log", "govtrain-crash-worker-1.log"]
    assert (tmp_path / "logs" / "govtrain-crash-worker-1.log").read_text() == "log of govtrain-crash-worker-1\n"
    assert fake.deleted == ["govtrain-crash"]


def test_the_job_is_owned_by_the_step_pod_so_kubernetes_deletes_it_with_the_pod(job_config, monkeypatch):
    monkeypatch.setenv("HOSTNAME", "govtrain-training-abc-train-op-123")
    with FakeKube(step_pod="govtrain-training-abc-train-op-123") as fake:
        owner = owner_reference(api_for(fake), "govtrain", log=lambda _: None)
    assert owner == {"apiVersion": "v1", "kind": "Pod", "name": "govtrain-training-abc-train-op-123",
                     "uid": "uid-govtrain-training-abc-train-op-123", "controller": False,
                     "blockOwnerDeletion": False}
    job = build_pytorchjob(job_config(), "owned", tracking_uri=None, owner=owner)
    validate(job, crd_schema())
    assert job["metadata"]["ownerReferences"] == [owner]
    monkeypatch.setenv("HOSTNAME", "laptop")
    notes: list[str] = []
    with FakeKube() as fake:
        assert owner_reference(api_for(fake), "govtrain", log=notes.append) is None
    assert notes and "no owner for the training job" in notes[0]


@pytest.mark.slow
def test_train_step_runs_a_trainjob_through_the_controller_path(job_config, tmp_path, monkeypatch):
    config = job_config(backend="trainjob", workers=2, epochs=2)
    paths = prepared(config, tmp_path, "v2-run")
    with FakeKube(operator=True, logs_dir=tmp_path) as fake:
        record = train_against(fake, config, paths, tmp_path, monkeypatch, "v2-run")
    assert record["metrics"]["world_size"] == 2 and record["details"]["backend"] == "trainjob"
    assert record["details"]["job_conditions"][-1]["type"] == "Complete"
    manifest = yaml.safe_load((tmp_path / "ev-train" / "files" / "train" / "training-job.yaml").read_text())
    assert manifest["kind"] == "TrainJob"
    assert "[rank0] epoch 2/2" in (tmp_path / "ev-train" / "files" / "train" / "train.log").read_text()
    assert fake.deleted == ["govtrain-v2-run"]
