"""A stand-in Kubernetes API server on 127.0.0.1 for the PyTorchJob launcher tests.

It speaks the REST paths the real `kubernetes` client uses (create/get/delete pytorchjobs, list pods,
read a pod's log), validates every submitted PyTorchJob against the vendored CRD schema, and either
replays a scripted list of statuses or, as `operator=True`, plays the Training Operator: it starts
each replica's container command as a local process with the PET_* variables the operator sets, and
reports Running, then Succeeded or Failed from their exit codes. Nothing here runs in production code.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parent.parent
CRD = ROOT / "infra" / "crds" / "kubeflow.org_pytorchjobs.yaml"
JOBS = re.compile(r"^/apis/kubeflow\.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/?]+))?")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/?]+)/log)?")


def crd_schema() -> dict:
    crd = yaml.safe_load(CRD.read_text())
    return next(v for v in crd["spec"]["versions"] if v["name"] == "v1")["schema"]["openAPIV3Schema"]


def condition(kind: str, message: str = "", reason: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": reason or f"PyTorchJob{kind}", "message": message}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeKube:
    def __init__(self, statuses: list[list[dict]] | None = None, operator: bool = False, master_log: str = "",
                 logs_dir: Path | None = None):
        self.statuses, self.operator, self.master_log = statuses or [], operator, master_log
        self.logs_dir = logs_dir or Path(".")
        self.jobs: dict[str, dict] = {}
        self.gets: dict[str, int] = {}
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

    # --- the "operator" ------------------------------------------------------------------------
    def _start_replicas(self, job: dict, logs: Path) -> None:
        specs = job["spec"]["pytorchReplicaSpecs"]
        nnodes = sum(r.get("replicas", 1) for r in specs.values())
        port, started, node_rank = free_port(), [], 0
        for kind in ("Master", "Worker"):
            for index in range(specs.get(kind, {}).get("replicas", 0)):
                container = specs[kind]["template"]["spec"]["containers"][0]
                command = [sys.executable if container["command"][0] == "python" else container["command"][0],
                           *container["command"][1:]]
                env = {**os.environ, **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
                       "PET_NNODES": str(nnodes), "PET_NODE_RANK": str(node_rank),
                       "PET_NPROC_PER_NODE": job["spec"].get("nprocPerNode", "1"),
                       "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
                log = logs / f"{kind.lower()}-{index}.log"
                with open(log, "w") as out:
                    proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
                started.append((kind, proc, log))
                node_rank += 1
        self.procs[job["metadata"]["name"]] = started

    def _operator_status(self, name: str) -> list[dict]:
        replicas = self.procs[name]
        codes = [proc.poll() for _, proc, _ in replicas]
        failed = [(kind, code) for (kind, _, _), code in zip(replicas, codes, strict=True) if code not in (None, 0)]
        if failed:
            kind, code = failed[0]
            return [condition("Running"), condition("Failed",
                                                    f"PyTorchJob {name} is failed because 1 {kind} replica(s) "
                                                              f"failed (exit code {code}).", "PyTorchJobFailed")]
        if all(code == 0 for code in codes):
            return [condition("Running"), condition("Succeeded", f"PyTorchJob {name} is successfully completed.")]
        return [condition("Running")]

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
                try:
                    jsonschema.validate(body, crd_schema())
                except jsonschema.ValidationError as exc:
                    return self._status(422, f"PyTorchJob is invalid: {exc.message}")
                name = body["metadata"]["name"]
                with fake.lock:
                    if name in fake.jobs:
                        return self._status(409, f'pytorchjobs.kubeflow.org "{name}" already exists')
                    fake.jobs[name] = body
                    if fake.operator:
                        fake._start_replicas(body, fake.logs_dir)
                self._send(201, body)

            def do_GET(self):
                if match := JOBS.match(self.path):
                    name = match.group(2)
                    with fake.lock:
                        if name not in fake.jobs or name in fake.deleted:
                            return self._status(404, f'pytorchjobs.kubeflow.org "{name}" not found')
                        count = fake.gets[name] = fake.gets.get(name, 0) + 1
                        if fake.operator:
                            conditions = fake._operator_status(name)
                        else:
                            conditions = fake.statuses[min(count, len(fake.statuses)) - 1]
                        return self._send(200, {**fake.jobs[name], "status": {"conditions": conditions}})
                if match := PODS.match(self.path):
                    if match.group(2):  # a pod's log
                        name = match.group(2).removesuffix("-master-0")
                        if fake.operator:
                            _, proc, log = fake.procs[name][0]
                            proc.wait()
                            return self._send(200, log.read_bytes(), "text/plain")
                        return self._send(200, fake.master_log.encode(), "text/plain")
                    job = re.search(r"job-name%3D([\w-]+)|job-name=([\w-]+)", self.path)
                    name = next(g for g in job.groups() if g) if job else ""
                    items = [{"metadata": {"name": f"{name}-master-0", "namespace": match.group(1)},
                              "status": {"phase": "Running"}}] if name in fake.jobs else []
                    return self._send(200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})
                self._status(404, "not found")

            def do_DELETE(self):
                match = JOBS.match(self.path)
                if not match or match.group(2) not in fake.jobs:
                    return self._status(404, "not found")
                with fake.lock:
                    fake.deleted.append(match.group(2))
                    for _, proc, _ in fake.procs.get(match.group(2), []):
                        if proc.poll() is None:
                            proc.terminate()
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        return Handler
