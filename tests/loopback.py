"""What the stand-in HTTP servers of the tests share: a free port on 127.0.0.1, serving in a thread for
the length of a `with` block, and a handler that stays quiet and answers in one call."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, code: int, body: bytes | dict = b"", headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        self.send_response(code)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Loopback:
    def __init__(self, handler: type[BaseHTTPRequestHandler], path: str = ""):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()


class FaultProxy(Loopback):
    """A forwarding HTTP proxy on 127.0.0.1 in front of a real server that, once a request whose path contains
    `drop_after` has been answered, drops every later request (the connection closed, no answer), as a
    server dying mid-call looks to a client. `dropping` can also be set and cleared by the test."""

    def __init__(self, upstream: str, drop_after: str | None = None):
        import http.client
        from urllib.parse import urlsplit

        target = urlsplit(upstream)
        self.dropping, self.forwarded, self.dropped = False, [], []
        proxy = self

        class Handler(QuietHandler):
            def _any(self):
                body = self.body()
                if proxy.dropping:
                    proxy.dropped.append(self.path)
                    self.close_connection = True
                    return
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                conn.close()
                self.send_response(answer.status)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                proxy.forwarded.append(self.path)
                if drop_after and drop_after in self.path:
                    proxy.dropping = True

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _any

        super().__init__(Handler)
