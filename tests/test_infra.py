"""infra/ as a platform engineer would check it before `kubectl apply -k`: every overlay renders, every
resource validates against the Kubernetes schemas of a pinned version, checkov finds nothing beyond the
listed exceptions, RBAC grants exactly the verbs the launcher uses, and `govtrain submit` compiles and
sends what the config says."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from govtrain.core.config import load_config
from govtrain.pipelines.submit import submit

ROOT = Path(__file__).resolve().parent.parent
OVERLAYS = {"dev": "govtrain-dev", "prod": "govtrain", "current": "govtrain"}
MATRIX = yaml.safe_load((ROOT / "infra" / "support-matrix.yaml").read_text())["releases"]
K8S_VERSION = "1.31.0"  # the oldest Kubernetes release Kubeflow 1.10 supports
EXCEPTIONS = yaml.safe_load((ROOT / "infra" / "checkov-exceptions.yaml").read_text())


def render(overlay: str) -> list[dict]:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "infra" / "overlays" / overlay)],
                         capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def pod_specs(resource: dict) -> list[dict]:
    spec = resource.get("spec", {})
    if resource["kind"] == "CronJob":
        return [spec["jobTemplate"]["spec"]["template"]["spec"]]
    if resource["kind"] in ("Deployment", "StatefulSet", "Job"):
        return [spec["template"]["spec"]]
    return []


def containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def rendered(request):
    return request.param, render(request.param)


def test_overlay_renders_the_whole_stack_in_one_namespace(rendered):
    overlay, resources = rendered
    kinds = {(r["kind"], r["metadata"]["name"]) for r in resources}
    expected = {("Namespace", OVERLAYS[overlay]), ("ServiceAccount", "govtrain-pipeline"), ("Role",
                                                                                            "govtrain-pipeline"),
                ("RoleBinding", "govtrain-pipeline"), ("Deployment", "mlflow"), ("Service", "mlflow"),
                ("Deployment", "minio"), ("PersistentVolumeClaim", "govtrain-work"), ("CronJob", "govtrain-drift"),
                ("CronJob", "govtrain-monitor"),
                ("NetworkPolicy", "default-deny-ingress"), ("Job", "mlflow-db-upgrade"), ("Job", "mlflow-bucket"),
                ("Job", "mlflow-users"), ("ServiceAccount", "govtrain-serving")}
    assert expected <= kinds
    assert (("StatefulSet", "postgres") in kinds) == (overlay == "dev")  # prod uses an external database
    assert not [r for r in resources if r["kind"] == "Secret"]  # referenced, never committed
    for r in resources:
        if r["kind"] != "Namespace":
            assert r["metadata"]["namespace"] == OVERLAYS[overlay], r["metadata"]["name"]
    binding = next(r for r in resources if r["kind"] == "RoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "govtrain-pipeline",
                                    "namespace": OVERLAYS[overlay]}]


def test_every_resource_validates_against_the_kubernetes_schemas(rendered):
    _, resources = rendered
    for resource in resources:
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)


def test_the_schema_check_catches_a_misspelt_field():
    deployment = next(r for r in render("dev") if r["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # not "resources"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSION, strict=True)


def test_rbac_grants_what_kfp_and_the_launcher_use_and_nothing_more(rendered):
    """KFP's pipeline-runner role grants its v2 driver and launcher secrets get and configmaps
    get/list/watch, and Argo's executor workflowtaskresults create/patch; the launcher needs its
    training verbs for either backend, and read access to pods (logs, its own pod as owner)."""
    _, resources = rendered
    roles = [r for r in resources if r["kind"] in ("Role", "ClusterRole")]
    assert [r["kind"] for r in roles] == ["Role"]
    training = ["create", "get", "list", "watch", "delete"]
    assert roles[0]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
        {"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"], "verbs": training},
        {"apiGroups": ["trainer.kubeflow.org"], "resources": ["trainjobs"], "verbs": training},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
    ]


def test_each_overlay_enforces_the_pod_security_level_the_support_matrix_gives(rendered):
    overlay, resources = rendered
    [namespace] = [r for r in resources if r["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    levels = {row["pod_security"] for row in MATRIX if row["overlay"] == overlay}
    assert levels <= {labels["pod-security.kubernetes.io/enforce"]}, (overlay, levels)
    assert labels["pod-security.kubernetes.io/enforce"] == ("restricted" if overlay == "current" else "baseline")
    assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_the_support_matrix_is_complete_and_matches_the_config_model():
    from govtrain.core.config import TrainingSpec

    backends = set(TrainingSpec.model_fields["backend"].annotation.__args__)  # type: ignore[union-attr]
    assert [row["kubeflow"] for row in MATRIX] == ["1.10", "1.11", "current"]
    for row in MATRIX:
        assert row["backend"] in backends and row["overlay"] in OVERLAYS
        assert row["pod_security"] in ("baseline", "restricted")
    text = (ROOT / "docs" / "cluster.md").read_text()
    for row in MATRIX:  # the doc shows every row
        assert f"| {row['kubeflow']} | {row['kfp']} |" in text, row["kubeflow"]


def test_one_namespace_and_one_image_flow_into_config_and_overlays(rendered):
    overlay, resources = rendered
    namespace = OVERLAYS[overlay]
    configmap = next(r for r in resources if r["kind"] == "ConfigMap" and r["metadata"]["name"].startswith(
        "govtrain-config"))
    drift_config = yaml.safe_load(configmap["data"]["config.yaml"])
    assert f"mlflow.{namespace}.svc" in drift_config["registry"]["tracking_uri"]
    cluster = load_config(ROOT / "configs" / "cluster.yaml")
    if overlay != "dev":
        assert cluster.cluster.namespace == namespace
        assert f"mlflow.{namespace}.svc" in cluster.registry.tracking_uri
    images = {c["image"] for r in resources for spec in pod_specs(r) for c in containers(spec)
              if "govtrain" in c["image"]}
    assert images == {cluster.cluster.image}


def test_port_forward_and_in_cluster_names_pass_mlflows_host_check(rendered):
    """MLflow refuses a request whose Host header --allowed-hosts does not match (403 Invalid Host
    header); checked with MLflow's own matcher."""
    from mlflow.server.security_utils import is_allowed_host_header

    overlay, resources = rendered
    namespace = OVERLAYS[overlay]
    mlflow = next(r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == "mlflow")
    command = mlflow["spec"]["template"]["spec"]["containers"][0]["command"]
    allowed = command[command.index("--allowed-hosts") + 1].replace("$(POD_NAMESPACE)", namespace).split(",")
    for host in ("127.0.0.1:5000", "localhost:5000", "localhost:8080", "mlflow:5000",
                 f"mlflow.{namespace}.svc.cluster.local:5000", f"mlflow.{namespace}:5000"):
        assert is_allowed_host_header(allowed, host), host
    for host in ("mlflow.evil.example.com:5000", "10.0.0.7:5000", "attacker.example"):
        assert not is_allowed_host_header(allowed, host), host


def test_mlflow_runs_the_auth_app_after_a_one_off_database_upgrade(rendered):
    _, resources = rendered
    deployment = next(r for r in resources if r["kind"] == "Deployment" and r["metadata"]["name"] == "mlflow")
    pod = deployment["spec"]["template"]["spec"]
    server = pod["containers"][0]
    assert server["command"][:4] == ["mlflow", "server", "--app-name", "basic-auth"]
    assert {"secretRef": {"name": "govtrain-mlflow-auth"}} in server["envFrom"]
    assert [c["command"][:3] for c in pod["initContainers"]] == [["govtrain", "mlflow", "wait-db"]]
    jobs = {r["metadata"]["name"]: r for r in resources if r["kind"] == "Job"}
    assert jobs["mlflow-db-upgrade"]["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "govtrain", "mlflow", "db-upgrade"]
    assert jobs["mlflow-bucket"]["spec"]["template"]["spec"]["containers"][0]["command"][:3] == [
        "govtrain", "mlflow", "bucket"]
    assert jobs["mlflow-users"]["spec"]["template"]["spec"]["containers"][0]["command"][:3] == [
        "govtrain", "mlflow", "users"]


def test_the_drift_cronjob_retries_real_errors_only_and_records_once_per_schedule(rendered):
    _, resources = rendered
    cron = next(r for r in resources if r["kind"] == "CronJob" and r["metadata"]["name"] == "govtrain-drift")
    job = cron["spec"]["jobTemplate"]["spec"]
    rules = job["podFailurePolicy"]["rules"]
    assert {"action": "FailJob", "onExitCodes": {"containerName": "drift", "operator": "In", "values": [2]}} in rules
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]} in rules
    container = job["template"]["spec"]["containers"][0]
    command = container["command"]
    assert "--fail-on-drift" not in command  # drift is a result; a retry would duplicate run, record and POST
    assert command[command.index("--idempotency-key") + 1] == "$(SCHEDULED_JOB)"
    env = {e["name"]: e for e in container["env"]}
    assert env["SCHEDULED_JOB"]["valueFrom"]["fieldRef"]["fieldPath"] == \
        "metadata.labels['batch.kubernetes.io/job-name']"
    assert job["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it


def test_the_monitor_cronjob_reads_what_deploy_makes_kserve_write(rendered):
    """The hourly monitor reads the capture root `govtrain deploy` points KServe's logger at, for the model the
    config registers; an alert is a result, so only exit 2 fails the Job; MinIO lets it in."""
    from govtrain.core.config import load_config

    _, resources = rendered
    cron = next(r for r in resources if r["kind"] == "CronJob" and r["metadata"]["name"] == "govtrain-monitor")
    job = cron["spec"]["jobTemplate"]["spec"]
    container = job["template"]["spec"]["containers"][0]
    command = container["command"]
    config = load_config(ROOT / "configs" / "cluster.yaml")
    assert command[:2] == ["govtrain", "monitor"] and "--fail-on-alert" not in command
    assert command[command.index("--kserve-log") + 1] == config.cluster.capture_uri
    assert command[command.index("--model") + 1] == f"{config.registry.model_name}@champion"
    assert {"action": "FailJob", "onExitCodes": {"containerName": "monitor", "operator": "In", "values": [2]}} in \
        job["podFailurePolicy"]["rules"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"  # two runs would judge one window twice
    minio = next(r for r in resources if r["kind"] == "NetworkPolicy" and r["metadata"]["name"] == "minio-ingress")
    allowed = minio["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
    assert job["template"]["metadata"]["labels"]["app.kubernetes.io/name"] in allowed


def test_every_pod_is_locked_down_and_sized(rendered):
    _, resources = rendered
    pods = [(r["metadata"]["name"], spec) for r in resources for spec in pod_specs(r)]
    assert len(pods) >= 3
    for name, spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name  # none of them calls the Kubernetes API
        for container in containers(spec):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False and ctx["capabilities"] == {"drop": ["ALL"]}, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{name}: {kind}"
            assert ":" in container["image"] and not container["image"].endswith(":latest"), name


def checkov() -> str:
    bundled = str(ROOT / ".venv-tools" / "bin" / "checkov")
    path = os.environ.get("GOVTRAIN_CHECKOV") or shutil.which("checkov") or bundled
    if not Path(path).is_file():
        pytest.fail("checkov is not installed: run `make tools` (or `make test`, which does)")
    return path


def failed_checks(target: list[str]) -> set[tuple[str, str]]:
    out = subprocess.run([checkov(), *target, "--quiet", "--compact", "--output", "json"],
                         capture_output=True, text=True)
    reports = json.loads(out.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return {(c["check_id"], c["resource"]) for r in reports for c in r.get("results", {}).get("failed_checks", [])}


@pytest.mark.slow
def test_checkov_finds_nothing_beyond_the_listed_exceptions(tmp_path):
    for overlay in OVERLAYS:
        (tmp_path / f"{overlay}.yaml").write_text(yaml.safe_dump_all(render(overlay)))
    failed = failed_checks(["-d", str(tmp_path), "--framework", "kubernetes"])
    failed |= failed_checks(["-f", str(ROOT / "docker" / "Dockerfile"), "--framework", "dockerfile"])
    unexplained = sorted(f"{check} on {resource}" for check, resource in failed if check not in EXCEPTIONS)
    assert not unexplained, ("checkov failures without a reason in infra/checkov-exceptions.yaml: "
                             + "; ".join(unexplained))
    stale = set(EXCEPTIONS) - {check for check, _ in failed}
    assert not stale, f"exceptions that no longer match any finding, remove them: {sorted(stale)}"
    assert all(len(entry["reason"]) > 40 for entry in EXCEPTIONS.values())


def test_dockerfile_runs_as_non_root_from_a_pinned_base_and_installs_our_wheel():
    text = (ROOT / "docker" / "Dockerfile").read_text()
    bases = [line.split()[1] for line in text.splitlines() if line.startswith("FROM ")]
    assert bases and all(":" in b and "latest" not in b and b.count(".") >= 3 for b in bases)  # exact x.y.z tags
    assert "USER 10001:10001" in text and "pip wheel" in text and "govtrain-*.whl" in text


def test_cluster_pipeline_seals_failed_runs_in_an_exit_handler(tmp_path):
    config = load_config(ROOT / "configs" / "cluster.yaml")
    result = submit(config, ROOT / "configs" / "cluster.yaml", tmp_path / "p.yaml", None, None, "govtrain", None,
                    dry_run=True)
    spec, _ = list(yaml.safe_load_all(result.package.read_text()))
    exit_task = spec["root"]["dag"]["tasks"]["seal-on-exit-op"]
    assert exit_task["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert exit_task["dependentTasks"] == ["exit-handler-1"]
    for name, executor in spec["deploymentSpec"]["executors"].items():
        assert {"name": "GOVTRAIN_EVIDENCE_MIRROR", "value": "/mnt/govtrain/runs"} in executor["container"]["env"], name
