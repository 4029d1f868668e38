"""trustctl on Notary-signed repositories, end to end (issue 12).

Real processes on 127.0.0.1: Debian's notary-server and notary-signer 0.7.0 (HTTPS,
gRPC with mutual TLS), repositories built by the real ``notary`` CLI 0.7.0, a real
docker-registry, and ``python -m trustctl`` as a subprocess. Attacks are served by a
test server in front of notary-server that changes what it answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.client_view import HTTPSFetcher, judge
from tests.notary_peer import NotaryPerson, NotaryStack, require_notary, start_notary
from tests.procs import Stack, start_stack
from tests.registry import RegistryProcess, push_image
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
class Trustctl:
    """A trustctl user: a trust dir, a server, passphrases; ``run`` is a subprocess."""

    name: str
    trust_dir: Path
    server: str
    ca: Path | None
    extra: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TRUSTCTL_", "DOCKER_CONTENT_TRUST", "NOTARY_"))
        }
        env = {
            **base,
            "SSL_CERT_FILE": SYSTEM_BUNDLE,
            "REQUESTS_CA_BUNDLE": SYSTEM_BUNDLE,
            "TRUSTCTL_SERVER": self.server,
            "TRUSTCTL_TRUST_DIR": str(self.trust_dir),
            "TRUSTCTL_ROOT_PASSPHRASE": remember(f"{self.name} root passphrase"),
            "TRUSTCTL_TARGETS_PASSPHRASE": remember(f"{self.name} targets passphrase"),
            "TRUSTCTL_DELEGATION_PASSPHRASE": remember(f"{self.name} delegation passphrase"),
            **self.extra,
        }
        if self.ca is not None:
            env["TRUSTCTL_TLS_CA"] = str(self.ca)
        return env

    def run(
        self, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()
    ) -> Result:
        proc = subprocess.run(
            [*prefix, sys.executable, "-m", "trustctl", *args],
            check=False,
            env={**self.env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self.run(*args, **kwargs)
        assert result.code == 0, str(result)
        return result


def one_line(result: Result, code: int, *needles: str) -> None:
    """A failure is one Error line and one Hint line, no traceback."""
    assert result.code == code, str(result)
    lines = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith("Warning: ")
    ]
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and lines[-1].startswith("Hint: "), str(result)
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in errors[0], str(result)


@pytest.fixture(scope="module")
def notary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotaryStack]:
    require_notary()
    stack = start_notary("trustctl-e2e", tmp_path_factory.mktemp("notary"))
    yield stack
    stack.stop()


@dataclass
class NotaryServer:
    """A server the notary CLI talks to: ``url``, ``ca`` and the CLI's ``client_config``."""

    url: str
    ca: Path
    client_config: Path


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("ours"))
    yield stack
    stack.stop()


@pytest.fixture(params=["notary-server-0.7.0", "ours"])
def notary_server(request: pytest.FixtureRequest, tmp_path: Path) -> NotaryServer:
    """Debian's notary-server, or our server speaking Notary's dialect."""
    if request.param == "ours":
        stack: Stack = request.getfixturevalue("ours")
        config = tmp_path / "notary-client.json"
        config.write_text(
            json.dumps({"remote_server": {"url": stack.url, "root_ca": str(stack.pki.ca_cert)}})
        )
        return NotaryServer(stack.url, stack.pki.ca_cert, config)
    peer: NotaryStack = request.getfixturevalue("notary")
    return NotaryServer(peer.url, peer.ca, peer.client_config)


@dataclass
class Image:
    gun: str
    tag: str
    digest: str
    size: int


def push(registry: RegistryProcess, repo: str, tag: str) -> Image:
    digest, size, _ = push_image(registry.url, repo, tag, f"{repo}:{tag}".encode())
    return Image(f"{registry.host}/{repo}", tag, digest, size)


def sign_with_notary(owner: NotaryPerson, image: Image, *roles: str) -> None:
    args = [
        "addhash",
        image.gun,
        image.tag,
        str(image.size),
        "--sha256",
        image.digest.split(":", 1)[1],
    ]
    for role in roles:
        args += ["--roles", role]
    owner.run(*args, "-p")


def deployer(
    tmp_path: Path, notary: NotaryStack, name: str = "deployer", server: str | None = None
) -> Trustctl:
    return Trustctl(
        name, tmp_path / name, server or notary.url, notary.ca if server is None else None
    )


# --- 1. same digests as `notary lookup`, pinned by certificate id -------------------------


def test_verify_gives_the_digest_notary_lookup_gives_for_every_tag(
    notary_server: NotaryServer, registry: RegistryProcess, tmp_path: Path
) -> None:
    notary = notary_server
    repo = unique_repo("notary")
    owner = NotaryPerson("owner", notary, tmp_path / "owner-notary")  # type: ignore[arg-type]
    images = [push(registry, repo, tag) for tag in ("v1", "v2", "latest")]
    gun = images[0].gun
    owner.run("init", gun, "-p")
    for image in images:
        sign_with_notary(owner, image)
    cert_id = owner.root_cert_id(gun)

    d = deployer(tmp_path, notary)
    unpinned = d.run("verify", f"{gun}:v1")
    one_line(unpinned, 2, "Notary", "no root certificate is pinned")
    wrong = d.run("trust", "pin", gun, "--keyid", "ab" * 32)
    one_line(wrong, 1, "matches the pin")
    pinned = d.ok("--json", "trust", "pin", gun, "--keyid", cert_id).json
    assert pinned["dialect"] == "notary" and pinned["root_keyids"] == [cert_id]
    schema.check(pinned, "trust pin")
    shown = d.ok("--json", "trust", "show", gun).json["pins"]
    assert [(p["gun"], p["root_keyids"]) for p in shown] == [(gun, [cert_id])]

    for image in images:
        digest, size = owner.lookup(gun, image.tag)
        got = d.ok("--json", "verify", f"{gun}:{image.tag}").json
        schema.check(got, "verify")  # the same JSON as for TUF 1.0 repositories
        assert got["digest"] == digest == image.digest
        assert got["length"] == size == image.size
        assert got["role"] == "targets" and got["registry"]["match"] is True
        assert d.ok("pull", f"{gun}:{image.tag}").stdout.strip() == f"{gun}@{digest}"
    listing = d.ok("--json", "inspect", gun).json
    schema.check(listing, "inspect")
    assert {t["tag"]: t["digest"] for t in listing["tags"]} == {i.tag: i.digest for i in images}

    missing = d.run("verify", f"{gun}:nope")
    one_line(missing, 1, "is not signed")

    # the same registry comparison as for TUF 1.0: the tag moved after signing
    moved_digest, _, _ = push_image(registry.url, repo, "v1", b"other content, same tag")
    assert moved_digest != images[0].digest
    one_line(d.run("verify", f"{gun}:v1"), 1, "the registry now serves")
    pulled = d.run("pull", f"{gun}:v1")
    assert pulled.code == 0 and pulled.stdout.strip() == f"{gun}@{images[0].digest}", str(pulled)
    assert "now points at" in pulled.stderr

    # --tofu, said explicitly, pins what the server sends (announced)
    t = deployer(tmp_path, notary, name="tofu")
    first = t.ok("verify", "--tofu", "--no-registry-check", f"{gun}:v2")
    assert "trusting on first use" in first.stderr and images[1].digest in first.stdout


# --- 2. attacks served by a test server in front of notary-server -------------------------


@dataclass
class Proxy:
    """A plain-HTTP test server on 127.0.0.1 in front of notary-server; ``attack`` changes
    what it answers (None: forwards unchanged). Remembers what it forwarded."""

    upstream: str
    ca: Path
    attack: Callable[[str, bytes], tuple[int, bytes]] | None = None
    seen: dict[str, bytes] = field(default_factory=dict)
    server: Server | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Proxy:
        pool = urllib3.PoolManager(ca_certs=str(self.ca), cert_reqs="CERT_REQUIRED", retries=False)

        def handle(req: Request) -> Reply:
            r = pool.request("GET", self.upstream + req.path, timeout=10)
            name = req.path.rsplit("/_trust/tuf/", 1)[-1]
            status, body = r.status, r.data
            if self.attack is not None:
                status, body = self.attack(name, body)
            with self.lock:
                self.seen.setdefault(name, body)
            return Reply(status, {"Content-Type": "text/plain"}, body)

        self.server = serve(handle)
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url


def _flip_digest(body: bytes) -> bytes:
    doc = json.loads(body)
    for meta in doc["signed"]["targets"].values():
        meta["hashes"]["sha256"] = "A" * 43 + "="
    return json.dumps(doc).encode()


def _bump_version(body: bytes) -> bytes:
    doc = json.loads(body)
    doc["signed"]["version"] += 100
    return json.dumps(doc).encode()


ATTACKS: dict[str, tuple[str, str]] = {
    # id: (error code, words the message must say)
    "tampered-targets": ("TAMPERED", "tampered"),
    "forged-timestamp": ("BAD_SIGNATURE", "forged"),
    "impostor-repository": ("BAD_SIGNATURE", "forged"),
    "withheld-snapshot": ("TAMPERED", "withholding"),
    "endless-timestamp": ("TAMPERED", "endless-data attack"),
    "rolled-back-timestamp": ("ROLLBACK", "rollback attack"),
    "frozen-expired-timestamp": ("STALE", "freeze attack"),
}


@pytest.fixture(scope="module")
def attacked_repo(
    notary: NotaryStack, registry: RegistryProcess, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """A Notary repository with one tag, and a second one (the impostor's)."""
    work = tmp_path_factory.mktemp("attacked")
    owner = NotaryPerson("owner", notary, work / "owner-notary")
    image = push(registry, unique_repo("attacked"), "v1")
    owner.run("init", image.gun, "-p")
    sign_with_notary(owner, image)
    impostor = f"{image.gun}-impostor"
    owner.run("init", impostor, "-p")
    return {
        "owner": owner,
        "image": image,
        "impostor": impostor,
        "cert_id": owner.root_cert_id(image.gun),
    }


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_a_tampered_rolled_back_or_expired_copy_is_refused(
    attack: str,
    notary: NotaryStack,
    registry: RegistryProcess,
    attacked_repo: dict[str, Any],
    tmp_path: Path,
) -> None:
    owner: NotaryPerson = attacked_repo["owner"]
    image: Image = attacked_repo["image"]
    gun = image.gun
    proxy = Proxy(notary.url, notary.ca).start()
    try:
        d = deployer(tmp_path, notary, server=proxy.url)
        d.ok("trust", "pin", gun, "--keyid", attacked_repo["cert_id"])
        d.ok("verify", "--no-registry-check", f"{gun}:v1")  # honest: seen and cached
        old_timestamp = proxy.seen["timestamp.json"]
        prefix: tuple[str, ...] = ()
        if attack == "tampered-targets":
            proxy.attack = lambda n, b: (
                (200, _flip_digest(b)) if n.startswith("targets.") else (200, b)
            )
        elif attack == "forged-timestamp":
            proxy.attack = lambda n, b: (
                (200, _bump_version(b)) if n == "timestamp.json" else (200, b)
            )
        elif attack == "impostor-repository":
            other = f"{notary.url}/v2/{attacked_repo['impostor']}/_trust/tuf/"
            pool = urllib3.PoolManager(ca_certs=str(notary.ca), retries=False)
            proxy.attack = lambda n, b: (200, pool.request("GET", other + n).data)
        elif attack == "withheld-snapshot":
            proxy.attack = lambda n, b: (404, b"{}") if n.startswith("snapshot.") else (200, b)
        elif attack == "endless-timestamp":
            proxy.attack = lambda n, b: (
                (200, b + b" " * (2 * 1024 * 1024)) if n == "timestamp.json" else (200, b)
            )
        elif attack == "rolled-back-timestamp":
            newer = push(registry, gun.split("/", 1)[1], f"v2-{tmp_path.name[-6:]}")
            sign_with_notary(owner, newer)
            d.ok(
                "verify", "--no-registry-check", f"{gun}:{newer.tag}"
            )  # the client saw the newer state
            proxy.attack = lambda n, b: (200, old_timestamp) if n == "timestamp.json" else (200, b)
        elif attack == "frozen-expired-timestamp":
            proxy.attack = lambda n, b: (200, old_timestamp) if n == "timestamp.json" else (200, b)
            later = datetime.now(UTC) + timedelta(days=15)  # notary's timestamps last 14 days
            prefix = ("faketime", later.strftime("%Y-%m-%d %H:%M:%S"))
        result = d.run("--json", "verify", "--no-registry-check", f"{gun}:v1", prefix=prefix)
        assert result.code == 1, str(result)
        schema.check(result.json, "error")
        error = result.json["error"]
        code, words = ATTACKS[attack]
        assert error["code"] == code, str(result)
        assert words in error["message"], str(result)
        assert "Traceback" not in result.stderr
    finally:
        assert proxy.server is not None
        proxy.server.stop()


#: name -> what the damage does to the deployer's Notary state (``tuf/<gun>/notary``)
STATE_DAMAGE: dict[str, Callable[[Path], object]] = {
    "state-json-deleted": lambda d: (d / "state.json").unlink(),
    "state-json-garbage": lambda d: (d / "state.json").write_bytes(b"{ not json"),
    "verified-state-deleted": lambda d: [(d / n).unlink() for n in ("state.json", "root.json")],
}


def files_under(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.mark.parametrize("damage", list(STATE_DAMAGE), ids=list(STATE_DAMAGE))
def test_a_damaged_notary_state_is_refused_until_pinned_again(
    damage: str,
    notary: NotaryStack,
    registry: RegistryProcess,
    attacked_repo: dict[str, Any],
    tmp_path: Path,
) -> None:
    """With the versions it verified gone, the client would take a replayed older
    timestamp (an older digest): a state verified before must read back, or STATE_CORRUPT."""
    owner: NotaryPerson = attacked_repo["owner"]
    gun = attacked_repo["image"].gun
    cert_id = attacked_repo["cert_id"]
    proxy = Proxy(notary.url, notary.ca).start()
    try:
        d = deployer(tmp_path, notary, server=proxy.url)
        d.ok("trust", "pin", gun, "--keyid", cert_id)
        d.ok("verify", "--no-registry-check", f"{gun}:v1")
        old_timestamp = proxy.seen["timestamp.json"]
        newer = push(registry, gun.split("/", 1)[1], f"{damage}-{tmp_path.name[-6:]}")
        sign_with_notary(owner, newer)
        d.ok("verify", "--no-registry-check", f"{gun}:{newer.tag}")  # the newer state
        gun_dir = d.trust_dir / "tuf" / gun
        STATE_DAMAGE[damage](gun_dir / "notary")
        before = files_under(gun_dir)
        proxy.attack = lambda n, b: (200, old_timestamp) if n == "timestamp.json" else (200, b)

        result = d.run("--json", "verify", "--no-registry-check", f"{gun}:v1")
        assert result.code == 1, str(result)
        schema.check(result.json, "error")
        error = result.json["error"]
        assert error["code"] == "STATE_CORRUPT", str(result)
        assert "rollback attack" in error["message"], str(result)
        assert f"trustctl trust pin {gun} --keyid" in error["hint"], str(result)
        one_line(d.run("pull", f"{gun}:v1"), 1, "rollback attack")
        assert files_under(gun_dir) == before, "the refused runs advanced the trust dir"

        proxy.attack = None  # the documented re-initialisation, against the honest server
        d.ok("trust", "pin", gun, "--keyid", cert_id)
        d.ok("verify", "--no-registry-check", f"{gun}:{newer.tag}")
    finally:
        assert proxy.server is not None
        proxy.server.stop()


# --- 3. a delegated tag, signed by a team member ------------------------------------------


def test_a_tag_signed_into_targets_releases_verifies_with_signer_naming_the_member(
    notary_server: NotaryServer, registry: RegistryProcess, tmp_path: Path
) -> None:
    notary = notary_server
    owner = NotaryPerson("owner", notary, tmp_path / "owner-notary")  # type: ignore[arg-type]
    alice = NotaryPerson("alice", notary, tmp_path / "alice-docker-trust")  # type: ignore[arg-type]
    image = push(registry, unique_repo("delegated"), "v1")
    gun = image.gun
    owner.run("init", gun, "-p")
    owner.run(
        "key", "rotate", gun, "snapshot", "-r"
    )  # as docker trust does: delegates need no snapshot key
    public, _, _ = alice.generate_signer_key("alice", tmp_path / "alice-keys")
    owner.run("delegation", "add", gun, "targets/releases", str(public), "--all-paths", "-p")
    owner.run("delegation", "add", gun, "targets/alice", str(public), "--all-paths", "-p")
    sign_with_notary(alice, image, "targets/releases")
    digest, _ = owner.lookup(gun, "v1")

    d = deployer(tmp_path, notary)
    d.ok("trust", "pin", gun, "--keyid", owner.root_cert_id(gun))
    got = d.ok("--json", "verify", "--signer", "alice", f"{gun}:v1").json
    assert got["digest"] == digest == image.digest
    assert got["role"] == "targets/releases" and got["signers"] == ["alice"]
    text = d.ok("verify", "--signer", "alice", f"{gun}:v1").stdout
    assert "signed by:    alice (targets/releases, 1 of 1 required)" in text
    bob = d.run("verify", "--signer", "bob", f"{gun}:v1")
    one_line(bob, 1, "not by bob")


# --- 4. Notary key files: bad input -------------------------------------------------------


BAD_KEY_FILES = {
    "wrong-passphrase": (2, "wrong passphrase for the Notary alice key"),
    "truncated": (2, "truncated"),
    "non-notary-pem": (2, "not a Notary private key"),
}


@pytest.mark.parametrize("case", list(BAD_KEY_FILES), ids=list(BAD_KEY_FILES))
def test_a_bad_notary_key_file_is_one_line_and_nothing_is_written(
    case: str, notary: NotaryStack, tmp_path: Path
) -> None:
    alice = NotaryPerson("alice", notary, tmp_path / "alice-docker-trust")
    _, key_file, _ = alice.generate_signer_key("alice", tmp_path / "alice-keys")
    env = {"NOTARY_DELEGATION_PASSPHRASE": alice.passphrase}
    if case == "wrong-passphrase":
        env = {"NOTARY_DELEGATION_PASSPHRASE": "not the passphrase"}
    elif case == "truncated":
        key_file.write_bytes(key_file.read_bytes()[:200])
    else:
        shutil.copy(notary.ca, key_file)  # a certificate where a key should be
    d = Trustctl("alice", tmp_path / "alice-trustctl", notary.url, notary.ca, extra=env)
    result = d.run("key", "import", str(alice.trust_dir))
    code, words = BAD_KEY_FILES[case]
    one_line(result, code, words)
    assert not (d.trust_dir / "private").exists() or not list((d.trust_dir / "private").iterdir())

    good = Trustctl(
        "alice",
        tmp_path / "alice-ok",
        notary.url,
        notary.ca,
        extra={"DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": alice.passphrase},  # Docker's name
    )
    if case == "wrong-passphrase":  # the same file opens with the right passphrase
        imported = good.ok("--json", "key", "import", str(alice.trust_dir)).json
        assert [(k["role"], k["name"], k["notary_role"]) for k in imported["keys"]] == [
            ("delegation", "alice", "alice")
        ]


# --- 5. the upgrade of a Notary repository to TUF 1.0 on our server ------------------------


def test_a_notary_repository_is_upgraded_to_tuf_with_its_tags_signers_and_keys(
    notary: NotaryStack, ours: Stack, registry: RegistryProcess, tmp_path: Path
) -> None:
    repo = unique_repo("migrated")
    owner = NotaryPerson("owner", notary, tmp_path / "owner-docker-trust")
    alice = NotaryPerson("alice", notary, tmp_path / "alice-docker-trust")
    bob = NotaryPerson("bob", notary, tmp_path / "bob-docker-trust")
    carol = NotaryPerson("carol", notary, tmp_path / "carol-docker-trust")
    v1, v2, v3, v4, lost = (push(registry, repo, t) for t in ("v1", "v2", "v3", "v4", "v-carol"))
    gun = v1.gun
    owner.run("init", gun, "-p")
    owner.run("key", "rotate", gun, "snapshot", "-r")
    sign_with_notary(owner, v1)
    owner.run("key", "rotate", gun, "targets")  # a rotated targets key
    sign_with_notary(owner, v2)
    alice_pub, _, _ = alice.generate_signer_key("alice", tmp_path / "keys")
    bob_pub, _, _ = bob.generate_signer_key("bob", tmp_path / "keys")
    carol_pub, _, carol_id = carol.generate_signer_key("carol", tmp_path / "keys")
    owner.run(
        "delegation",
        "add",
        gun,
        "targets/releases",
        str(alice_pub),
        str(bob_pub),
        "--all-paths",
        "-p",
    )
    owner.run("delegation", "add", gun, "targets/alice", str(alice_pub), "--all-paths", "-p")
    owner.run("delegation", "add", gun, "targets/bob", str(bob_pub), "--all-paths", "-p")
    sign_with_notary(alice, v3, "targets/releases")
    # carol signs a tag, then her key is replaced: her role no longer verifies
    owner.run("delegation", "add", gun, "targets/carol", str(carol_pub), "--all-paths", "-p")
    sign_with_notary(carol, lost, "targets/carol")
    dave_pub, _, _ = NotaryPerson("dave", notary, tmp_path / "dave").generate_signer_key(
        "dave", tmp_path / "keys"
    )
    owner.run("delegation", "add", gun, "targets/carol", str(dave_pub), "-p")
    owner.run("delegation", "remove", gun, "targets/carol", carol_id, "-y", "-p")
    source = {t.tag: owner.lookup(gun, t.tag)[0] for t in (v1, v2, v3)}
    assert owner.run("lookup", gun, "v-carol", check=False).returncode != 0

    # the owner: pin the Notary repository, then migrate it to our server
    migrator = Trustctl(
        "owner",
        tmp_path / "owner-trustctl",
        ours.url,
        ours.pki.ca_cert,
        extra={
            "NOTARY_ROOT_PASSPHRASE": owner.passphrase,
            "NOTARY_TARGETS_PASSPHRASE": owner.passphrase,
        },
    )
    at_notary = ("--server", notary.url, "--tls-ca", str(notary.ca))
    migrator.ok(*at_notary, "trust", "pin", gun, "--keyid", owner.root_cert_id(gun))
    args = (
        "migrate",
        gun,
        "--from",
        notary.url,
        "--from-tls-ca",
        str(notary.ca),
        "--notary-trust-dir",
        str(owner.trust_dir),
    )
    plan = migrator.ok("--json", *args, "--dry-run").json
    assert [t["tag"] for t in plan["tags"]] == ["v1", "v2", "v3"]
    assert plan["dry_run"] is True
    schema.check(plan, "migrate")
    assert (
        urllib3.PoolManager(ca_certs=str(ours.pki.ca_cert))
        .request("GET", f"{ours.url}/v2/{gun}/_trust/tuf/1.root.json")
        .status
        == 404
    )  # nothing was written

    done = migrator.ok("--json", *args).json
    schema.check(done, "migrate")
    assert {t["tag"]: t["digest"] for t in done["tags"]} == source
    assert {s["name"] for s in done["signers"]} == {"alice", "bob", "carol"}
    assert done["threshold"] == 1
    skipped = {s["what"]: s["reason"] for s in done["skipped"]}
    assert "did not verify in the source" in skipped["tag v-carol (targets/carol)"]
    text = migrator.ok(*args).stdout  # re-run: nothing is duplicated
    assert "published:    nothing new" in text and "tag v3" in text.split("done before:")[1]
    assert "skipped:  tag v-carol (targets/carol)" in text

    # ngclient and a deployer find every tag with the same digest
    root_file = tmp_path / "root.json"
    migrator.ok("trust", "export", gun, "-o", str(root_file))
    for tag, digest in source.items():
        info = judge(
            tmp_path / f"ngclient-{tag}",
            ours.url,
            gun,
            tag,
            HTTPSFetcher(str(ours.pki.ca_cert)),
            root_file.read_bytes(),
        )
        assert info is not None and f"sha256:{info.hashes['sha256']}" == digest
    d = Trustctl("deployer", tmp_path / "deployer", ours.url, ours.pki.ca_cert)
    d.ok("trust", "pin", gun, "--keyid", done["root_keyid"])
    for tag, digest in source.items():
        got = d.ok("--json", "verify", f"{gun}:{tag}").json
        assert got["digest"] == digest and got["registry"]["match"] is True
    one_line(d.run("verify", f"{gun}:v-carol"), 1, "is not signed")
    # the owner's trust dir pins both the Notary source and the new repository: TUF 1.0 wins
    assert migrator.ok("--json", "verify", f"{gun}:v1").json["digest"] == source["v1"]

    # alice signs a new tag with the key from her docker trust directory
    a = Trustctl(
        "alice",
        tmp_path / "alice-trustctl",
        ours.url,
        ours.pki.ca_cert,
        extra={"NOTARY_DELEGATION_PASSPHRASE": alice.passphrase},
    )
    imported = a.ok("--json", "key", "import", str(alice.trust_dir)).json["keys"]
    assert [(k["role"], k["name"]) for k in imported] == [("delegation", "alice")]
    a.ok("trust", "pin", gun, "--keyid", done["root_keyid"])
    a.ok("sign", f"{gun}:v4")
    got = d.ok("--json", "verify", "--signer", "alice", f"{gun}:v4").json
    assert got["digest"] == v4.digest and got["role"] == "targets/releases"


def test_migrate_refuses_bad_input_writing_nothing_and_can_make_new_keys(
    notary: NotaryStack, ours: Stack, registry: RegistryProcess, tmp_path: Path
) -> None:
    owner = NotaryPerson("owner", notary, tmp_path / "owner-notary")
    image = push(registry, unique_repo("newkeys"), "v1")
    gun = image.gun
    owner.run("init", gun, "-p")
    sign_with_notary(owner, image)
    wrong = {"NOTARY_ROOT_PASSPHRASE": "not it", "NOTARY_TARGETS_PASSPHRASE": "not it"}
    m = Trustctl("owner", tmp_path / "owner-trustctl", ours.url, ours.pki.ca_cert, extra=wrong)
    m.ok(
        "--server",
        notary.url,
        "--tls-ca",
        str(notary.ca),
        "trust",
        "pin",
        gun,
        "--keyid",
        owner.root_cert_id(gun),
    )
    source = (
        "--from",
        notary.url,
        "--from-tls-ca",
        str(notary.ca),
        "--notary-trust-dir",
        str(owner.trust_dir),
    )

    one_line(
        m.run("migrate", gun), 2, "a repository keeps its dialect"
    )  # --from defaults to --server: ours
    one_line(m.run("migrate", gun, *source), 2, "wrong passphrase for the Notary root key")
    one_line(
        m.run(
            "migrate",
            gun,
            "--from",
            notary.url,
            "--from-tls-ca",
            str(notary.ca),
            "--notary-trust-dir",
            str(tmp_path / "nowhere"),
        ),
        2,
        "is not in",
    )
    pool = urllib3.PoolManager(ca_certs=str(ours.pki.ca_cert))
    assert pool.request("GET", f"{ours.url}/v2/{gun}/_trust/tuf/1.root.json").status == 404
    assert not (m.trust_dir / "private").exists() or not list((m.trust_dir / "private").iterdir())

    dest = f"{gun}-tuf"
    done = m.ok("--json", "migrate", gun, dest, *source, "--new-keys").json
    assert done["created"] is True and [t["tag"] for t in done["tags"]] == ["v1"]
    got = m.ok("--json", "verify", "--no-registry-check", f"{dest}:v1").json
    assert got["digest"] == image.digest
