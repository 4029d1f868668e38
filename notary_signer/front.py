"""A small HTTP/1.1 front that serves a WSGI app to hostile clients without stalling.

Why: a threaded WSGI server gives each connection a worker thread while it reads the
request, so a few dozen clients that send half a request (or one byte of a TLS
handshake) and then nothing hold every thread (issue 10, rows 1 and 2). Here each
worker process runs one asyncio loop that accepts, terminates TLS and reads every
request whole, with deadlines, before a thread of a small pool runs the WSGI app on
it; a slow or stalled client costs a socket and a coroutine, never a thread.

Bounds, all in :class:`FrontLimits` (configurable through the server's and the
signer's configuration; docs/operations.md):

* connections per client address, and in all, per worker process: beyond them a new
  connection is closed at once, before its TLS handshake;
* the TLS handshake, the request head and the body each have a deadline; so has
  writing a response, and a kept-alive connection idle for longer than its deadline
  is closed;
* the head's size, and the body's announced length (413 before a byte of it is read);
  bodies above :data:`SPOOL_BYTES` are spooled to a temporary file, so a slow upload
  holds at most that much memory.

Errors the front answers itself use the error envelope
``{"errors": [{"code", "message", "detail"}]}`` with the codes in :data:`ERRORS`.

This module serves the connections of one worker process (:class:`_Worker`); the
process model (bind, fork the workers, restart them, stop gracefully) is
:mod:`notary_signer.frontproc`, whose ``serve`` is the entry point.

Why one module of this size: a connection's life (accept, admission, TLS,
head, body, deadlines, the hand-over to the app and the answer) is one state
machine; its small HTTP helpers are private to it.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import mmap
import socket
import ssl
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import formatdate
from typing import IO, Any
from urllib.parse import unquote_to_bytes

__all__ = ["ERRORS", "RECEIVED", "Balance", "FrontLimits", "WSGIApp"]

logger = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]

#: WSGI environ key: ``time.monotonic()`` when the request was read whole, before it
#: waited for a thread (an app with a deadline of its own counts from it).
RECEIVED = "notary.front.received"

#: Bodies larger than this are spooled to a temporary file while they arrive.
SPOOL_BYTES = 1024 * 1024
_READ_CHUNK = 256 * 1024
#: Responses are written without waiting while the unsent bytes stay below this.
_WRITE_BUFFER = 64 * 1024

#: Status and error code of every answer the front gives itself.
ERRORS = {
    "MALFORMED_REQUEST": 400,
    "REQUEST_TIMEOUT": 408,
    "LENGTH_REQUIRED": 411,
    "TOO_LARGE": 413,
    "HEADERS_TOO_LARGE": 431,
    "UNKNOWN": 500,
    "UNSUPPORTED_PROTOCOL": 505,
}
_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True)
class FrontLimits:
    """How long and how much a client may take; per worker process where it says so.

    Attributes:
        handshake_timeout: Seconds for the TLS handshake.
        header_timeout: Seconds for a complete request head, counted from the
            connection (or the end of the previous response on a kept-alive one).
        body_timeout: Seconds for the whole body once the head is in.
        write_timeout: Seconds for the client to take a response.
        keepalive_timeout: Seconds a kept-alive connection may stay idle; its next
            head must be whole within keepalive_timeout + header_timeout.
        max_header_bytes: Longest request head (request line and headers).
        max_body_bytes: Largest body; a longer announced length gets 413 at once.
        max_connections_per_client: Open connections from one client address, per
            worker process (0: no limit, e.g. behind a reverse proxy).
        max_connections: Open connections in all, per worker process.
    """

    handshake_timeout: float = 10.0
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    write_timeout: float = 60.0
    keepalive_timeout: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 64 * 1024 * 1024
    max_connections_per_client: int = 64
    max_connections: int = 1024

    def check(self) -> None:
        """Raise ValueError naming the first bad limit."""
        for name in (
            "handshake_timeout",
            "header_timeout",
            "body_timeout",
            "write_timeout",
            "keepalive_timeout",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        for name in ("max_header_bytes", "max_body_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_connections_per_client < 0:
            raise ValueError("max_connections_per_client must be 0 (no limit) or more")


class _Refuse(Exception):
    """An answer the front gives itself, then closes the connection."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_response(code: str, message: str) -> bytes:
    status = ERRORS[code]
    body = json.dumps({"errors": [{"code": code, "message": message, "detail": {}}]}).encode()
    return (
        f"HTTP/1.1 {status} {_REASONS.get(status, '')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode() + body


class _Clock:
    """The HTTP Date header, formatted once a second."""

    def __init__(self) -> None:
        self._second = 0
        self._value = b""

    def date(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._value = formatdate(now, usegmt=True).encode()
        return self._value


@dataclass
class _Request:
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    keep_alive: bool
    length: int


def _parse_head(raw: bytes) -> _Request:
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as e:  # latin-1 decodes every byte; kept for clarity
        raise _Refuse("MALFORMED_REQUEST", "undecodable request head") from e
    lines = text[:-4].split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper():
        raise _Refuse("MALFORMED_REQUEST", "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise _Refuse("UNSUPPORTED_PROTOCOL", f"unsupported protocol version {version[:20]!r}")
    if not target.startswith("/"):
        raise _Refuse("MALFORMED_REQUEST", "the request target must be an absolute path")
    headers: list[tuple[str, str]] = []
    length: int | None = None
    connection = ""
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise _Refuse("MALFORMED_REQUEST", "malformed header line")
        value = value.strip(" \t")
        lower = name.lower()
        if lower == "content-length":
            if (
                not value.isdigit()
                or len(value) > 18
                or (length is not None and int(value) != length)
            ):
                raise _Refuse("MALFORMED_REQUEST", "bad Content-Length")
            length = int(value)
        elif lower == "transfer-encoding":
            raise _Refuse("LENGTH_REQUIRED", "send the body with a Content-Length, not chunked")
        elif lower == "connection":
            connection = value.lower()
        headers.append((name, value))
    if version == "HTTP/1.1":
        keep_alive = "close" not in connection
    else:
        keep_alive = "keep-alive" in connection
    return _Request(method, target, version, headers, keep_alive, length or 0)


class Balance:
    """How many connections each worker of one front holds, in memory the workers share.

    A worker asked to accept a connection while another holds fewer leaves it to that
    one once (for :data:`_DEFER_S`), then takes it if it is still waiting: a burst of
    keep-alive connections is spread over the workers, and a stuck or restarting worker
    delays a connection by at most that much.
    """

    _SLOT = struct.Struct("q")

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._mem = mmap.mmap(-1, self._SLOT.size * workers)  # anonymous, shared on fork
        self.slot = 0

    def set(self, held: int) -> None:
        self._SLOT.pack_into(self._mem, self.slot * self._SLOT.size, held)

    def gone(self, slot: int) -> None:
        """Worker ``slot`` has died: nobody leaves a connection to it."""
        self._SLOT.pack_into(self._mem, slot * self._SLOT.size, 2**62)

    def fewer_elsewhere(self, held: int) -> bool:
        size = self._SLOT.size
        return any(
            self._SLOT.unpack_from(self._mem, i * size)[0] < held
            for i in range(self.workers)
            if i != self.slot
        )


#: How long a busier worker leaves a new connection to a less busy one.
_DEFER_S = 0.002


class _Worker:
    """One worker process: the accept loop, connection tasks and the WSGI thread pool."""

    def __init__(
        self,
        app: WSGIApp,
        limits: FrontLimits,
        ssl_context: ssl.SSLContext | None,
        threads: int,
        host: str,
        port: int,
        access_log: bool = False,
        balance: Balance | None = None,
    ) -> None:
        self.app = app
        self.balance = balance
        self._deferred = False
        self.access_log = access_log
        self.limits = limits
        self.ssl_context = ssl_context
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="wsgi")
        self.host, self.port = host, str(port)
        self.scheme = "https" if ssl_context else "http"
        self.per_client: dict[str, int] = {}
        self.open = 0
        self.refused = 0
        self.clock = _Clock()
        self.tasks: set[asyncio.Task[None]] = set()
        #: Admitted connections in their TLS handshake (a strong reference to each).
        self.starting: set[asyncio.Task[None]] = set()
        #: Connections with a request in flight (head read, answer not yet written).
        self.busy: set[asyncio.Task[None]] = set()
        self.stopping = False
        self._last_refusal_log = 0.0

    # -- connections ----------------------------------------------------------------

    def listen(self, sock: socket.socket) -> None:
        """Accept connections from ``sock``, the listening socket every worker shares.

        One connection per wake-up: each worker is woken for a new connection and the
        one that gets to it first takes it, so an idle worker takes more than a busy
        one. (asyncio's own server takes every pending connection at once, and a burst
        of keep-alive connections could all land on one worker.)
        """
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def stop_listening(self, sock: socket.socket) -> None:
        asyncio.get_running_loop().remove_reader(sock.fileno())

    def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        if self.balance is not None:
            if not self._deferred and self.balance.fewer_elsewhere(self.open):
                self._deferred = True
                loop.remove_reader(sock.fileno())
                loop.call_later(_DEFER_S, self.listen, sock)
                return
            self._deferred = False
        try:
            conn, peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except OSError as e:  # out of files or buffers: pause, as asyncio's server does
            logger.warning("accept failed (%s); pausing for a second", e)
            loop.remove_reader(sock.fileno())
            loop.call_later(1.0, self.listen, sock)
            return
        client = str(peer[0]) if isinstance(peer, tuple) else ""
        if not self.admit(client):  # before the TLS handshake
            conn.close()
            return
        conn.setblocking(False)
        port = int(peer[1]) if isinstance(peer, tuple) and len(peer) > 1 else 0
        task = loop.create_task(self._start(conn, client, port))
        self.starting.add(task)
        task.add_done_callback(self.starting.discard)

    def _publish(self) -> None:
        if self.balance is not None:
            self.balance.set(self.open)

    async def _start(self, conn: socket.socket, client: str, port: int) -> None:
        """The TLS handshake (within its deadline), then :meth:`connection` in a task
        of the stream protocol's."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.limits.max_header_bytes)

        def connected(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> Any:
            return self.connection(r, w, client, port)

        # with a callback the protocol is server-side and runs it in a task of its own
        protocol = asyncio.StreamReaderProtocol(reader, connected)
        try:
            await loop.connect_accepted_socket(
                lambda: protocol,
                conn,
                ssl=self.ssl_context,
                ssl_handshake_timeout=self.limits.handshake_timeout if self.ssl_context else None,
            )
        except BaseException as e:  # a failed or stalled handshake, or a stop
            conn.close()
            self.release(client)
            if not isinstance(e, Exception):
                raise

    def admit(self, client: str) -> bool:
        limits = self.limits
        per_client = self.per_client.get(client, 0)
        if self.open >= limits.max_connections or (
            limits.max_connections_per_client and per_client >= limits.max_connections_per_client
        ):
            self.refused += 1
            now = time.monotonic()
            if now - self._last_refusal_log > 10:
                self._last_refusal_log = now
                logger.warning(
                    "refusing connections: %d open, %d from %s (limits %d, %d per client); "
                    "%d refused so far",
                    self.open,
                    per_client,
                    client,
                    limits.max_connections,
                    limits.max_connections_per_client,
                    self.refused,
                )
            return False
        self.per_client[client] = per_client + 1
        self.open += 1
        self._publish()
        return True

    def release(self, client: str) -> None:
        self.open -= 1
        self._publish()
        left = self.per_client[client] - 1
        if left:
            self.per_client[client] = left
        else:
            del self.per_client[client]

    async def connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str, port: int
    ) -> None:
        """Serve the requests of one admitted connection (its TLS, if any, is up)."""
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.requests(reader, writer, client, port)
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            self.release(client)
            self.tasks.discard(task)
            self.busy.discard(task)
            self.close(writer)

    async def drain(self, timeout: float) -> None:
        """Stop: close idle connections at once, give requests in flight ``timeout``
        seconds to be answered, then cancel what is left."""
        self.stopping = True
        for task in (self.tasks - self.busy) | self.starting:
            task.cancel()
        if self.busy:
            await asyncio.wait(set(self.busy), timeout=timeout)
        for task in list(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=1)

    def close(self, writer: asyncio.StreamWriter) -> None:
        """Close after what is buffered is sent; abort if that takes too long."""
        transport = writer.transport
        if transport.is_closing():
            return
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(self.limits.write_timeout, transport.abort)

    async def requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, client: str, port: int
    ) -> None:
        limits = self.limits
        ssl_object = writer.get_extra_info("ssl_object")
        # the first head must arrive within header_timeout; on a kept-alive connection
        # the next one may wait up to keepalive_timeout before its head deadline starts
        deadline = limits.header_timeout
        task = asyncio.current_task()
        assert task is not None
        while not self.stopping:
            try:
                async with asyncio.timeout(deadline):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.LimitOverrunError, ValueError):
                self.refuse(writer, _Refuse("HEADERS_TOO_LARGE", "request head too large"))
                return
            except (TimeoutError, asyncio.IncompleteReadError):
                return  # idle or stalled: close without a word
            try:
                request = _parse_head(head)
                if request.length > limits.max_body_bytes:
                    raise _Refuse(
                        "TOO_LARGE",
                        f"the body of {request.length} bytes is larger than the "
                        f"{limits.max_body_bytes} bytes allowed",
                    )
            except _Refuse as e:
                self.refuse(writer, e)
                return
            if request.length and any(
                n.lower() == "expect" and v.lower() == "100-continue" for n, v in request.headers
            ):
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                async with asyncio.timeout(limits.body_timeout):
                    body = await self.read_body(reader, request.length)
            except TimeoutError:
                self.refuse(
                    writer,
                    _Refuse(
                        "REQUEST_TIMEOUT",
                        f"the body did not arrive within {limits.body_timeout:g} s",
                    ),
                )
                return
            self.busy.add(task)  # from here, a stop lets the answer be written
            environ = self.environ(request, body, client, port, ssl_object)
            environ[RECEIVED] = time.monotonic()
            loop = asyncio.get_running_loop()
            try:
                response = await loop.run_in_executor(self.pool, self.call_app, environ, request)
            finally:
                body.close()
            writer.write(response)
            self.busy.discard(task)
            if self.access_log:
                logger.info(
                    "%s %s %s %s",
                    client,
                    request.method,
                    request.target[:200],
                    response[9:12].decode(),
                )
            if writer.transport.get_write_buffer_size() > _WRITE_BUFFER:
                async with asyncio.timeout(limits.write_timeout):  # a slow reader
                    await writer.drain()
            if not request.keep_alive or b"\r\nConnection: close\r\n" in response[:4096]:
                return
            deadline = limits.keepalive_timeout + limits.header_timeout

    async def read_body(self, reader: asyncio.StreamReader, length: int) -> IO[bytes]:
        if length <= SPOOL_BYTES:
            return io.BytesIO(await reader.readexactly(length) if length else b"")
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - closed by the caller
        try:
            left = length
            while left:
                chunk = await reader.read(min(left, _READ_CHUNK))
                if not chunk:
                    raise asyncio.IncompleteReadError(b"", left)
                spool.write(chunk)
                left -= len(chunk)
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        return spool

    def refuse(self, writer: asyncio.StreamWriter, e: _Refuse) -> None:
        """Answer with an error; the caller then closes the connection."""
        writer.write(error_response(e.code, e.message))

    # -- WSGI ---------------------------------------------------------------------------

    def environ(
        self, request: _Request, body: IO[bytes], client: str, port: int, ssl_object: Any
    ) -> dict[str, Any]:
        path, _, query = request.target.partition("?")
        env: dict[str, Any] = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": request.target,
            "REQUEST_URI": request.target,
            "SERVER_NAME": self.host,
            "SERVER_PORT": self.port,
            "SERVER_PROTOCOL": request.version,
            "REMOTE_ADDR": client,
            "REMOTE_PORT": str(port),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": self.scheme,
            "wsgi.input": body,
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if ssl_object is not None:
            env["HTTPS"] = "on"
        for name, value in request.headers:
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                env[key] = value
                continue
            key = "HTTP_" + key
            if key in env:
                env[key] += "," + value
            else:
                env[key] = value
        return env

    def call_app(self, environ: dict[str, Any], request: _Request) -> bytes:
        """Run the app in a pool thread; the whole response as bytes."""
        started: list[Any] = []

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], None]:
            if exc_info is not None and started:
                raise exc_info[1].with_traceback(exc_info[2])
            started[:] = [status, headers]
            return chunks.append

        chunks: list[bytes] = []
        try:
            result: Iterable[bytes] = self.app(environ, start_response)
            try:
                chunks.extend(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        except Exception:
            logger.exception("unhandled error in %s %s", request.method, request.target[:200])
            return error_response("UNKNOWN", "internal error")
        if not started:
            logger.error("the app returned without starting a response")
            return error_response("UNKNOWN", "internal error")
        status, headers = started
        body = b"".join(chunks)
        code = int(status[:3])
        out = [f"HTTP/1.1 {status}\r\n".encode("latin-1")]
        has_length = False
        for name, value in headers:
            if name.lower() == "content-length":
                has_length = True
            out.append(f"{name}: {value}\r\n".encode("latin-1"))
        if not has_length and code not in (204, 304) and code >= 200:
            out.append(f"Content-Length: {len(body)}\r\n".encode())
        out.append(b"Date: " + self.clock.date() + b"\r\n")
        if not request.keep_alive:
            out.append(b"Connection: close\r\n")
        out.append(b"\r\n")
        if request.method != "HEAD":
            out.append(body)
        return b"".join(out)
