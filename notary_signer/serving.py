"""Serve a WSGI app over HTTPS with gunicorn, run from Python (no CLI parsing).

Shared by ``notary-signer serve`` (client certificates required) and the trust
server. gunicorn's ``gthread`` workers are used; TLS is configured with one cached
``SSLContext`` per process (TLS 1.2 minimum; when client certificates are required,
only ``ca_certs`` is trusted, never the system store or ``SSL_CERT_FILE``).
SIGTERM stops gracefully, SIGINT quickly (gunicorn's arbiter). gunicorn's control
socket is disabled so that several servers can run under one user.

Example::

    serve_wsgi(lambda: create_app(cfg), host="127.0.0.1", port=7899,
               certfile="keys/signer.pem", keyfile="keys/signer-key.pem",
               ca_certs="keys/dev-ca.pem", require_client_cert=True,
               name="notary-signer")
"""

from __future__ import annotations

import inspect
import logging
import os
import ssl
from collections.abc import Callable
from typing import Any

__all__ = ["WSGIApp", "limit_malloc_arenas", "serve_wsgi"]

logger = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas for this process and the workers it forks.

    glibc gives threads that allocate at the same time arenas of their own, up to 8
    per CPU, and each arena keeps the memory freed into it; a worker's threads would
    grow one each. Does nothing when ``MALLOC_ARENA_MAX`` is set (glibc applied it at
    start-up) or without glibc.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    import ctypes

    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_arena_max = -8  # <malloc.h>
    mallopt(m_arena_max, arenas)


def _run_gunicorn(load: Callable[[], WSGIApp], options: dict[str, Any]) -> None:
    # gunicorn is imported here: the trust server under granian never loads it.
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        """gunicorn application with options from a dict and a lazily built app."""

        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            return load()

    Application().run()


def serve_wsgi(
    app_or_factory: WSGIApp | Callable[[], WSGIApp],
    *,
    host: str,
    port: int,
    certfile: str | None,
    keyfile: str | None,
    ca_certs: str | None = None,
    require_client_cert: bool = False,
    workers: int = 2,
    threads: int = 8,
    name: str,
    access_log: bool = False,
    log_level: str = "info",
    timeout: int = 30,
    graceful_timeout: int = 10,
    keepalive: int = 2,
) -> None:
    """Run ``app_or_factory`` under gunicorn until SIGTERM/SIGINT; never returns normally.

    Args:
        app_or_factory: A WSGI app, or a no-argument factory called once per worker
            (preferred: database engines are then created after the fork).
        host: Listen address (IPv6 literals without brackets are fine).
        port: TCP port.
        certfile: PEM certificate chain of the server; None serves plain HTTP (only
            for use behind a TLS-terminating proxy; the caller warns about it).
        keyfile: PEM private key of the server (None with ``certfile``).
        ca_certs: PEM CA bundle client certificates must chain to.
        require_client_cert: Refuse TLS handshakes without a valid client certificate.
        workers: Worker processes.
        threads: Threads per worker.
        name: Process name shown by ``ps``.
        access_log: Log each request to stderr.
        log_level: gunicorn log level.
        timeout: Seconds before a silent worker is restarted.
        graceful_timeout: Seconds workers get to finish on SIGTERM.
        keepalive: Seconds an idle keep-alive connection stays open.

    Raises:
        ValueError: ``require_client_cert`` without ``ca_certs`` or without TLS, or only
            one of ``certfile``/``keyfile``.
        SystemExit: when gunicorn stops.
    """
    if require_client_cert and not ca_certs:
        raise ValueError("require_client_cert needs ca_certs (the client CA bundle)")
    if (certfile is None) != (keyfile is None):
        raise ValueError("certfile and keyfile go together")
    if certfile is None and require_client_cert:
        raise ValueError("require_client_cert needs TLS (certfile and keyfile)")
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    options: dict[str, Any] = {
        "bind": [f"{bind_host}:{port}"],
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
        "loglevel": log_level,
        "proc_name": name,
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "keepalive": keepalive,
        "control_socket_disable": True,
        "preload_app": False,
    }
    if certfile is not None and keyfile is not None:
        options.update(
            certfile=certfile,
            keyfile=keyfile,
            ca_certs=ca_certs,
            cert_reqs=ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE,
            do_handshake_on_connect=True,
            ssl_context=_context_hook(certfile, keyfile, ca_certs, require_client_cert),
        )
    scheme = "https" if certfile else "http"
    logger.info(
        "serving %s on %s://%s:%d (client certificates %s)",
        name,
        scheme,
        bind_host,
        port,
        "required" if require_client_cert else "not required",
    )
    limit_malloc_arenas()
    _run_gunicorn(_loader(app_or_factory), options)


def make_ssl_context(
    certfile: str, keyfile: str, ca_certs: str | None, require_client_cert: bool
) -> ssl.SSLContext:
    """Build the server-side TLS context ``serve_wsgi`` uses."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=certfile, keyfile=keyfile)
    if ca_certs:
        ctx.load_verify_locations(cafile=ca_certs)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    # no TLS 1.3 session tickets: none of our clients (trustctl, the notary and docker
    # CLIs, the server's signer client) resumes sessions, and OpenSSL makes two per
    # connection (about 65 us of every new connection)
    ctx.num_tickets = 0
    return ctx


def _context_hook(
    certfile: str, keyfile: str, ca_certs: str | None, require_client_cert: bool
) -> Callable[[Any, Any], ssl.SSLContext]:
    cache: dict[str, ssl.SSLContext] = {}

    # gunicorn asks for a context per connection; build it once per process.
    def ssl_context(_conf: Any, _default_factory: Any) -> ssl.SSLContext:
        ctx = cache.get("ctx")
        if ctx is None:
            ctx = cache.setdefault(
                "ctx", make_ssl_context(certfile, keyfile, ca_certs, require_client_cert)
            )
        return ctx

    return ssl_context


def _loader(app_or_factory: Callable[..., Any]) -> Callable[[], WSGIApp]:
    if _is_factory(app_or_factory):
        return app_or_factory
    return lambda: app_or_factory


def _is_factory(obj: Callable[..., Any]) -> bool:
    """A factory takes no required arguments; a WSGI app takes (environ, start_response)."""
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return not required
