"""The HTTP front (notary_signer.front) on a real socket: what it refuses, and how.

A worker's accept loop runs in a thread of this process around a small WSGI app; each
case speaks raw HTTP/1.1 to it over loopback. Process-level behaviour (TLS, many
workers, the real server and signer behind it) is in tests/e2e/test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from notary_signer.front import FrontLimits, _Worker

LIMITS = FrontLimits(
    header_timeout=1,
    body_timeout=1,
    keepalive_timeout=1,
    max_header_bytes=2048,
    max_body_bytes=1000,
    max_connections_per_client=4,
    max_connections=100,
)


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = environ["wsgi.input"].read()
    answer = json.dumps(
        {
            "path": environ["PATH_INFO"],
            "query": environ["QUERY_STRING"],
            "body": body.decode(),
            "host": environ.get("HTTP_HOST"),
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [answer]


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    loop = asyncio.new_event_loop()
    worker = _Worker(echo, LIMITS, None, 2, "127.0.0.1", 0)
    sock = listening_socket()
    loop.call_soon(worker.listen, sock)
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield int(sock.getsockname()[1])

    async def shutdown() -> None:
        worker.stop_listening(sock)
        for task in list(worker.tasks):
            task.cancel()
        await asyncio.gather(*worker.tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()
    sock.close()


def exchange(port: int, raw: bytes) -> bytes:
    """Send ``raw``; the answer, read until the connection closes or the answer is whole."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            lengths = [
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ]
            if sep and lengths and len(body) >= lengths[0]:
                break
        return data


def status_and_code(answer: bytes) -> tuple[int, str | None]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    code = json.loads(body)["errors"][0]["code"] if status >= 400 else None
    return status, code


REFUSED = {
    "announced-body-over-the-limit": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n",
        413,
        "TOO_LARGE",
    ),
    "chunked-body": (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        411,
        "LENGTH_REQUIRED",
    ),
    "two-different-content-lengths": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
        "MALFORMED_REQUEST",
    ),
    "negative-content-length": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        400,
        "MALFORMED_REQUEST",
    ),
    "obsolete-line-folding": (
        b"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n",
        400,
        "MALFORMED_REQUEST",
    ),
    "space-before-colon": (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "MALFORMED_REQUEST"),
    "absolute-form-target": (
        b"GET http://x/ HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "MALFORMED_REQUEST",
    ),
    "http-2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "UNSUPPORTED_PROTOCOL"),
    "head-over-the-limit": (
        b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n",
        431,
        "HEADERS_TOO_LARGE",
    ),
    "body-stalled-after-the-head": (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",
        408,
        "REQUEST_TIMEOUT",
    ),
}


@pytest.mark.parametrize("raw,status,code", list(REFUSED.values()), ids=list(REFUSED))
def test_refused_with_a_named_code(port: int, raw: bytes, status: int, code: str) -> None:
    assert status_and_code(exchange(port, raw)) == (status, code)


def test_a_request_reaches_the_app_whole(port: int) -> None:
    answer = exchange(
        port,
        b"POST /v2/a%2Fb/x?y=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    assert status_and_code(answer) == (200, None)
    body = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert body == {"path": "/v2/a/b/x", "query": "y=1", "body": "hello", "host": "h"}


def test_a_stalled_head_is_closed_without_an_answer(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        assert s.recv(100) == b""  # closed by the head deadline


def test_connections_per_client_address_are_bounded(port: int) -> None:
    held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(4)]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            assert extra.recv(100) == b""  # closed at once: a fifth from this address
        with socket.create_connection(
            ("127.0.0.1", port), source_address=("127.0.0.2", 0), timeout=10
        ) as other:
            other.sendall(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert other.recv(100).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in held:
            s.close()


def test_a_stop_closes_idle_connections_at_once_and_answers_requests_in_flight() -> None:
    """Stopping never waits on a kept-alive idle connection (a client that holds one
    would hold the stop for its whole grace period), but lets a running request finish."""
    release = threading.Event()

    def slow(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        release.wait(10)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"done"]

    loop = asyncio.new_event_loop()
    worker = _Worker(slow, LIMITS, None, 2, "127.0.0.1", 0)
    sock = listening_socket()
    loop.call_soon(worker.listen, sock)
    port = int(sock.getsockname()[1])
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        idle = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy = socket.create_connection(("127.0.0.1", port), timeout=10)
        busy.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        while not worker.busy:  # the request reached the app
            threading.Event().wait(0.01)
        stopped = asyncio.run_coroutine_threadsafe(worker.drain(timeout=30), loop)
        assert idle.recv(100) == b""  # closed while the other request still runs
        assert not stopped.done()
        release.set()
        assert busy.recv(100).startswith(b"HTTP/1.1 200 ")
        stopped.result(10)
        idle.close()
        busy.close()
    finally:
        release.set()
        loop.call_soon_threadsafe(worker.stop_listening, sock)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        sock.close()


def test_the_open_file_limit_is_raised_for_max_connections() -> None:
    """Each connection is a file; a soft limit of 1024 (common) would refuse connections
    long before ``max_connections``. Run in a child: limits are per process."""
    import subprocess
    import sys

    probe = (
        "import resource; from notary_signer.frontproc import _allow_open_files;"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE);"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard));"
        "_allow_open_files(min(1280, hard)); print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    soft, hard = (int(v) for v in out.stdout.split())
    assert soft == min(1280, hard)
