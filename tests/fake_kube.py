"""A stand-in Kubernetes API server on 127.0.0.1 for the training-job launcher tests.

It speaks the REST paths the real `kubernetes` client uses (create/get/delete PyTorchJobs and
TrainJobs, read and list pods, read a pod's log), validates every submitted job against the vendored
CRD schema of its kind, and either replays a scripted list of statuses or, as `operator=True`, plays
the controller: it starts each replica's container command as a local process with the PET_*
variables the Training Operator and Trainer v2's torch plugin set, and reports Running, then the
kind's success condition or Failed from their exit codes. `faults` injects transient HTTP errors,
`existing` pre-creates jobs (a retried step's). Nothing here runs in production code.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "infra" / "crds"
SCHEMAS = {"pytorchjobs": (CRDS / "kubeflow.org_pytorchjobs.yaml", "v1"),
           "trainjobs": (CRDS / "trainer-v2" / "trainer.kubeflow.org_trainjobs.yaml", "v1alpha1")}
JOBS = re.compile(r"^/apis/(?:kubeflow\.org/v1|trainer\.kubeflow\.org/v1alpha1)/namespaces/([^/]+)/"
                  r"(pytorchjobs|trainjobs)(?:/([^/?]+))?")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/?]+))?(/log)?")
SUCCEEDED = {"pytorchjobs": "Succeeded", "trainjobs": "Complete"}


@cache
def crd_schema(plural: str = "pytorchjobs") -> dict:
    path, version = SCHEMAS[plural]
    crd = yaml.load(path.read_text(), Loader=yaml.CSafeLoader)  # large files: the C loader
    return next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]


_VALIDATORS: dict[int, tuple[dict, jsonschema.protocols.Validator]] = {}


def validate(instance: dict, schema: dict) -> None:
    """jsonschema.validate without re-checking a multi-megabyte CRD schema against the metaschema on
    every call (the schemas are upstream's, loaded unchanged); raises jsonschema.ValidationError."""
    if id(schema) not in _VALIDATORS:  # the schema is kept with its validator, so its id stays its own
        _VALIDATORS[id(schema)] = (schema, jsonschema.validators.validator_for(schema)(schema))
    error = jsonschema.exceptions.best_match(_VALIDATORS[id(schema)][1].iter_errors(instance))
    if error is not None:
        raise error


def condition(kind: str, message: str = "", reason: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": reason or kind, "message": message}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def replicas_of(job: dict) -> list[tuple[str, dict, dict]]:
    """(pod name, container, PET_* env) for every pod the controller would start, rank 0 first."""
    name, spec = job["metadata"]["name"], job["spec"]
    if job["kind"] == "TrainJob":
        trainer = spec["trainer"]
        nodes = trainer.get("numNodes", 1)
        container = {"command": trainer["command"], "env": trainer.get("env", [])}
        return [(f"{name}-node-0-{rank}", container,
                 {"PET_NNODES": str(nodes), "PET_NODE_RANK": str(rank),
                  "PET_NPROC_PER_NODE": str(trainer.get("numProcPerNode", 1))}) for rank in range(nodes)]
    specs = spec["pytorchReplicaSpecs"]
    nnodes = sum(r.get("replicas", 1) for r in specs.values())
    pods, rank = [], 0
    for kind in ("Master", "Worker"):
        for index in range(specs.get(kind, {}).get("replicas", 0)):
            container = specs[kind]["template"]["spec"]["containers"][0]
            pods.append((f"{name}-{kind.lower()}-{index}", container,
                         {"PET_NNODES": str(nnodes), "PET_NODE_RANK": str(rank),
                          "PET_NPROC_PER_NODE": spec.get("nprocPerNode", "1")}))
            rank += 1
    return pods


class FakeKube:
    def __init__(self, statuses: list[list[dict]] | None = None, operator: bool = False, master_log: str = "",
                 logs_dir: Path | None = None, faults: dict[str, list[int]] | None = None,
                 existing: dict[str, dict] | None = None, step_pod: str | None = None):
        self.statuses, self.operator, self.master_log = statuses or [], operator, master_log
        self.logs_dir = logs_dir or Path(".")
        self.faults = {k: list(v) for k, v in (faults or {}).items()}  # method -> HTTP codes to answer first
        self.jobs: dict[str, dict] = dict(existing or {})
        self.plural: dict[str, str] = {n: ("trainjobs" if j["kind"] == "TrainJob" else "pytorchjobs")
                                       for n, j in self.jobs.items()}
        self.step_pod = step_pod  # a pod GET /pods/<step_pod> answers, with uid "uid-<name>"
        self.gets: dict[str, int] = {}
        self.creates: list[str] = []
        self.deleted: list[str] = []
        self.procs: dict[str, list[tuple[str, subprocess.Popen, Path]]] = {}
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeKube:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        for replicas in self.procs.values():
            for _, proc, _ in replicas:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": "govtrain"}}]}))
        return path

    # --- the "controller" ----------------------------------------------------------------------
    def _start_replicas(self, job: dict) -> None:
        port, started = free_port(), []
        for pod, container, pet in replicas_of(job):
            command = [sys.executable if container["command"][0] == "python" else container["command"][0],
                       *container["command"][1:]]
            env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
                   **pet, "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
            log = self.logs_dir / f"{pod}.log"
            with open(log, "w") as out:
                proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            started.append((pod, proc, log))
        self.procs[job["metadata"]["name"]] = started

    def _operator_status(self, name: str) -> list[dict]:
        replicas = self.procs[name]
        codes = [proc.poll() for _, proc, _ in replicas]
        failed = [(pod, code) for (pod, _, _), code in zip(replicas, codes, strict=True) if code not in (None, 0)]
        if failed:
            pod, code = failed[0]
            return [condition("Running"), condition("Failed", f"{name} is failed because pod {pod} failed "
                                                              f"(exit code {code}).", "JobFailed")]
        if all(code == 0 for code in codes):
            return [condition("Running"), condition(SUCCEEDED[self.plural[name]], f"{name} completed")]
        return [condition("Running")]

    def _pod_log(self, pod: str) -> bytes:
        for replicas in self.procs.values():
            for name, proc, log in replicas:
                if name == pod:
                    proc.wait()
                    return log.read_bytes()
        return self.master_log.encode() if re.search(r"-(master-0|node-0-0)$", pod) else f"log of {pod}\n".encode()

    def _fault(self, method: str) -> int | None:
        with self.lock:
            codes = self.faults.get(method)
            return codes.pop(0) if codes else None

    # --- HTTP ----------------------------------------------------------------------------------
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, body, content_type: str = "application/json") -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code: int, message: str) -> None:
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                                  "code": code})

            def do_POST(self):
                match = JOBS.match(self.path)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if not match:
                    return self._status(404, "not found")
                if code := fake._fault("POST"):
                    return self._status(code, "injected fault")
                plural = match.group(2)
                try:
                    validate(body, crd_schema(plural))
                except jsonschema.ValidationError as exc:
                    return self._status(422, f"{body.get('kind')} is invalid: {exc.message}")
                name = body["metadata"]["name"]
                with fake.lock:
                    fake.creates.append(name)
                    if name in fake.jobs and name not in fake.deleted:
                        return self._status(409, f'{plural}.{body["apiVersion"].split("/")[0]} "{name}" '
                                                 f"already exists")
                    fake.jobs[name], fake.plural[name] = body, plural
                    if fake.operator:
                        fake._start_replicas(body)
                self._send(201, body)

            def do_GET(self):
                if match := JOBS.match(self.path):
                    name = match.group(3)
                    if code := fake._fault("GET"):
                        return self._status(code, "injected fault")
                    with fake.lock:
                        if name not in fake.jobs or name in fake.deleted:
                            return self._status(404, f'{match.group(2)} "{name}" not found')
                        count = fake.gets[name] = fake.gets.get(name, 0) + 1
                        if fake.operator and name in fake.procs:
                            conditions = fake._operator_status(name)
                        elif fake.statuses:
                            conditions = fake.statuses[min(count, len(fake.statuses)) - 1]
                        else:
                            conditions = []
                        return self._send(200, {**fake.jobs[name], "status": {"conditions": conditions}})
                if match := PODS.match(self.path):
                    namespace, pod, log = match.groups()
                    if pod and log:
                        return self._send(200, fake._pod_log(pod), "text/plain")
                    if pod:
                        if pod != fake.step_pod:
                            return self._status(404, f'pods "{pod}" not found')
                        return self._send(200, {"kind": "Pod", "apiVersion": "v1", "metadata": {
                            "name": pod, "namespace": namespace, "uid": f"uid-{pod}"}})
                    job = re.search(r"name%3D([\w-]+)|name=([\w-]+)", self.path)
                    name = next(g for g in job.groups() if g) if job else ""
                    pods = ([p for p, _, _ in fake.procs[name]] if name in fake.procs else
                            [p for p, _, _ in replicas_of(fake.jobs[name])] if name in fake.jobs else [])
                    items = [{"metadata": {"name": p, "namespace": namespace}, "status": {"phase": "Running"}}
                             for p in pods]
                    return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                self._status(404, "not found")

            def do_DELETE(self):
                match = JOBS.match(self.path)
                if not match or match.group(3) not in fake.jobs:
                    return self._status(404, "not found")
                with fake.lock:
                    fake.deleted.append(match.group(3))
                    for _, proc, _ in fake.procs.get(match.group(3), []):
                        if proc.poll() is None:
                            proc.terminate()
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        return Handler
