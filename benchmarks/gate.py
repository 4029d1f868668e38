"""Benchmark of the deploy gate (``trustctl gate serve``), printed as a table.

Real processes on 127.0.0.1: the trust server and signer (``tests.procs``), a counting
proxy in front of the server (plain HTTP on loopback), and the gate over TLS.
Repositories are signed with the trustctl CLI. Rows:

* warm: a three-container Deployment, validated at ``--rate`` requests/s for
  ``--seconds`` (TLS, kept-alive connections), p50/p99 and errors;
* cold: the first request for each of ``--cold`` freshly signed repositories;
* coalescing: ``--concurrent`` simultaneous requests for one cold repository, and how
  many times each metadata file was fetched from the trust server (when the requests
  take longer than half the verdict's cache time, the gate renews the verdict in the
  background: one more ``N.root.json`` and ``timestamp.json``);
* memory: the gate's RSS after ``--refs`` distinct references (100 per request).

    .venv/bin/python -m benchmarks.gate [--rate 500 --seconds 10 --cold 10 --concurrent 500 --refs 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import urllib3

from notary_signer.devcerts import ensure_dev_pki
from tests.procs import ROOT, free_port, start_stack
from tests.trustctl.httpd import Reply, Request, serve

MEDIA = "application/vnd.oci.image.manifest.v1+json"
REGISTRY = "127.0.0.1:5999"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))] if s else float("nan")


class CountingProxy:
    def __init__(self, upstream: str, ca: Path) -> None:
        self.pool = urllib3.PoolManager(ca_certs=str(ca), retries=False, maxsize=64)
        self.upstream = upstream
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = serve(self.handle)

    def handle(self, req: Request) -> Reply:
        with self.lock:
            self.counts[req.path] += 1
        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length")}
        r = self.pool.request(
            req.method, self.upstream + req.path, headers=headers, body=req.body or None
        )
        out = {
            k: v for k, v in r.headers.items() if k.lower() in ("content-type", "www-authenticate")
        }
        return Reply(r.status, out, r.data)


class Cli:
    def __init__(self, trust_dir: Path, server: str, ca: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("TRUSTCTL_")},
            "TRUSTCTL_SERVER": server, "TRUSTCTL_TLS_CA": str(ca), "TRUSTCTL_TRUST_DIR": str(trust_dir),
            "TRUSTCTL_ROOT_PASSPHRASE": "bench root passphrase",
            "TRUSTCTL_TARGETS_PASSPHRASE": "bench targets passphrase",
        }  # fmt: skip

    def __call__(self, *args: str) -> None:
        subprocess.run([sys.executable, "-m", "trustctl", *args], env=self.env, cwd=ROOT,
                       check=True, capture_output=True)  # fmt: skip


def signed_repository(owner: Cli, gate: Cli, tmp: Path, tags: int = 3) -> str:
    gun = f"{REGISTRY}/bench/{uuid.uuid4().hex[:10]}"
    owner("init", gun)
    for i in range(tags):
        owner(
            "sign",
            f"{gun}:c{i}",
            "--digest",
            f"sha256:{i + 1:064x}",
            "--size",
            "10",
            "--media-type",
            MEDIA,
        )
    owner("trust", "export", gun, "-o", str(tmp / "root.json"))
    gate("trust", "pin", gun, str(tmp / "root.json"))
    return gun


def deployment(images: list[str]) -> dict[str, Any]:
    containers = [{"name": f"c{i}", "image": img} for i, img in enumerate(images)]
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "operation": "CREATE", "object": {"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"}, "spec": {"replicas": 3, "template": {"spec": {"containers": containers}}}}}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--cold", type=int, default=10)
    ap.add_argument("--concurrent", type=int, default=500)
    ap.add_argument("--refs", type=int, default=100_000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="gate-bench-"))
    stack = start_stack(tmp / "stack")
    proxy = CountingProxy(stack.url, stack.pki.ca_cert)
    pki = ensure_dev_pki(tmp / "gate-pki")
    owner = Cli(tmp / "owner", stack.url, stack.pki.ca_cert)
    gate_trust = tmp / "gate-trust"
    pin = Cli(gate_trust, stack.url, stack.pki.ca_cert)
    warm_gun = signed_repository(owner, pin, tmp)
    cold_guns = [signed_repository(owner, pin, tmp) for _ in range(args.cold + 1)]
    (tmp / "policy.yaml").write_text(
        f"version: 1\nservers:\n  main: {{url: '{proxy.server.url}'}}\n"
        f"rules:\n  - pattern: '{REGISTRY}/bench/*'\n    server: main\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustctl", "--trust-dir", str(gate_trust), "gate", "serve",
         "--policy", str(tmp / "policy.yaml"), "--listen", f"127.0.0.1:{port}",
         "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)],
        cwd=ROOT, stdout=(tmp / "gate.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"https://127.0.0.1:{port}/validate?timeout=10s"
    pool = urllib3.PoolManager(
        cert_reqs="CERT_REQUIRED", ca_certs=str(pki.ca_cert), maxsize=600, retries=False
    )
    for _ in range(100):
        try:
            pool.request("GET", f"https://127.0.0.1:{port}/healthz", timeout=1)
            break
        except urllib3.exceptions.HTTPError:
            time.sleep(0.2)

    def post(images: list[str]) -> tuple[float, bool]:
        body = json.dumps(deployment(images)).encode()
        t = time.perf_counter()
        try:
            r = pool.request(
                "POST", url, body=body, headers={"Content-Type": "application/json"}, timeout=15
            )
            ok = r.status == 200 and json.loads(r.data)["response"]["allowed"]
        except Exception:  # noqa: BLE001 (counted as an error)
            ok = False
        return time.perf_counter() - t, ok

    rows: list[tuple[str, str]] = [
        ("load average (1, 5, 15 min) at the start", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    ]
    try:
        warm = [f"{warm_gun}:c{i}" for i in range(3)]
        post(warm)
        lat: list[float] = []
        late: list[float] = []  # from the moment the request was due (queueing included)
        errors = 0
        n = int(args.rate * args.seconds)

        def due_post(due: float) -> tuple[float, float, bool]:
            s, ok = post(warm)
            return s, time.perf_counter() - due, ok

        cpu = cpu_seconds(proc.pid)
        start = time.perf_counter()
        with ThreadPoolExecutor(64) as ex:
            futures = []
            for i in range(n):
                due = start + i / args.rate
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                futures.append(ex.submit(due_post, due))
            for f in futures:
                s, d, ok = f.result()
                lat.append(s)
                late.append(d)
                errors += not ok
        took = time.perf_counter() - start
        cpu = cpu_seconds(proc.pid) - cpu
        rows.append((f"warm: {n} requests, target {args.rate:.0f}/s, achieved {n / took:.0f}/s",
                     f"p50 {percentile(lat, 50) * 1000:.1f} ms, p99 {percentile(lat, 99) * 1000:.1f} ms, errors {errors}"))  # fmt: skip
        rows.append(("warm, from each request's due time (client queueing included)",
                     f"p50 {percentile(late, 50) * 1000:.1f} ms, p99 {percentile(late, 99) * 1000:.1f} ms"))  # fmt: skip
        rows.append(("warm: the gate's CPU time per request (user + system)",
                     f"{cpu / n * 1000:.2f} ms ({cpu / took * 100:.0f} % of one core)"))  # fmt: skip

        if args.cold:
            cold = [post([f"{g}:c{i}" for i in range(3)]) for g in cold_guns[: args.cold]]
            rows.append((f"cold: first request for each of {args.cold} repositories",
                         (f"p50 {percentile([c[0] for c in cold], 50) * 1000:.1f} ms, p99 "
                         f"{percentile([c[0] for c in cold], 99) * 1000:.1f} ms, errors {sum(not c[1] for c in cold)}")))  # fmt: skip

        if args.concurrent:
            target = cold_guns[-1]
            proxy.counts.clear()
            began = time.perf_counter()
            with ThreadPoolExecutor(args.concurrent) as ex:
                res = list(ex.map(lambda _i: post([f"{target}:c0"]), range(args.concurrent)))
            phase = time.perf_counter() - began
            per_file = {p.rsplit("/", 1)[-1]: c for p, c in proxy.counts.items() if target in p}
            fetches = ", ".join(f"{name} {n}x" for name, n in sorted(per_file.items()))
            rows.append((f"coalescing: {args.concurrent} concurrent requests, one cold repository",
                         f"{fetches}; answered in {phase:.2f} s; errors {sum(not r[1] for r in res)}"))  # fmt: skip

        if args.refs:
            per = 100
            batches = args.refs // per
            with ThreadPoolExecutor(16) as ex:
                list(
                    ex.map(
                        lambda b: post([f"{warm_gun}:ref-{b}-{i}" for i in range(per)]),
                        range(batches),
                    )
                )
            rss = next(
                line
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                if line.startswith("VmRSS")
            )
            rows.append(
                (f"memory: after {batches * per} distinct references", rss.split(":", 1)[1].strip())
            )
        rows.append(
            (
                "load average (1, 5, 15 min) at the end",
                " ".join(f"{x:.2f}" for x in os.getloadavg()),
            )
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        proxy.server.stop()
        stack.stop()
    width = max(len(r[0]) for r in rows)
    print(f"{'case'.ljust(width)} | result\n{'-' * width}-+-------")
    for a, b in rows:
        print(f"{a.ljust(width)} | {b}")


if __name__ == "__main__":
    main()
