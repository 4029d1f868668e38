"""Throwaway PostgreSQL clusters for tests, from Debian's ``postgresql`` package.

A cluster lives in a fresh temporary directory (data, socket and log), listens on a
free port on 127.0.0.1, trusts every local connection, and runs with ``fsync=off``.
initdb refuses to run as root, so under root the server runs as the ``postgres``
system user that the Debian package creates.

Fixtures (import them into a ``conftest.py``: ``from tests.pg import pg_cluster, pg_url``):

* ``pg_cluster`` (session): one running :class:`PostgresCluster` per test session.
* ``pg_url`` (function): a new, empty database in that cluster, as a SQLAlchemy URL
  (``postgresql+psycopg://postgres@127.0.0.1:<port>/test_<n>``).

For a cluster of your own (to stop it mid-test)::

    with PostgresCluster.started() as cluster:
        url = cluster.create_database()
        cluster.stop()
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

__all__ = ["MISSING_MESSAGE", "PostgresCluster", "find_pg_bin", "pg_cluster", "pg_url"]

MISSING_MESSAGE = (
    "PostgreSQL server binaries not found: install Debian's postgresql package"
    " (scripts/install-system-deps.sh does)"
)
SERVICE_USER = "postgres"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<ver>/bin`` holding initdb, pg_ctl and postgres."""
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        if all((bindir / tool).is_file() for tool in ("pg_ctl", "postgres")):
            version = bindir.parent.name
            candidates.append((int(version) if version.isdigit() else 0, bindir))
    if candidates:
        return max(candidates)[1]
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb") and shutil.which("postgres"):
        return Path(os.path.realpath(on_path)).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One initdb'd cluster in a temporary directory; see the module docstring."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.as_root = os.geteuid() == 0
        self.base = Path(tempfile.mkdtemp(prefix="notary-pg-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "postgres.log"
        self.port = _free_port()
        self.running = False
        self._db_numbers = itertools.count(1)
        if self.as_root:
            entry = pwd.getpwnam(SERVICE_USER)
            os.chown(self.base, entry.pw_uid, entry.pw_gid)

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[PostgresCluster]:
        """Start a cluster, yield it, then stop it and delete its directory.

        Calls ``pytest.fail`` when the server binaries are not installed.
        """
        bindir = find_pg_bin()
        if bindir is None:
            pytest.fail(MISSING_MESSAGE, pytrace=False)
        cluster = cls(bindir)
        atexit.register(cluster.destroy)  # in case the session dies before teardown
        try:
            cluster.initdb()
            cluster.start()
            yield cluster
        finally:
            cluster.destroy()

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            command = ["runuser", "-u", SERVICE_USER, "--", *command]
        result = subprocess.run(
            command, cwd=self.base, capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            log = self.logfile.read_text() if self.logfile.exists() else ""
            raise RuntimeError(
                f"{shlex.join(command)} failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}{log}"
            )

    def initdb(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        )

    def start(self) -> None:
        options = (
            f"-k {shlex.quote(str(self.base))} -c listen_addresses=127.0.0.1 -p {self.port}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )
        self.running = True

    def stop(self) -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "fast", "-w", "stop")
            self.running = False

    def destroy(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (``test_<n>`` by default); return its URL."""
        name = name or f"test_{next(self._db_numbers)}"
        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the whole test session."""
    with PostgresCluster.started() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> str:
    """A fresh, empty database in the session's cluster, as a SQLAlchemy URL."""
    return pg_cluster.create_database()
