"""The front's process model (notary_signer.frontproc) in a child process: workers
share one listening socket, and a burst of connections is spread over all of them.

Found in issue 13's read benchmark: each worker's asyncio server accepted every
pending connection in one go, so 16 keep-alive connections opened together often
all landed on one of two workers, and reads ran at half the machine (4.2k instead of
8-11k requests/s from one run to the next).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.procs import free_port

CHILD = """
import os, sys
from notary_signer.front import FrontLimits
from notary_signer.frontproc import serve

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]

serve(lambda: app, host="127.0.0.1", port=int(sys.argv[1]), ssl_factory=None,
      limits=FrontLimits(), workers=int(sys.argv[2]), threads=2, name="test front")
"""


@contextmanager
def front(workers: int) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(port), str(workers)])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the front did not start") from None
                time.sleep(0.05)
        time.sleep(0.5)  # the workers are in their loops
        yield port, proc
    finally:
        proc.terminate()
        proc.wait(15)


@pytest.fixture
def two_workers() -> Iterator[int]:
    with front(2) as (port, _proc):
        yield port


def served_by(sock: socket.socket) -> int:
    sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
        chunk = sock.recv(4096)
        assert chunk, "the front closed the connection"
        data += chunk
    return int(data.split(b"\r\n\r\n", 1)[1])


@pytest.mark.parametrize("burst", [16, 64])
def test_a_burst_of_connections_is_spread_over_the_workers(two_workers: int, burst: int) -> None:
    for _round in range(3):
        conns = [socket.create_connection(("127.0.0.1", two_workers)) for _ in range(burst)]
        try:
            pids = Counter(served_by(c) for c in conns)
        finally:
            for c in conns:
                c.close()
        assert len(pids) == 2 and min(pids.values()) >= burst // 4, (
            f"{burst} connections opened together went {dict(pids)} over the two workers"
        )
        time.sleep(0.2)


def test_one_worker_is_served_in_the_process_itself() -> None:
    """No supervising parent for a single worker (about 26 MiB less): the app answers
    from the very process that was started, and SIGTERM ends it."""
    with front(1) as (port, proc):
        conn = socket.create_connection(("127.0.0.1", port))
        try:
            assert served_by(conn) == proc.pid
        finally:
            conn.close()
        proc.terminate()
        assert proc.wait(15) == 0
