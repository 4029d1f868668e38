"""Real server and signer processes on 127.0.0.1 for end-to-end tests.

Each is started with ``python -m notary_signer serve`` / ``python -m notary_server
serve``, configured through its environment variables exactly as an operator would,
with certificates from a development PKI generated into a temporary folder. Stopped
by pid at the end of the test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib3

from notary_signer.devcerts import DevPKI, ensure_dev_pki
from tests.secrets import remember

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str
    pool: urllib3.PoolManager
    log: Path
    proc: subprocess.Popen[bytes] | None = field(default=None)

    def start(self, timeout: float = 30.0) -> Process:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                if (
                    self.pool.request("GET", self.health_url, timeout=2, retries=False).status
                    == 200
                ):
                    return self
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.log.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        # our idle keep-alive connections would hold a graceful stop for its whole timeout
        self.pool.clear()
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            # Workers still running in its session (e.g. one that was starting when the
            # supervisor was told to stop) are ours too: they must not outlive the test.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the whole process group (master and workers), like a machine crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


@dataclass
class Stack:
    """A signer and a trust server wired together over mutual TLS."""

    pki: DevPKI
    signer: Process
    server: Process
    url: str
    extra: list[Process] = field(default_factory=list)

    def add_server(self) -> tuple[Process, str]:
        """Another server process (a replica) on the same database and signer."""
        port = free_port()
        env = {**self.server.env, "NOTARY_SERVER_PORT": str(port)}
        url = f"https://127.0.0.1:{port}"
        replica = Process(
            f"notary-server-{len(self.extra) + 2}",
            self.server.argv,
            env,
            f"{url}/_notary_server/health",
            self.server.pool,
            self.server.log.with_name(f"server-{len(self.extra) + 2}.log"),
        ).start()
        self.extra.append(replica)
        return replica, url

    def logs(self) -> str:
        return "".join(
            p.log.read_text() for p in (self.signer, self.server, *self.extra) if p.log.exists()
        )

    def stop(self) -> None:
        for p in (*self.extra, self.server, self.signer):
            p.stop()


def start_stack(tmp: Path, database_url: str | None = None, **server_env: str) -> Stack:
    pki = ensure_dev_pki(tmp / "keys")
    signer_port, server_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "TRUSTCTL_"))}
    signer_env = {
        **base_env,
        "NOTARY_SIGNER_DEFAULT": remember("e2e passphrase, test only"),
        "NOTARY_SIGNER_HOST": "127.0.0.1",
        "NOTARY_SIGNER_PORT": str(signer_port),
        "NOTARY_SIGNER_TLS_CERT_FILE": str(pki.signer_cert),
        "NOTARY_SIGNER_TLS_KEY_FILE": str(pki.signer_key),
        "NOTARY_SIGNER_CLIENT_CA_FILE": str(pki.ca_cert),
        "NOTARY_SIGNER_DATABASE_URL": f"sqlite:///{tmp / 'signer.db'}",
        "NOTARY_SIGNER_WORKERS": "1",
    }
    server_env_all = {
        **base_env,
        "NOTARY_SERVER_HOST": "127.0.0.1",
        "NOTARY_SERVER_PORT": str(server_port),
        "NOTARY_SERVER_TLS_CERT_FILE": str(pki.server_cert),
        "NOTARY_SERVER_TLS_KEY_FILE": str(pki.server_key),
        "NOTARY_SERVER_DATABASE_URL": database_url or f"sqlite:///{tmp / 'server.db'}",
        "NOTARY_SERVER_SIGNER_URL": f"https://127.0.0.1:{signer_port}",
        "NOTARY_SERVER_SIGNER_CA_FILE": str(pki.ca_cert),
        "NOTARY_SERVER_SIGNER_CLIENT_CERT": str(pki.client_cert),
        "NOTARY_SERVER_SIGNER_CLIENT_KEY": str(pki.client_key),
        "NOTARY_SERVER_WORKERS": "2",
        **{f"NOTARY_SERVER_{k.upper()}": v for k, v in server_env.items()},
    }
    mtls = urllib3.PoolManager(
        ca_certs=str(pki.ca_cert), cert_file=str(pki.client_cert), key_file=str(pki.client_key)
    )
    tls = urllib3.PoolManager(ca_certs=str(pki.ca_cert))
    signer = Process(
        "notary-signer",
        [sys.executable, "-m", "notary_signer", "serve"],
        signer_env,
        f"https://127.0.0.1:{signer_port}/health",
        mtls,
        tmp / "signer.log",
    ).start()
    url = f"https://127.0.0.1:{server_port}"
    try:
        server = Process(
            "notary-server",
            [sys.executable, "-m", "notary_server", "serve"],
            server_env_all,
            f"{url}/_notary_server/health",
            tls,
            tmp / "server.log",
        ).start()
    except Exception:
        signer.stop()
        raise
    return Stack(pki, signer, server, url)
