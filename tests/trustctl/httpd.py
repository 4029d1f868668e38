"""A tiny threaded HTTP(S) server for tests: token services, proxies, TLS checks.

``serve(handler)`` starts ``http.server.ThreadingHTTPServer`` on 127.0.0.1 (with TLS
when given a certificate) in a thread; ``handler(request) -> Reply``. Stop it with
``server.stop()``.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import urllib3


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Close the connection without answering (a response lost on the way back).
    drop: bool = False


@dataclass
class Server:
    url: str
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    requests: list[Request] = field(default_factory=list)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(
    handler: Callable[[Request], Reply], *, cert: Path | None = None, key: Path | None = None
) -> Server:
    requests: list[Request] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body go out in two writes: with Nagle's algorithm the body waits
        # for the client's delayed ACK of the headers (40 ms on Linux) on every answer
        disable_nagle_algorithm = True

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            req = Request(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
            )
            requests.append(req)
            reply = handler(req)
            if reply.drop:
                self.close_connection = True
                return
            self.send_response(reply.status)
            headers = {k.lower(): v for k, v in reply.headers.items()}
            for k, v in reply.headers.items():
                self.send_header(k, v)
            if "content-length" not in headers:
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if cert is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key) if key else None)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    port = httpd.server_address[1]
    return Server(f"{scheme}://127.0.0.1:{port}", httpd, thread, requests)


def forward(
    upstream: str, *, drop: tuple[str, ...] = (), fake_on_get: dict[str, str] | None = None
) -> Callable[[Request], Reply]:
    """A proxy handler: forwards to ``upstream``; drops response headers (``drop``) and
    fakes some on GET answers (``fake_on_get``)."""
    pool = urllib3.PoolManager(retries=False)

    def handle(req: Request) -> Reply:
        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length")}
        r = pool.request(
            req.method,
            upstream + req.path,
            headers=headers,
            body=req.body or None,
            preload_content=req.method != "HEAD",
        )
        out = {
            k: v
            for k, v in r.headers.items()
            if k.lower() not in drop and k.lower() != "transfer-encoding"
        }
        if req.method == "GET":
            out.update(fake_on_get or {})
        body = r.data if req.method != "HEAD" else b""
        if req.method == "HEAD":
            r.release_conn()
        return Reply(r.status, out, body)

    return handle
