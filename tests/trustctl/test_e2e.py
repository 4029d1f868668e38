"""trustctl end to end: real trust server and signer processes (HTTPS, mutual TLS,
SQLite), a real docker-registry, and ``python -m trustctl`` run as a subprocess, the way
a release engineer and a deploy pipeline run it. One test per "Must show" item of
issue 3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.procs import Stack, start_stack
from tests.registry import RegistryProcess, free_port, push_image
from tests.secrets import remember
from tests.trustctl import schema
from tests.trustctl.httpd import Reply, Request, Server, serve
from tests.trustctl.support import unique_repo

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SYSTEM_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.stdout)
        return doc

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class User:
    """A trust dir and passphrases; ``run`` starts ``python -m trustctl``."""

    name: str
    trust_dir: Path
    server: str
    ca: Path
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TRUSTCTL_", "DOCKER_CONTENT_TRUST"))
        }
        for role in ("root", "targets", "delegation"):
            remember(f"{self.name} {role} passphrase")  # the final log scan looks for it
        return {
            **base,
            # The machine's CA variables point at the system bundle, which does not know
            # the server's CA: only --tls-ca (TRUSTCTL_TLS_CA) can make this work.
            "SSL_CERT_FILE": SYSTEM_BUNDLE,
            "REQUESTS_CA_BUNDLE": SYSTEM_BUNDLE,
            "CURL_CA_BUNDLE": SYSTEM_BUNDLE,
            "TRUSTCTL_SERVER": self.server,
            "TRUSTCTL_TLS_CA": str(self.ca),
            "TRUSTCTL_TRUST_DIR": str(self.trust_dir),
            "TRUSTCTL_ROOT_PASSPHRASE": f"{self.name} root passphrase",
            "TRUSTCTL_TARGETS_PASSPHRASE": f"{self.name} targets passphrase",
            "TRUSTCTL_DELEGATION_PASSPHRASE": f"{self.name} delegation passphrase",
            **self.extra,
        }

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "trustctl", *args],
            env={**self.env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> Result:
        proc = self.start(*args, env=env)
        out, err = proc.communicate(timeout=120)
        return Result(proc.returncode, out, err)

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Result:
        result = self.run(*args, env=env)
        assert result.code == 0, str(result)
        return result


def one_line(result: Result, code: int, *needles: str) -> None:
    """The failure is exactly one Error line and one Hint line, no traceback."""
    assert result.code == code, str(result)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1].startswith("Hint: "), str(result)
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], str(result)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


@pytest.fixture
def users(stack: Stack, tmp_path: Path) -> dict[str, User]:
    return {
        n: User(n, tmp_path / n, stack.url, stack.pki.ca_cert)
        for n in ("owner", "alice", "bob", "deployer")
    }


def push(registry: RegistryProcess, repo: str, tag: str, content: bytes) -> tuple[str, str]:
    digest, _, _ = push_image(registry.url, repo, tag, content)
    return f"{registry.host}/{repo}", digest


def handoff_root(owner: User, gun: str, *others: User) -> None:
    root = owner.trust_dir.parent / "root.json"
    owner.ok("trust", "export", gun, "-o", str(root))
    for other in others:
        other.ok("trust", "pin", gun, str(root))


def test_sign_verify_moved_tag_and_pull(registry: RegistryProcess, users: dict[str, User]) -> None:
    owner, deployer = users["owner"], users["deployer"]
    repo = unique_repo()
    gun, digest = push(registry, repo, "v1", b"release one")
    owner.ok("init", gun)
    signed = owner.ok("--json", "sign", f"{gun}:v1")
    schema.check(signed.json, "sign", "publish")
    assert signed.json["digest"] == digest
    handoff_root(owner, gun, deployer)
    verified = deployer.ok("--json", "verify", f"{gun}:v1")
    schema.check(verified.json, "verify")
    assert verified.json["digest"] == digest and verified.json["registry"]["match"] is True

    _, moved = push(registry, repo, "v1", b"something else entirely")
    refused = deployer.run("verify", f"{gun}:v1")
    one_line(refused, 1, digest, moved)
    pulled = deployer.ok("pull", f"{gun}:v1")
    assert pulled.stdout == f"{gun}@{digest}\n"


def test_pull_copies_the_signed_digest_with_skopeo(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path
) -> None:
    if shutil.which("skopeo") is None:
        pytest.fail(
            "skopeo not found: install Debian's skopeo package (scripts/install-system-deps.sh does)"
        )
    owner = users["owner"]
    gun, digest = push(registry, unique_repo(), "v1", b"copy me")
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:v1")
    dest = tmp_path / "copy"
    owner.ok("pull", f"{gun}:v1", "--copy-to", f"oci:{dest}:v1")
    index = json.loads((dest / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest


def test_team_story_threshold_two(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path
) -> None:
    # Partial signatures wait on the trust server (GET|PUT|DELETE .../_trust/pending/).
    owner, alice, bob, deployer = (users[n] for n in ("owner", "alice", "bob", "deployer"))
    gun, _ = push(registry, unique_repo(), "v1", b"team release")
    owner.ok("init", gun)
    handoff_root(owner, gun, alice, bob, deployer)
    alice.ok("key", "generate", "alice", "--dir", str(tmp_path))
    bob.ok("key", "generate", "bob", "--dir", str(tmp_path))
    owner.ok("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), gun)
    owner.ok("signer", "add", "bob", "--key", str(tmp_path / "bob.pub"), gun, "--threshold", "2")

    assert "1 of 2" in alice.ok("sign", f"{gun}:v1").stdout
    one_line(deployer.run("verify", f"{gun}:v1"), 1, "1 of 2", "alice")
    bob.ok("sign", f"{gun}:v1")
    assert "alice, bob" in deployer.ok("verify", f"{gun}:v1").stdout
    deployer.ok("verify", f"{gun}:v1", "--signer", "alice")
    one_line(deployer.run("verify", f"{gun}:v1", "--signer", "carol"), 1, "not by carol")

    owner.ok("signer", "remove", "alice", gun, "--threshold", "1")
    assert deployer.ok("--json", "verify", f"{gun}:v1").json["signers"] == ["bob"]
    one_line(deployer.run("verify", f"{gun}:v1", "--signer", "alice"), 1, "not by alice")


def test_rotation_story(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path, stack: Stack
) -> None:
    owner, bob, deployer = users["owner"], users["bob"], users["deployer"]
    gun, digest = push(registry, unique_repo(), "v1", b"rotate me")
    owner.ok("init", gun)
    handoff_root(owner, gun, bob, deployer)
    bob.ok("key", "generate", "bob", "--dir", str(tmp_path))
    owner.ok("signer", "add", "bob", "--key", str(tmp_path / "bob.pub"), gun)
    bob.ok("sign", f"{gun}:v1")
    assert deployer.ok("--json", "verify", f"{gun}:v1").json["digest"] == digest

    for role in ("root", "targets", "timestamp", "snapshot"):
        owner.ok("key", "rotate", gun, role)
        after = deployer.ok(
            "--json", "verify", f"{gun}:v1"
        )  # nothing changed on the deployer's side
        assert after.json["digest"] == digest, role

    # The signer's key: bob makes a new key, the owner adds it, bob re-signs, the old key goes.
    old = bob.ok("--json", "key", "list").json["keys"][0]["keyid"]
    bob.ok("key", "generate", "bob-2027", "--dir", str(tmp_path))
    step = owner.ok("--json", "key", "rotate", gun, "bob", "--key", str(tmp_path / "bob-2027.pub"))
    assert step.json["complete"] is False
    bob.ok("witness", gun)
    owner.ok("signer", "remove", "bob", gun, "--key", old)
    assert deployer.ok("--json", "verify", f"{gun}:v1").json["signers"] == ["bob"]

    # A root signed only by a new key, not by the previous root's keys: refused.
    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, Root

    from trustctl.client import ServerClient
    from trustctl.errors import ServerRejectedError
    from trustctl.transport import HttpTransport

    client = ServerClient(stack.url, HttpTransport(ca_file=str(stack.pki.ca_cert)))
    current = Metadata[Root].from_bytes(client.get_file(gun, "5.root.json") or b"")
    rogue = CryptoSigner.generate_ecdsa()
    for keyid in list(current.signed.roles["root"].keyids):
        current.signed.revoke_key(keyid, "root")
    current.signed.add_key(rogue.public_key, "root")
    current.signed.version += 1
    current.signed.expires = datetime.now(UTC) + timedelta(days=30)
    current.signatures.clear()
    current.sign(rogue)
    with pytest.raises(ServerRejectedError):
        client.publish(gun, {"root": current.to_bytes()})
    deployer.ok("verify", f"{gun}:v1")


class FreezingProxy:
    """A man in the middle on loopback (plain HTTP) in front of the real server, which
    can freeze timestamp.json (serve an old copy) or replay any recorded version."""

    def __init__(self, upstream: str, ca: Path) -> None:
        self.pool = urllib3.PoolManager(ca_certs=str(ca), retries=False)
        self.upstream = upstream
        self.frozen: bytes | None = None
        self.timestamps: list[bytes] = []
        self.lock = threading.Lock()
        self.server: Server = serve(self.handle)

    def handle(self, req: Request) -> Reply:
        if req.method == "GET" and req.path.endswith("/timestamp.json") and self.frozen is not None:
            return Reply(200, {"Content-Type": "application/json"}, self.frozen)
        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length")}
        r = self.pool.request(
            req.method, self.upstream + req.path, headers=headers, body=req.body or None
        )
        if req.method == "GET" and req.path.endswith("/timestamp.json") and r.status == 200:
            with self.lock:
                self.timestamps.append(r.data)
        out = {
            k: v for k, v in r.headers.items() if k.lower() in ("content-type", "www-authenticate")
        }
        return Reply(r.status, out, r.data)


def test_rolled_back_trust_data_is_refused(
    registry: RegistryProcess, stack: Stack, tmp_path: Path
) -> None:
    """Freezes (stale data) are refused on an injected clock, without waiting for real
    expiry: tests/trustctl/test_attacks.py (server and clients on one clock)."""
    proxy = FreezingProxy(stack.url, stack.pki.ca_cert)
    try:
        owner = User("owner", tmp_path / "owner", stack.url, stack.pki.ca_cert)
        deployer = User("deployer", tmp_path / "deployer", proxy.server.url, stack.pki.ca_cert)
        gun, _ = push(registry, unique_repo(), "v1", b"fresh")
        owner.ok("init", gun)
        owner.ok("sign", f"{gun}:v1")
        handoff_root(owner, gun, deployer)
        deployer.ok("verify", f"{gun}:v1")
        old_timestamp = proxy.timestamps[-1]

        # Rollback: the deployer saw a newer state; an older timestamp is then replayed.
        owner.ok(
            "sign",
            f"{gun}:v1-again",
            "--digest",
            deployer.ok("--json", "verify", f"{gun}:v1").json["digest"],
        )
        deployer.ok("verify", f"{gun}:v1")
        proxy.frozen = old_timestamp
        one_line(deployer.run("--json", "verify", f"{gun}:v1"), 1)
        rolled = deployer.run("--json", "verify", f"{gun}:v1")
        assert (
            rolled.json["error"]["code"] == "ROLLBACK"
            and "rollback attack" in rolled.json["error"]["message"]
        )
        assert "(New timestamp version" in rolled.json["error"]["message"]  # the check that fired
        proxy.frozen = None
        deployer.ok("verify", f"{gun}:v1")  # without the attacker: verify passes
    finally:
        proxy.server.stop()


def test_ten_concurrent_signs_of_one_gun(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path
) -> None:
    owner = users["owner"]
    repo = unique_repo()
    gun, _ = push(registry, repo, "base", b"base")
    # Flat layout: every tag goes into one targets file, so the ten jobs can conflict
    # (with hash bins they mostly write different bins and need no rebase).
    owner.ok("init", gun, "--hash-bins", "0")
    tags = [f"c{i}" for i in range(10)]
    for tag in tags:
        push(registry, repo, tag, f"concurrent {tag}".encode())
    # Ten CI jobs, each with its own copy of the trust dir: they race on the server.
    jobs = []
    for tag in tags:
        copy = User("owner", tmp_path / f"job-{tag}", owner.server, owner.ca)
        shutil.copytree(owner.trust_dir, copy.trust_dir)
        jobs.append(copy)
    procs = [
        job.start("--json", "sign", f"{gun}:{tag}") for job, tag in zip(jobs, tags, strict=True)
    ]
    results = [p.communicate(timeout=300) + (p.returncode,) for p in procs]
    for out, err, code in results:
        assert code == 0, f"{out}\n{err}"
    signed = {t["tag"] for t in owner.ok("--json", "inspect", gun).json["tags"]}
    assert set(tags) <= signed
    # (whether they happened to collide is up to the scheduler: the rebase after a
    # conflict is shown deterministically by test_flows.py, which injects the conflict)

    # Ten more at once from one trust dir: they take turns on its lock.
    more = [f"d{i}" for i in range(10)]
    for tag in more:
        push(registry, repo, tag, f"same dir {tag}".encode())
    procs = [owner.start("sign", f"{gun}:{tag}") for tag in more]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, f"{out}\n{err}"
    signed = {t["tag"] for t in owner.ok("--json", "inspect", gun).json["tags"]}
    assert set(tags) | set(more) <= signed


def test_failures_are_one_line_with_a_hint(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path
) -> None:
    owner, deployer = users["owner"], users["deployer"]
    gun, _ = push(registry, unique_repo(), "v1", b"failures")
    one_line(owner.run("sign", "127.0.0.1:5000/Bad:v1"), 2, "lowercase")
    one_line(deployer.run("verify", f"{gun}:v1"), 2, "no root is pinned")
    owner.ok("init", gun)
    handoff_root(owner, gun, deployer)
    one_line(
        owner.run("sign", f"{gun}:v1", env={"TRUSTCTL_TARGETS_PASSPHRASE": "wrong"}),
        2,
        "wrong passphrase",
    )
    one_line(deployer.run("sign", f"{gun}:v1"), 2, "do not hold the bins key")
    unknown = f"{gun}-unknown"
    deployer.ok("trust", "pin", unknown, str(owner.trust_dir.parent / "root.json"))
    one_line(deployer.run("verify", f"{unknown}:v1"), 1, "no trust data")
    down = {"TRUSTCTL_SERVER": f"https://127.0.0.1:{free_port()}", "TRUSTCTL_RETRY_BUDGET": "1"}
    one_line(deployer.run("verify", f"{gun}:v1", env=down), 3, "cannot reach the trust server")
    one_line(owner.run("sign", f"127.0.0.1:{free_port()}/x/y:v1"), 3, "cannot reach registry")
    no_ca = {"TRUSTCTL_TLS_CA": ""}
    one_line(deployer.run("verify", f"{gun}:v1", env=no_ca), 3, "TLS")
