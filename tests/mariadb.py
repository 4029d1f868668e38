"""A throwaway MariaDB server on 127.0.0.1 (Debian's ``mariadb-server``), for the
tests that read a notary-server 0.7.0 database kept on MariaDB/MySQL.

Its data directory is a temporary folder; it runs with ``--skip-grant-tables`` (any
local client is root, nothing listens beyond loopback) and is stopped by its pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARIADBD = "/usr/sbin/mariadbd"
INSTALL_DB = "/usr/bin/mariadb-install-db"

# notary-server / notary-signer 0.7.0's MySQL tables after their migrations
# (migrations/server/mysql 0001-0005, migrations/signer/mysql 0001-0002).
NOTARY_SERVER_MYSQL_SCHEMA = [
    """CREATE TABLE tuf_files (
        id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
        created_at timestamp NULL DEFAULT NULL,
        updated_at timestamp NULL DEFAULT NULL,
        deleted_at timestamp NULL DEFAULT NULL,
        gun varchar(255) NOT NULL,
        role varchar(255) NOT NULL,
        version int NOT NULL,
        data longblob NOT NULL,
        sha256 char(64) DEFAULT NULL,
        UNIQUE KEY gun (gun, role, version),
        KEY sha256 (sha256)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
    """CREATE TABLE change_category (category varchar(20) NOT NULL PRIMARY KEY) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
    """INSERT INTO change_category VALUES ('update'), ('deletion')""",
    """CREATE TABLE changefeed (
        id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
        created_at timestamp DEFAULT CURRENT_TIMESTAMP,
        gun varchar(255) NOT NULL,
        version int NOT NULL,
        sha256 char(64) DEFAULT NULL,
        category varchar(20) NOT NULL DEFAULT 'update',
        FOREIGN KEY (category) REFERENCES change_category (category),
        KEY idx_changefeed_gun (gun)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
]
NOTARY_SIGNER_MYSQL_SCHEMA = [
    """CREATE TABLE private_keys (
        id int NOT NULL AUTO_INCREMENT PRIMARY KEY,
        created_at timestamp NULL DEFAULT NULL,
        updated_at timestamp NULL DEFAULT NULL,
        deleted_at timestamp NULL DEFAULT NULL,
        key_id varchar(255) NOT NULL,
        encryption_alg varchar(255) NOT NULL,
        keywrap_alg varchar(255) NOT NULL,
        algorithm varchar(50) NOT NULL,
        passphrase_alias varchar(50) NOT NULL,
        public blob NOT NULL,
        private blob NOT NULL,
        gun varchar(255) NOT NULL,
        role varchar(255) NOT NULL,
        last_used datetime NULL DEFAULT NULL,
        UNIQUE KEY key_id (key_id),
        UNIQUE KEY key_id_2 (key_id, algorithm)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8""",
]


def mariadb_available() -> bool:
    return Path(MARIADBD).is_file() and Path(INSTALL_DB).is_file()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MariaDB:
    def __init__(self, base: Path, port: int, proc: subprocess.Popen[bytes]) -> None:
        self.base, self.port, self.proc = base, port, proc

    def create_database(self, name: str, statements: list[str]) -> str:
        """Create database ``name`` with ``statements``; its SQLAlchemy URL."""
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root", autocommit=True)
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}`")
                cur.execute(f"USE `{name}`")
                for sql in statements:
                    cur.execute(sql)
        finally:
            conn.close()
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/{name}"

    def go_dsn(self, name: str) -> str:
        """The database as notary-server's Go driver names it."""
        return f"root@tcp(127.0.0.1:{self.port})/{name}"


@contextmanager
def mariadb_server() -> Iterator[MariaDB]:
    base = Path(tempfile.mkdtemp(prefix="mariadb-"))
    user = ["--user=root"] if os.geteuid() == 0 else []
    subprocess.run(
        [INSTALL_DB, "--no-defaults", f"--datadir={base / 'data'}", "--skip-test-db",
         "--auth-root-authentication-method=normal", *user],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    port = _free_port()
    log = (base / "mariadbd.log").open("ab")
    proc = subprocess.Popen(
        [MARIADBD, "--no-defaults", f"--datadir={base / 'data'}", f"--socket={base / 'sock'}",
         f"--port={port}", "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-name-resolve",
         f"--pid-file={base / 'pid'}", "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=8M",
         "--innodb-flush-log-at-trx-commit=0", *user],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited:\n{(base / 'mariadbd.log').read_text()[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not start in 60 s") from None
                time.sleep(0.2)
        yield MariaDB(base, port, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        shutil.rmtree(base, ignore_errors=True)
