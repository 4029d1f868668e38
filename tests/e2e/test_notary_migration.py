"""Moving a notary-server + notary-signer 0.7.0 deployment (PostgreSQL, MariaDB) over to ours.

Debian's notary-server and notary-signer are filled by the real notary CLI (two
repositories, a delegation, rotated keys), then ``notary-signer import-notary`` and
``notary-server import-notary`` bring keys and metadata into our databases. The same
notary trust directory then lists, looks up and publishes against our server
without re-initialising, and the next timestamp is signed by the imported key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.stacks import NOTARY_BIN, NotaryStack, base_env, notary_available, start_notary
from tests.mariadb import (
    NOTARY_SERVER_MYSQL_SCHEMA,
    NOTARY_SIGNER_MYSQL_SCHEMA,
    mariadb_available,
    mariadb_server,
)
from tests.procs import ROOT, start_stack
from tests.secrets import remember

pytestmark = pytest.mark.e2e

A, B = "127.0.0.1:5000/team/app", "127.0.0.1:5000/team/lib"
PASSPHRASES = {
    "NOTARY_ROOT_PASSPHRASE": remember("mig root passphrase"),
    "NOTARY_TARGETS_PASSPHRASE": remember("mig targets passphrase"),
    "NOTARY_SNAPSHOT_PASSPHRASE": remember("mig snapshot passphrase"),
    "NOTARY_DELEGATION_PASSPHRASE": remember("mig delegation passphrase"),
}
SOURCE_ALIAS_ENV = {"NOTARY_SIGNER_BENCHALIAS": remember("bench signer passphrase, throwaway")}


def notary(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [NOTARY_BIN, "-c", str(config), *args], input=stdin, capture_output=True, text=True,
        env={**base_env(), **PASSPHRASES}, timeout=120, check=False,
    )  # fmt: skip


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


def timestamp_keyid(root_file: Path) -> list[str]:
    root = json.loads(root_file.read_text())
    return list(root["signed"]["roles"]["timestamp"]["keyids"])


def fill(config: Path, work: Path) -> None:
    (work / "f.txt").write_bytes(b"hello\n")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(work / "d.key"), "-out", str(work / "d.crt"), "-days", "365", "-subj", "/CN=d"],
        check=True, capture_output=True,
    )  # fmt: skip
    ok(notary(config, "init", A, "-p"))
    ok(notary(config, "add", A, "v1", str(work / "f.txt"), "-p"))
    ok(
        notary(
            config,
            "delegation",
            "add",
            A,
            "targets/releases",
            str(work / "d.crt"),
            "--all-paths",
            "-p",
        )
    )
    ok(notary(config, "key", "import", str(work / "d.key"), "-r", "targets/releases"))
    ok(
        notary(
            config,
            "addhash",
            A,
            "v2",
            "3",
            "--sha256",
            "a" * 64,
            "--roles",
            "targets/releases",
            "-p",
        )
    )
    ok(notary(config, "key", "rotate", A, "snapshot", "-r"))
    ok(notary(config, "key", "rotate", A, "targets"))
    ok(notary(config, "init", B, "-p"))
    ok(notary(config, "addhash", B, "v1", "4", "--sha256", "b" * 64, "-p"))


def cli(module: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=ROOT,
        env={**base_env(), **env}, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(params=["postgres", "mariadb"])
def source(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[NotaryStack, str, str]]:
    """A notary-server + notary-signer 0.7.0 on PostgreSQL or MariaDB, and the
    SQLAlchemy URLs of its two databases."""
    if not notary_available():
        pytest.fail(
            "needs Debian's notary package (notary-server, notary-signer, notary 0.7.0): "
            "run scripts/install-system-deps.sh"
        )
    if request.param == "postgres":
        cluster = request.getfixturevalue("pg_cluster")
        stack = start_notary("migsrc", tmp_path / "theirs", pg_port=cluster.port)
        try:
            yield stack, cluster.url("notary_server_migsrc"), cluster.url("notary_signer_migsrc")
        finally:
            stack.stop()
        return
    if not mariadb_available():
        pytest.fail("needs Debian's mariadb-server: run scripts/install-system-deps.sh")
    with mariadb_server() as db:
        server_url = db.create_database("notaryserver", NOTARY_SERVER_MYSQL_SCHEMA)
        signer_url = db.create_database("notarysigner", NOTARY_SIGNER_MYSQL_SCHEMA)
        stack = start_notary("migsrc", tmp_path / "theirs",
                             mysql_dsns=(db.go_dsn("notaryserver"), db.go_dsn("notarysigner")))  # fmt: skip
        try:
            yield stack, server_url, signer_url
        finally:
            stack.stop()


def test_a_notary_deployment_moves_over_and_its_clients_keep_working(source, tmp_path: Path):
    theirs, source_server, source_signer = source
    try:
        fill(theirs.client_config, tmp_path)
        ts_keys = {
            g: timestamp_keyid(theirs.trust_dir / "tuf" / g / "metadata" / "root.json")
            for g in (A, B)
        }
        before = {g: ok(notary(theirs.client_config, "list", g)) for g in (A, B)}
    finally:
        theirs.stop()

    ours = start_stack(tmp_path / "ours")
    try:
        signer_env = {k: v for k, v in ours.signer.env.items() if k.startswith("NOTARY_SIGNER_")}
        server_env = {k: v for k, v in ours.server.env.items() if k.startswith("NOTARY_SERVER_")}

        # a dry run checks and reports, writes nothing
        dry = cli(
            "notary_signer",
            "import-notary",
            "--from",
            source_signer,
            "--dry-run",
            env={**signer_env, **SOURCE_ALIAS_ENV},
        )
        assert dry.returncode == 0 and "would import" in dry.stdout, dry.stdout + dry.stderr
        dry = cli(
            "notary_server", "import-notary", "--from", source_server, "--dry-run", env=server_env
        )
        assert dry.returncode == 0 and "nothing written" in dry.stdout, dry.stderr
        config = tmp_path / "ours-client.json"
        config.write_text(json.dumps({"trust_dir": str(theirs.trust_dir),
                                      "remote_server": {"url": ours.url, "root_ca": str(ours.pki.ca_cert)}}))  # fmt: skip
        import urllib3

        pool = urllib3.PoolManager(ca_certs=str(ours.pki.ca_cert))
        assert (
            pool.request("GET", f"{ours.url}/v2/{B}/_trust/tuf/root.json").status == 404
        )  # not yet

        # without the source alias's passphrase: refused, nothing written
        refused = cli("notary_signer", "import-notary", "--from", source_signer, env=signer_env)
        assert refused.returncode == 1 and "NOTARY_SIGNER_BENCHALIAS" in refused.stderr

        keys = cli(
            "notary_signer",
            "import-notary",
            "--from",
            source_signer,
            env={**signer_env, **SOURCE_ALIAS_ENV},
        )
        assert keys.returncode == 0 and "imported" in keys.stdout, keys.stdout + keys.stderr
        files = cli("notary_server", "import-notary", "--from", source_server, env=server_env)
        assert files.returncode == 0 and "imported" in files.stdout, files.stdout + files.stderr
        again = cli("notary_server", "import-notary", "--from", source_server, env=server_env)
        assert "imported 0 of" in again.stdout, again.stdout + again.stderr
        again = cli(
            "notary_signer",
            "import-notary",
            "--from",
            source_signer,
            env={**signer_env, **SOURCE_ALIAS_ENV},
        )
        assert "imported 0 new key(s)" in again.stdout, again.stdout + again.stderr

        # the same trust directory (cached metadata, pinned certificates) against our server
        for g in (A, B):
            assert ok(notary(config, "list", g)) == before[g]
        assert "v1 sha256:" in ok(notary(config, "lookup", A, "v1"))
        ok(notary(config, "addhash", A, "v3", "5", "--sha256", "c" * 64, "-p"))
        ok(notary(config, "addhash", B, "v2", "6", "--sha256", "d" * 64, "-p"))
        listed = ok(notary(config, "list", A))
        assert "v3" in listed and "v2" in listed and "targets/releases" in listed

        for g in (A, B):
            ts = json.loads(
                pool.request("GET", f"{ours.url}/v2/{g}/_trust/tuf/timestamp.json").data
            )
            assert [s["keyid"] for s in ts["signatures"]] == ts_keys[
                g
            ]  # signed by the imported key
            assert ts["signatures"][0]["method"] == "ecdsa"
    finally:
        ours.stop()
    assert os.path.exists(tmp_path / "ours" / "server.db")
