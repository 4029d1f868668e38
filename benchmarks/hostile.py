"""Reads and publishes while hostile clients hold connections open (issue 10, rows 1-2).

Starts our signer and server (``tests.procs.start_stack``, SQLite), publishes one
repository, then measures twice, quiet and under attack:

* reads: ``wrk -t2 -c16 --latency`` on ``GET .../timestamp.json`` (requests/s, p50, p99);
* publishes: one tag at a time from another thread for as long as wrk runs (count,
  failures, slowest).

The attack, opened before the second measurement and held until it ends:

* server: 64 connections that send the head of a 1,000,000-byte POST and then
  nothing, and 16 slow uploads (a 1,000,000-byte POST sending 1 byte a second);
* signer: 64 connections that send one byte of a TLS handshake and then nothing, and
  16 slow uploads over mutual TLS (a client with a valid certificate, 1 byte a second).

Hostile sockets come from 127.0.0.2-127.0.0.5 (40 per address, within the
per-address bound, so that they are held, not refused); the honest clients use
127.0.0.1. The services close stalled connections as their deadlines pass; the attack
re-opens them at once, so the full number is held open throughout. Every process it starts is stopped by pid. Usage::

    .venv/bin/python benchmarks/hostile.py [--seconds 10] [--wsgi-server front|granian|gunicorn]
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.measure import WrkResult, wrk
from tests.e2e.remote import Remote
from tests.procs import Stack, start_stack
from tests.tufrepo import Owner

GUN = "127.0.0.1:5000/bench/hostile"
HOSTILE_ADDRS = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
STALLED, SLOW = 64, 16


@dataclass
class Publishes:
    ok: int = 0
    failed: int = 0
    slowest_ms: float = 0.0
    errors: list[str] = field(default_factory=list)


def publish_loop(remote: Remote, owner: Owner, stop: threading.Event, out: Publishes) -> None:
    while not stop.is_set():
        owner.add_tag(f"t{out.ok + out.failed}-{time.monotonic_ns()}")
        started = time.perf_counter()
        try:
            resp = remote.publish({"targets": owner.targets_bytes()}, timeout=30)
            status = resp.status
        except Exception as e:  # noqa: BLE001 - a timeout is a failed publish
            status, resp = 0, None
            out.errors.append(type(e).__name__)
        out.slowest_ms = max(out.slowest_ms, (time.perf_counter() - started) * 1000)
        if status == 200:
            out.ok += 1
        else:
            out.failed += 1
            if resp is not None:
                out.errors.append(f"{status} {resp.data[:80]!r}")
        stop.wait(0.2)


class Attack:
    """Hostile sockets against server and signer, kept at full strength until ``close``.

    The services close stalled connections when a deadline passes (a TLS handshake
    after 10 s, for instance); like a real attacker, the attack then opens new ones.
    """

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.held: list[tuple[Callable[[], socket.socket], bool, socket.socket | None]] = []
        self.opened = 0
        self.refused = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._keeper = threading.Thread(target=self._keep, daemon=True)

    def open(self) -> None:
        server_port = int(self.stack.url.rsplit(":", 1)[1])
        signer_port = int(self.stack.signer.health_url.split(":")[2].split("/")[0])
        pki = self.stack.pki
        server_tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        signer_tls = ssl.create_default_context(cafile=str(pki.ca_cert))
        signer_tls.load_cert_chain(str(pki.client_cert), str(pki.client_key))
        head = (
            f"POST /v2/{GUN}/_trust/tuf/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1000000\r\n\r\n"
        ).encode()
        signer_head = (
            b"POST /v1/sign HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000000\r\n\r\n"
        )
        kinds: list[tuple[Callable[[str], socket.socket], bool]] = []
        kinds += [(lambda src: self._tls(server_tls, server_port, src, head), False)] * STALLED
        kinds += [(lambda src: self._one_byte(signer_port, src), False)] * STALLED
        kinds += [(lambda src: self._tls(server_tls, server_port, src, head + b"-"), True)] * SLOW
        kinds += [
            (lambda src: self._tls(signer_tls, signer_port, src, signer_head + b"{"), True)
        ] * SLOW
        for i, (make, slow) in enumerate(kinds):
            source = HOSTILE_ADDRS[i % len(HOSTILE_ADDRS)]
            opener = lambda make=make, source=source: make(source)
            self.held.append((opener, slow, self._try(opener)))
        self._keeper.start()

    def _try(self, opener: Callable[[], socket.socket]) -> socket.socket | None:
        try:
            s = opener()
        except OSError:
            self.refused += 1
            return None
        self.opened += 1
        s.setblocking(False)
        return s

    def _tls(self, ctx: ssl.SSLContext, port: int, source: str, data: bytes) -> socket.socket:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        tls = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
        tls.sendall(data)
        return tls

    def _one_byte(self, port: int, source: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
        s.sendall(b"\x16")
        return s

    @staticmethod
    def _alive(s: socket.socket | None) -> bool:
        """Not closed by the service (which only ever writes to refuse or close)."""
        if s is None:
            return False
        try:
            s.recv(4096)  # an answer (the service refuses) or b"" (closed)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True  # nothing to read: still open
        except OSError:
            return False
        return False

    def _keep(self) -> None:
        while not self._stop.wait(1.0):
            for i, (opener, slow, s) in enumerate(self.held):
                if self._stop.is_set():
                    return
                if self._alive(s) and slow:
                    try:
                        assert s is not None
                        s.send(b"x")  # one byte a second
                        continue
                    except (OSError, ssl.SSLError):
                        pass
                elif self._alive(s):
                    continue
                with contextlib.suppress(OSError):
                    if s is not None:
                        s.close()
                self.held[i] = (opener, slow, self._try(opener))

    def still_open(self) -> tuple[int, int]:
        """(stalled, slow) connections open right now."""
        stalled = sum(1 for _, slow, s in self.held if not slow and self._alive(s))
        slow = sum(1 for _, slow, s in self.held if slow and self._alive(s))
        return stalled, slow

    def close(self) -> None:
        self._stop.set()
        self._keeper.join(5)
        for _, _, s in self.held:
            with contextlib.suppress(OSError):
                if s is not None:
                    s.close()


def measure(remote: Remote, owner: Owner, url: str, seconds: int) -> tuple[WrkResult, Publishes]:
    stop, pubs = threading.Event(), Publishes()
    publisher = threading.Thread(target=publish_loop, args=(remote, owner, stop, pubs))
    publisher.start()
    try:
        try:
            result = wrk(url, 16, seconds)
        except (AttributeError, subprocess.SubprocessError):  # no answer at all: nothing to parse
            result = WrkResult(0.0, float("nan"), float("nan"), 0, -1)
    finally:
        stop.set()
        publisher.join()
    return result, pubs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--wsgi-server", default="front", choices=["front", "granian", "gunicorn"])
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    stack = start_stack(work, wsgi_server=args.wsgi_server)
    try:
        remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
        owner = remote.new_owner()
        owner.add_tag("v0")
        assert (
            remote.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status
            == 200
        )
        url = remote.tuf_url("timestamp.json")
        wrk(url, 16, 2)  # warm-up
        quiet = measure(remote, owner, url, args.seconds)
        attack = Attack(stack)
        attack.open()
        try:
            time.sleep(1)
            loaded = measure(remote, owner, url, args.seconds)
            held = attack.still_open()
        finally:
            attack.close()
    finally:
        stack.stop()
    rows = [("quiet", quiet, None), ("under attack", loaded, held)]
    print(
        f"\nserver: {args.wsgi_server}, 2 workers x 8 threads; signer: front, 1 worker x 8 threads; "
        f"wrk -t2 -c16 -d{args.seconds}s on timestamp.json; publishes from another thread\n"
        f"attack: {STALLED} stalled + {SLOW} slow uploads against each of server and signer, "
        f"re-opened when the services close them ({attack.opened} connections opened, "
        f"{attack.refused} refused at connect)\n"
    )
    print(
        "| phase | reads/s | p50 ms | p99 ms | wrk errors | publishes ok | failed | slowest publish ms | hostile open at the end (stalled/slow, of 128/32) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, (r, p), h in rows:
        latency = f"{r.p50_ms:.1f} | {r.p99_ms:.1f}" if r.requests else "- | - (none answered)"
        print(
            f"| {name} | {r.rps:,.0f} | {latency} | {r.errors} | {p.ok} | "
            f"{p.failed} | {p.slowest_ms:,.0f} | {'-' if h is None else f'{h[0]}/{h[1]}'} |"
        )
    for name, (_, p), _ in rows:
        if p.errors:
            print(f"{name}: publish errors: {sorted(set(p.errors))[:5]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
