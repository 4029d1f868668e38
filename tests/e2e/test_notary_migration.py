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
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

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
C = "127.0.0.1:5000/team/web"  # made by `docker trust`
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


class DockerTrust:
    """The docker CLI's trust commands with one DOCKER_CONFIG (its trust directory is
    ``<config>/trust``), pointed at one server or another; no engine is needed."""

    def __init__(self, config: Path) -> None:
        found = shutil.which("docker")
        if not found:
            pytest.fail(
                "needs a docker client with `docker trust` (Debian's docker.io, or docker 28): "
                "run scripts/install-system-deps.sh"
            )
        self.docker, self.config = found, config
        self.env = {
            **base_env(),
            "DOCKER_CONFIG": str(config),
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": PASSPHRASES["NOTARY_ROOT_PASSPHRASE"],
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": PASSPHRASES["NOTARY_TARGETS_PASSPHRASE"],
        }

    def use(self, url: str, ca: Path) -> None:
        host = urlparse(url).netloc
        (self.config / "tls" / host).mkdir(parents=True, exist_ok=True)
        shutil.copy(ca, self.config / "tls" / host / "ca.crt")
        self.env["DOCKER_CONTENT_TRUST_SERVER"] = url

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.docker, "trust", *args], capture_output=True, text=True, env=self.env,
            cwd=self.config.parent, timeout=120, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    def delegate_signs(self, url: str, ca: Path, tag: str, digest: str) -> None:
        """A delegate signs ``tag`` of C with the notary CLI on docker's trust
        directory (`docker trust sign` needs an engine)."""
        ok(
            subprocess.run(
                [NOTARY_BIN, "-d", str(self.config / "trust"), "-s", url, "--tlscacert", str(ca),
                 "addhash", C, tag, "100", "--sha256", digest,
                 "--roles", "targets/releases", "--roles", "targets/alice", "-p"],
                capture_output=True, text=True, timeout=120, check=False,
                env={**base_env(), "NOTARY_DELEGATION_PASSPHRASE": PASSPHRASES["NOTARY_TARGETS_PASSPHRASE"]},
            )
        )  # fmt: skip


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
    docker = DockerTrust(tmp_path / "docker")
    try:
        fill(theirs.client_config, tmp_path)
        docker.use(theirs.url, theirs.ca)
        ok(docker("key", "generate", "alice", "--dir", str(tmp_path)))
        ok(docker("signer", "add", "--key", str(tmp_path / "alice.pub"), "alice", C))
        docker.delegate_signs(theirs.url, theirs.ca, "v1", "e" * 64)
        docker_before = ok(docker("inspect", "--pretty", C))
        ts_keys = {
            g: timestamp_keyid(theirs.trust_dir / "tuf" / g / "metadata" / "root.json")
            for g in (A, B)
        }
        ts_keys[C] = timestamp_keyid(docker.config / "trust" / "tuf" / C / "metadata" / "root.json")
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

        # docker's trust directory too: what it showed, then a new signer and tag
        docker.use(ours.url, ours.pki.ca_cert)
        assert ok(docker("inspect", "--pretty", C)) == docker_before
        assert re.search(r"v1\s+e{64}\s+alice", docker_before), docker_before
        ok(docker("key", "generate", "bob", "--dir", str(tmp_path)))
        ok(docker("signer", "add", "--key", str(tmp_path / "bob.pub"), "bob", C))
        docker.delegate_signs(ours.url, ours.pki.ca_cert, "v2", "f" * 64)
        after = ok(docker("inspect", "--pretty", C))
        assert re.search(r"v2\s+f{64}\s+alice", after) and "bob" in after, after

        for g in (A, B, C):
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
