"""python-tuf decides: the trust decisions issue 9 found wrong, end to end.

Real trust server and signer processes (HTTPS, mutual TLS), a real docker-registry,
``python -m trustctl`` as a subprocess and :class:`trustctl.api.Verifier` as a
long-lived library client. Where a case needs metadata trustctl would never write
(two delegators of one role, an entry without sha256), the test builds a repository
with python-tuf's metadata API and its own keys and publishes it through the real
server, which accepts it: it is valid TUF.

* case 2: a role verified through one delegator is not trusted through another;
* case 3: a long-lived Verifier sees root N+1 while the timestamp bytes stay the same;
* case 4: an entry without a sha256 hash is reported as what it is, not as tampering.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3
from securesystemslib.signer import CryptoSigner, Signer
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Root,
    TargetFile,
    Targets,
)

from tests.procs import Stack
from tests.registry import RegistryProcess
from tests.trustctl.httpd import Reply, Request, Server, serve
from tests.trustctl.support import unique_repo
from tests.trustctl.test_e2e import User, handoff_root, push, stack  # noqa: F401 (fixture)
from trustctl.api import Verifier
from trustctl.client import ServerClient
from trustctl.errors import UnmatchableTargetError, UntrustedSignatureError
from trustctl.transport import HttpTransport

pytestmark = pytest.mark.e2e

EXPIRES = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)


@pytest.fixture
def users(stack: Stack, tmp_path: Path) -> dict[str, User]:  # noqa: F811
    return {n: User(n, tmp_path / n, stack.url, stack.pki.ca_cert) for n in ("owner", "deployer")}


def client(stack: Stack) -> ServerClient:  # noqa: F811
    return ServerClient(stack.url, HttpTransport(ca_file=str(stack.pki.ca_cert)))


def entry(registry: RegistryProcess, repo: str, tag: str) -> tuple[str, TargetFile]:
    """Push an image; its target entry as trustctl signs it (sha256 of the manifest)."""
    gun, digest = push(registry, repo, tag, f"{repo}:{tag}".encode())
    manifest = urllib3.request(
        "GET",
        f"{registry.url}/v2/{repo}/manifests/{digest}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    ).data
    target = TargetFile(len(manifest), {"sha256": digest.removeprefix("sha256:")}, tag)
    return gun, target


def publish_crafted(
    stack: Stack,  # noqa: F811
    gun: str,
    targets: Targets,
    delegated: dict[str, tuple[Targets, Signer]],
    tmp: Path,
) -> Path:
    """A repository with our own root and targets keys (the server's online keys for
    timestamp and snapshot), published through the real server; returns its root file."""
    server = client(stack)
    root_key, targets_key = CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ecdsa()
    root = Root(expires=EXPIRES, consistent_snapshot=True)
    root.add_key(root_key.public_key, "root")
    root.add_key(targets_key.public_key, "targets")
    root.add_key(server.server_key(gun, "timestamp"), "timestamp")
    root.add_key(server.server_key(gun, "snapshot"), "snapshot")
    root_md = Metadata(root)
    root_md.sign(root_key)
    targets_md = Metadata(targets)
    targets_md.sign(targets_key)
    files = {"root": root_md.to_bytes(), "targets": targets_md.to_bytes()}
    for role, (signed, signer) in delegated.items():
        md = Metadata(signed)
        md.sign(signer)
        files[role] = md.to_bytes()
    server.publish(gun, files)
    path = tmp / "root.json"
    path.write_bytes(root_md.to_bytes())
    return path


def verifier(user: User, server: str | None = None) -> Verifier:
    return Verifier(server or user.server, trust_dir=user.trust_dir, tls_ca=str(user.ca))


# --- case 2 --------------------------------------------------------------------------


def test_case2_a_role_verified_through_one_delegator_is_not_trusted_through_another(
    stack: Stack,  # noqa: F811
    registry: RegistryProcess,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    """``targets`` delegates ``targets/a`` and ``targets/a/r`` (key X); ``targets/a``
    delegates ``targets/a/r`` too, for ``p-*``, to key R. ``targets/a/r`` is signed by
    X only: ``q1`` (reached through ``targets``) is signed; ``p-1`` is reached through
    ``targets/a``, whose keys did not sign the role, so a TUF client refuses it, even
    after the same role verified through ``targets`` (for ``q1``)."""
    deployer = users["deployer"]
    repo = unique_repo("twodelegators")
    gun, q1 = entry(registry, repo, "q1")
    _, p1 = entry(registry, repo, "p-1")
    key_a, key_x, key_r = (CryptoSigner.generate_ecdsa() for _ in range(3))
    targets = Targets(expires=EXPIRES)
    targets.delegations = Delegations(
        keys={k.public_key.keyid: k.public_key for k in (key_a, key_x)},
        roles={
            "targets/a": DelegatedRole("targets/a", [key_a.public_key.keyid], 1, False, ["*"]),
            "targets/a/r": DelegatedRole("targets/a/r", [key_x.public_key.keyid], 1, False, ["*"]),
        },
    )
    role_a = Targets(expires=EXPIRES)
    role_a.delegations = Delegations(
        keys={key_r.public_key.keyid: key_r.public_key},
        roles={
            "targets/a/r": DelegatedRole("targets/a/r", [key_r.public_key.keyid], 1, False, ["p-*"])
        },
    )
    role_r = Targets(expires=EXPIRES, targets={"q1": q1, "p-1": p1})
    root_file = publish_crafted(
        stack,
        gun,
        targets,
        {"targets/a": (role_a, key_a), "targets/a/r": (role_r, key_x)},
        tmp_path,
    )
    deployer.ok("trust", "pin", gun, str(root_file))

    assert (
        deployer.ok("--json", "verify", f"{gun}:q1").json["digest"]
        == f"sha256:{q1.hashes['sha256']}"
    )
    refused = deployer.run("--json", "verify", f"{gun}:p-1")
    assert refused.code == 1 and refused.json["error"]["code"] == "BAD_SIGNATURE", str(refused)

    listed = deployer.ok("--json", "inspect", gun).json
    assert [t["tag"] for t in listed["tags"]] == ["q1"], listed

    api = verifier(deployer)
    assert api.verify(f"{gun}:q1").report.role == "targets/a/r"
    with pytest.raises(UntrustedSignatureError):
        api.verify(f"{gun}:p-1")  # the role is verified per delegator, not by name
    assert api.stats.reused >= 1


# --- case 3 --------------------------------------------------------------------------


@pytest.fixture
def caching_proxy(stack: Stack) -> Iterator[tuple[Server, Callable[[bool], None]]]:  # noqa: F811
    """A loopback HTTP front of the trust server that can keep serving one copy of
    every ``timestamp.json`` (a cache in front of the server, or a freeze)."""
    pool = urllib3.PoolManager(ca_certs=str(stack.pki.ca_cert))
    frozen: dict[str, bytes] = {}
    state = {"freeze": False}

    def handle(req: Request) -> Reply:
        if state["freeze"] and req.path in frozen:
            return Reply(200, {"Content-Type": "application/json"}, frozen[req.path])
        headers = {k: v for k, v in req.headers.items() if k in ("authorization", "accept")}
        resp = pool.request(
            req.method, f"{stack.url}{req.path}", headers=headers, body=req.body or None
        )
        if req.path.endswith("/timestamp.json") and resp.status == 200:
            frozen[req.path] = resp.data
        keep = {
            k: v
            for k, v in resp.headers.items()
            if k.lower() in ("content-type", "www-authenticate")
        }
        return Reply(resp.status, keep, resp.data)

    server = serve(handle)

    def freeze(on: bool) -> None:
        state["freeze"] = on

    yield server, freeze
    server.stop()


def test_case3_a_long_lived_verifier_sees_a_new_root_while_the_timestamp_stays_the_same(
    registry: RegistryProcess,
    users: dict[str, User],
    caching_proxy: tuple[Server, Callable[[bool], None]],
) -> None:
    """Root v2 replaces the targets key. The deployer's view of the server keeps the
    timestamp it had (a cache in front of the server), so the old targets, signed by
    the revoked key, is all it gets: a fresh process refuses it, and so must a
    Verifier that verified v1 before the rotation."""
    owner, deployer = users["owner"], users["deployer"]
    proxy, freeze = caching_proxy
    gun, digest = push(registry, unique_repo("rootrotation"), "v1", b"rotate under a cache")
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:v1")
    handoff_root(owner, gun, deployer)
    api = verifier(deployer, proxy.url)
    assert api.verify(f"{gun}:v1").digest == digest

    freeze(True)
    owner.ok("key", "rotate", gun, "targets")  # root v2: the old targets key is revoked
    with pytest.raises(UntrustedSignatureError):
        api.verify(f"{gun}:v1")
    fresh = deployer.run("--json", "verify", f"{gun}:v1", env={"TRUSTCTL_SERVER": proxy.url})
    assert fresh.code == 1 and fresh.json["error"]["code"] == "BAD_SIGNATURE", str(fresh)
    with pytest.raises(UntrustedSignatureError):  # after another process stored root v2 too
        api.verify(f"{gun}:v1")

    freeze(False)  # the cache catches up: targets re-signed with the new key
    assert api.verify(f"{gun}:v1").digest == digest


# --- case 4 --------------------------------------------------------------------------


def test_case4_an_entry_without_sha256_cannot_be_matched_and_is_not_called_tampering(
    stack: Stack,  # noqa: F811
    registry: RegistryProcess,
    users: dict[str, User],
    tmp_path: Path,
) -> None:
    """Valid TUF (a TUF client accepts the entry), signed with sha512 only: nothing to
    compare with a manifest digest, which is what trustctl says (no attack claimed)."""
    deployer = users["deployer"]
    repo = unique_repo("sha512only")
    gun, signed = entry(registry, repo, "v1")
    manifest_sha512 = hashlib.sha512(b"the manifest as signed").hexdigest()
    only_sha512 = TargetFile(signed.length, {"sha512": manifest_sha512}, "v1")
    root_file = publish_crafted(
        stack, gun, Targets(expires=EXPIRES, targets={"v1": only_sha512}), {}, tmp_path
    )
    deployer.ok("trust", "pin", gun, str(root_file))

    run = deployer.run("--json", "verify", f"{gun}:v1")
    assert run.code == 1, str(run)
    error = run.json["error"]
    assert error["code"] == "NO_SHA256"
    assert "cannot be matched with a manifest digest" in error["message"]
    assert "attack" not in error["message"] and "tamper" not in error["message"]

    listed = deployer.ok("--json", "inspect", gun).json
    assert listed["tags"] == [] and "v1" in listed["unmatchable_tags"]

    with pytest.raises(UnmatchableTargetError):
        verifier(deployer).verify(f"{gun}:v1")
