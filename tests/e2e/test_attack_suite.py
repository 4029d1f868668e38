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
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3
from securesystemslib.signer import CryptoSigner, Key, Signature
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from notary_signer.canonical import compute_keyid
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
    honest: tuple[int, str | None] | None = None

    def mark(self) -> None:
        """Before the attack: the server's stored state, which it must leave unchanged,
        and the deployer's honest answer, which it must get again once the attacker
        is gone."""
        self.baseline = self.remote.current()
        self.honest = verdict(self.deployer.run("--json", "verify", self.ref))

    def client_state(self) -> dict[str, bytes]:
        """What the deployer trusts: python-tuf's trusted metadata (``metadata/``; the
        other folder, ``verified/``, keeps downloaded bytes that are checked again
        before any use, whoever sent them)."""
        cache = self.deployer.trust_dir / "tuf"
        files = [
            f for f in sorted(cache.rglob("*.json")) if "metadata" in f.relative_to(cache).parts
        ]
        assert files, f"no trusted metadata under {cache}"
        return {str(f.relative_to(cache)): f.read_bytes() for f in files}

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


def verdict(run: Run) -> tuple[int, str | None]:
    """A ``--json verify`` answer: its exit code and error code."""
    return run.exit_code, run.json["error"]["code"] if run.exit_code else None


def version_of(raw: bytes) -> int:
    version: int = json.loads(raw)["signed"]["version"]
    return version


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
    # the server moves on, so the deployer must download the new snapshot (its own
    # trusted one stays: a trusted state deleted by hand is refused as STATE_CORRUPT)
    c.sign_tag("v2")
    c.baseline = c.remote.current()
    ts = c.current_timestamp()
    name = f"{ts.signed.snapshot_meta.version}.snapshot.json"
    doc = json.loads(c.tuf(name))
    entry = doc["signed"]["meta"]["targets.json"]
    entry["version"] = entry["version"] + 1 if entry["version"] == 1 else 1
    edited = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    assert len(edited) == len(c.tuf(name))  # the length check passes: the next check decides
    c.mitm.replay(f"/{name}", edited)


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


@dataclass(frozen=True)
class NetworkRow:
    attack: Callable[[Ctx], None]
    code: str  # trustctl's error code
    rule: str  # a pattern for python-tuf's words: the one check that refused the attack
    #: cache files the attacker may move forward: metadata validly signed with stolen
    #: online keys is trusted until the check that refuses the attack
    advances: tuple[str, ...] = ()
    #: what brings the deployer back to the honest answer once the attacker is gone
    recover: Callable[[Ctx], None] | None = None


def _outpace_the_forged_timestamp(c: Ctx) -> None:
    """The server's timestamp passes the version the thief signed (two publishes)."""
    c.sign_tag("v2")
    c.sign_tag("v3")


NETWORK: dict[str, NetworkRow] = {
    "rollback: timestamp replayed": NetworkRow(
        _rollback_timestamp, "ROLLBACK", r"\(New timestamp version \d+ must be >= \d+\)"
    ),
    "rollback: snapshot (online keys stolen)": NetworkRow(
        _rollback_snapshot, "ROLLBACK", r"\(New snapshot version must be >= \d+, got version \d+\)"
    ),
    "rollback: targets (online keys stolen, mix-and-match)": NetworkRow(
        _rollback_targets,
        "ROLLBACK",
        r"\(Expected [\w.-]+\.json version \d+, got \d+\.\)",  # snapshot's meta, per role
        advances=("timestamp.json",),
        recover=_outpace_the_forged_timestamp,
    ),
    "rollback: root replayed as the next version": NetworkRow(
        _rollback_root, "ROLLBACK", r"\(Expected root version 2 instead got version 1\)"
    ),
    "mix-and-match: snapshot edited to another targets version": NetworkRow(
        _mix_and_match_without_keys,
        "TAMPERED",
        r"\(Observed hash [0-9a-f]{64} does not match expected hash [0-9a-f]{64}\)",
        advances=("timestamp.json",),  # the server's own newer timestamp, honestly signed
    ),
    "arbitrary unsigned target injected": NetworkRow(
        _unsigned_target,  # longer than the length the snapshot promises for the file
        "TAMPERED",
        r"\(Downloaded \d+ bytes exceeding the maximum allowed length of \d+\)",
    ),
    "endless data": NetworkRow(
        _endless_data,  # python-tuf's fixed cap for a timestamp
        "TAMPERED",
        r"\(Downloaded \d+ bytes exceeding the maximum allowed length of 16384\)",
    ),
    "root rotation without the previous root's signatures": NetworkRow(
        _root_rotation_without_old_keys, "BAD_SIGNATURE", r"\(root was signed by 0/1 keys\)"
    ),
}


@pytest.mark.parametrize("row", NETWORK.values(), ids=NETWORK.keys())
def test_network_attack_is_refused(row: NetworkRow, ctx: Ctx) -> None:
    row.attack(ctx)
    trusted = ctx.client_state()
    run = ctx.deployer.run("--json", "verify", ctx.ref)
    assert run.exit_code == 1, str(run)
    error = run.json["error"]
    assert error["code"] == row.code, str(run)
    assert re.search(row.rule, error["message"]), error["message"]  # the check that fired
    assert any(w in error["message"] for w in ATTACK_WORDS), error["message"]
    assert ctx.remote.current() == ctx.baseline

    # The deployer's trusted state did not move back, nor to anything the attacker made
    # up: only the files the row names moved, and only forward.
    after = ctx.client_state()
    moved = {f for f in trusted.keys() | after.keys() if trusted.get(f) != after.get(f)}
    assert {f.rsplit("/", 1)[-1] for f in moved} <= set(row.advances), sorted(moved)
    for f in moved:
        assert f in trusted and f in after and version_of(after[f]) > version_of(trusted[f]), f

    # Once the attacker is gone, the deployer gets the honest answer again.
    ctx.mitm.clear()
    if row.recover is not None:
        row.recover(ctx)
    assert verdict(ctx.deployer.run("--json", "verify", ctx.ref)) == ctx.honest


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
    """The owner holds a snapshot key too and signs a snapshot that lists every role at
    its stored version, except targets, at another one."""
    snapshot_signer = CryptoSigner.generate_ecdsa()
    u.owner.bump_root()
    u.owner.root.add_key(snapshot_signer.public_key, "snapshot")
    stored = Metadata[Snapshot].from_bytes(u.remote.get("snapshot.json").data).signed
    meta = dict(stored.meta)
    meta["targets.json"] = MetaFile(version=meta["targets.json"].version + 1)
    snap = Snapshot(version=stored.version + 1, expires=u.owner.targets.expires, meta=meta)
    return {"root": u.owner.root_bytes(), "snapshot": u.owner.snapshot_bytes(snap, snapshot_signer)}


@dataclass(frozen=True)
class UploadRow:
    make: Callable[[UploadCtx], dict[str, bytes]]
    status: int
    code: str
    reason: str | None = None
    rule: str | None = None  # detail.rule: the one rule that must have fired (docs/api.md)


UPLOAD: dict[str, UploadRow] = {
    "arbitrary unsigned target": UploadRow(
        _upload_unsigned_target, 400, "INVALID_UPDATE", "BAD_TARGETS", "targets-signature-threshold"
    ),
    "threshold faked: one key under two key ids": UploadRow(
        _upload_threshold_faked, 400, "INVALID_UPDATE", "BAD_KEYS", "key-listed-once"
    ),
    "root rotation without the previous root's signatures": UploadRow(
        _upload_root_without_old_keys,
        400,
        "INVALID_UPDATE",
        "BAD_ROOT",
        "root-signed-by-previous-root",
    ),
    "delegated signer writes outside its paths": UploadRow(
        _upload_outside_paths, 400, "INVALID_UPDATE", "BAD_TARGETS", "delegated-paths"
    ),
    "rollback: targets version replayed": UploadRow(_upload_rollback, 409, "VERSION"),
    "mix-and-match: snapshot pointing at another version": UploadRow(
        _upload_client_snapshot_mix_and_match,
        400,
        "INVALID_UPDATE",
        "BAD_SNAPSHOT",
        "snapshot-lists-current-versions",
    ),
}


@pytest.mark.parametrize("row", UPLOAD.values(), ids=UPLOAD.keys())
def test_upload_attack_is_refused(row: UploadRow, upload_ctx: UploadCtx) -> None:
    before = upload_ctx.remote.current()
    resp = upload_ctx.remote.publish(row.make(upload_ctx))
    err = json.loads(resp.data)["errors"][0]
    assert (resp.status, err["code"]) == (row.status, row.code), resp.data
    if row.code == "INVALID_UPDATE":
        assert (err["detail"]["reason"], err["detail"]["rule"]) == (row.reason, row.rule), err
    assert upload_ctx.remote.current() == before


# --- scenarios with their own set-up ------------------------------------------------------


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
        payload = Metadata(payload_type()).signed_bytes
        with pytest.raises(SignerRefusedError):
            client.sign_payload(key.keyid, gun, "timestamp", payload)
        with pytest.raises(SignerRefusedError):
            client.sign_payload(key.keyid, gun, payload_type.type, payload)


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
        keys_after = len(
            SQLKeyStore(
                make_engine(stack.signer.env["NOTARY_SIGNER_DATABASE_URL"]), KeyEncryptor({})
            ).list("127.0.0.1:5000/tokens/new", "timestamp")
        )
        assert keys_after == keys_before == 0  # no signer key for an anonymous request
    finally:
        stack.stop()
