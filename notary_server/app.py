"""The Flask application factory.

``create_app`` takes its collaborators as arguments (a ready :class:`TrustService`,
or a store and a key service to build one), so tests run the real app over an
in-memory store and an in-process signer without monkeypatching anything. With no
arguments it builds the production wiring from the configuration: a SQL store and a
mutual-TLS client for the signing service.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from notary_server import errors
from notary_server.api import bp, tuf_file
from notary_server.auth import Access, TokenAuth
from notary_server.config import ServerConfig
from notary_server.errors import REQUEST_ID_HEADER
from notary_server.generation import CurrentHints, Generation
from notary_server.metrics import Metrics
from notary_server.service import Clock, TrustService, utcnow
from notary_server.storage import MetadataStore
from notary_signer.keyservice import KeyService

__all__ = ["build_service", "create_app", "request_id"]

logger = logging.getLogger(__name__)

_HTTP_ERRORS: dict[int, type[errors.NotaryError]] = {
    400: errors.MalformedUploadError,
    401: errors.UnauthorizedError,
    403: errors.DeniedError,
    404: errors.NotFoundError,
    405: errors.MethodNotAllowedError,
    413: errors.TooLargeError,
}


def request_id() -> str:
    """This request's id (:func:`~notary_server.errors.new_request_id`)."""
    rid: str | None = g.get("request_id")
    if rid is None:
        rid = g.request_id = errors.new_request_id(request.headers.get(REQUEST_ID_HEADER))
    return rid


#: The grant that makes a token an administrator's (it also reads the global change feed).
ADMIN = Access("registry", "catalog", ("*",))


def required_access(endpoint: str | None, args: dict[str, Any]) -> list[Access] | None:
    """The grants a route needs; None for routes open to everyone (health, metrics).

    The file name is read by :func:`notary_server.api.tuf_file`, exactly as the view
    reads it: a name is a key request here if and only if it is one there.
    """
    gun = str(args.get("gun", ""))

    def repo(*actions: str) -> list[Access]:
        return [Access("repository", gun, actions)]

    if endpoint == "tuf.get_metadata":
        wanted = tuf_file(str(args.get("filename", "")))
        return repo("push", "pull") if wanted is not None and wanted.kind == "key" else repo("pull")
    if endpoint in ("tuf.publish", "tuf.put_pending", "tuf.delete_pending"):
        return repo("push", "pull")
    if endpoint == "tuf.get_pending":
        return repo("pull")
    if endpoint in ("tuf.rotate_key", "tuf.delete"):
        return repo("*")
    if endpoint == "tuf.gun_changefeed":
        return repo("pull")
    if endpoint == "tuf.all_changefeed":
        return [ADMIN]
    if endpoint in ("health", "render_metrics"):
        return None
    return []  # /v2/ ping and unknown routes: any valid token


def _is_admin(auth: TokenAuth, authorization: str | None) -> bool:
    if not authorization:
        return False
    try:
        auth.check(authorization, [ADMIN])
    except errors.UnauthorizedError:
        return False
    return True


def build_service(
    config: ServerConfig,
    *,
    store: MetadataStore | None = None,
    keys: KeyService | None = None,
    clock: Clock = utcnow,
    generation: Generation | None = None,
) -> TrustService:
    """Default collaborators from the configuration, for any not given.

    With ``generation`` (shared by the server's worker processes) and no ``store``
    given, the store bumps it after every write and reads of current files reuse
    their answer until the next write (:mod:`notary_server.generation`).
    """
    hints = None
    if store is None:
        from notary_server.storage.sql import open_store

        if generation is not None and config.current_recheck_seconds > 0:
            hints = CurrentHints(generation, config.current_recheck_seconds)
        store = open_store(config.database_url, on_change=generation.bump if generation else None)
    if keys is None:
        from notary_signer.client import SignerClient

        keys = SignerClient(
            config.signer_url,
            ca_file=config.signer_ca_file,
            cert_file=config.signer_client_cert,
            key_file=config.signer_client_key,
            timeout=config.signer_timeout_seconds,
        )
    return TrustService(store, keys, config, clock=clock, hints=hints)


def create_app(
    config: ServerConfig | None = None,
    *,
    service: TrustService | None = None,
    store: MetadataStore | None = None,
    keys: KeyService | None = None,
    clock: Clock = utcnow,
    auth: TokenAuth | None = None,
    generation: Generation | None = None,
) -> Flask:
    config = config or (service.config if service else ServerConfig())
    service = service or build_service(
        config, store=store, keys=keys, clock=clock, generation=generation
    )
    if auth is None and config.auth_type == "token":
        auth = TokenAuth.from_bundle(
            config.auth_root_cert_bundle,
            realm=config.auth_realm,
            service=config.auth_service,
            issuer=config.auth_issuer,
            clock=service.clock,
        )

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    app.config["MAX_FORM_PARTS"] = config.max_parts
    app.config["MAX_FORM_MEMORY_SIZE"] = config.max_file_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["notary"] = service
    metrics = Metrics()
    app.extensions["notary_metrics"] = metrics
    app.register_blueprint(bp)

    @app.get("/_notary_server/health")
    def health() -> tuple[Response, int]:
        """``{"status": "ok"}`` or 503 ``{"status": "unavailable"}`` for everyone; what is
        wrong (internal addresses, error text) only for an admin token. Without token
        authentication there is no admin: the problems go to the log only."""
        problems = service.health()
        for component, problem in problems.items():
            logger.warning("health check: %s: %s", component, problem)
        body: dict[str, Any] = {"status": "unavailable" if problems else "ok"}
        if problems and auth is not None and _is_admin(auth, request.headers.get("Authorization")):
            body["problems"] = problems
        return jsonify(body), (503 if problems else 200)

    @app.get("/metrics")
    def render_metrics() -> Response:
        return Response(metrics.render(), mimetype="text/plain; version=0.0.4")

    @app.errorhandler(errors.NotaryError)
    def notary_error(e: errors.NotaryError) -> tuple[Response, int]:
        rid = request_id()
        if e.http_status >= 500:
            logger.warning(
                "request %s: %s %s answered %d %s: %s (%s)",
                rid,
                request.method,
                request.path,
                e.http_status,
                e.code,
                e.message,
                errors.describe_cause(e),
            )
        resp = jsonify(errors.envelope(e, rid))
        resp.headers.update(e.headers)
        return resp, e.http_status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response, int]:
        status = e.code or 500
        cls = _HTTP_ERRORS.get(status, errors.NotaryError)
        err = cls(e.description if status != 404 else None)
        return jsonify(errors.envelope(err, request_id())), status

    @app.errorhandler(Exception)
    def unexpected(e: Exception) -> tuple[Response, int]:
        rid = request_id()
        logger.exception("request %s: unexpected error on %s %s", rid, request.method, request.path)
        err = errors.NotaryError(
            "internal error; the server log has the details under this request id"
        )
        return jsonify(errors.envelope(err, rid)), 500

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    if auth is not None:
        token_auth = auth

        @app.before_request
        def authorize() -> None:
            required = required_access(request.endpoint, request.view_args or {})
            if required is not None:
                for access in required:
                    if access.type == "repository":
                        # the challenge quotes the name: only a valid one gets that far
                        service.check_gun(access.name)
                token_auth.check(request.headers.get("Authorization"), required)

    @app.after_request
    def count(resp: Response) -> Response:
        resp.headers[REQUEST_ID_HEADER] = request_id()
        started: Any = g.get("started")
        if started is not None:
            operation = request.endpoint or "unknown"
            metrics.observe(
                operation, request.method, resp.status_code, time.perf_counter() - started
            )
        return resp

    if auth is None:
        from notary_server.fastpath import FastReads

        app.wsgi_app = FastReads(app.wsgi_app, service, metrics)  # type: ignore[method-assign]
    return app
