"""govtrain deploy: a registered version (the champion by default) as a KServe InferenceService, served
by KServe's MLflow runtime (MLServer, open inference protocol v2) straight from the artifact store.

The manifest is checked before anything is sent: the vendored v0.20.0 CRD schema (tests), KServe's
admission rules that apply to what we generate (below), and that the version is servable without
govtrain (registry/serving.py). `--dry-run` prints it; otherwise it is created, or replaced when an
InferenceService of that name exists.
"""
from __future__ import annotations

from typing import Any

from govtrain.components.train.cluster_job import CONTAINER_SECURITY, PART_OF, is_dns1035, slug
from govtrain.core.config import Config
from govtrain.registry.serving import ServableModel

GROUP, VERSION, PLURAL, KIND = "serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService"
# KServe's storage initializer downloads from these schemes (pkg/apis/serving/v1beta1 SupportedStorageURIPrefixList).
STORAGE_SCHEMES = ("gs://", "s3://", "pvc://", "file://", "https://", "http://", "hdfs://", "webhdfs://", "oci://",
                   "hf://")


class DeployError(ValueError):
    """The version cannot be deployed as asked; one line says why."""


def service_name(model: str) -> str:
    """A DNS-1035 label KServe accepts as an InferenceService name (it becomes a Knative service name)."""
    name = slug(model)
    return (name if name[:1].isalpha() else f"m-{name}")[:45].rstrip("-")


def storage_uri(config: Config, artifact_uri: str) -> str:
    """Where KServe downloads the model from: a proxied MLflow location (mlflow-artifacts:/PATH) is the
    server's --artifacts-destination plus PATH; a direct store URI is used as it is."""
    if artifact_uri.startswith("mlflow-artifacts:"):
        path = artifact_uri.removeprefix("mlflow-artifacts:").lstrip("/")
        return f"{config.cluster.artifacts_destination.rstrip('/')}/{path}"
    if artifact_uri.startswith(STORAGE_SCHEMES) and not artifact_uri.startswith("file://"):
        return artifact_uri  # file:// would name a path inside the serving container, not this machine
    raise DeployError(f"the model's files are at {artifact_uri}, which a cluster cannot download from "
                      f"(register against the cluster's MLflow server)")


def build_inference_service(config: Config, model: ServableModel) -> dict[str, Any]:
    problems = model.problems()
    if problems:
        raise DeployError(f"{model.name} version {model.version} is not servable without govtrain: {problems[0]}")
    cluster, size = config.cluster, config.cluster.resources_of("serve")
    resources = {"requests": {"cpu": size.cpu, "memory": size.memory},
                 "limits": {k: v for k, v in (("cpu", size.cpu_limit), ("memory", size.memory_limit)) if v}}
    isvc: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": service_name(model.name), "namespace": cluster.namespace,
                     "labels": {**PART_OF, "govtrain/model": service_name(model.name),
                                "govtrain/version": model.version},
                     "annotations": {"govtrain/model": model.name, "govtrain/ledger-root": model.ledger_root or "",
                                     "sidecar.istio.io/inject": "false"}},
        "spec": {"predictor": {
            "serviceAccountName": cluster.serving_service_account,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2",
                      "storageUri": storage_uri(config, model.artifact_uri), "resources": resources,
                      "securityContext": {k: v for k, v in CONTAINER_SECURITY.items() if k != "seccompProfile"}},
        }},
    }
    check_webhook_rules(isvc)
    return isvc


def check_webhook_rules(isvc: dict) -> None:
    """KServe's validating webhook (inference_service_validation.go) for the fields we set."""
    name = isvc["metadata"]["name"]
    if not is_dns1035(name):
        raise DeployError(f"InferenceService name {name!r} is not a DNS-1035 label")
    predictor = isvc["spec"]["predictor"]
    frameworks = [k for k in ("model", "sklearn", "xgboost", "pytorch", "tensorflow", "onnx", "triton",
                              "lightgbm", "pmml", "paddle", "huggingface") if k in predictor]
    if len(frameworks) != 1:
        raise DeployError("spec.predictor: exactly one model implementation is allowed")
    model = predictor["model"]
    if not str(model.get("storageUri", "")).startswith(STORAGE_SCHEMES):
        raise DeployError(f"spec.predictor.model.storageUri {model.get('storageUri')!r}: unsupported scheme")
    if model["modelFormat"]["name"] == "mlflow" and model.get("protocolVersion") != "v2":
        raise DeployError("spec.predictor.model: KServe's MLflow runtime (MLServer) speaks protocol v2 only")


def apply(isvc: dict) -> str:
    """Create the InferenceService, or replace the spec of the existing one; returns what happened."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    from govtrain.components.train.launcher import api_client

    api = k8s.CustomObjectsApi(api_client())
    namespace, name = isvc["metadata"]["namespace"], isvc["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, isvc)
        return "created"
    except ApiException as exc:
        if exc.status != 409:
            raise DeployError(f"{KIND} {namespace}/{name}: create refused ({exc.status} {exc.reason})") from exc
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    isvc = {**isvc, "metadata": {**isvc["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}}
    api.replace_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, isvc)
    return "replaced"
