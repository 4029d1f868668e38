"""The attack suite: named scenarios against the real server and signer processes
(HTTPS, mutual TLS, SQLite) and a real TUF client.

Two tables:

* NETWORK: the attacker sits between the deployer and the server (a CDN, a mirror,
  the network) and, in some rows, holds the server's online keys. The client is
  ``trustctl verify`` (python-tuf's ngclient inside). Every row ends with exit code 1,
  an error code that names the attack, and the server's stored state unchanged.
* UPLOAD: the attacker sends metadata to the server. Every row ends with the server's
  named error and the stored state unchanged byte for byte.

Then the scenarios that need their own set-up: freeze (short-lived metadata),
recovery after a targets key compromise, fast-forward recovery after a timestamp key
rotation, the server asking the signer for a targets or root signature, and token
misuse on a server with token authentication.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from securesystemslib.signer import CryptoSigner, Key, Signature
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from notary_server.keycheck import compute_keyid
from notary_signer.client import SignerClient
from notary_signer.crypto import KeyEncryptor
from notary_signer.db import make_engine
from notary_signer.errors import SignerRefusedError
from notary_signer.keystore.sql import SQLKeyStore
from tests.client_view import HTTPSFetcher, judge
from tests.e2e.remote import Remote
from tests.procs import Stack, start_stack
from tests.registry import RegistryProcess, push_image
from tests.secrets import remember, remember_key
from tests.tokens import ISSUER, SERVICE, Issuer, repo_access
from tests.trustctl.support import Mitm, Person, Run, unique_repo
from tests.tufrepo import Owner, target_for
from trustctl.transport import HttpTransport

SIGNER_PASSPHRASE = remember("e2e passphrase, test only")
ATTACK_WORDS = ("attack", "tampered", "forged")

TALLY: dict[str, int] = {"tried": 0, "refused": 0}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("attack-stack"))
    try:
        yield s
    finally:
        s.stop()


def online_signer(stack: Stack, gun: str, role: str) -> CryptoSigner:
    """The attacker's copy of a server-held key (a compromised signer database)."""
    db = stack.signer.env["NOTARY_SIGNER_DATABASE_URL"]
    store = SQLKeyStore(make_engine(db), KeyEncryptor({"NOTARY_SIGNER_DEFAULT": SIGNER_PASSPHRASE}))
    return remember_key(store.signer(store.list(gun, role)[-1].keyid))


# --- the network table ---------------------------------------------------------------


@dataclass
class Ctx:
    stack: Stack
    tmp: Path
    gun: str
    ref: str
    owner: Person
    deployer: Person
    mitm: Mitm
    remote: Remote
    baseline: dict[str, bytes] | None = None

    def mark(self) -> None:
        """The stored state that the attack must leave unchanged."""
        self.baseline = self.remote.current()

    def tuf(self, name: str) -> bytes:
        resp = self.remote.get(name)
        assert resp.status == 200, (name, resp.status)
        return resp.data

    def current_timestamp(self) -> Metadata[Timestamp]:
        return Metadata[Timestamp].from_bytes(self.tuf("timestamp.json"))

    def sign_tag(self, tag: str) -> None:
        image = self.tmp / "image.json"
        digest, size, media = json.loads(image.read_text())
        ok(
            self.owner.run(
                "sign",
                f"{self.gun}:{tag}",
                "--digest",
                digest,
                "--size",
                str(size),
                "--media-type",
                media,
            )
        )


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


@pytest.fixture
def ctx(stack: Stack, registry: RegistryProcess, tmp_path: Path) -> Ctx:
    return make_ctx(stack, registry, tmp_path)


def make_ctx(stack: Stack, registry: RegistryProcess, tmp_path: Path) -> Ctx:
    """A repository created and signed by its owner with trustctl, and a deployer
    who pinned its root and talks to the server through the attacker."""
    repo = unique_repo("attack")
    digest, size, media = push_image(registry.url, repo, "v1", repo.encode())
    (tmp_path / "image.json").write_text(json.dumps([digest, size, media]))
    gun = f"{registry.host}/{repo}"
    ca = str(stack.pki.ca_cert)
    owner = Person(
        "owner",
        tmp_path / "owner",
        HttpTransport(ca_file=ca),
        HttpTransport(),
        server_url=stack.url,
    )
    ok(owner.run("init", gun))
    ok(owner.run("sign", f"{gun}:v1"))
    ok(owner.run("trust", "export", gun, "-o", str(tmp_path / "root.json")))
    mitm = Mitm(HttpTransport(ca_file=ca))
    deployer = Person(
        "deployer", tmp_path / "deployer", mitm, HttpTransport(), server_url=stack.url
    )
    ok(deployer.run("trust", "pin", gun, str(tmp_path / "root.json")))
    ok(deployer.run("verify", f"{gun}:v1"))
    return Ctx(stack, tmp_path, gun, f"{gun}:v1", owner, deployer, mitm, Remote(stack.url, gun, ca))


def _rollback_timestamp(c: Ctx) -> None:
    old = c.mitm.recorded["timestamp.json"][-1]
    c.sign_tag("v2")
    ok(c.deployer.run("verify", c.ref))  # the deployer has seen the newer state
    c.mark()
    c.mitm.replay("/timestamp.json", old)


def _forge_online(c: Ctx, snapshot_edit: Callable[[Snapshot], None]) -> None:
    """The attacker holds the online keys and signs a new snapshot and timestamp."""
    ts = c.current_timestamp()
    snap = Metadata[Snapshot].from_bytes(c.tuf(f"{ts.signed.snapshot_meta.version}.snapshot.json"))
    snapshot_edit(snap.signed)
    snap.signed.version += 1
    snap.sign(online_signer(c.stack, c.gun, "snapshot"))
    ts.signed.snapshot_meta = MetaFile(version=snap.signed.version)
    ts.signed.version += 1
    ts.sign(online_signer(c.stack, c.gun, "timestamp"))
    c.mitm.replay("/timestamp.json", ts.to_bytes())
    c.mitm.replay(f"/{snap.signed.version}.snapshot.json", snap.to_bytes())


def _rollback_snapshot(c: Ctx) -> None:
    c.sign_tag("v2")
    ok(c.deployer.run("verify", c.ref))
    c.mark()
    ts = c.current_timestamp()
    ts.signed.snapshot_meta = MetaFile(version=ts.signed.snapshot_meta.version - 1)
    ts.signed.version += 1
    ts.sign(online_signer(c.stack, c.gun, "timestamp"))
    c.mitm.replay("/timestamp.json", ts.to_bytes())


def _rollback_targets(c: Ctx) -> None:
    """Revoke v1, then point a forged snapshot back at the targets file (or hash bin)
    that still carried it: a mix-and-match with stolen online keys."""
    ok(c.owner.run("revoke", c.ref))
    gone = c.deployer.run("verify", c.ref)
    assert gone.exit_code == 1 and "not signed" in gone.stderr, str(gone)  # the deployer saw it
    c.mark()

    def roll_back(snapshot: Snapshot) -> None:
        name = max(snapshot.meta, key=lambda n: snapshot.meta[n].version)
        assert snapshot.meta[name].version > 1
        snapshot.meta[name] = MetaFile(version=snapshot.meta[name].version - 1)

    _forge_online(c, roll_back)


def _rollback_root(c: Ctx) -> None:
    c.mark()
    c.mitm.replay("/2.root.json", c.tuf("1.root.json"))


def _mix_and_match_without_keys(c: Ctx) -> None:
    c.mark()
    ts = c.current_timestamp()
    name = f"{ts.signed.snapshot_meta.version}.snapshot.json"
    doc = json.loads(c.tuf(name))
    entry = doc["signed"]["meta"]["targets.json"]
    entry["version"] = entry["version"] + 1 if entry["version"] == 1 else 1
    c.mitm.replay(f"/{name}", json.dumps(doc).encode())
    for f in (c.deployer.trust_dir / "tuf").rglob("snapshot.json"):
        f.unlink()


def _unsigned_target(c: Ctx) -> None:
    c.mark()
    snap = Metadata[Snapshot].from_bytes(
        c.tuf(f"{c.current_timestamp().signed.snapshot_meta.version}.snapshot.json")
    )
    name = f"{snap.signed.meta['targets.json'].version}.targets.json"
    md = Metadata[Targets].from_bytes(c.tuf(name))
    md.signed.targets["evil"] = target_for("evil", b"malware")
    c.mitm.replay(f"/{name}", md.to_bytes())
    for f in (c.deployer.trust_dir / "tuf").rglob("targets.json"):
        f.unlink()


def _endless_data(c: Ctx) -> None:
    c.mark()
    c.mitm.replay("/timestamp.json", b"{" + b" " * 200_000 + b"}")


def _root_rotation_without_old_keys(c: Ctx) -> None:
    c.mark()
    root = Metadata[Root].from_bytes(c.tuf("1.root.json"))
    evil = CryptoSigner.generate_ecdsa()
    for keyid in list(root.signed.roles["root"].keyids):
        root.signed.revoke_key(keyid, "root")
    root.signed.add_key(evil.public_key, "root")
    root.signed.version = 2
    root.sign(evil)
    c.mitm.replay("/2.root.json", root.to_bytes())


NETWORK: dict[str, tuple[Callable[[Ctx], None], tuple[str, ...]]] = {
    "rollback: timestamp replayed": (_rollback_timestamp, ("ROLLBACK",)),
    "rollback: snapshot (online keys stolen)": (_rollback_snapshot, ("ROLLBACK",)),
    "rollback: targets (online keys stolen, mix-and-match)": (_rollback_targets, ("ROLLBACK",)),
    "rollback: root replayed as the next version": (_rollback_root, ("ROLLBACK",)),
    "mix-and-match: snapshot edited to another targets version": (
        _mix_and_match_without_keys,
        ("TAMPERED", "BAD_SIGNATURE"),
    ),
    "arbitrary unsigned target injected": (_unsigned_target, ("TAMPERED", "BAD_SIGNATURE")),
    "endless data": (_endless_data, ("TAMPERED",)),
    "root rotation without the previous root's signatures": (
        _root_rotation_without_old_keys,
        ("BAD_SIGNATURE",),
    ),
}


@pytest.mark.parametrize("scenario", NETWORK.values(), ids=NETWORK.keys())
def test_network_attack_is_refused(
    scenario: tuple[Callable[[Ctx], None], tuple[str, ...]], ctx: Ctx
) -> None:
    attack, codes = scenario
    TALLY["tried"] += 1
    attack(ctx)
    run = ctx.deployer.run("--json", "verify", ctx.ref)
    assert run.exit_code == 1, str(run)
    error = run.json["error"]
    assert error["code"] in codes, str(run)
    assert any(w in error["message"] for w in ATTACK_WORDS), error["message"]
    assert ctx.remote.current() == ctx.baseline
    TALLY["refused"] += 1


# --- the upload table ----------------------------------------------------------------


@dataclass
class UploadCtx:
    remote: Remote
    owner: Owner
    alice: CryptoSigner


@pytest.fixture
def upload_ctx(stack: Stack) -> UploadCtx:
    remote = Remote(stack.url, f"127.0.0.1:5000/{unique_repo('upload')}", str(stack.pki.ca_cert))
    owner = remote.new_owner()
    alice = CryptoSigner.generate_ecdsa()
    owner.delegate("targets/alice", [alice], paths=["alice-*"])
    owner.add_tag("v1")
    files = {
        "root": owner.root_bytes(),
        "targets": owner.targets_bytes(),
        "targets/alice": owner.delegated_bytes("targets/alice"),
    }
    assert remote.publish(files).status == 200
    return UploadCtx(remote, owner, alice)


def _upload_unsigned_target(u: UploadCtx) -> dict[str, bytes]:
    u.owner.add_tag("evil")
    return {"targets": u.owner.targets_bytes([CryptoSigner.generate_ecdsa()])}


def _upload_threshold_faked(u: UploadCtx) -> dict[str, bytes]:
    u.owner.bump_root()
    d = copy.deepcopy(u.owner.targets_signer.public_key.to_dict())
    d["keytype"] = "ecdsa-sha2-nistp256"
    twin = Key.from_dict(compute_keyid(Key.from_dict("0", copy.deepcopy(d))), d)
    u.owner.root.keys[twin.keyid] = twin
    u.owner.root.roles["targets"].keyids.append(twin.keyid)
    u.owner.root.roles["targets"].threshold = 2
    u.owner.add_tag("evil")
    md = Metadata(u.owner.targets)
    sig = md.sign(u.owner.targets_signer)
    md.signatures[twin.keyid] = Signature(twin.keyid, sig.signature)
    return {"root": u.owner.root_bytes(), "targets": md.to_bytes()}


def _upload_root_without_old_keys(u: UploadCtx) -> dict[str, bytes]:
    u.owner.rotate_root([CryptoSigner.generate_ecdsa()])
    u.owner.previous_root_signers = []
    return {"root": u.owner.root_bytes()}


def _upload_outside_paths(u: UploadCtx) -> dict[str, bytes]:
    u.owner.add_tag("prod-1", role="targets/alice")
    return {"targets/alice": u.owner.delegated_bytes("targets/alice")}


def _upload_rollback(u: UploadCtx) -> dict[str, bytes]:
    u.owner.targets.version -= 1
    return {"targets": u.owner.targets_bytes()}


def _upload_client_snapshot_mix_and_match(u: UploadCtx) -> dict[str, bytes]:
    snap = Snapshot(
        version=99, expires=u.owner.targets.expires, meta={"targets.json": MetaFile(version=1)}
    )
    return {"snapshot": u.owner.snapshot_bytes(snap, CryptoSigner.generate_ecdsa())}


UPLOAD: dict[str, tuple[Callable[[UploadCtx], dict[str, bytes]], tuple[int, str, str | None]]] = {
    "arbitrary unsigned target": (_upload_unsigned_target, (400, "INVALID_UPDATE", "BAD_TARGETS")),
    "threshold faked: one key under two key ids": (
        _upload_threshold_faked,
        (400, "INVALID_UPDATE", "BAD_KEYS"),
    ),
    "root rotation without the previous root's signatures": (
        _upload_root_without_old_keys,
        (400, "INVALID_UPDATE", "BAD_ROOT"),
    ),
    "delegated signer writes outside its paths": (
        _upload_outside_paths,
        (400, "INVALID_UPDATE", "BAD_TARGETS"),
    ),
    "rollback: targets version replayed": (_upload_rollback, (409, "VERSION", None)),
    "mix-and-match: snapshot pointing at another version": (
        _upload_client_snapshot_mix_and_match,
        (400, "INVALID_UPDATE", "BAD_SNAPSHOT"),
    ),
}


@pytest.mark.parametrize("scenario", UPLOAD.values(), ids=UPLOAD.keys())
def test_upload_attack_is_refused(scenario: Any, upload_ctx: UploadCtx) -> None:
    make, (status, code, reason) = scenario
    TALLY["tried"] += 1
    before = upload_ctx.remote.current()
    resp = upload_ctx.remote.publish(make(upload_ctx))
    err = json.loads(resp.data)["errors"][0]
    assert (resp.status, err["code"]) == (status, code), resp.data
    if reason:
        assert err["detail"]["reason"] == reason
    assert upload_ctx.remote.current() == before
    TALLY["refused"] += 1


# --- scenarios with their own set-up ------------------------------------------------------


def test_freeze_expired_snapshot_then_expired_timestamp(
    registry: RegistryProcess, tmp_path: Path
) -> None:
    """Short-lived metadata: a recorded (timestamp, snapshot) pair replayed later."""
    stack = start_stack(
        tmp_path / "stack",
        timestamp_expiry_hours="0.004",  # 14.4 s
        timestamp_renew_before_hours="0.001",
        snapshot_expiry_days="0.00006",  # 5.2 s
        snapshot_renew_before_days="0.00001",
    )
    try:
        c = make_ctx(stack, registry, tmp_path)
        recorded_ts = c.mitm.recorded["timestamp.json"][-1]
        ts = Metadata[Timestamp].from_bytes(recorded_ts)
        recorded_snap = c.tuf(f"{ts.signed.snapshot_meta.version}.snapshot.json")

        def fresh_deployer(name: str) -> Person:
            mitm = Mitm(HttpTransport(ca_file=str(stack.pki.ca_cert)))
            mitm.replay("/timestamp.json", recorded_ts)
            mitm.replay(f"/{ts.signed.snapshot_meta.version}.snapshot.json", recorded_snap)
            p = Person(name, tmp_path / name, mitm, HttpTransport(), server_url=stack.url)
            ok(p.run("trust", "pin", c.gun, str(tmp_path / "root.json")))
            return p

        for name, wait_until in (("snapshot", 6.0), ("timestamp", 15.0)):
            TALLY["tried"] += 1
            time.sleep(max(0.0, ts.signed.expires.timestamp() - 14.4 + wait_until - time.time()))
            signed_by_owner = {r: c.tuf(f"{r}.json") for r in ("root", "targets")}
            run = fresh_deployer(f"victim-{name}").run("--json", "verify", c.ref)
            assert run.exit_code == 1, str(run)
            assert run.json["error"]["code"] == "STALE"
            assert "freeze attack" in run.json["error"]["message"]
            # (timestamp and snapshot are legitimately renewed meanwhile)
            assert {r: c.tuf(f"{r}.json") for r in ("root", "targets")} == signed_by_owner
            TALLY["refused"] += 1
        ok(c.deployer.run("verify", c.ref))  # without the attacker: fresh data, verify passes
    finally:
        stack.stop()


def test_recovery_after_a_targets_key_compromise(stack: Stack, tmp_path: Path) -> None:
    remote = Remote(
        stack.url, f"127.0.0.1:5000/{unique_repo('compromise')}", str(stack.pki.ca_cert)
    )
    owner = remote.new_owner()
    pinned = owner.root_bytes()
    owner.add_tag("v1")
    assert remote.publish({"root": pinned, "targets": owner.targets_bytes()}).status == 200
    stolen = owner.targets_signer
    owner.rotate_targets(CryptoSigner.generate_ecdsa())  # the owner recovers
    owner.add_tag("v2")
    assert (
        remote.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status == 200
    )
    before = remote.current()

    TALLY["tried"] += 2
    owner.add_tag("evil", b"malware")
    resp = remote.publish(
        {"targets": owner.targets_bytes([stolen])}
    )  # the thief signs a new version
    assert (resp.status, json.loads(resp.data)["errors"][0]["detail"]["reason"]) == (
        400,
        "BAD_TARGETS",
    )
    assert remote.current() == before

    class Thief(HTTPSFetcher):
        def _fetch(self, url: str) -> Iterator[bytes]:
            if url.endswith(".targets.json"):
                return iter([owner.targets_bytes([stolen])])
            return super()._fetch(url)

    from tuf.api.exceptions import DownloadError, RepositoryError

    # refused by size, hash or signature: whichever check the forged file meets first
    with pytest.raises((RepositoryError, DownloadError)):
        judge(
            tmp_path / "client",
            stack.url,
            remote.gun,
            "evil",
            Thief(str(stack.pki.ca_cert)),
            pinned,
        )
    TALLY["refused"] += 2


def test_fast_forward_recovery_after_a_timestamp_key_rotation(stack: Stack, tmp_path: Path) -> None:
    remote = Remote(
        stack.url, f"127.0.0.1:5000/{unique_repo('fastforward')}", str(stack.pki.ca_cert)
    )
    owner = remote.new_owner()
    pinned = owner.root_bytes()
    owner.add_tag("v1")
    assert remote.publish({"root": pinned, "targets": owner.targets_bytes()}).status == 200
    fetcher = HTTPSFetcher(str(stack.pki.ca_cert))
    client_dir = tmp_path / "client"
    assert judge(client_dir, stack.url, remote.gun, "v1", fetcher, pinned)

    # The thief of the timestamp key pushes the client far ahead.
    ts = Metadata[Timestamp].from_bytes(remote.get("timestamp.json").data)
    ts.signed.version = 1_000_000
    ts.sign(online_signer(stack, remote.gun, "timestamp"))

    class Thief(HTTPSFetcher):
        def _fetch(self, url: str) -> Iterator[bytes]:
            return iter([ts.to_bytes()]) if url.endswith("/timestamp.json") else super()._fetch(url)

    assert judge(client_dir, stack.url, remote.gun, "v1", Thief(str(stack.pki.ca_cert)), None)
    from tuf.api.exceptions import BadVersionNumberError

    with pytest.raises(
        BadVersionNumberError
    ):  # the real, lower timestamp now looks like a rollback
        judge(client_dir, stack.url, remote.gun, "v1", fetcher, None)

    # The owner rotates the timestamp key: the client fast-forwards and recovers.
    new = json.loads(remote.pool.request("POST", remote.tuf_url("timestamp.key")).data)
    owner.rotate_timestamp(Key.from_dict(new.pop("keyid"), new))
    assert remote.publish({"root": owner.root_bytes()}).status == 200
    assert judge(client_dir, stack.url, remote.gun, "v1", fetcher, None) is not None
    TALLY["tried"] += 1
    TALLY["refused"] += 1


def test_the_server_cannot_get_targets_or_root_signed(stack: Stack) -> None:
    gun = f"127.0.0.1:5000/{unique_repo('signer')}"
    remote = Remote(stack.url, gun, str(stack.pki.ca_cert))
    key = remote.server_key("timestamp")
    client = SignerClient(
        stack.signer.health_url.rsplit("/", 1)[0],
        ca_file=str(stack.pki.ca_cert),
        cert_file=str(stack.pki.client_cert),
        key_file=str(stack.pki.client_key),
    )
    for payload_type in (Targets, Root):
        TALLY["tried"] += 1
        payload = Metadata(payload_type()).signed_bytes
        with pytest.raises(SignerRefusedError):
            client.sign_payload(key.keyid, gun, "timestamp", payload)
        with pytest.raises(SignerRefusedError):
            client.sign_payload(key.keyid, gun, payload_type.type, payload)
        TALLY["refused"] += 1


MISUSE = {
    "pull token used to push": (lambda i, gun: i.token(repo_access(gun, "pull")), "push"),
    "token for another repository": (
        lambda i, gun: i.token(repo_access(gun + "-other", "push", "pull")),
        "push",
    ),
    "wrong audience": (
        lambda i, gun: i.token(repo_access(gun, "push", "pull"), audience="registry"),
        "push",
    ),
    "expired token": (lambda i, gun: i.token(repo_access(gun, "pull"), expires_in=-300), "read"),
    "no token: key creation": (lambda i, gun: "", "key"),
}


def test_token_misuse_on_a_real_server(tmp_path: Path) -> None:
    issuer = Issuer()
    bundle = issuer.write_bundle(tmp_path / "token-ca.pem")
    stack = start_stack(
        tmp_path / "stack",
        auth_type="token",
        auth_realm="https://127.0.0.1:1/token",
        auth_service=SERVICE,
        auth_issuer=ISSUER,
        auth_root_cert_bundle=str(bundle),
    )
    try:
        gun = "127.0.0.1:5000/tokens/app"
        pool = urllib3.PoolManager(ca_certs=str(stack.pki.ca_cert))
        base = f"{stack.url}/v2/{gun}/_trust/tuf/"

        def call(method: str, name: str, token: str, **kw: Any) -> Any:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            return pool.request(method, base + name, headers=headers, retries=False, **kw)

        admin = issuer.token(repo_access(gun, "*"))
        key = json.loads(call("GET", "timestamp.key", admin).data)
        snap = json.loads(call("GET", "snapshot.key", admin).data)
        owner = Owner(Key.from_dict(key.pop("keyid"), key), Key.from_dict(snap.pop("keyid"), snap))
        owner.add_tag("v1")
        fields = [
            ("files", (r, d, "application/json"))
            for r, d in {"root": owner.root_bytes(), "targets": owner.targets_bytes()}.items()
        ]
        assert call("POST", "", admin, fields=fields).status == 200
        state = lambda: {
            r: call("GET", f"{r}.json", admin).data for r in ("root", "targets", "timestamp")
        }
        before = state()
        keys_before = len(
            SQLKeyStore(
                make_engine(stack.signer.env["NOTARY_SIGNER_DATABASE_URL"]), KeyEncryptor({})
            ).list("127.0.0.1:5000/tokens/new", "timestamp")
        )

        owner.add_tag("v2")
        push_fields = [("files", ("targets", owner.targets_bytes(), "application/json"))]
        for name, (make, action) in MISUSE.items():
            TALLY["tried"] += 1
            token = make(issuer, gun)
            if action == "push":
                resp = call("POST", "", token, fields=push_fields)
            elif action == "key":
                resp = pool.request(
                    "GET",
                    f"{stack.url}/v2/127.0.0.1:5000/tokens/new/_trust/tuf/timestamp.key",
                    retries=False,
                )
            else:
                resp = call("GET", "targets.json", token)
            assert resp.status == 401, (name, resp.status, resp.data)
            assert json.loads(resp.data)["errors"][0]["code"] == "UNAUTHORIZED"
            assert resp.headers["WWW-Authenticate"].startswith(
                'Bearer realm="https://127.0.0.1:1/token"'
            )
            assert state() == before
            TALLY["refused"] += 1
        keys_after = len(
            SQLKeyStore(
                make_engine(stack.signer.env["NOTARY_SIGNER_DATABASE_URL"]), KeyEncryptor({})
            ).list("127.0.0.1:5000/tokens/new", "timestamp")
        )
        assert keys_after == keys_before == 0  # no signer key for an anonymous request
    finally:
        stack.stop()


def test_zz_report_the_tally() -> None:
    print(f"\nATTACKS tried={TALLY['tried']} refused={TALLY['refused']}")
    assert TALLY["tried"] == TALLY["refused"] > 0
