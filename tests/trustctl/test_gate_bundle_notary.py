"""Offline bundles of repositories signed with the ``notary`` CLI and ``docker trust``.

Real processes on 127.0.0.1: our trust server and signer, the notary CLI 0.7.0 and
``docker trust`` signing into it, and ``trustctl bundle create`` collecting from it.
The gate (the real :class:`~trustctl.gate.serve.GateServer` over TLS, in process, so
its clock is injected) decides from the imported bundle by Notary's workflow; its
policy names a listener on loopback as the trust server, which counts every
connection made to it.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.notary_peer import NotaryPerson, require_notary
from tests.procs import ROOT, Stack, start_stack
from tests.secrets import remember
from tests.trustctl.gatekit import GateUnderTest, start_gate, workload
from tests.trustctl.httpd import Reply, Request, Server, serve
from tests.trustctl.support import unique_repo
from tests.trustctl.test_gate_notary import ClientConfig, DockerTrust, digest_of
from trustctl.gate.bundle import BundleRefusedError, BundleStore, BundleTransport, Manifest

pytestmark = pytest.mark.e2e

REGISTRY = "127.0.0.1:5999"
KEY = Ed25519PrivateKey.generate()
PASSPHRASE = remember("notary bundle key passphrase, test only")
_HEX = re.compile(r"\.[0-9a-f]{64}\.json$")


def rfc3339(text: str) -> datetime:
    """An RFC 3339 time as Go writes it (up to nanoseconds, ``Z`` or an offset)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", text)
    assert m, text
    frac = (m.group(2) or ".0")[:7].ljust(7, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + zone).astimezone(UTC)


@dataclass
class Bundled:
    """The module's repositories, a bundle of them and the offline gate."""

    tmp: Path
    stack: Stack
    owner: NotaryPerson
    docker: DockerTrust
    cli_gun: str
    docker_gun: str
    rollback_gun: str
    rotate_gun: str
    digests: dict[str, str]
    bundle: bytes
    store: BundleStore
    gate: GateUnderTest
    counter: Server
    calls: list[str]  # every request the policy's trust server address received

    @property
    def gate_trust(self) -> Path:
        return self.tmp / "gate-trust"

    def create(
        self, *args: str, sequence: int, budget: str = "7d"
    ) -> subprocess.CompletedProcess[str]:
        """``trustctl bundle create`` against the trust server, as an operator runs it."""
        out = self.tmp / f"bundle-{sequence}.tgz"
        guns = [
            a
            for g in (args or (self.cli_gun, self.docker_gun, self.rollback_gun, self.rotate_gun))
            for a in ("--gun", g)
        ]
        return subprocess.run(
            [sys.executable, "-m", "trustctl", "--trust-dir", str(self.tmp / "creator-trust"),
             "--server", self.stack.url, "--tls-ca", str(self.stack.pki.ca_cert), "bundle", "create",
             *guns, "--key", str(self.tmp / "bundle-key.pem"), "--sequence", str(sequence),
             "--budget", budget, "-o", str(out)],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
            env={**_env(), "TRUSTCTL_BUNDLE_PASSPHRASE": PASSPHRASE},
        )  # fmt: skip

    def served(self, gun: str, name: str) -> bytes | None:
        """What the trust server serves for ``name`` of ``gun`` (None: 404)."""
        pool = urllib3.PoolManager(ca_certs=str(self.stack.pki.ca_cert), retries=False)
        r = pool.request("GET", f"{self.stack.url}/v2/{gun}/_trust/tuf/{name}")
        return r.data if r.status == 200 else None

    def admit(self, image: str) -> Any:
        return self.gate.admit(workload("Pod", {"containers": [{"name": "a", "image": image}]}))


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("NOTARY_", "TRUSTCTL_"))}


def members(bundle: bytes) -> dict[str, bytes]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        for info in tar:
            f = tar.extractfile(info)
            assert f is not None
            out[info.name] = f.read()
    return out


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bundled]:
    require_notary()
    tmp = tmp_path_factory.mktemp("bundle-notary")
    stack = start_stack(tmp / "stack")
    calls: list[str] = []

    def count(req: Request) -> Reply:
        calls.append(req.path)
        return Reply(503)

    counter = serve(count)
    gate: GateUnderTest | None = None
    try:
        config = tmp / "notary-client.json"
        config.write_text(
            json.dumps({"remote_server": {"url": stack.url, "root_ca": str(stack.pki.ca_cert)}})
        )
        owner = NotaryPerson("owner", ClientConfig(config), tmp / "owner-notary")  # type: ignore[arg-type]
        cli_gun = f"{REGISTRY}/{unique_repo('bundle-cli')}"
        rollback_gun = f"{REGISTRY}/{unique_repo('bundle-rollback')}"
        rotate_gun = f"{REGISTRY}/{unique_repo('bundle-rotate')}"
        docker_gun = f"{REGISTRY}/{unique_repo('bundle-docker')}"
        digests = {}
        for gun, n in ((cli_gun, 0xA1), (rollback_gun, 0xC1), (rotate_gun, 0xE1)):
            owner.run("init", gun, "-p")
            owner.run("addhash", gun, "v1", "1234", "--sha256", digest_of(n)[7:], "-p")
            digests[gun] = digest_of(n)
        docker = DockerTrust(tmp / "docker", stack.url, stack.pki.ca_cert)
        docker("key", "generate", "alice", "--dir", str(tmp))
        docker("signer", "add", "--key", str(tmp / "alice.pub"), "alice", docker_gun)
        docker.delegate_signs(docker_gun, "v1", digest_of(0xB1), 1234)
        digests[docker_gun] = digest_of(0xB1)
        shutil.copy(docker.root_file(docker_gun), tmp / "docker-root.json")

        (tmp / "bundle-key.pem").write_bytes(KEY.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSPHRASE.encode())))  # fmt: skip
        (tmp / "policy.yaml").write_text(
            f"version: 1\nservers:\n  main: {{url: '{counter.url}'}}\nrules:\n"
            f"  - pattern: '{cli_gun}'\n    server: main\n"
            f"    root_keyid: {owner.root_cert_id(cli_gun)}\n"
            f"  - pattern: '{rollback_gun}'\n    server: main\n"
            f"    root_keyid: {owner.root_cert_id(rollback_gun)}\n"
            f"  - pattern: '{rotate_gun}'\n    server: main\n"
            f"    root_keyid: {owner.root_cert_id(rotate_gun)}\n"
            f"  - pattern: '{docker_gun}'\n    server: main\n    root: docker-root.json\n"
            f"    signers: [alice]\n"
        )
        store = BundleStore(tmp / "bundles", [KEY.public_key()])
        gate = start_gate(tmp, tmp / "gate-trust", BundleTransport(store), bundle=store)
        s = Bundled(tmp, stack, owner, docker, cli_gun, docker_gun, rollback_gun, rotate_gun, digests, b"",
                    store, gate, counter, calls)  # fmt: skip
        created = s.create(sequence=1)
        assert created.returncode == 0, created.stdout + created.stderr
        s.bundle = (tmp / "bundle-1.tgz").read_bytes()
        yield s
    finally:
        if gate is not None:
            gate.stop()
        counter.stop()
        stack.stop()


@pytest.fixture(scope="module")
def offline(bundled: Bundled) -> Bundled:
    """The module's bundle imported into the gate's bundle store."""
    if bundled.store.current() is None:
        bundled.store.import_bundle(bundled.bundle)
    return bundled


def test_bundle_create_writes_each_notary_repositorys_files_byte_exact(bundled: Bundled) -> None:
    """The files Notary's workflow reads (root.json, the timestamp, the snapshot and
    targets by hash, and docker trust's delegated roles), exactly as served."""
    got = members(bundled.bundle)
    manifest = Manifest.parse(got.pop("manifest.json"))
    got.pop("manifest.sig")
    by_gun: dict[str, dict[str, bytes]] = {}
    for name, data in got.items():
        rest = name.removeprefix("metadata/")
        gun = next(g for g in (bundled.cli_gun, bundled.docker_gun, bundled.rollback_gun, bundled.rotate_gun)
                   if rest.startswith(g + "/"))  # fmt: skip
        by_gun.setdefault(gun, {})[rest[len(gun) + 1 :]] = data
    assert set(manifest.files) == {n.removeprefix("metadata/") for n in got}
    cli = by_gun[bundled.cli_gun]
    kinds = {_HEX.sub("", n) for n in cli}
    assert kinds == {"root.json", "timestamp.json", "snapshot", "targets"}, sorted(cli)
    docker = {_HEX.sub("", n) for n in by_gun[bundled.docker_gun]}
    assert {"targets%2Freleases", "targets%2Falice"} <= docker, sorted(docker)
    for gun, files in by_gun.items():
        for name, data in files.items():
            assert data == bundled.served(gun, name.replace("%2F", "/")), (gun, name)


def test_not_after_is_the_earliest_expiry_inside_or_the_budget(bundled: Bundled) -> None:
    long = bundled.create(bundled.cli_gun, sequence=90, budget="90d")
    assert long.returncode == 0, long.stderr
    got = members((bundled.tmp / "bundle-90.tgz").read_bytes())
    manifest = Manifest.parse(got.pop("manifest.json"))
    got.pop("manifest.sig")
    expiries = [rfc3339(json.loads(data)["signed"]["expires"]) for data in got.values()]
    assert manifest.not_after == min(expiries).replace(microsecond=0)
    assert manifest.not_after < manifest.issued_at + timedelta(days=90)
    short = bundled.create(bundled.cli_gun, sequence=91, budget="2h")
    assert short.returncode == 0, short.stderr
    hours = Manifest.parse(members((bundled.tmp / "bundle-91.tgz").read_bytes())["manifest.json"])
    assert hours.not_after == hours.issued_at + timedelta(hours=2) < min(expiries)


def test_the_offline_gate_admits_signed_tags_pinned_to_their_digest_with_no_connection(
    offline: Bundled,
) -> None:
    s = offline
    for gun in (s.cli_gun, s.docker_gun):
        result = s.admit(f"{gun}:v1")
        assert result.allowed, result
        assert result.object["spec"]["containers"][0]["image"] == f"{gun}:v1@{s.digests[gun]}"
        denied = s.admit(f"{gun}:v9")
        assert not denied.allowed and "NOT_SIGNED" in denied.message, denied
    assert s.gate.transport.calls > 0  # every file came through the bundle's transport
    assert s.calls == []


def test_allowed_before_not_after_and_denied_after_it(offline: Bundled) -> None:
    s = offline
    manifest = s.store.current()
    assert manifest is not None
    now = datetime.now(UTC)
    try:
        s.gate.clock.offset = manifest.not_after - now - timedelta(seconds=5)
        late = s.admit(f"{s.cli_gun}:v1")
        assert late.allowed, late
        assert any(f"bundle {manifest.sequence} goes stale" in w for w in late.warnings)
        s.gate.clock.offset = manifest.not_after - now + timedelta(seconds=1)
        stale = s.admit(f"{s.cli_gun}:v1")
        assert not stale.allowed and "BUNDLE_STALE" in stale.message, stale
    finally:
        s.gate.clock.offset = timedelta(0)
    assert s.admit(f"{s.cli_gun}:v1").allowed


def _rewrite(bundle: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as dst:
        for name, data in members(bundle).items():
            new = change(name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(name)
            info.size = len(new)
            dst.addfile(info, io.BytesIO(new))
    return out.getvalue()


def _flip_a_byte_of(role: str) -> Callable[[str, bytes], bytes]:
    def change(name: str, data: bytes) -> bytes:
        if f"/{role}" not in name:
            return data
        return data.replace(b'"version"', b'"version" ', 1)

    return change


def _resequenced(bundle: bytes, sequence: int) -> bytes:
    """The same files, in a bundle signed by the bundle key with another sequence."""
    from trustctl.gate.bundle import create_bundle

    files = {}
    for name, data in members(bundle).items():
        if name.startswith("metadata/"):
            files[name.removeprefix("metadata/")] = data
    return create_bundle(_by_gun(files), key=KEY, sequence=sequence)


def _by_gun(files: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    from urllib.parse import unquote

    out: dict[str, dict[str, bytes]] = {}
    for key, data in files.items():
        gun, _, name = key.rpartition("/")
        out.setdefault(gun, {})[unquote(name)] = data
    return out


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(lambda b: _rewrite(b, _flip_a_byte_of("timestamp.json")), "tampered",
                     id="tampered-timestamp"),
        pytest.param(lambda b: _rewrite(b, _flip_a_byte_of("targets%2Freleases")), "tampered",
                     id="tampered-delegated-role"),
        pytest.param(lambda b: _rewrite(b, _flip_a_byte_of("root.json")), "tampered",
                     id="tampered-root"),
        pytest.param(lambda b: _resequenced(b, 1), "not above", id="older-sequence"),
        pytest.param(lambda b: _rewrite(b, lambda n, d: None if n == "manifest.sig" else d),
                     "no signed manifest", id="unsigned-manifest"),
    ],
)  # fmt: skip
def test_a_refused_bundle_changes_nothing(
    offline: Bundled, make: Callable[[bytes], bytes], words: str
) -> None:
    s = offline
    before = s.store.current()
    assert before is not None
    listing = sorted(p.relative_to(s.store.directory) for p in s.store.directory.rglob("*"))
    state = sorted((p.relative_to(s.gate_trust), p.read_bytes())
                   for p in s.gate_trust.rglob("*") if p.is_file())  # fmt: skip
    with pytest.raises(BundleRefusedError, match=words):
        s.store.import_bundle(make(s.bundle))
    assert s.store.current() == before
    assert sorted(p.relative_to(s.store.directory) for p in s.store.directory.rglob("*")) == listing
    assert sorted((p.relative_to(s.gate_trust), p.read_bytes())
                  for p in s.gate_trust.rglob("*") if p.is_file()) == state  # fmt: skip
    assert s.admit(f"{s.docker_gun}:v1").allowed


def test_an_older_notary_state_in_a_newer_bundle_is_refused_as_a_rollback(offline: Bundled) -> None:
    """The bundle key signs a higher sequence over older Notary files (a bundle made
    from a replayed server, or the old bundle re-signed): the import passes, and the
    gate's Notary state, ratcheted by the newer bundle, refuses it."""
    s = offline
    gun = s.rollback_gun
    s.owner.run("addhash", gun, "v2", "1234", "--sha256", digest_of(0xC2)[7:], "-p")
    current = s.store.current()
    assert current is not None
    newer = s.create(sequence=current.sequence + 1)
    assert newer.returncode == 0, newer.stderr
    s.store.import_bundle((s.tmp / f"bundle-{current.sequence + 1}.tgz").read_bytes())
    v2 = s.admit(f"{gun}:v2")
    assert v2.allowed, v2
    assert v2.object["spec"]["containers"][0]["image"] == f"{gun}:v2@{digest_of(0xC2)}"
    s.store.import_bundle(_resequenced(s.bundle, current.sequence + 2))
    replayed = s.admit(f"{gun}:v1")
    assert not replayed.allowed
    assert "ROLLBACK" in replayed.message and "rollback attack" in replayed.message, replayed
    _restore(s)
    assert s.admit(f"{gun}:v2").allowed


def _trusted_root_version(s: Bundled, gun: str) -> int:
    root = json.loads((s.gate_trust / "tuf" / gun / "notary" / "root.json").read_bytes())
    return int(root["signed"]["version"])


def test_root_rotations_between_bundles_are_followed_through_the_older_roots(
    offline: Bundled,
) -> None:
    """The gate verified root v1; the owner rotates the server-held snapshot and
    timestamp keys (root v2, then v3). The next bundle holds 2.root.json, which the
    gate walks through to v3; a bundle without it cannot be followed (refused as
    tampered), and the gate stays on v1."""
    s = offline
    gun = s.rotate_gun
    current = s.store.current()
    assert current is not None
    first = s.create(sequence=current.sequence + 1)
    assert first.returncode == 0, first.stderr
    s.store.import_bundle((s.tmp / f"bundle-{current.sequence + 1}.tgz").read_bytes())
    assert s.admit(f"{gun}:v1").allowed
    assert _trusted_root_version(s, gun) == 1
    s.owner.run("key", "rotate", gun, "snapshot", "-r")
    s.owner.run("key", "rotate", gun, "timestamp", "-r")
    s.owner.run("addhash", gun, "v2", "1234", "--sha256", digest_of(0xE2)[7:], "-p")
    rotated = s.create(gun, sequence=current.sequence + 2)
    assert rotated.returncode == 0, rotated.stderr
    bundle = (s.tmp / f"bundle-{current.sequence + 2}.tgz").read_bytes()
    names = {n.rsplit("/", 1)[1] for n in members(bundle) if n.startswith("metadata/")}
    assert {"root.json", "1.root.json", "2.root.json"} <= names, sorted(names)
    assert json.loads(members(bundle)[f"metadata/{gun}/root.json"])["signed"]["version"] == 3

    def without_v2(name: str, data: bytes) -> bytes | None:
        return None if name.endswith("/2.root.json") else data

    s.store.import_bundle(_resequenced(_rewrite(bundle, without_v2), current.sequence + 3))
    gap = s.admit(f"{gun}:v2")
    assert not gap.allowed and "TAMPERED" in gap.message and "root v2" in gap.message, gap
    assert _trusted_root_version(s, gun) == 1
    s.store.import_bundle(_resequenced(bundle, current.sequence + 4))
    result = s.admit(f"{gun}:v2")
    assert result.allowed, result
    assert result.object["spec"]["containers"][0]["image"] == f"{gun}:v2@{digest_of(0xE2)}"
    assert _trusted_root_version(s, gun) == 3
    _restore(s)


def _restore(s: Bundled) -> None:
    """Every repository's current files in force again, for the tests that follow."""
    current = s.store.current()
    assert current is not None
    made = s.create(sequence=current.sequence + 1)
    assert made.returncode == 0, made.stderr
    s.store.import_bundle((s.tmp / f"bundle-{current.sequence + 1}.tgz").read_bytes())


def test_gate_serve_decides_a_notary_bundle_in_a_network_namespace_with_no_route(
    bundled: Bundled, tmp_path: Path
) -> None:
    """The real processes: ``trustctl gate import-bundle`` imports the bundle, and
    ``trustctl gate serve --offline-bundle-dir`` runs with loopback only (``unshare
    -n``), pinning the Notary repository from its policy; a listener on the policy's
    trust server address counts no connection."""
    from notary_signer.devcerts import ensure_dev_pki
    from tests.trustctl.test_gate_bundle import DRIVER

    assert shutil.which("unshare") and shutil.which("ip"), "install util-linux and iproute2"
    gun = bundled.cli_gun
    (tmp_path / "bundle.tgz").write_bytes(bundled.bundle)
    (tmp_path / "bundle-pub.pem").write_bytes(KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    imported = subprocess.run(
        [sys.executable, "-m", "trustctl", "gate", "import-bundle", str(tmp_path / "bundle.tgz"),
         "--bundle-dir", str(tmp_path / "bundles"), "--bundle-key", str(tmp_path / "bundle-pub.pem")],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False, env=_env(),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    ensure_dev_pki(tmp_path / "gate-pki")
    (tmp_path / "policy.yaml").write_text(
        f"version: 1\nservers:\n  main: {{url: 'https://127.0.0.1:9443'}}\nrules:\n"
        f"  - pattern: '{gun}'\n    server: main\n"
        f"    root_keyid: {bundled.owner.root_cert_id(gun)}\n"
    )
    (tmp_path / "driver.py").write_text(DRIVER)
    run = subprocess.run(
        ["unshare", "-n", sys.executable, str(tmp_path / "driver.py"), str(ROOT), str(tmp_path),
         "9443", "8443", f"{gun}:v1", f"{gun}:v9"],
        capture_output=True, text=True, timeout=120, check=False, env=_env(),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["allowed"], (out, (tmp_path / "gate.log").read_text()[-2000:])
    assert out["image"] == f"{gun}:v1@{bundled.digests[gun]}"
    assert not out["bad_allowed"] and "NOT_SIGNED" in out["bad_message"]
    assert out["attempts"] == 0
    assert "default" not in out["routes"]
    assert (tmp_path / "gate-trust" / "tuf" / gun / "notary" / "state.json").exists()
