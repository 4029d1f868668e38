"""WSGI entry points: the app built from the environment, and the servers that run it.

The trust server runs under :mod:`notary_signer.front` by default: an asyncio front in
each worker process reads every request whole, with deadlines and per-address
connection bounds, before a thread runs the app, so slow or stalled clients cost a
socket, never a thread (issue 10). ``wsgi_server = "granian"`` or ``"gunicorn"``
select those servers instead, which give each connection a thread while it reads the
request: only behind a reverse proxy that buffers whole requests. Worker processes
build their own app (their own database connections) from the same configuration
file and ``NOTARY_SERVER_*`` variables as the parent.

Memory: the parent (granian's or gunicorn's supervisor) imports only the server
itself and the configuration; the app (Flask, SQLAlchemy, tuf) is imported in each
worker after the fork, and the schema migration runs in a short-lived child
(``notary_server.cli``). The parent stays at about 30 MiB instead of carrying
everything the workers load (measured in docs/performance.md); glibc's malloc
arenas are capped at 2 per process (``MALLOC_ARENA_MAX`` overrides). For a small
machine, ``workers = 1`` with ``threads = 16`` halves the server's memory.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from notary_server.config import ServerConfig, load_config
from notary_server.generation import SharedGeneration

__all__ = ["CONFIG_FILE_ENV", "app_from_environment", "serve"]

#: Names the configuration file for worker processes.
CONFIG_FILE_ENV = "NOTARY_SERVER_CONFIG_FILE"
#: The supervisor's pid, for workers to notice they outlived it.
SUPERVISOR_ENV = "NOTARY_SERVER_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("notary_server", "notary_signer"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level.upper())
        log.propagate = False


def exit_with_supervisor(environ: dict[str, str] | os._Environ[str] = os.environ) -> None:
    """Make this worker end when its supervisor does (Linux ``PR_SET_PDEATHSIG``).

    A worker still starting while its supervisor is told to stop can miss the
    shutdown (seen with granian: SIGTERM right after start-up left the second worker
    running, orphaned, holding the port). If the supervisor is already gone when this
    runs, the worker stops at once.
    """
    supervisor = environ.get(SUPERVISOR_ENV)
    if not supervisor or not sys.platform.startswith("linux"):
        return
    if supervisor == str(os.getpid()):  # one worker, served by the supervisor itself
        return
    import ctypes
    import signal

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if str(os.getppid()) != supervisor:
        os.kill(os.getpid(), signal.SIGTERM)


def app_from_environment() -> Any:
    """The app for one worker process (granian's and gunicorn's factory)."""
    from notary_server.app import create_app

    exit_with_supervisor()

    config = load_config(os.environ.get(CONFIG_FILE_ENV) or None, os.environ)
    configure_logging(config.log_level)
    return create_app(config, generation=_shared_generation)


#: Made by :func:`serve` before the front forks its workers, so that all of them share
#: one (notary_server/generation.py); granian's and gunicorn's workers have none.
_shared_generation: SharedGeneration | None = None


def serve(config: ServerConfig, config_path: str | None) -> None:
    """Run the server until SIGINT or SIGTERM."""
    if config_path:
        os.environ[CONFIG_FILE_ENV] = os.path.abspath(config_path)
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    from notary_signer.serving import limit_malloc_arenas

    limit_malloc_arenas()
    tls = not config.insecure_plain_http
    if config.wsgi_server == "front":
        from notary_signer.frontproc import serve as serve_front
        from notary_signer.serving import make_ssl_context

        global _shared_generation
        _shared_generation = SharedGeneration()

        cert, key = config.tls_cert_file, config.tls_key_file
        serve_front(
            app_from_environment,
            host=config.host,
            port=config.port,
            ssl_factory=(lambda: make_ssl_context(cert, key, None, False)) if tls else None,
            limits=config.front_limits,
            workers=config.workers,
            threads=config.threads,
            name="notary-server",
        )
        return
    logging.getLogger("notary_server").warning(
        "wsgi_server = %s gives every connection a worker thread while it reads the request: "
        "run it only behind a reverse proxy that buffers whole requests (docs/operations.md)",
        config.wsgi_server,
    )
    if config.wsgi_server == "granian":
        from granian import Granian
        from granian.constants import Interfaces, SSLProtocols

        Granian(
            "notary_server.wsgi:app_from_environment",
            factory=True,
            interface=Interfaces.WSGI,
            address=config.host,
            port=config.port,
            workers=config.workers,
            blocking_threads=config.threads,
            ssl_cert=Path(config.tls_cert_file) if tls else None,
            ssl_key=Path(config.tls_key_file) if tls else None,
            ssl_protocol_min=SSLProtocols.tls12,
            respawn_failed_workers=True,
            log_access=False,
        ).serve()
        return
    from notary_signer.serving import serve_wsgi

    serve_wsgi(
        app_from_environment,
        host=config.host,
        port=config.port,
        certfile=config.tls_cert_file if tls else None,
        keyfile=config.tls_key_file if tls else None,
        workers=config.workers,
        threads=config.threads,
        name="notary-server",
    )
