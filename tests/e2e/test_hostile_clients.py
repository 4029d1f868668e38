"""Hostile clients against real server and signer processes (issue 10, rows 1, 2, 5).

Each case holds hostile connections or uploads open against the running service and
then checks that ordinary reads and publishes are still answered. No timing is
asserted: the generous client timeouts only tell "stalled" from "answered".
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3

from tests.e2e.remote import Remote
from tests.procs import Stack, start_stack
from tests.tufrepo import Owner

pytestmark = pytest.mark.e2e

GUN = "127.0.0.1:5000/hostile/app"
OTHER_GUN = "127.0.0.1:5000/hostile/other"
#: Source address of the hostile sockets: another loopback address than the honest
#: clients', so that the per-address connection limit can tell them apart.
HOSTILE_ADDR = "127.0.0.2"
#: Generous: a stalled service never answers, a healthy one answers in well under a second.
ANSWER_TIMEOUT = 20.0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s = start_stack(tmp_path)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def published(stack: Stack) -> tuple[Remote, Owner]:
    remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
    owner = remote.new_owner()
    owner.add_tag("v1")
    resp = remote.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status == 200, resp.data
    return remote, owner


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def _connect(port: int, source: str) -> socket.socket:
    s = socket.create_connection(
        ("127.0.0.1", port), timeout=ANSWER_TIMEOUT, source_address=(source, 0)
    )
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    return s


def stalled_post(stack: Stack, source: str) -> socket.socket:
    """TLS, then the head of a 1,000,000-byte POST, then nothing."""
    ctx = ssl.create_default_context(cafile=str(stack.pki.ca_cert))
    tls = ctx.wrap_socket(_connect(_port(stack.url), source), server_hostname="127.0.0.1")
    tls.sendall(
        f"POST /v2/{GUN}/_trust/tuf/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        "Content-Length: 1000000\r\n\r\n--xyz\r\n".encode()
    )
    return tls


def one_tls_byte(port: int, source: str) -> socket.socket:
    """One byte of a TLS ClientHello, then nothing."""
    s = _connect(port, source)
    s.sendall(b"\x16")
    return s


def silent(port: int, source: str) -> socket.socket:
    """A TCP connection that never sends a byte."""
    return _connect(port, source)


@contextlib.contextmanager
def holding(open_one: Callable[[], socket.socket], count: int) -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            with contextlib.suppress(OSError):  # refused or reset by a per-address limit
                opened.append(open_one())
        yield opened
    finally:
        for s in opened:
            with contextlib.suppress(OSError):
                s.close()


def _code(resp: urllib3.BaseHTTPResponse) -> str:
    return str(json.loads(resp.data)["errors"][0]["code"])


def still_served(remote: Remote, owner: Owner, tag: str) -> None:
    """A read of timestamp.json and a publish both answered, and correctly."""
    fresh = urllib3.PoolManager(ca_certs=remote.ca_file)  # new connections, not kept-alive ones
    resp = fresh.request(
        "GET", remote.tuf_url("timestamp.json"), timeout=ANSWER_TIMEOUT, retries=False
    )
    assert resp.status == 200, resp.data
    owner.add_tag(tag)
    fields = [("files", ("targets", owner.targets_bytes(), "application/json"))]
    resp = fresh.request(
        "POST", remote.tuf_url(), fields=fields, timeout=ANSWER_TIMEOUT, retries=False
    )
    assert resp.status == 200, resp.data


# --- rows 1 and 2: slow and stalled clients cost a socket, never a worker thread ------

ATTACKS = {
    # row 1: 16 = the server's workers x threads; 64 is four times that
    "server-64-stalled-post-bodies": ("server", stalled_post, 64),
    # row 2: the signer's TLS handshake stalled by a byte
    "signer-48-one-byte-tls-handshakes": ("signer", one_tls_byte, 48),
    # row 2 against the server: more than its TLS library's 64 pending handshakes per worker
    "server-160-one-byte-tls-handshakes": ("server", one_tls_byte, 160),
    # connections that never send: bounded per client address, the rest refused
    "server-400-silent-connections": ("server", silent, 400),
    "signer-400-silent-connections": ("signer", silent, 400),
}


@pytest.mark.parametrize("target,attack,count", list(ATTACKS.values()), ids=list(ATTACKS))
def test_stalled_clients_do_not_stop_reads_or_publishes(
    stack: Stack,
    published: tuple[Remote, Owner],
    target: str,
    attack: Callable[..., socket.socket],
    count: int,
) -> None:
    remote, owner = published
    if attack is stalled_post:
        open_one = lambda: stalled_post(stack, HOSTILE_ADDR)
    else:
        port = _port(stack.url if target == "server" else stack.signer.health_url)
        open_one = lambda: attack(port, HOSTILE_ADDR)
    with holding(open_one, count):
        still_served(remote, owner, "v2")


def test_stalled_post_bodies_from_the_readers_own_address(
    stack: Stack, published: tuple[Remote, Owner]
) -> None:
    """Row 1 as reported: every stalled connection from the address the reader uses."""
    remote, owner = published
    with holding(lambda: stalled_post(stack, "127.0.0.1"), 32):
        still_served(remote, owner, "v2")
