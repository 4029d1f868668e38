"""The webhook's HTTPS endpoints.

``POST /validate`` decides; ``POST /mutate`` pins ``name:tag`` to ``name:tag@digest``;
``GET /healthz``; ``GET /metrics`` (Prometheus). A body that is not a v1
AdmissionReview with a request and a uid gets HTTP 400 and the project's error
envelope, never an AdmissionReview that could be read as an allow.
"""

from __future__ import annotations

import logging
import re
import ssl
import threading
from pathlib import Path

from flask import Flask, Response, jsonify, request
from werkzeug.serving import ThreadedWSGIServer

from trustctl.gate.decide import Gate
from trustctl.gate.review import MAX_BODY, BadReview, parse_review, review_response

__all__ = ["GateServer", "make_app", "parse_timeout"]

logger = logging.getLogger(__name__)
_TIMEOUT_RE = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)?$")


def parse_timeout(text: str | None) -> float | None:
    """The API server's ``?timeout=10s`` (Go duration subset), in seconds."""
    if not text:
        return None
    m = _TIMEOUT_RE.fullmatch(text)
    if m is None:
        return None
    value, unit = float(m.group(1)), m.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def _bad(code: str, message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify({"errors": [{"code": code, "message": message, "detail": None}]}), status


def make_app(gate: Gate) -> Flask:
    app = Flask("trustctl.gate")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY

    def handle(which: str) -> tuple[Response, int]:
        if request.mimetype != "application/json":
            return _bad("BAD_REVIEW", "Content-Type must be application/json")
        try:
            req = parse_review(request.get_data())
        except BadReview as e:
            return _bad("BAD_REVIEW", f"not an admission.k8s.io/v1 AdmissionReview: {e}")
        timeout = parse_timeout(request.args.get("timeout"))
        verdict = gate.validate(req, timeout) if which == "validate" else gate.mutate(req, timeout)
        if not verdict.allowed:
            logger.warning(
                "denied %s %s/%s: %s", req.kind, req.namespace, req.name, verdict.message
            )
        return jsonify(review_response(req.uid, verdict)), 200

    @app.post("/validate")
    def validate() -> tuple[Response, int]:
        return handle("validate")

    @app.post("/mutate")
    def mutate() -> tuple[Response, int]:
        return handle("mutate")

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        return jsonify({"ok": True}), 200

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(gate.metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.errorhandler(413)
    def too_large(_e: Exception) -> tuple[Response, int]:
        return _bad("BAD_REVIEW", f"body larger than {MAX_BODY} bytes", 413)

    @app.errorhandler(404)
    def not_found(_e: Exception) -> tuple[Response, int]:
        return _bad("NOT_FOUND", "use POST /validate or POST /mutate", 404)

    @app.errorhandler(405)
    def bad_method(_e: Exception) -> tuple[Response, int]:
        return _bad("METHOD", "use POST /validate or POST /mutate", 405)

    return app


#: Seconds a connection may take for its TLS handshake and each read.
SOCKET_TIMEOUT = 30.0


class _TLSServer(ThreadedWSGIServer):
    """TLS with the handshake in the connection's own thread: a client that connects
    and stalls holds one thread, never the accept loop (so never the other requests)."""

    def __init__(self, host: str, port: int, app: Flask, ctx: ssl.SSLContext) -> None:
        super().__init__(host, port, app)
        self.tls = ctx

    def get_request(self) -> tuple[ssl.SSLSocket, object]:
        sock, addr = self.socket.accept()
        sock.settimeout(SOCKET_TIMEOUT)
        return self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class GateServer:
    """The app over TLS on ``host:port``, in threads (one per connection)."""

    def __init__(self, gate: Gate, host: str, port: int, cert: Path, key: Path) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        self.gate = gate
        self.server = _TLSServer(host, port, make_app(gate), ctx)
        self.port = self.server.server_port
        self._thread: threading.Thread | None = None

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start(self) -> GateServer:
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.gate.close()
