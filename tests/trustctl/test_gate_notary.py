"""The deploy gate on repositories signed with the ``notary`` CLI and ``docker trust``.

Real processes on 127.0.0.1: our trust server and signer (speaking Notary's dialect
to the unmodified clients), the notary CLI 0.7.0 and the docker client's
``docker trust`` signing into it, and ``trustctl gate serve`` deciding behind the
in-test API server. The gate reads the trust server through a replaying proxy
(plain HTTP on loopback) that can serve an older copy of a file, as an attacker
would. Each rule pins its repository's root the ways ``trustctl trust pin`` does
for Notary repositories: by root certificate id, or by the owner's root.json.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import urllib3

from benchmarks.stacks import NOTARY_BIN, base_env
from notary_signer.devcerts import DevPKI, ensure_dev_pki
from tests.notary_peer import NotaryPerson, require_notary
from tests.procs import ROOT, Stack, start_stack
from tests.secrets import remember
from tests.trustctl.gatekit import workload
from tests.trustctl.httpd import Reply, Request, Server, serve
from tests.trustctl.support import unique_repo
from tests.trustctl.test_gate_cli import GateProcess
from trustctl.api import Verifier
from trustctl.errors import StaleMetadataError

pytestmark = pytest.mark.e2e

REGISTRY = "127.0.0.1:5999"
DENIED = 'admission webhook "verify" denied the request: '


class ReplayProxy:
    """A man in the middle on loopback in front of the trust server: forwards every
    request, remembers every file it served, and serves ``replay[path]`` instead of
    the server's answer when set."""

    def __init__(self, upstream: str, ca: Path) -> None:
        self.pool = urllib3.PoolManager(ca_certs=str(ca), retries=False)
        self.upstream = upstream
        self.replay: dict[str, bytes] = {}
        self.served: dict[str, list[bytes]] = {}
        self.lock = threading.Lock()
        self.server: Server = serve(self.handle)

    def handle(self, req: Request) -> Reply:
        if req.method == "GET" and req.path in self.replay:
            return Reply(200, {"Content-Type": "application/json"}, self.replay[req.path])
        headers = {k: v for k, v in req.headers.items() if k not in ("host", "content-length")}
        r = self.pool.request(
            req.method, self.upstream + req.path, headers=headers, body=req.body or None
        )
        if req.method == "GET" and r.status == 200:
            with self.lock:
                self.served.setdefault(req.path, []).append(r.data)
        return Reply(r.status, {"Content-Type": "application/json"}, r.data)

    @property
    def url(self) -> str:
        return self.server.url


@dataclass
class ClientConfig:
    """What :class:`NotaryPerson` needs of a server: the notary CLI's config file."""

    client_config: Path


class DockerTrust:
    """``docker trust`` with its own DOCKER_CONFIG (no engine), against one server."""

    def __init__(self, config: Path, url: str, ca: Path) -> None:
        found = shutil.which("docker")
        if not found:
            pytest.fail(
                "needs a docker client with `docker trust` (Debian's docker.io, or docker 28): "
                "run scripts/install-system-deps.sh"
            )
        self.docker, self.config, self.url, self.ca = found, config, url, ca
        host = urlparse(url).netloc
        (config / "tls" / host).mkdir(parents=True, exist_ok=True)
        shutil.copy(ca, config / "tls" / host / "ca.crt")
        self.repo_passphrase = remember("gate docker repository passphrase")
        self.env = {
            **base_env(),
            "DOCKER_CONFIG": str(config),
            "DOCKER_CONTENT_TRUST_SERVER": url,
            "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": remember("gate docker root passphrase"),
            "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE": self.repo_passphrase,
        }

    def __call__(self, *args: str) -> str:
        p = subprocess.run(
            [self.docker, "trust", *args], capture_output=True, text=True, env=self.env,
            cwd=self.config.parent, timeout=120, check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert p.returncode == 0, f"docker trust {' '.join(args)}: {p.stdout}\n{p.stderr}"
        return p.stdout

    def delegate_signs(self, gun: str, tag: str, digest: str, size: int) -> None:
        """alice signs ``tag`` into targets/releases and targets/alice, as ``docker trust
        sign`` does, with the notary CLI on docker's trust directory (``docker trust
        sign`` needs an engine)."""
        p = subprocess.run(
            [NOTARY_BIN, "-d", str(self.config / "trust"), "-s", self.url, "--tlscacert", str(self.ca),
             "addhash", gun, tag, str(size), "--sha256", digest.split(":", 1)[1],
             "--roles", "targets/releases", "--roles", "targets/alice", "-p"],
            capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL,
            env={**base_env(), "NOTARY_DELEGATION_PASSPHRASE": self.repo_passphrase},
        )  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr

    def root_file(self, gun: str) -> Path:
        return self.config / "trust" / "tuf" / gun / "metadata" / "root.json"


def digest_of(n: int) -> str:
    return f"sha256:{n:064x}"


@dataclass
class Signed:
    """The module's repositories, their signers and the gate deciding about them."""

    stack: Stack
    proxy: ReplayProxy
    owner: NotaryPerson
    docker: DockerTrust
    gate: GateProcess
    cli_gun: str
    docker_gun: str
    rollback_gun: str
    digests: dict[str, str] = field(default_factory=dict)

    def admit(self, image: str, kind: str = "Pod") -> Any:
        spec = {"containers": [{"name": "a", "image": image}]}
        return self.gate.api().admit(workload(kind, spec))

    def new_repository(self, prefix: str) -> str:
        """A new Notary repository with v1 signed, pinned by hand in the gate's trust
        dir by its root certificate id (the rule for ``by-hand-*`` names no root)."""
        gun = f"{REGISTRY}/{unique_repo('by-hand-' + prefix)}"
        self.owner.run("init", gun, "-p")
        self.notary_sign(gun, "v1", 0xD1)
        self.pin_by_hand(gun)
        return gun

    def pin_by_hand(self, gun: str) -> None:
        trustctl = subprocess.run(
            [sys.executable, "-m", "trustctl", "--trust-dir", str(self.gate.trust_dir),
             "--server", self.stack.url, "--tls-ca", str(self.stack.pki.ca_cert), "trust", "pin", gun, "--keyid",
             self.owner.root_cert_id(gun)],
            capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
        )  # fmt: skip
        assert trustctl.returncode == 0, trustctl.stdout + trustctl.stderr

    def notary_sign(self, gun: str, tag: str, n: int) -> str:
        digest = digest_of(n)
        self.owner.run("addhash", gun, tag, "1234", "--sha256", digest.split(":", 1)[1], "-p")
        return digest


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Signed]:
    require_notary()
    tmp = tmp_path_factory.mktemp("gate-notary")
    stack = start_stack(tmp / "stack")
    proxy = ReplayProxy(stack.url, stack.pki.ca_cert)
    gate: GateProcess | None = None
    try:
        config = tmp / "notary-client.json"
        config.write_text(
            json.dumps({"remote_server": {"url": stack.url, "root_ca": str(stack.pki.ca_cert)}})
        )
        owner = NotaryPerson("owner", ClientConfig(config), tmp / "owner-notary")  # type: ignore[arg-type]
        cli_gun = f"{REGISTRY}/{unique_repo('notary-cli')}"
        rollback_gun = f"{REGISTRY}/{unique_repo('notary-rollback')}"
        docker_gun = f"{REGISTRY}/{unique_repo('docker-trust')}"
        for gun in (cli_gun, rollback_gun):
            owner.run("init", gun, "-p")
        docker = DockerTrust(tmp / "docker", stack.url, stack.pki.ca_cert)
        docker("key", "generate", "alice", "--dir", str(tmp))
        docker("signer", "add", "--key", str(tmp / "alice.pub"), "alice", docker_gun)
        shutil.copy(docker.root_file(docker_gun), tmp / "docker-root.json")

        (tmp / "policy.yaml").write_text(
            f"version: 1\nservers:\n  main: {{url: '{proxy.url}'}}\nrules:\n"
            # pinned by root certificate id (`trustctl trust pin GUN --keyid ID`)
            f"  - pattern: '{cli_gun}'\n    server: main\n"
            f"    root_keyid: {owner.root_cert_id(cli_gun)}\n"
            f"  - pattern: '{rollback_gun}'\n    server: main\n"
            f"    root_keyid: {owner.root_cert_id(rollback_gun)}\n"
            # pinned by the owner's root.json (`trustctl trust pin GUN root.json`)
            f"  - pattern: '{docker_gun}'\n    server: main\n    root: docker-root.json\n"
            f"    signers: [alice]\n"
            # pinned by hand in the gate's trust dir (`trustctl trust pin GUN --keyid ID`)
            f"  - pattern: '{REGISTRY}/test/by-hand-*'\n    server: main\n"
        )
        pki: DevPKI = ensure_dev_pki(tmp / "gate-pki")
        gate = GateProcess(tmp, tmp / "gate-trust", pki).start()
        s = Signed(stack, proxy, owner, docker, gate, cli_gun, docker_gun, rollback_gun)
        s.digests["cli:v1"] = s.notary_sign(cli_gun, "v1", 0xA1)
        s.digests["cli:v2"] = s.notary_sign(cli_gun, "v2", 0xA2)
        s.digests["rollback:v1"] = s.notary_sign(rollback_gun, "v1", 0xC1)
        docker.delegate_signs(docker_gun, "v1", digest_of(0xB1), 1234)
        s.digests["docker:v1"] = digest_of(0xB1)
        yield s
    finally:
        if gate is not None:
            gate.kill9()
        proxy.server.stop()
        stack.stop()


def denied(result: Any, *needles: str) -> None:
    assert not result.allowed, result
    assert result.message.startswith(DENIED), result.message
    for n in needles:
        assert n in result.message, result.message


def test_a_notary_cli_signed_tag_is_admitted_and_pinned_to_exactly_its_digest(
    signed: Signed,
) -> None:
    gun = signed.cli_gun
    looked_up, _ = signed.owner.lookup(gun, "v1")  # what the notary CLI says was signed
    assert looked_up == signed.digests["cli:v1"]
    result = signed.admit(f"{gun}:v1", "Deployment")
    assert result.allowed, result
    image = result.object["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"{gun}:v1@{looked_up}"
    # the pinned reference passes validation again; another tag of the same repository
    # is pinned to its own digest
    assert signed.admit(image).allowed
    other = signed.admit(f"{gun}:v2")
    assert other.allowed, other
    assert other.object["spec"]["containers"][0]["image"] == f"{gun}:v2@{signed.digests['cli:v2']}"


def test_a_docker_trust_signed_tag_is_admitted_and_pinned_to_exactly_its_digest(
    signed: Signed,
) -> None:
    """Signed by the delegate alice into targets/releases (Docker's role), as
    ``docker trust sign`` does; the rule requires the signer alice."""
    gun = signed.docker_gun
    inspect = json.loads(signed.docker("inspect", gun))
    (tag,) = inspect[0]["SignedTags"]
    assert tag["SignedTag"] == "v1" and [s for s in tag["Signers"]] == ["alice"]
    result = signed.admit(f"{gun}:v1")
    assert result.allowed, result
    image = result.object["spec"]["containers"][0]["image"]
    assert image == f"{gun}:v1@sha256:{tag['Digest']}" == f"{gun}:v1@{signed.digests['docker:v1']}"


@pytest.mark.parametrize(
    ("which", "image", "code"),
    [
        pytest.param("cli", "{gun}:v9", "NOT_SIGNED", id="notary-cli-unsigned-tag"),
        pytest.param("docker", "{gun}:v9", "NOT_SIGNED", id="docker-trust-unsigned-tag"),
        pytest.param(
            "cli",
            "{gun}:v1@" + digest_of(0xEE),
            "DIGEST_MISMATCH",
            id="notary-cli-tag-with-another-digest",
        ),
        pytest.param(
            "docker",
            "{gun}:v1@" + digest_of(0xEE),
            "DIGEST_MISMATCH",
            id="docker-trust-tag-with-another-digest",
        ),
    ],
)
def test_an_unsigned_reference_in_a_notary_repository_is_denied(
    signed: Signed, which: str, image: str, code: str
) -> None:
    gun = signed.cli_gun if which == "cli" else signed.docker_gun
    image = image.format(gun=gun)
    denied(signed.admit(image), f"image {image} (repository {gun})", code)


def test_a_rollback_of_notary_metadata_across_a_gate_restart_is_refused(signed: Signed) -> None:
    gun, gate, proxy = signed.rollback_gun, signed.gate, signed.proxy
    timestamp = f"/v2/{gun}/_trust/tuf/timestamp.json"
    assert signed.admit(f"{gun}:v1").allowed
    old_timestamp = proxy.served[timestamp][-1]
    v2 = signed.notary_sign(gun, "v2", 0xC2)
    result = signed.admit(f"{gun}:v2")  # the gate now trusts the newer state
    assert result.allowed, result
    assert result.object["spec"]["containers"][0]["image"] == f"{gun}:v2@{v2}"
    assert proxy.served[timestamp][-1] != old_timestamp

    gate.kill9()
    proxy.replay[timestamp] = old_timestamp  # an attacker replays what v1 was admitted with
    try:
        gate.start()
        denied(signed.admit(f"{gun}:v1"), f"repository {gun}", "ROLLBACK", "rollback attack")
    finally:
        del proxy.replay[timestamp]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("garbage-state", id="versions-unreadable"),
        pytest.param("no-state", id="versions-missing"),
        pytest.param("garbage-root", id="trusted-root-unreadable"),
    ],
)
def test_corrupt_notary_state_next_to_a_cache_stops_allows_until_reinitialised(
    signed: Signed, damage: str
) -> None:
    """With the versions it verified gone, a restarted gate would take a replayed older
    timestamp: the state must read back whole, or every request is denied."""
    gun, gate, proxy = signed.new_repository(damage), signed.gate, signed.proxy
    timestamp = f"/v2/{gun}/_trust/tuf/timestamp.json"
    assert signed.admit(f"{gun}:v1").allowed
    old_timestamp = proxy.served[timestamp][-1]
    signed.notary_sign(gun, "v2", 0xD2)
    assert signed.admit(f"{gun}:v2").allowed
    gate.kill9()

    state = gate.trust_dir / "tuf" / gun / "notary"
    assert (state / "state.json").exists() and (state / "root.json").exists()
    if damage == "no-state":
        (state / "state.json").unlink()
    else:
        (state / f"{damage.split('-')[1]}.json").write_bytes(b"{ not json")
    proxy.replay[timestamp] = old_timestamp  # with the versions gone, the replay would pass
    try:
        gate.start()
        for _ in range(2):  # every request, not just the first
            denied(
                signed.admit(f"{gun}:v1"), f"repository {gun}", "STATE_CORRUPT", "re-initialises"
            )
    finally:
        del proxy.replay[timestamp]
    # the operator re-initialises (pins again: the state starts over from the pin)
    signed.pin_by_hand(gun)
    assert signed.admit(f"{gun}:v2").allowed


def test_concurrent_requests_for_a_cold_notary_repository_fetch_each_file_once(
    signed: Signed,
) -> None:
    """Ten tags of one repository not verified yet, in one Deployment: the gate verifies
    them at once, and the Verifier's single flight asks the trust server once for each
    of root, snapshot and targets (the timestamp once per check: the first, and any
    renewal of a cached verdict)."""
    gun = signed.new_repository("cold")
    prefix = f"/v2/{gun}/_trust/tuf/"
    before = {p: len(v) for p, v in signed.proxy.served.items() if p.startswith(prefix)}
    assert before == {}  # `trustctl trust pin` asked the server directly, not the proxy
    containers = [{"name": f"c{i}", "image": f"{gun}:v{i}"} for i in range(1, 11)]
    result = signed.gate.api().admit(workload("Deployment", {"containers": containers}))
    assert not result.allowed and "NOT_SIGNED" in result.message  # v2..v10 are not signed
    assert f"image {gun}:v1 " not in result.message  # v1 is
    fetched = {
        p[len(prefix) :]: len(v) for p, v in signed.proxy.served.items() if p.startswith(prefix)
    }
    by_kind = {name.split(".")[0]: n for name, n in fetched.items()}
    assert by_kind["root"] == by_kind["snapshot"] == by_kind["targets"] == 1, fetched
    assert set(by_kind) == {"root", "timestamp", "snapshot", "targets"}, fetched


def test_the_verifiers_clock_refuses_a_frozen_notary_repository(
    signed: Signed, tmp_path: Path
) -> None:
    """The Verifier's clock is the time for every check of Notary's workflow: past the
    timestamp's expiry, a repository whose server serves nothing newer is refused as a
    freeze, from memory and after a refresh alike; back in time it answers again."""
    gun = signed.cli_gun
    trust_dir = tmp_path / "library-trust"
    now = [datetime.now(UTC)]
    subprocess.run(
        [sys.executable, "-m", "trustctl", "--trust-dir", str(trust_dir), "--server",
         signed.proxy.url, "trust", "pin", gun, "--keyid", signed.owner.root_cert_id(gun)],
        capture_output=True, cwd=ROOT, timeout=60, check=True,
    )  # fmt: skip
    verifier = Verifier(signed.proxy.url, trust_dir=trust_dir, clock=lambda: now[0])
    first = verifier.verify(f"{gun}:v1")
    assert first.digest == signed.digests["cli:v1"]
    assert first.versions is not None and verifier.trusted_versions(gun) == first.versions
    assert verifier.verify(f"{gun}:v1").digest == first.digest
    assert verifier.stats.reused == 1  # the same timestamp: answered from memory
    now[0] = first.expires["timestamp"] + timedelta(seconds=1)
    for _ in range(2):
        with pytest.raises(StaleMetadataError) as e:
            verifier.verify(f"{gun}:v1")
        assert "timestamp" in str(e.value)
    now[0] = datetime.now(UTC)
    assert verifier.verify(f"{gun}:v1").digest == first.digest
