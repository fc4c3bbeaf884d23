"""Submit a PyTorchJob, follow the master's log, and wait for it to succeed.

Only the Succeeded condition ends the wait successfully: a Failed job fails the step with the
operator's own message (KFP's published launcher sample waits for "Succeeded or Failed" and reports
success either way). The job is deleted however the wait ends, including cancellation and timeouts;
its log is already in the step's log by then.
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from govtrain.components.train.pytorchjob import CONTAINER, GROUP, PLURAL, VERSION


class JobError(RuntimeError):
    """The PyTorchJob did not succeed; the message says why in one line."""


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


class PyTorchJobLauncher:
    def __init__(self, api: k8s.ApiClient, namespace: str, poll_seconds: float = 10.0,
                 log: Callable[[str], None] = print):
        self.custom, self.core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
        self.namespace, self.poll_seconds, self.log = namespace, poll_seconds, log

    def run(self, job: dict, timeout_seconds: float, cancel: threading.Event | None = None) -> dict:
        """Create the job and block until it succeeds; returns its final object, raises JobError otherwise."""
        cancel = cancel or threading.Event()
        name = job["metadata"]["name"]
        try:
            self.custom.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, job)
        except ApiException as exc:
            raise JobError(f"PyTorchJob {self.namespace}/{name}: create refused ({exc.status} {exc.reason}): "
                           f"{_message(exc)}") from exc
        except HTTPError as exc:
            raise JobError(f"PyTorchJob {self.namespace}/{name}: Kubernetes API unreachable: {exc}") from exc
        self.log(f"submitted PyTorchJob {self.namespace}/{name}")
        follower = threading.Thread(target=self._follow_master_log, args=(name, cancel), daemon=True)
        follower.start()
        deadline = time.monotonic() + timeout_seconds
        try:
            while True:
                current = self._get(name)
                if condition(current, "Succeeded"):
                    follower.join(timeout=self.poll_seconds)
                    return current
                failed = condition(current, "Failed")
                if failed:
                    follower.join(timeout=self.poll_seconds)
                    raise JobError(f"PyTorchJob {self.namespace}/{name} failed: "
                                   f"{failed.get('reason', '')}: {failed.get('message', 'no message')}")
                if time.monotonic() > deadline:
                    raise JobError(f"PyTorchJob {self.namespace}/{name} did not succeed within {timeout_seconds:.0f} s")
                if cancel.wait(self.poll_seconds):
                    raise JobError(f"PyTorchJob {self.namespace}/{name} cancelled")
        finally:
            cancel.set()  # stops the log follower
            self._delete(name)
            # The follower writes into the step's log folder, which the step removes after we return.
            follower.join(timeout=self.poll_seconds)

    def _get(self, name: str) -> dict:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)
        except ApiException as exc:
            raise JobError(f"PyTorchJob {self.namespace}/{name}: cannot read status "
                           f"({exc.status} {exc.reason})") from exc
        except HTTPError as exc:
            raise JobError(f"PyTorchJob {self.namespace}/{name}: Kubernetes API unreachable: {exc}") from exc

    def _delete(self, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                        propagation_policy="Foreground")
            self.log(f"deleted PyTorchJob {self.namespace}/{name}")
        except ApiException as exc:
            if exc.status != 404:
                self.log(f"warning: could not delete PyTorchJob {self.namespace}/{name}: {exc.status} {exc.reason}")
        except HTTPError as exc:
            self.log(f"warning: could not delete PyTorchJob {self.namespace}/{name}: {exc}")

    def _follow_master_log(self, name: str, stop: threading.Event) -> None:
        """Stream the master pod's log into ours once it runs; best effort, the job status is what counts."""
        selector = f"training.kubeflow.org/job-name={name},training.kubeflow.org/replica-type=master"
        while not stop.is_set():
            try:
                pods = self.core.list_namespaced_pod(self.namespace, label_selector=selector).items
                running = [p for p in pods if p.status and p.status.phase in ("Running", "Succeeded", "Failed")]
                if running:
                    stream = self.core.read_namespaced_pod_log(running[0].metadata.name, self.namespace,
                                                               container=CONTAINER, follow=True,
                                                               _preload_content=False)
                    pending = b""
                    for chunk in stream.stream():
                        *lines, pending = (pending + chunk).split(b"\n")
                        for line in lines:
                            self.log(f"[master] {line.decode(errors='replace')}")
                    if pending:
                        self.log(f"[master] {pending.decode(errors='replace')}")
                    return
            except (ApiException, HTTPError) as exc:
                self.log(f"warning: master log unavailable: {exc}")
                return
            stop.wait(self.poll_seconds)


def _message(exc: ApiException) -> str:
    import json

    try:
        return json.loads(exc.body).get("message", "")
    except (TypeError, ValueError):
        return str(exc.body)[:200]
