"""Chaos soak: publishing and reading through signer, database and replica faults.

Everything on 127.0.0.1: a throwaway PostgreSQL cluster (tests/pg.py), the signer, two
trust-server replicas sharing the database behind a small round-robin TCP proxy
(TLS passes through it; a backend that refuses the connection is skipped, like a load
balancer does). Publishers run ``trustctl sign --digest ...`` in loops, into one
shared repository (all holding its targets key) and into one repository of their
own (hash bins for the shared one and every other own one, the flat layout for the
rest); readers fetch timestamp, snapshot, targets and the timestamp key through the
proxy. Seeded faults of 2-6 s come one at a time:

* signer: SIGTERM, kill -9, SIGSTOP (then restarted or continued);
* PostgreSQL: fast stop, immediate stop, SIGSTOP of all its processes;
* one replica: kill -9 of its process group (then restarted), or SIGSTOP.

A fault window runs from the fault's start until the faulted part is back plus a
grace of 2 s. The report prints, per fault kind: faults, publishes overlapping its
windows, failures among them, reads, 5xx, time to recover (from the fault's end to
the first acknowledged publish completed after it); then every acknowledged tag is
checked with python-tuf's ngclient from the pinned root (with its digest).

Usage::

    .venv/bin/python benchmarks/soak.py --duration 300 --seed 1
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import urllib3

from benchmarks.stacks import Proc, base_env
from tests.client_view import HTTPSFetcher, updater
from tests.internals import leaks
from tests.pg import PostgresCluster
from tests.procs import Process, Stack, free_port, start_stack

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
#: Throwaway passphrases of the soak's keys (never used outside its temporary directory).
PASSPHRASES = {"root": "soak root passphrase", "targets": "soak targets passphrase"}
GRACE = 2.0
FAULT_KINDS = (
    "signer-term",
    "signer-kill",
    "signer-stop",
    "pg-fast",
    "pg-immediate",
    "pg-stop",
    "replica-kill",
    "replica-stop",
)


# --- the round-robin TCP proxy --------------------------------------------------------


class RoundRobinProxy:
    """Accepts on 127.0.0.1 and pipes each connection to the next backend port."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self._next = 0
        self._lock = threading.Lock()
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        upstream = None
        for i in range(len(self.backends)):
            port = self.backends[(start + i) % len(self.backends)]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
                upstream.settimeout(None)
                break
            except OSError:
                continue
        if upstream is None:
            client.close()
            return
        done = threading.Event()

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                done.set()
                # one side gone (a killed replica): the other sees the connection close
                # at once, as behind a load balancer, instead of waiting for its timeout
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)
        done.wait(60)
        for s in (client, upstream):
            try:
                s.close()
            except OSError:
                pass

    def close(self) -> None:
        self._stop = True
        self.sock.close()


# --- records -----------------------------------------------------------------------------


@dataclass
class Publish:
    gun: str
    tag: str
    digest: str
    started: float
    ended: float
    ok: bool
    stderr: str


@dataclass
class Read:
    started: float
    status: int
    body: bytes


@dataclass
class Fault:
    kind: str
    started: float
    ended: float = 0.0  # when the faulted part was back

    def window(self) -> tuple[float, float]:
        return self.started, self.ended + GRACE


@dataclass
class Report:
    duration: float
    faults: list[Fault] = field(default_factory=list)
    publishes: list[Publish] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    leaky_bodies: list[str] = field(default_factory=list)
    unclear_failures: list[str] = field(default_factory=list)  # not one "Error:" line

    def in_window(self, t0: float, t1: float) -> Fault | None:
        for f in self.faults:
            w0, w1 = f.window()
            if t0 <= w1 and t1 >= w0:
                return f
        return None

    @property
    def acknowledged(self) -> list[Publish]:
        return [p for p in self.publishes if p.ok]

    def fives_outside(self) -> list[Read]:
        return [
            r
            for r in self.reads
            if r.status >= 500 and self.in_window(r.started, r.started) is None
        ]

    def failed_inside(self) -> tuple[int, int]:
        inside = [p for p in self.publishes if self.in_window(p.started, p.ended) is not None]
        return sum(1 for p in inside if not p.ok), len(inside)

    def table(self) -> list[str]:
        rows = [["fault", "n", "publishes", "failed", "reads", "5xx", "recover s (max)"]]
        by_kind: dict[str, list[Fault]] = defaultdict(list)
        for f in self.faults:
            by_kind[f.kind].append(f)
        for kind in sorted(by_kind):
            faults = by_kind[kind]
            pubs = [
                p for p in self.publishes if any(_overlaps(f, p.started, p.ended) for f in faults)
            ]
            reads = [
                r for r in self.reads if any(_overlaps(f, r.started, r.started) for f in faults)
            ]
            recover = [self._recovery(f) for f in faults]
            known = [r for r in recover if r is not None]
            rows.append(
                [
                    kind,
                    str(len(faults)),
                    str(len(pubs)),
                    str(sum(1 for p in pubs if not p.ok)),
                    str(len(reads)),
                    str(sum(1 for r in reads if r.status >= 500)),
                    f"{max(known):.1f}" if known else "-",
                ]
            )
        outside_p = [p for p in self.publishes if self.in_window(p.started, p.ended) is None]
        outside_r = [r for r in self.reads if self.in_window(r.started, r.started) is None]
        rows.append(
            [
                "(no fault)",
                "-",
                str(len(outside_p)),
                str(sum(1 for p in outside_p if not p.ok)),
                str(len(outside_r)),
                str(sum(1 for r in outside_r if r.status >= 500)),
                "-",
            ]
        )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        return [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]

    def _recovery(self, f: Fault) -> float | None:
        done = [p.ended for p in self.acknowledged if p.ended >= f.ended]
        return min(done) - f.ended if done else None

    def summary(self) -> list[str]:
        failed, inside = self.failed_inside()
        return [
            (
                f"duration {self.duration:.0f} s, {len(self.faults)} faults, "
                f"{len(self.publishes)} publishes ({len(self.acknowledged)} acknowledged), {len(self.reads)} reads"
            ),
            f"acknowledged publishes lost: {len(self.lost)}",
            f"tracebacks: {len(self.tracebacks)}",
            f"5xx outside fault windows: {len(self.fives_outside())}",
            (
                f"publishes failed inside fault windows: {failed} of {inside}"
                f" ({100 * failed / inside if inside else 0:.1f}%)"
            ),
            f"response bodies with internals: {len(self.leaky_bodies)}",
            f"failures without exactly one Error: line: {len(self.unclear_failures)}",
        ]


def _overlaps(f: Fault, t0: float, t1: float) -> bool:
    w0, w1 = f.window()
    return t0 <= w1 and t1 >= w0


# --- the soak ---------------------------------------------------------------------------


def _digest(tag: str) -> tuple[str, int]:
    manifest = json.dumps({"schemaVersion": 2, "tag": tag}).encode()
    return f"sha256:{hashlib.sha256(manifest).hexdigest()}", len(manifest)


class Soak:
    def __init__(
        self,
        work: Path,
        *,
        duration: float,
        seed: int,
        publishers: int = 4,
        readers: int = 2,
        kinds: tuple[str, ...] = FAULT_KINDS,
        gap: tuple[float, float] = (6.0, 10.0),
        faults: int | None = None,
        settle: float = 2 * GRACE,
        log: Callable[[str], None] = print,
        target: Ours | Notary | None = None,
    ) -> None:
        """``faults``: stop after that many faults (each kind once: ``len(kinds)``), the
        load running ``settle`` s more on the recovered parts, instead of running out
        ``duration`` (then an upper bound)."""
        self.target = target or Ours()
        self.work = work
        self.duration = duration
        self.rng = random.Random(seed)
        self.publishers = publishers
        self.readers = readers
        self.kinds = kinds
        self.gap = gap
        self.max_faults = faults
        self.settle = settle
        self.log = log
        self.report = Report(duration)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.t0 = time.monotonic()

    def now(self) -> float:
        return time.monotonic() - self.t0

    # --- set-up ---------------------------------------------------------------------

    def run(self, cluster: PostgresCluster) -> Report:
        self.cluster = cluster
        target = self.target
        target.start(self.work, cluster)
        try:
            self.proxy = RoundRobinProxy(target.ports)
            target.url = self.url = f"https://127.0.0.1:{self.proxy.port}"
            self.internal_ports = [*target.ports, target.signer_port, cluster.port]
            self._setup_repos()
            self.t0 = time.monotonic()
            threads = [
                threading.Thread(target=self._publisher, args=(i,)) for i in range(self.publishers)
            ]
            threads += [
                threading.Thread(target=self._reader, args=(i,)) for i in range(self.readers)
            ]
            for t in threads:
                t.start()
            self._faults()
            self.stop.set()
            for t in threads:
                t.join(timeout=240)
            self.report.duration = self.now()
            self.log(f"{self.now():6.1f}s load stopped")
            self._check()
        finally:
            self.proxy.close() if hasattr(self, "proxy") else None
            target.stop()
        return self.report

    def _setup_repos(self) -> None:
        owner = self.work / "owner"
        self.shared = "127.0.0.1:5000/soak/shared"
        self.guns = {self.shared: owner}
        self._ok(self.target.init(owner, self.shared, flat=False))
        self.dirs = []
        for i in range(self.publishers):
            mine = self.work / f"publisher-{i}"
            shutil.copytree(owner, mine)  # holds the shared repository's targets key
            gun = f"127.0.0.1:5000/soak/own-{i}"
            self._ok(self.target.init(mine, gun, flat=i % 2 == 1))  # flat and hash-bin layouts
            self.guns[gun] = mine
            self.dirs.append((mine, gun))

    @staticmethod
    def _ok(done: subprocess.CompletedProcess[str]) -> None:
        if done.returncode != 0:
            raise RuntimeError(f"set-up failed: {done.stdout}{done.stderr}")

    # --- load -----------------------------------------------------------------------

    def _publisher(self, i: int) -> None:
        trust_dir, own = self.dirs[i]
        n = 0
        while not self.stop.is_set():
            gun = self.shared if n % 2 == 0 else own
            tag = f"p{i}-{n}"
            n += 1
            digest, size = _digest(tag)
            started = self.now()
            done = self.target.publish(trust_dir, gun, tag, digest, size)
            pub = Publish(gun, tag, digest, started, self.now(), done.returncode == 0, done.stderr)
            with self.lock:
                self.report.publishes.append(pub)
                if "Traceback" in done.stderr or "internal error" in done.stderr:
                    self.report.tracebacks.append(done.stderr)
                errors = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
                if not pub.ok and len(errors) != 1:
                    self.report.unclear_failures.append(done.stderr)
            failures = sum(1 for p in self.report.publishes if not p.ok)
            if not pub.ok and failures <= 20:
                self.log(
                    f"  publish {gun}:{tag} failed at {started:.1f}s: {done.stderr.strip()[-300:]}"
                )

    def _reader(self, i: int) -> None:
        pool = urllib3.PoolManager(ca_certs=str(self.target.ca), maxsize=2)
        names = ["timestamp.json", "snapshot.json", "targets.json", "timestamp.key"]
        guns = sorted(self.guns)
        n = 0
        while not self.stop.is_set():
            gun = guns[n % len(guns)]
            name = names[n % len(names)]
            n += 1
            started = self.now()
            try:
                r = pool.request(
                    "GET", f"{self.url}/v2/{gun}/_trust/tuf/{name}", retries=False, timeout=30
                )
                status, body = r.status, r.data
            except urllib3.exceptions.HTTPError:
                status, body = 0, b""  # no answer (a killed replica): not a 5xx
            with self.lock:
                self.report.reads.append(Read(started, status, body if status >= 400 else b""))
                if status >= 400 and leaks(body, self.internal_ports, allow=guns):
                    self.report.leaky_bodies.append(body.decode("utf-8", "replace")[:300])
            time.sleep(0.05)

    # --- faults ---------------------------------------------------------------------

    def _faults(self) -> None:
        kinds = list(self.kinds)
        self.rng.shuffle(kinds)
        k = 0
        while self.max_faults is None or k < self.max_faults:
            pause = self.rng.uniform(*self.gap)
            if self.now() + pause + 6 > self.duration:
                break
            time.sleep(pause)
            kind = kinds[k % len(kinds)]
            k += 1
            length = self.rng.uniform(2.0, 6.0)
            fault = Fault(kind, self.now())
            self.log(f"{fault.started:6.1f}s fault {kind} for {length:.1f} s")
            self._inject(kind, length)
            fault.ended = self.now()
            self.log(f"{fault.ended:6.1f}s {kind} recovered")
            with self.lock:
                self.report.faults.append(fault)
        end = self.duration if self.max_faults is None else self.now() + self.settle
        time.sleep(max(0.0, min(end, self.duration) - self.now()))

    def _inject(self, kind: str, length: float) -> None:
        part, how = kind.split("-", 1)
        if part == "signer":
            self._process_fault(self.target.signer, how, length)
        elif part == "replica":
            self._process_fault(self.target.replica, how, length)
        elif how == "stop":
            pids = self._pg_pids()
            for pid in pids:
                _signal(pid, signal.SIGSTOP)
            time.sleep(length)
            for pid in pids:
                _signal(pid, signal.SIGCONT)
        else:
            mode = "fast" if how == "fast" else "immediate"
            self.cluster._run("pg_ctl", "-D", str(self.cluster.datadir), "-m", mode, "-w", "stop")
            self.cluster.running = False
            time.sleep(length)
            self.cluster.start()

    @staticmethod
    def _process_fault(proc: Process | Proc, how: str, length: float) -> None:
        assert proc.proc is not None
        if how == "stop":
            os.killpg(proc.proc.pid, signal.SIGSTOP)
            time.sleep(length)
            os.killpg(proc.proc.pid, signal.SIGCONT)
            return
        if how == "term":
            proc.stop()  # SIGTERM, then its process group
        else:
            os.killpg(proc.proc.pid, signal.SIGKILL)  # the session we started it in
            proc.proc.wait()
            proc.proc = None
        time.sleep(length)
        proc.start()

    def _pg_pids(self) -> list[int]:
        """The postmaster (its pid file) and its children."""
        master = int((self.cluster.datadir / "postmaster.pid").read_text().split()[0])
        pids = [master]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                    pids.append(int(entry))
        return pids

    # --- the judge ------------------------------------------------------------------

    def _check(self) -> None:
        """Every acknowledged tag, with its digest, as the target's judge sees it."""
        by_gun: dict[str, list[Publish]] = defaultdict(list)
        for p in self.report.acknowledged:
            by_gun[p.gun].append(p)
        for n, (gun, pubs) in enumerate(sorted(by_gun.items())):
            found = self.target.signed(
                self.guns[gun], gun, self.work / f"judge-{n}", [p.tag for p in pubs]
            )
            self.report.lost += [(gun, p.tag) for p in pubs if found.get(p.tag) != p.digest]


# --- what runs under the soak ------------------------------------------------------------


def _run(
    argv: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


class Ours:
    """Our signer and two server replicas; ``trustctl sign`` publishes; python-tuf's
    ngclient judges from the pinned root."""

    name = "ours"

    def start(self, work: Path, cluster: PostgresCluster) -> None:
        self.stack: Stack = start_stack(
            work / "stack", cluster.create_database("soak"), workers="1"
        )
        self.replica, _ = self.stack.add_server()
        self.signer = self.stack.signer
        self.ca = self.stack.pki.ca_cert
        self.ports = [int(p.env["NOTARY_SERVER_PORT"]) for p in (self.stack.server, self.replica)]
        self.signer_port = int(self.signer.env["NOTARY_SIGNER_PORT"])
        self.url = self.stack.url

    def stop(self) -> None:
        self.stack.stop()

    def trustctl(self, trust_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {
            **base_env(),
            "TRUSTCTL_SERVER": self.url,
            "TRUSTCTL_TLS_CA": str(self.ca),
            "TRUSTCTL_TRUST_DIR": str(trust_dir),
            "TRUSTCTL_ROOT_PASSPHRASE": PASSPHRASES["root"],
            "TRUSTCTL_TARGETS_PASSPHRASE": PASSPHRASES["targets"],
        }
        return _run([sys.executable, "-m", "trustctl", *args], env)

    def init(self, trust_dir: Path, gun: str, *, flat: bool) -> subprocess.CompletedProcess[str]:
        return self.trustctl(trust_dir, "init", gun, *(("--hash-bins", "0") if flat else ()))

    def publish(
        self, trust_dir: Path, gun: str, tag: str, digest: str, size: int
    ) -> subprocess.CompletedProcess[str]:
        return self.trustctl(
            trust_dir,
            "sign",
            f"{gun}:{tag}",
            "--digest",
            digest,
            "--size",
            str(size),
            "--media-type",
            MEDIA_TYPE,
        )

    def signed(self, trust_dir: Path, gun: str, scratch: Path, tags: list[str]) -> dict[str, str]:
        """The digests of ``tags`` as ngclient finds them, from the pinned root."""
        pinned = scratch.with_suffix(".root.json")
        done = self.trustctl(trust_dir, "trust", "export", gun, "-o", str(pinned))
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        up = updater(scratch, self.stack.url, gun, HTTPSFetcher(str(self.ca)), pinned.read_bytes())
        up.refresh()
        out = {}
        for tag in tags:
            found = up.get_targetinfo(tag)
            if found is not None:
                out[tag] = "sha256:" + found.hashes["sha256"]
        return out


class Notary:
    """notary-server and notary-signer 0.7.0 (Debian's) on the same PostgreSQL, two
    server replicas; ``notary addhash ... -p`` publishes; ``notary list`` judges."""

    name = "notary"

    def start(self, work: Path, cluster: PostgresCluster) -> None:
        from benchmarks.stacks import NOTARY_SERVER_BIN, start_notary

        self.stack = start_notary("soak", work / "notary", pg_port=cluster.port)
        config = json.loads((self.stack.work / "server.json").read_text())
        port = free_port()
        config["server"]["http_addr"] = f"127.0.0.1:{port}"
        (self.stack.work / "server-2.json").write_text(json.dumps(config))
        from benchmarks.stacks import _https_ok

        self.replica = Proc(
            "notary-server-2", [NOTARY_SERVER_BIN, "-config", str(self.stack.work / "server-2.json")],
            base_env(), self.stack.work / "server-2.log",
            _https_ok(f"https://127.0.0.1:{port}/_notary_server/health", self.stack.ca), cwd=self.stack.work,
        ).start()  # fmt: skip
        self.signer = self.stack.signer
        self.ca = self.stack.ca
        self.ports = [int(self.stack.url.rsplit(":", 1)[1]), port]
        signer_cfg = json.loads((self.stack.work / "signer.json").read_text())
        self.signer_port = int(signer_cfg["server"]["grpc_addr"].rsplit(":", 1)[1])
        self.url = self.stack.url

    def stop(self) -> None:
        self.replica.stop()
        self.stack.stop()

    def notary(self, trust_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
        from benchmarks.stacks import NOTARY_BIN, NOTARY_CLIENT_ENV

        config = trust_dir / "client.json"
        config.write_text(
            json.dumps(
                {
                    "trust_dir": str(trust_dir),
                    "remote_server": {"url": self.url, "root_ca": str(self.ca)},
                }
            )
        )
        return _run([NOTARY_BIN, "-c", str(config), *args], {**base_env(), **NOTARY_CLIENT_ENV})

    def init(self, trust_dir: Path, gun: str, *, flat: bool) -> subprocess.CompletedProcess[str]:
        trust_dir.mkdir(parents=True, exist_ok=True)
        return self.notary(trust_dir, "init", gun, "-p")

    def publish(
        self, trust_dir: Path, gun: str, tag: str, digest: str, size: int
    ) -> subprocess.CompletedProcess[str]:
        return self.notary(
            trust_dir,
            "addhash",
            gun,
            tag,
            str(size),
            "--sha256",
            digest.removeprefix("sha256:"),
            "-p",
        )

    def signed(self, trust_dir: Path, gun: str, scratch: Path, tags: list[str]) -> dict[str, str]:
        """Every tag ``notary list`` shows (the notary client verifies from its pinned root)."""
        done = self.notary(trust_dir, "list", gun)
        out = {}
        for line in done.stdout.splitlines()[2:]:
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = "sha256:" + parts[1]
        return out


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run_soak(duration: float, seed: int = 1, **kwargs: object) -> Report:
    """Run the soak in a temporary directory with its own PostgreSQL cluster."""
    work = Path(tempfile.mkdtemp(prefix="notary-soak-"))
    try:
        with PostgresCluster.started() as cluster:
            return Soak(work, duration=duration, seed=seed, **kwargs).run(cluster)  # type: ignore[arg-type]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=300, help="seconds (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--publishers", type=int, default=4)
    parser.add_argument("--readers", type=int, default=2)
    parser.add_argument(
        "--notary",
        action="store_true",
        help="run notary-server/-signer 0.7.0 and the notary CLI instead",
    )
    args = parser.parse_args()
    report = run_soak(
        args.duration,
        args.seed,
        publishers=args.publishers,
        readers=args.readers,
        target=Notary() if args.notary else Ours(),
    )
    print()
    for line in report.table():
        print(line)
    print()
    for line in report.summary():
        print(line)
    for body in report.leaky_bodies[:5]:
        print("leaky body:", body)
    for tb in report.tracebacks[:3]:
        print("traceback:", tb[-800:])


if __name__ == "__main__":
    main()
