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
OVERLAYS = {"dev": "govtrain-dev", "prod": "govtrain"}
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
                ("NetworkPolicy", "default-deny-ingress")}
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


def test_rbac_grants_exactly_what_the_launcher_uses(rendered):
    _, resources = rendered
    roles = [r for r in resources if r["kind"] in ("Role", "ClusterRole")]
    assert [r["kind"] for r in roles] == ["Role"]
    assert roles[0]["rules"] == [
        {"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"], "verbs": ["create", "get", "list", "watch",
                                                                                "delete"]},
        {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list", "watch"]},
    ]


def test_every_pod_is_locked_down_and_sized(rendered):
    _, resources = rendered
    pods = [(r["metadata"]["name"], spec) for r in resources for spec in pod_specs(r)]
    assert len(pods) >= 3
    for name, spec in pods:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name  # none of them calls the Kubernetes API
        for container in spec["containers"]:
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
