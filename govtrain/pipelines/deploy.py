"""govtrain deploy: a registered version (the champion by default) as a KServe InferenceService, served
by MLServer's MLflow runtime (open inference protocol v2) straight from the artifact store.

Two documents: a ServingRuntime on cluster.serving_image (MLServer with the model's pinned torch and
safetensors, which KServe's stock kserve-mlserver image is not known to carry), named by the predictor's
`runtime`, and the InferenceService, whose payload logger writes every request and answer as Parquet under
cluster.capture_uri for `govtrain monitor --kserve-log` (serving/kserve_log.py).

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
RUNTIME_VERSION, RUNTIME_PLURAL, RUNTIME_KIND = "v1alpha1", "servingruntimes", "ServingRuntime"
RUNTIME_NAME = "govtrain-mlserver"
# The logger's blob schemes (pkg/logger/store.go) and formats (cmd/agent/main.go: json, csv, parquet; any other
# value silently falls back to json, so it is checked here).
LOG_SCHEMES, LOG_FORMATS = ("s3://", "gs://", "abfs://"), ("json", "csv", "parquet")
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
    predictor: dict[str, Any] = {
        "serviceAccountName": cluster.serving_service_account,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "runtime": RUNTIME_NAME,
                  "storageUri": storage_uri(config, model.artifact_uri), "resources": resources,
                  "securityContext": {k: v for k, v in CONTAINER_SECURITY.items() if k != "seccompProfile"}},
    }
    if cluster.capture_uri:
        # Object keys: <capture_uri>/<namespace>/<service>/predictor/v<version>/<id>-<request|response>.parquet
        predictor["logger"] = {
            "mode": "all", "url": cluster.capture_uri.rstrip("/"),
            "storage": {"key": cluster.capture_storage_key, "path": f"v{model.version}",
                        "parameters": {"format": "parquet"}},
            "batchSize": cluster.capture_batch_size, "batchInterval": cluster.capture_batch_interval,
            "metadataAnnotations": ["govtrain/model", "govtrain/version"]}
    isvc: dict[str, Any] = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": service_name(model.name), "namespace": cluster.namespace,
                     "labels": {**PART_OF, "govtrain/model": service_name(model.name),
                                "govtrain/version": model.version},
                     "annotations": {"govtrain/model": model.name, "govtrain/version": model.version,
                                     "govtrain/ledger-root": model.ledger_root or "",
                                     "sidecar.istio.io/inject": "false"}},
        "spec": {"predictor": predictor},
    }
    check_webhook_rules(isvc)
    return isvc


def build_serving_runtime(config: Config) -> dict[str, Any]:
    """MLServer's MLflow runtime on cluster.serving_image, shaped as KServe's own kserve-mlserver
    (config/runtimes/kserve-mlserver.yaml, v0.20.0): the server-type annotation makes KServe set
    MLSERVER_MODEL_NAME, MLSERVER_MODEL_URI (/mnt/models) and the modelClass label for the mlflow format.
    autoSelect off: only a predictor naming it by `runtime` uses it, and no priority can clash with the stock
    runtime (the ServingRuntime webhook compares priorities of auto-selected formats only)."""
    cluster, size = config.cluster, config.cluster.resources_of("serve")
    resources = {"requests": {"cpu": size.cpu, "memory": size.memory},
                 "limits": {k: v for k, v in (("cpu", size.cpu_limit), ("memory", size.memory_limit)) if v}}
    return {
        "apiVersion": f"{GROUP}/{RUNTIME_VERSION}", "kind": RUNTIME_KIND,
        "metadata": {"name": RUNTIME_NAME, "namespace": cluster.namespace, "labels": dict(PART_OF),
                     "annotations": {"serving.kserve.io/server-type": "mlserver"}},
        "spec": {
            "annotations": {"prometheus.kserve.io/port": "8080", "prometheus.kserve.io/path": "/metrics"},
            "supportedModelFormats": [{"name": "mlflow", "version": "2", "autoSelect": False}],
            "protocolVersions": ["v2"],
            "containers": [{
                "name": "kserve-container", "image": cluster.serving_image,
                "imagePullPolicy": "IfNotPresent" if "@sha256:" in cluster.serving_image else "Always",
                "command": ["mlserver", "start", "/mnt/models"],
                "env": [{"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": "{{.Labels.modelClass}}"},
                        {"name": "MLSERVER_HTTP_PORT", "value": "8080"},
                        {"name": "MLSERVER_GRPC_PORT", "value": "9000"},
                        {"name": "HOME", "value": "/tmp"}],
                "resources": resources,
                "securityContext": {"allowPrivilegeEscalation": False, "privileged": False, "runAsNonRoot": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
        },
    }


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
    logger = predictor.get("logger")
    if logger is not None:  # validateLogger (inference_service_validation.go), then what the agent can store
        if logger.get("mode") not in ("all", "request", "response"):
            raise DeployError("spec.predictor.logger.mode: invalid logger type")
        storage = logger.get("storage")
        if storage is not None:
            if any(storage.get(k) is None for k in ("path", "parameters", "key")):
                raise DeployError("spec.predictor.logger.storage: invalid logger storage configuration (path, "
                                  "parameters and key are all required)")
            if not str(logger.get("url", "")).startswith(LOG_SCHEMES):
                raise DeployError(f"spec.predictor.logger.url {logger.get('url')!r}: the logger stores blobs "
                                  f"only under {', '.join(LOG_SCHEMES)}")
            if storage["parameters"].get("format", "json") not in LOG_FORMATS:
                raise DeployError(f"spec.predictor.logger.storage.parameters.format "
                                  f"{storage['parameters'].get('format')!r}: the agent writes "
                                  f"{', '.join(LOG_FORMATS)} (anything else silently becomes json)")


def apply(resource: dict) -> str:
    """Create the ServingRuntime or InferenceService, or replace the existing one's spec; returns what
    happened."""
    from kubernetes import client as k8s
    from kubernetes.client.exceptions import ApiException

    from govtrain.components.train.launcher import api_client

    api = k8s.CustomObjectsApi(api_client())
    version, plural = resource["apiVersion"].split("/")[1], PLURAL if resource["kind"] == KIND else RUNTIME_PLURAL
    namespace, name = resource["metadata"]["namespace"], resource["metadata"]["name"]
    try:
        api.create_namespaced_custom_object(GROUP, version, namespace, plural, resource)
        return "created"
    except ApiException as exc:
        if exc.status != 409:
            raise DeployError(f"{resource['kind']} {namespace}/{name}: create refused ({exc.status} "
                              f"{exc.reason})") from exc
    current = api.get_namespaced_custom_object(GROUP, version, namespace, plural, name)
    resource = {**resource, "metadata": {**resource["metadata"],
                                         "resourceVersion": current["metadata"]["resourceVersion"]}}
    api.replace_namespaced_custom_object(GROUP, version, namespace, plural, name, resource)
    return "replaced"
