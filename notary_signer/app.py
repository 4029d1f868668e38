"""The signer's Flask application factory.

``create_app`` wires configuration, the key store and the signing service into a
Flask app without globals; views live in :mod:`notary_signer.api`. Every error,
including unknown routes and malformed bodies, is answered with the JSON envelope
``{"errors": [{"code", "message", "detail"}]}``; bad input never yields a 500.

Transport security (mutual TLS) is the WSGI server's job: see
:mod:`notary_signer.serving` and ``notary-signer serve``.

Example::

    app = create_app(keystore=MemoryKeyStore())
    app.test_client().get("/health").json   # {"status": "ok"}
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

from notary_signer import api
from notary_signer.config import MAX_REQUEST_BYTES, SignerConfig, load_config
from notary_signer.crypto import KeyEncryptor
from notary_signer.errors import SignerError
from notary_signer.keystore import KeyStore
from notary_signer.service import SigningService

__all__ = ["MAX_REQUEST_BYTES", "create_app"]

logger = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "TOO_LARGE",
    415: "BAD_REQUEST",
}


def create_app(
    config: SignerConfig | None = None,
    *,
    keystore: KeyStore | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the signer app.

    Args:
        config: Settings; loaded from ``environ`` (and ``$NOTARY_SIGNER_CONFIG``) when None.
        keystore: Key store; an :class:`~notary_signer.keystore.sql.SQLKeyStore` on
            ``config.database_url`` when None (its schema must be migrated).
        environ: Environment holding passphrases; ``os.environ`` when None.

    Raises:
        ConfigError: the configuration is invalid.
    """
    env = os.environ if environ is None else environ
    cfg = config or load_config(None, env)
    if keystore is None:
        from notary_signer.db import make_engine
        from notary_signer.keystore.sql import SQLKeyStore

        encryptor = KeyEncryptor(env, alias=cfg.default_alias)
        keystore = SQLKeyStore(make_engine(cfg.database_url), encryptor)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.json.sort_keys = True  # type: ignore[attr-defined]
    app.extensions[api.EXTENSION] = SigningService(
        keystore, default_algorithm=cfg.default_algorithm
    )
    app.register_blueprint(api.bp)
    app.register_error_handler(SignerError, _signer_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _envelope(code: str, message: str, status: int, **detail: object) -> tuple[Response, int]:
    return jsonify({"errors": [{"code": code, "message": message, "detail": detail}]}), status


def _signer_error(e: SignerError) -> tuple[Response, int]:
    if e.http_status >= 500:
        logger.error("%s: %s", e.code, e.message)
    return jsonify({"errors": [e.to_dict()]}), e.http_status


def _http_error(e: HTTPException) -> tuple[Response, int]:
    status = e.code or 500
    code = _HTTP_CODES.get(status, f"HTTP_{status}")
    return _envelope(code, e.description or e.name, status)


def _unexpected_error(e: Exception) -> tuple[Response, int]:
    # The traceback names code, not request bodies; details stay in the log.
    logger.exception("unexpected error: %s", type(e).__name__)
    return _envelope("INTERNAL_ERROR", "internal error", 500)
