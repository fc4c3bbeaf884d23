"""Submit a training job (PyTorchJob or TrainJob), follow rank 0's log, and wait for it to succeed.

Only the kind's success condition ends the wait successfully: a Failed job fails the step with the
controller's own message (KFP's published launcher sample waits for "Succeeded or Failed" and reports
success either way). Transient API errors (429, 5xx, a dropped connection) are retried with backoff;
a job of our own name left by an earlier attempt of the step is adopted, not refused. A failed job's
replica logs are collected before it is deleted. The job is deleted however the wait ends; its
ownerReference to the step's pod covers the case where this process never gets to (a cancelled run).
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from govtrain.components.train.cluster_job import RUN_LABEL, JobKind

TRANSIENT = {429, 500, 502, 503, 504}


class JobError(RuntimeError):
    """The job did not succeed; the message says why in one line. `logs` are the replica logs collected."""

    def __init__(self, message: str, logs: list[Path] | None = None):
        super().__init__(message)
        self.logs = logs or []


def api_client() -> k8s.ApiClient:
    """In a pipeline pod: the pod's service account. Elsewhere: the current kubeconfig context."""
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        path = os.environ.get("KUBECONFIG", "~/.kube/config")  # read now: the client reads it at import time
        try:
            k8s_config.load_kube_config(config_file=path)
        except (k8s_config.ConfigException, OSError) as exc:
            raise JobError(f"no Kubernetes credentials: not in a pod, and kubeconfig {path} is unusable "
                           f"({exc})") from exc
    return k8s.ApiClient()


def condition(job: dict, kind: str) -> dict | None:
    for cond in job.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def owner_reference(api: k8s.ApiClient, namespace: str, log: Callable[[str], None] = print) -> dict | None:
    """The step's own pod as the job's owner (a pod's hostname is its name). None outside a pod or in
    another namespace, said in the log: then only the launcher's own delete removes the job."""
    name = os.environ.get("HOSTNAME", "")
    try:
        pod = k8s.CoreV1Api(api).read_namespaced_pod(name, namespace) if name else None
    except (ApiException, HTTPError) as exc:
        log(f"note: no owner for the training job (pod {namespace}/{name} not readable: {exc})")
        return None
    if pod is None:
        return None
    # blockOwnerDeletion false: the pod's deletion must not wait for the job, and it needs no extra RBAC.
    return {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid,
            "controller": False, "blockOwnerDeletion": False}


class JobLauncher:
    def __init__(self, api: k8s.ApiClient, kind: JobKind, namespace: str, poll_seconds: float = 10.0,
                 log: Callable[[str], None] = print, retries: int = 5, backoff_seconds: float = 1.0,
                 logs_dir: Path | None = None):
        self.custom, self.core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
        self.kind, self.namespace, self.poll_seconds, self.log = kind, namespace, poll_seconds, log
        self.retries, self.backoff_seconds, self.logs_dir = retries, backoff_seconds, logs_dir

    def where(self, name: str) -> str:
        return f"{self.kind.kind} {self.namespace}/{name}"

    def run(self, job: dict, timeout_seconds: float, cancel: threading.Event | None = None) -> dict:
        """Create (or adopt) the job and block until it succeeds; returns its final object, raises JobError."""
        cancel = cancel or threading.Event()
        name = job["metadata"]["name"]
        self._create(job)
        follower = threading.Thread(target=self._follow_rank0_log, args=(name, cancel), daemon=True)
        follower.start()
        deadline = time.monotonic() + timeout_seconds
        try:
            while True:
                current = self._get(name)
                if condition(current, self.kind.succeeded):
                    follower.join(timeout=self.poll_seconds)
                    return current
                failed = condition(current, "Failed")
                if failed:
                    follower.join(timeout=self.poll_seconds)
                    raise JobError(f"{self.where(name)} failed: {failed.get('reason', '')}: "
                                   f"{failed.get('message', 'no message')}", self._collect_logs(name))
                if time.monotonic() > deadline:
                    raise JobError(f"{self.where(name)} did not succeed within {timeout_seconds:.0f} s",
                                   self._collect_logs(name))
                if cancel.wait(self.poll_seconds):
                    raise JobError(f"{self.where(name)} cancelled")
        finally:
            cancel.set()  # stops the log follower
            self._delete(name)
            # The follower writes into the step's log folder, which the step removes after we return.
            follower.join(timeout=self.poll_seconds)

    def _call(self, what: str, name: str, call: Callable[[], Any]) -> Any:
        """One API call, retried with exponential backoff on transient errors."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except ApiException as exc:
                if exc.status not in TRANSIENT or attempt == self.retries:
                    raise
                reason = f"{exc.status} {exc.reason}"
            except HTTPError as exc:
                if attempt == self.retries:
                    raise JobError(f"{self.where(name)}: Kubernetes API unreachable after {attempt + 1} "
                                   f"attempt(s): {exc}") from exc
                reason = str(exc)
            wait = self.backoff_seconds * 2 ** attempt
            self.log(f"warning: {what} {self.where(name)}: {reason}; retrying in {wait:.1f} s")
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _create(self, job: dict) -> None:
        name, api = job["metadata"]["name"], self.kind
        try:
            self._call("create", name, lambda: self.custom.create_namespaced_custom_object(
                api.group, api.version, self.namespace, api.plural, job))
        except ApiException as exc:
            if exc.status == 409 and self._adopt(job):
                return
            raise JobError(f"{self.where(name)}: create refused ({exc.status} {exc.reason}): "
                           f"{_message(exc)}") from exc
        self.log(f"submitted {self.where(name)}")

    def _adopt(self, job: dict) -> bool:
        """A retried step finds the job its earlier attempt created: same name, same run label."""
        name = job["metadata"]["name"]
        existing = self._get(name)
        ours = existing.get("metadata", {}).get("labels", {}).get(RUN_LABEL) == job["metadata"]["labels"][RUN_LABEL]
        if ours:
            self.log(f"adopted {self.where(name)}, created by an earlier attempt of this step")
        return ours

    def _get(self, name: str) -> dict:
        api = self.kind
        try:
            return self._call("status of", name, lambda: self.custom.get_namespaced_custom_object(
                api.group, api.version, self.namespace, api.plural, name))
        except ApiException as exc:
            raise JobError(f"{self.where(name)}: cannot read status ({exc.status} {exc.reason})") from exc

    def _delete(self, name: str) -> None:
        api = self.kind
        try:
            self._call("delete", name, lambda: self.custom.delete_namespaced_custom_object(
                api.group, api.version, self.namespace, api.plural, name, propagation_policy="Foreground"))
            self.log(f"deleted {self.where(name)}")
        except ApiException as exc:
            if exc.status != 404:
                self.log(f"warning: could not delete {self.where(name)}: {exc.status} {exc.reason}")
        except JobError as exc:
            self.log(f"warning: could not delete {self.where(name)}: {exc}")

    def _pods(self, name: str) -> list:
        pods = self.core.list_namespaced_pod(self.namespace, label_selector=self.kind.log_selector.format(name=name))
        return sorted(pods.items, key=lambda p: p.metadata.name)  # rank 0 (master-0, node-0-0) first

    def _collect_logs(self, name: str) -> list[Path]:
        """Every replica's log, saved before the job (and with it its pods) is deleted."""
        if self.logs_dir is None:
            return []
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        saved = []
        try:
            for pod in self._pods(name):
                text = self.core.read_namespaced_pod_log(pod.metadata.name, self.namespace,
                                                         container=self.kind.container)
                path = self.logs_dir / f"{pod.metadata.name}.log"
                path.write_text(text if isinstance(text, str) else str(text))
                saved.append(path)
        except (ApiException, HTTPError) as exc:
            self.log(f"warning: replica logs incomplete: {exc}")
        if saved:
            self.log(f"collected {len(saved)} replica log(s) of {self.where(name)}")
        return saved

    def _follow_rank0_log(self, name: str, stop: threading.Event) -> None:
        """Stream rank 0's log into ours once it runs; best effort, the job status is what counts."""
        while not stop.is_set():
            try:
                running = [p for p in self._pods(name)
                           if p.status and p.status.phase in ("Running", "Succeeded", "Failed")]
                if running:
                    stream = self.core.read_namespaced_pod_log(running[0].metadata.name, self.namespace,
                                                               container=self.kind.container, follow=True,
                                                               _preload_content=False)
                    pending = b""
                    for chunk in stream.stream():
                        *lines, pending = (pending + chunk).split(b"\n")
                        for line in lines:
                            self.log(f"[rank0] {line.decode(errors='replace')}")
                    if pending:
                        self.log(f"[rank0] {pending.decode(errors='replace')}")
                    return
            except (ApiException, HTTPError) as exc:
                self.log(f"warning: rank 0 log unavailable: {exc}")
                return
            stop.wait(self.poll_seconds)


def _message(exc: ApiException) -> str:
    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError):
        return str(exc.body)[:200]
