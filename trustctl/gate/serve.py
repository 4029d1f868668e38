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
from pathlib import Path

from flask import Flask, Response, jsonify, request

from notary_signer.front import RECEIVED, FrontLimits
from notary_signer.frontproc import InProcessFront
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
        # the deadline runs from the request's arrival, not from when a thread took it
        received = request.environ.get(RECEIVED)
        decide = gate.validate if which == "validate" else gate.mutate
        verdict = decide(req, timeout, received=received)
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


#: Deadlines and bounds for the API server's connections (notary_signer.front).
LIMITS = FrontLimits(
    handshake_timeout=10.0,
    header_timeout=10.0,
    body_timeout=10.0,
    write_timeout=10.0,
    keepalive_timeout=90.0,  # the API server keeps its connections to webhooks alive
    max_header_bytes=16 * 1024,
    max_body_bytes=MAX_BODY,
    max_connections_per_client=0,  # every request comes from a few API servers
    max_connections=4096,
)
#: Threads running the app: a request waiting for a verification holds one, so there
#: are many (a waiting thread costs memory, not CPU).
THREADS = 128


class GateServer:
    """The app over TLS on ``host:port``, served by the project's HTTP front
    (:mod:`notary_signer.front`: an asyncio loop reads each request whole, with
    deadlines, before a thread runs the app) in this one process, so the verdict
    cache and the Verifier's state are shared by every request."""

    def __init__(
        self,
        gate: Gate,
        host: str,
        port: int,
        cert: Path,
        key: Path,
        *,
        threads: int = THREADS,
        limits: FrontLimits = LIMITS,
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(cert), str(key))
        self.gate = gate
        self.front = InProcessFront(
            make_app(gate),
            host=host,
            port=port,
            ssl_context=ctx,
            limits=limits,
            threads=threads,
            name="trustctl gate",
        )
        self.port = self.front.port

    def serve_forever(self) -> None:
        """Serve in this thread until SIGTERM or SIGINT."""
        self.front.serve_forever()

    def start(self) -> GateServer:
        """Serve in a thread of its own."""
        self.front.start()
        return self

    def stop(self) -> None:
        self.front.stop()
        self.gate.close()
