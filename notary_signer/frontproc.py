"""The process model of the HTTP front (:mod:`notary_signer.front`): the parent binds
the socket, forks ``workers`` children (each builds its own app after the fork and
serves it with one asyncio loop, :class:`notary_signer.front._Worker`) and restarts
any that die; SIGTERM or SIGINT stops the children gracefully (requests in flight are
finished) and then the parent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

from notary_signer.front import Balance, FrontLimits, WSGIApp, _Worker

__all__ = ["InProcessFront", "serve"]

logger = logging.getLogger(__name__)


def _run_worker(
    sock: socket.socket,
    load: Callable[[], WSGIApp],
    limits: FrontLimits,
    ssl_factory: Callable[[], ssl.SSLContext] | None,
    threads: int,
    host: str,
    port: int,
    graceful_timeout: float,
    access_log: bool,
    balance: Balance,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    app = load()
    worker = _Worker(
        app,
        limits,
        ssl_factory() if ssl_factory else None,
        threads,
        host,
        port,
        access_log,
        balance,
    )
    balance.set(0)
    run_loop(_serve_until_stopped(worker, sock, asyncio.Event(), graceful_timeout))
    worker.pool.shutdown(wait=False, cancel_futures=True)


async def _serve_until_stopped(
    worker: _Worker,
    sock: socket.socket,
    stop: asyncio.Event,
    graceful_timeout: float,
    *,
    signals: bool = True,
    ready: Callable[[], None] | None = None,
) -> None:
    """Accept on ``sock`` until ``stop`` is set (or, with ``signals``, SIGTERM or
    SIGINT), then let requests in flight finish for ``graceful_timeout`` seconds."""
    if signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    worker.listen(sock)
    if ready is not None:
        ready()
    await stop.wait()
    worker.stop_listening(sock)
    await worker.drain(graceful_timeout)


def _bind(host: str, port: int, limits: FrontLimits) -> socket.socket:
    """The listening socket (``port`` 0: any free port), once the limits are checked
    and the open-file limit raised for them."""
    limits.check()
    _allow_open_files(limits.max_connections + 256)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose protocol says TCP
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop where it is installed (a dependency on Linux and macOS),
    else on asyncio's own loop. uvloop's TLS and its wake-ups from the app's threads
    are in C: a request through the front costs about 40 us of hand-over instead of
    about 125 us, and TLS reads and writes about half (docs/performance.md)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def serve(
    load: Callable[[], WSGIApp],
    *,
    host: str,
    port: int,
    ssl_factory: Callable[[], ssl.SSLContext] | None,
    limits: FrontLimits,
    workers: int = 2,
    threads: int = 8,
    name: str,
    graceful_timeout: float = 10.0,
    access_log: bool = False,
) -> None:
    """Serve ``load()`` (called once in each worker after the fork) until SIGTERM/SIGINT.

    Args:
        load: Builds the WSGI app in each worker process.
        ssl_factory: Builds the server's TLS context in each worker; None serves plain
            HTTP (only behind a TLS-terminating proxy).
        limits: Deadlines and connection bounds.
        workers: Worker processes.
        threads: Threads per worker that run the app.
        name: Shown in log messages.
        graceful_timeout: Seconds workers get to finish requests in flight on SIGTERM.
        access_log: Log one line per request.

    With one worker there is no supervising parent: the app is served in this process
    (:class:`InProcessFront`), about 26 MiB less, and a crash ends the service for its
    service manager to restart.
    """
    if workers == 1:
        InProcessFront(
            load(),
            host=host,
            port=port,
            ssl_context=ssl_factory() if ssl_factory else None,
            limits=limits,
            threads=threads,
            name=name,
            graceful_timeout=graceful_timeout,
            access_log=access_log,
        ).serve_forever()
        return
    sock = _bind(host, port, limits)
    logger.info(
        "%s listening on %s:%d (%d workers x %d threads)", name, host, port, workers, threads
    )
    balance = Balance(workers)
    children: dict[int, int] = {}  # pid -> slot
    stopping = False

    def spawn(slot: int) -> None:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 0
            try:
                _set_parent_death_signal()
                balance.slot = slot
                _run_worker(
                    sock,
                    load,
                    limits,
                    ssl_factory,
                    threads,
                    host,
                    port,
                    graceful_timeout,
                    access_log,
                    balance,
                )
            except BaseException:
                logger.exception("%s worker %d failed", name, os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = slot

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for slot in range(workers):
        spawn(slot)
    restarts: list[float] = []
    deadline: float | None = None
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            if stopping:
                deadline = deadline or time.monotonic() + graceful_timeout + 5
                if time.monotonic() > deadline:
                    for left in list(children):
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(left, signal.SIGKILL)
            time.sleep(0.1)
            continue
        slot = children.pop(pid)
        balance.gone(slot)
        if stopping:
            continue
        logger.warning("%s worker %d exited (status %d); restarting it", name, pid, status)
        now = time.monotonic()
        restarts = [t for t in restarts if now - t < 60] + [now]
        if len(restarts) > 10 * workers:
            logger.error("%s workers keep failing; stopping", name)
            stop(signal.SIGTERM, None)
            continue
        time.sleep(0.5)
        spawn(slot)
    sock.close()
    logger.info("%s stopped", name)


class InProcessFront:
    """One front worker serving ``app`` in this process, with no fork: for a service
    whose state lives in its process (the deploy gate keeps TUF rollback state and a
    verdict cache, which worker processes would each keep apart).

    :meth:`serve_forever` runs the loop in the calling thread until SIGTERM or SIGINT
    (in the main thread) or :meth:`stop`; :meth:`start` runs it in a thread of its own.
    The socket is bound at construction (``port`` 0: any free port, see ``port``).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        limits: FrontLimits,
        threads: int,
        name: str,
        graceful_timeout: float = 10.0,
        access_log: bool = False,
    ) -> None:
        self.sock = _bind(host, port, limits)
        self.port = int(self.sock.getsockname()[1])
        self.name = name
        self.threads = threads
        self.graceful_timeout = graceful_timeout
        self.worker = _Worker(app, limits, ssl_context, threads, host, self.port, access_log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    async def _main(self, signals: bool) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        logger.info("%s listening on port %d (%d threads)", self.name, self.port, self.threads)
        await _serve_until_stopped(
            self.worker,
            self.sock,
            self._stop,
            self.graceful_timeout,
            signals=signals,
            ready=self._ready.set,
        )

    def serve_forever(self, *, signals: bool = True) -> None:
        """Serve until stopped; ``signals``: SIGTERM and SIGINT stop it gracefully
        (main thread only)."""
        try:
            run_loop(self._main(signals))
        finally:
            self._ready.set()
            self.worker.pool.shutdown(wait=False, cancel_futures=True)
            self.sock.close()
            logger.info("%s stopped", self.name)

    def start(self) -> InProcessFront:
        """Serve in a daemon thread; return once connections are accepted."""
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"signals": False}, name=self.name, daemon=True
        )
        self._thread.start()
        self._ready.wait(30)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop accepting, let requests in flight finish, and wait for the loop to end."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)


def _allow_open_files(wanted: int) -> None:
    """Raise this process's (and its workers') open-file limit to ``wanted`` if the
    hard limit allows: each connection is a file, and many systems start at 1024."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < wanted:
        logger.warning(
            "open-file limit %d is below max_connections + 256 = %d: connections beyond "
            "it are refused by the system; raise the limit (ulimit -n) or lower max_connections",
            soft,
            wanted,
        )


def _set_parent_death_signal() -> None:
    """End this worker when the parent does (Linux), so that no worker outlives it."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ppid = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != ppid:
        os.kill(os.getpid(), signal.SIGTERM)
