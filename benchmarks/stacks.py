"""The servers under test, each started on 127.0.0.1 and stopped by pid.

* ours: ``python -m notary_signer serve`` + ``python -m notary_server serve`` (gunicorn
  gthread), started with ``tests.procs.start_stack`` exactly as the end-to-end tests
  start them; optionally a replica under the other WSGI server (:class:`ReplicaServer`).
* notary 0.7.0: Debian's ``notary-signer`` (gRPC, mutual TLS) + ``notary-server``
  (HTTPS), memory or PostgreSQL storage, with the same development PKI.

Every process runs in its own session; ``stop`` signals exactly the pid this module
started (SIGTERM, then SIGKILL of that process group after a timeout).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from notary_signer.devcerts import DevPKI, ensure_dev_pki
from tests.procs import Stack, free_port, start_stack

PYTHON = sys.executable
NOTARY_SERVER_BIN = "/usr/bin/notary-server"
NOTARY_SIGNER_BIN = "/usr/bin/notary-signer"
NOTARY_BIN = "/usr/bin/notary"

# Passphrases of throwaway benchmark keys (never used outside a temporary directory).
NOTARY_CLIENT_ENV = {
    "NOTARY_ROOT_PASSPHRASE": "bench root passphrase",
    "NOTARY_TARGETS_PASSPHRASE": "bench targets passphrase",
    "NOTARY_SNAPSHOT_PASSPHRASE": "bench snapshot passphrase",
    "NOTARY_DELEGATION_PASSPHRASE": "bench delegation passphrase",
}

# notary 0.7.0 ships no SQL migrations in the Debian package: this is its PostgreSQL
# schema (upstream migrations/server/postgresql 0001 + 0002, and the gorm models
# compiled into the binaries: tuf_files, changefeed with category, private_keys).
NOTARY_SERVER_SCHEMA = """
CREATE TABLE tuf_files (
    id serial PRIMARY KEY,
    created_at timestamp NULL DEFAULT NULL,
    updated_at timestamp NULL DEFAULT NULL,
    deleted_at timestamp NULL DEFAULT NULL,
    gun varchar(255) NOT NULL,
    role varchar(255) NOT NULL,
    version integer NOT NULL,
    data bytea NOT NULL,
    sha256 char(64) DEFAULT NULL,
    UNIQUE (gun, role, version)
);
CREATE INDEX tuf_files_sha256_idx ON tuf_files (sha256);
CREATE INDEX tuf_files_gun_idx ON tuf_files (gun);
CREATE TABLE changefeed (
    id serial PRIMARY KEY,
    created_at timestamp DEFAULT CURRENT_TIMESTAMP,
    gun varchar(255) NOT NULL,
    version integer NOT NULL,
    sha256 char(64) DEFAULT NULL,
    category varchar(20) NOT NULL DEFAULT 'update'
);
CREATE INDEX idx_changefeed_gun ON changefeed (gun);
"""
NOTARY_SIGNER_SCHEMA = """
CREATE TABLE private_keys (
    id serial PRIMARY KEY,
    created_at timestamp NULL DEFAULT NULL,
    updated_at timestamp NULL DEFAULT NULL,
    deleted_at timestamp NULL DEFAULT NULL,
    key_id varchar(255) NOT NULL,
    encryption_alg varchar(255) NOT NULL,
    keywrap_alg varchar(255) NOT NULL,
    algorithm varchar(50) NOT NULL,
    passphrase_alias varchar(50) NOT NULL,
    gun varchar(255) NOT NULL,
    role varchar(255) NOT NULL,
    public bytea NOT NULL,
    private bytea NOT NULL,
    last_used timestamp NULL DEFAULT NULL,
    CONSTRAINT key_id UNIQUE (key_id),
    CONSTRAINT key_id_2 UNIQUE (key_id, deleted_at)
);
"""


def base_env() -> dict[str, str]:
    """The caller's environment without our own or notary's settings."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOTARY_", "TRUSTCTL_", "GRANIAN_"))
    }


def _https_ok(url: str, ca_file: Path) -> Callable[[], bool]:
    ctx = ssl.create_default_context(cafile=str(ca_file))

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    return check


def _tcp_ok(port: int) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    return check


@dataclass
class Proc:
    """One long-running process in its own session, stopped by its pid."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    ready: Callable[[], bool]
    cwd: Path = ROOT
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Proc:
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=self.cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"{self.name} did not become ready in {timeout}s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group this module created for it
                self.proc.wait()
        self.proc = None


# --- ours ------------------------------------------------------------------------


@dataclass
class OurStack:
    label: str
    stack: Stack
    work: Path

    @property
    def url(self) -> str:
        return self.stack.url

    @property
    def ca(self) -> Path:
        return self.stack.pki.ca_cert

    @property
    def pki(self) -> DevPKI:
        return self.stack.pki

    def pids(self) -> dict[str, int]:
        assert self.stack.server.proc is not None and self.stack.signer.proc is not None
        return {"server": self.stack.server.proc.pid, "signer": self.stack.signer.proc.pid}

    def stop(self) -> None:
        self.stack.stop()


SERVER_ENV: dict[str, str] = {}
"""Extra settings of our servers, ``{"workers": "1"}`` for ``NOTARY_SERVER_WORKERS=1``
(run.py's ``--server-profile``)."""


def start_ours(label: str, work: Path, database_url: str | None) -> OurStack:
    work.mkdir(parents=True, exist_ok=True)
    return OurStack(label, start_stack(work, database_url, **SERVER_ENV), work)


def wsgi_server_of(stack: OurStack) -> str:
    """The WSGI server our ``notary-server serve`` runs with this stack's configuration."""
    from notary_server.config import load_config

    return str(getattr(load_config(None, stack.stack.server.env), "wsgi_server", "gunicorn"))


@dataclass
class ReplicaServer:
    """A second ``notary-server serve`` on the same database and signer as ``of``, under
    the WSGI server ``wsgi_server`` (``NOTARY_SERVER_WSGI_SERVER``), same workers/threads."""

    of: OurStack
    wsgi_server: str
    proc: Proc | None = None
    url: str = ""

    def start(self) -> ReplicaServer:
        port = free_port()
        env = {
            **self.of.stack.server.env,
            "NOTARY_SERVER_PORT": str(port),
            "NOTARY_SERVER_WSGI_SERVER": self.wsgi_server,
        }
        self.url = f"https://127.0.0.1:{port}"
        self.proc = Proc(
            f"notary-server ({self.wsgi_server})", [PYTHON, "-m", "notary_server", "serve"], env,
            self.of.work / f"replica-{self.wsgi_server}.log",
            _https_ok(f"{self.url}/_notary_server/health", self.of.ca),
        ).start(timeout=60)  # fmt: skip
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


# --- notary 0.7.0 ------------------------------------------------------------------


@dataclass
class NotaryStack:
    label: str
    work: Path
    pki: DevPKI
    signer: Proc
    server: Proc
    url: str
    client_config: Path
    trust_dir: Path
    pg: tuple[int, str] | None = None  # (port, server database) when on PostgreSQL

    def stored_files(self) -> int | None:
        """Rows in notary-server's tuf_files (PostgreSQL only): proof the data went there."""
        if self.pg is None:
            return None
        import psycopg

        port, db = self.pg
        with psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname=db) as c:
            row = c.execute("SELECT count(*) FROM tuf_files").fetchone()
            return int(row[0]) if row else 0

    @property
    def ca(self) -> Path:
        return self.pki.ca_cert

    def client_env(self) -> dict[str, str]:
        return {**base_env(), **NOTARY_CLIENT_ENV}

    def cli(self, *args: str) -> list[str]:
        return [NOTARY_BIN, "-c", str(self.client_config), *args]

    def pids(self) -> dict[str, int]:
        return {"server": self.server.pid, "signer": self.signer.pid}

    def stop(self) -> None:
        self.server.stop()
        self.signer.stop()


def _apply_sql(pg_port: int, database: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=pg_port, user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{database}"')  # type: ignore[arg-type]
    with psycopg.connect(
        host="127.0.0.1", port=pg_port, user="postgres", dbname=database, autocommit=True
    ) as c:
        c.execute(sql)  # type: ignore[arg-type]


def notary_available() -> bool:
    return all(Path(p).is_file() for p in (NOTARY_SERVER_BIN, NOTARY_SIGNER_BIN, NOTARY_BIN))


def start_notary(
    label: str,
    work: Path,
    pg_port: int | None = None,
    log_level: str = "warn",
    mysql_dsns: tuple[str, str] | None = None,
) -> NotaryStack:
    """notary-signer + notary-server 0.7.0; PostgreSQL when ``pg_port`` is given, MySQL
    (MariaDB) when ``mysql_dsns`` (server, signer: Go DSNs of databases with notary's
    tables) is, else memory.

    ``log_level`` "warn" turns off notary-server's per-request access log (ours has
    none either); "info" is its documented default.
    """
    work.mkdir(parents=True, exist_ok=True)
    pki = ensure_dev_pki(work / "keys")
    signer_port, server_port = free_port(), free_port()
    alias = "benchalias"
    if pg_port is not None:
        suffix = label.replace("-", "_")
        _apply_sql(pg_port, f"notary_server_{suffix}", NOTARY_SERVER_SCHEMA)
        _apply_sql(pg_port, f"notary_signer_{suffix}", NOTARY_SIGNER_SCHEMA)
        server_storage = {
            "backend": "postgres",
            "db_url": f"postgres://postgres@127.0.0.1:{pg_port}/notary_server_{suffix}?sslmode=disable",
        }
        signer_storage = {
            "backend": "postgres",
            "db_url": f"postgres://postgres@127.0.0.1:{pg_port}/notary_signer_{suffix}?sslmode=disable",
            "default_alias": alias,
        }
    elif mysql_dsns is not None:
        server_storage = {"backend": "mysql", "db_url": mysql_dsns[0]}
        signer_storage = {"backend": "mysql", "db_url": mysql_dsns[1], "default_alias": alias}
    else:
        server_storage = {"backend": "memory"}
        signer_storage = {"backend": "memory"}
    signer_cfg = {
        "server": {
            "grpc_addr": f"127.0.0.1:{signer_port}",
            "tls_cert_file": str(pki.signer_cert),
            "tls_key_file": str(pki.signer_key),
            "client_ca_file": str(pki.ca_cert),
        },
        "logging": {"level": log_level},
        "storage": signer_storage,
    }
    server_cfg = {
        "server": {
            "http_addr": f"127.0.0.1:{server_port}",
            "tls_cert_file": str(pki.server_cert),
            "tls_key_file": str(pki.server_key),
        },
        "trust_service": {
            "type": "remote",
            "hostname": "127.0.0.1",
            "port": str(signer_port),
            "tls_ca_file": str(pki.ca_cert),
            "tls_client_cert": str(pki.client_cert),
            "tls_client_key": str(pki.client_key),
            "key_algorithm": "ecdsa",
        },
        "logging": {"level": log_level},
        "storage": server_storage,
    }
    (work / "signer.json").write_text(json.dumps(signer_cfg, indent=1))
    (work / "server.json").write_text(json.dumps(server_cfg, indent=1))
    env = {**base_env(), f"NOTARY_SIGNER_{alias.upper()}": "bench signer passphrase, throwaway"}
    signer = Proc(
        "notary-signer", [NOTARY_SIGNER_BIN, "-config", str(work / "signer.json")], env,
        work / "signer.log", _tcp_ok(signer_port), cwd=work,
    ).start()  # fmt: skip
    url = f"https://127.0.0.1:{server_port}"
    try:
        server = Proc(
            "notary-server", [NOTARY_SERVER_BIN, "-config", str(work / "server.json")], base_env(),
            work / "server.log", _https_ok(f"{url}/_notary_server/health", pki.ca_cert), cwd=work,
        ).start()  # fmt: skip
    except Exception:
        signer.stop()
        raise
    trust_dir = work / "trust"
    trust_dir.mkdir(exist_ok=True)
    client_config = work / "client.json"
    client_config.write_text(
        json.dumps(
            {
                "trust_dir": str(trust_dir),
                "remote_server": {"url": url, "root_ca": str(pki.ca_cert)},
            }
        )
    )
    pg = (pg_port, f"notary_server_{label.replace('-', '_')}") if pg_port is not None else None
    return NotaryStack(label, work, pki, signer, server, url, client_config, trust_dir, pg)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
