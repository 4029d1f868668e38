"""Notary v1's dialect through the HTTP API (in process, on every store).

Uploads are written by tests/notaryrepo.py the way notary CLI 0.7.0 writes them;
what the server makes (snapshot, timestamp) is checked with Notary's own rules:
capitalised types, base64 hashes of the stored bytes, raw r||s ECDSA signatures by
the key root lists. The real CLI runs against real processes in
tests/e2e/test_notary_cli.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from notary_server.notary.model import Root, Snapshot, Timestamp, parse_key, valid_signers
from tests.client_view import FlaskFetcher, judge
from tests.conftest import GUN
from tests.notaryrepo import (
    NOTARY_UA,
    NotaryOwner,
    Signing,
    canonical,
    expires,
    keyid_of,
    signed_file,
)
from tests.server.helpers import served, upload

NGUN = "127.0.0.1:5000/notary/app"


def server_key(client: Any, gun: str, role: str = "timestamp") -> dict[str, Any]:
    resp = client.get(f"/v2/{gun}/_trust/tuf/{role}.key", headers=NOTARY_UA)
    assert resp.status_code == 200, resp.data
    return json.loads(resp.data)


def init(
    client: Any, gun: str = NGUN, *, server_snapshot: bool = False
) -> tuple[NotaryOwner, dict[str, bytes]]:
    """``notary init -p`` with one target: root v1, targets v1 (and snapshot v1)."""
    owner = NotaryOwner(gun, server_key(client, gun))
    if server_snapshot:
        owner.snapshot, owner.snapshot_key = None, server_key(client, gun, "snapshot")
    files = {
        "root": signed_file(owner.root_signed(1), owner.root),
        "targets": signed_file(owner.targets_signed(1, {"v1": b"hello"}), owner.targets),
    }
    if not server_snapshot:
        files["snapshot"] = owner.snapshot_file(1, files)
    resp = upload(client, gun, files)
    assert resp.status_code == 200, resp.data
    return owner, files


def error(resp: Any) -> tuple[int, str, str | None]:
    err = json.loads(resp.data)["errors"][0]
    return resp.status_code, err["code"], (err.get("detail") or {}).get("Name")


def test_a_notary_repository_gets_a_notary_timestamp_over_the_stored_snapshot(client):
    _, files = init(client)
    got = served(client, NGUN)
    assert got["root"] == files["root"] and got["targets"] == files["targets"]
    assert got["snapshot"] == files["snapshot"]

    ts = Timestamp.parse(got["timestamp"])  # capitalised _type, RFC 3339, base64
    assert ts.file.signatures[0].method == "ecdsa" and len(ts.file.signatures[0].sig) == 64
    root = Root.parse(files["root"])
    assert valid_signers(ts.file, root.keys, root.roles["timestamp"].keyids)
    snap = files["snapshot"]
    assert ts.snapshot_meta["length"] == len(snap)
    assert base64.b64decode(ts.snapshot_meta["hashes"]["sha256"]) == hashlib.sha256(snap).digest()
    assert base64.b64decode(ts.snapshot_meta["hashes"]["sha512"]) == hashlib.sha512(snap).digest()

    sha = hashlib.sha256(snap).hexdigest()  # what the notary client fetches
    assert client.get(f"/v2/{NGUN}/_trust/tuf/snapshot.{sha}.json").data == snap
    assert client.get(f"/v2/{NGUN}/_trust/tuf/1.root.json").data == files["root"]


def test_the_server_makes_a_notary_snapshot_listing_root_and_targets_when_it_holds_the_key(client):
    owner, files = init(client, server_snapshot=True)
    snap = Snapshot.parse(served(client, NGUN)["snapshot"])
    assert set(snap.meta) == {"root", "targets"}
    for role in ("root", "targets"):
        assert (
            base64.b64decode(snap.meta[role]["hashes"]["sha256"])
            == hashlib.sha256(files[role]).digest()
        )
    root = Root.parse(files["root"])
    assert valid_signers(snap.file, root.keys, root.roles["snapshot"].keyids)

    # a delegate publishes without any repository key: the server re-makes the snapshot
    releases = Signing.bare()
    targets2 = signed_file(
        owner.targets_signed(2, {"v1": b"hello"}, [("targets/releases", [releases], [""])]),
        owner.targets,
    )
    assert upload(client, NGUN, {"targets": targets2}).status_code == 200
    deleg = signed_file(owner.targets_signed(1, {"v2": b"x"}), releases)
    assert upload(client, NGUN, {"targets/releases": deleg}).status_code == 200
    snap = Snapshot.parse(served(client, NGUN)["snapshot"])
    assert snap.file.version == 3 and set(snap.meta) == {"root", "targets", "targets/releases"}


def test_without_a_snapshot_and_without_the_servers_snapshot_key_the_upload_is_a_bad_hierarchy(
    client,
):
    owner, _files = init(client)
    before = served(client, NGUN)
    resp = upload(
        client, NGUN, {"targets": signed_file(owner.targets_signed(2, {}), owner.targets)}
    )
    assert error(resp) == (400, "INVALID_UPDATE", "ErrBadHierarchy")
    assert served(client, NGUN) == before


def test_key_routes_answer_in_the_dialect_the_repository_or_the_client_speaks(service, client):
    notary = server_key(client, "reg.example/new/one")
    assert set(notary) == {"keytype", "keyval"} and notary["keyval"]["private"] is None
    parse_key(notary)  # base64 DER, Notary's key id recomputable
    tuf = json.loads(client.get("/v2/reg.example/new/two/_trust/tuf/timestamp.key").data)
    assert tuf["scheme"] == "ecdsa-sha2-nistp256" and "keyid" in tuf
    # a Notary repository answers in Notary's format whoever asks, rotation included (200)
    init(client)
    resp = client.post(f"/v2/{NGUN}/_trust/tuf/snapshot.key")
    assert resp.status_code == 200 and set(json.loads(resp.data)) == {"keytype", "keyval"}


def test_a_configured_gun_prefix_makes_new_repositories_notary_for_any_client(
    store, keyservice, clock
):
    from notary_server.app import create_app
    from notary_server.config import ServerConfig

    app = create_app(
        ServerConfig(notary_dialect_prefixes=("legacy.example/",)),
        store=store,
        keys=keyservice,
        clock=clock,
    )
    with app.test_client() as c:
        body = json.loads(c.get("/v2/legacy.example/a/_trust/tuf/timestamp.key").data)
        assert set(body) == {"keytype", "keyval"}
        body = json.loads(c.get("/v2/other.example/a/_trust/tuf/timestamp.key").data)
        assert "scheme" in body


def test_timestamp_is_renewed_on_read_in_notarys_format(client, clock):
    init(client)
    first = Timestamp.parse(served(client, NGUN)["timestamp"])
    clock.advance(hours=20)  # inside the 8-hour renewal window of a 24-hour timestamp
    renewed = Timestamp.parse(served(client, NGUN)["timestamp"])
    assert renewed.file.version == first.file.version + 1
    assert renewed.file.expires > first.file.expires


def test_a_tuf_repository_and_a_notary_repository_live_side_by_side(
    client, make_owner, tmp_path: Path
):
    owner = make_owner()
    owner.add_tag("v1")
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    _, files = init(client)
    owner.add_tag("v2")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    found = judge(tmp_path, "http://localhost", GUN, "v2", FlaskFetcher(client), owner.root_bytes())
    assert found is not None
    assert served(client, NGUN)["targets"] == files["targets"]
    # neither dialect's uploads are accepted into the other's repository
    nowner = NotaryOwner(GUN, server_key(client, GUN))
    resp = upload(
        client, GUN, {"targets": signed_file(nowner.targets_signed(9, {}), nowner.targets)}
    )
    assert resp.status_code == 400 and b"TUF 1.0's dialect" in resp.data
    resp = upload(client, NGUN, {"targets": owner.targets_bytes()})
    err = json.loads(resp.data)["errors"][0]
    assert (resp.status_code, err["code"], err["detail"]["reason"]) == (
        400,
        "INVALID_UPDATE",
        "DIALECT",
    )
    assert "Notary v1 repository" in err["message"]
    assert served(client, NGUN)["targets"] == files["targets"]


# --- attacks -----------------------------------------------------------------------------


def _new_root_with(client: Any, root_key: Signing) -> dict[str, bytes]:
    owner = NotaryOwner(NGUN, server_key(client, NGUN))
    owner.root = root_key
    files = {
        "root": signed_file(owner.root_signed(1), root_key),
        "targets": signed_file(owner.targets_signed(1, {}), owner.targets),
    }
    files["snapshot"] = owner.snapshot_file(1, files)
    return files


def _two_ids_one_key(client: Any) -> dict[str, bytes]:
    owner = NotaryOwner(NGUN, server_key(client, NGUN))
    a = Signing.cert(NGUN, owner.root.private, serial=1)
    b = Signing.cert(NGUN, owner.root.private, serial=2)
    signed = owner.root_signed(1, root_keys=[a, b], threshold=2)
    files = {
        "root": signed_file(signed, a, b),
        "targets": signed_file(owner.targets_signed(1, {}), owner.targets),
    }
    files["snapshot"] = owner.snapshot_file(1, files)
    return files


def _wrong_keyid(client: Any) -> dict[str, bytes]:
    owner = NotaryOwner(NGUN, server_key(client, NGUN))
    signed = owner.root_signed(1)
    fake = "0" * 64
    signed["keys"][fake] = signed["keys"].pop(owner.root.keyid)
    signed["roles"]["root"]["keyids"] = [fake]
    sig = owner.root.sign(canonical(signed))
    sig["keyid"] = fake
    root = json.dumps({"signed": signed, "signatures": [sig]}).encode()
    files = {"root": root, "targets": signed_file(owner.targets_signed(1, {}), owner.targets)}
    files["snapshot"] = owner.snapshot_file(1, files)
    return files


def _existing(client: Any) -> tuple[NotaryOwner, dict[str, bytes]]:
    return init(client)


def _targets_rollback(client: Any) -> dict[str, bytes]:
    owner, files = _existing(client)
    targets = signed_file(owner.targets_signed(1, {"evil": b"x"}), owner.targets)
    return {
        "targets": targets,
        "snapshot": owner.snapshot_file(2, {"root": files["root"], "targets": targets}),
    }


def _root_rollback(client: Any) -> dict[str, bytes]:
    owner, files = _existing(client)
    root2 = signed_file(owner.root_signed(2), owner.root)
    assert (
        upload(
            client,
            NGUN,
            {
                "root": root2,
                "snapshot": owner.snapshot_file(2, {"root": root2, "targets": files["targets"]}),
            },
        ).status_code
        == 200
    )
    return {
        "root": files["root"],
        "snapshot": owner.snapshot_file(3, {"root": files["root"], "targets": files["targets"]}),
    }


def _rotation_without_old_signature(client: Any) -> dict[str, bytes]:
    owner, files = _existing(client)
    owner.root = Signing.cert(NGUN)
    root2 = signed_file(owner.root_signed(2), owner.root)
    return {
        "root": root2,
        "snapshot": owner.snapshot_file(2, {"root": root2, "targets": files["targets"]}),
    }


def _delegation_setup(
    client: Any, paths: list[str]
) -> tuple[NotaryOwner, dict[str, bytes], Signing]:
    owner, files = _existing(client)
    releases = Signing.bare()
    targets = signed_file(
        owner.targets_signed(2, {"v1": b"hello"}, [("targets/releases", [releases], paths)]),
        owner.targets,
    )
    files = {"root": files["root"], "targets": targets}
    assert (
        upload(
            client, NGUN, {"targets": targets, "snapshot": owner.snapshot_file(2, files)}
        ).status_code
        == 200
    )
    return owner, files, releases


def _delegation_upload(
    owner: NotaryOwner, files: dict[str, bytes], deleg: bytes
) -> dict[str, bytes]:
    return {
        "targets/releases": deleg,
        "snapshot": owner.snapshot_file(3, {**files, "targets/releases": deleg}),
    }


def _unsigned_delegation(client: Any) -> dict[str, bytes]:
    owner, files, _ = _delegation_setup(client, [""])
    return _delegation_upload(owner, files, signed_file(owner.targets_signed(1, {"v9": b"x"})))


def _wrongly_signed_delegation(client: Any) -> dict[str, bytes]:
    owner, files, _ = _delegation_setup(client, [""])
    return _delegation_upload(
        owner, files, signed_file(owner.targets_signed(1, {"v9": b"x"}), Signing.bare())
    )


def _undelegated_role(client: Any) -> dict[str, bytes]:
    owner, files, releases = _delegation_setup(client, [""])
    deleg = signed_file(owner.targets_signed(1, {"v9": b"x"}), releases)
    return {
        "targets/other": deleg,
        "snapshot": owner.snapshot_file(3, {**files, "targets/other": deleg}),
    }


def _target_outside_paths(client: Any) -> dict[str, bytes]:
    owner, files, releases = _delegation_setup(client, ["release-"])
    deleg = signed_file(owner.targets_signed(1, {"release-1": b"ok", "latest": b"x"}), releases)
    return _delegation_upload(owner, files, deleg)


def _snapshot_mismatch(client: Any) -> dict[str, bytes]:
    owner, files = _existing(client)
    targets = signed_file(owner.targets_signed(2, {"v2": b"new"}), owner.targets)
    return {"targets": targets, "snapshot": owner.snapshot_file(2, files)}  # lists the old targets


def _snapshot_by_wrong_key(client: Any) -> dict[str, bytes]:
    owner, files = _existing(client)
    targets = signed_file(owner.targets_signed(2, {"v2": b"new"}), owner.targets)
    owner.snapshot = Signing.bare()
    return {
        "targets": targets,
        "snapshot": owner.snapshot_file(2, {"root": files["root"], "targets": targets}),
    }


def _expired_targets(client: Any) -> dict[str, bytes]:
    owner, files = _existing(client)
    signed = owner.targets_signed(2, {})
    signed["expires"] = expires(-1)
    targets = signed_file(signed, owner.targets)
    return {
        "targets": targets,
        "snapshot": owner.snapshot_file(2, {"root": files["root"], "targets": targets}),
    }


_LONG_AGO = datetime.now(UTC) - timedelta(days=800)

ATTACKS = {
    "root-cert-wrong-cn": (
        lambda c: _new_root_with(c, Signing.cert("evil.example/other")),
        400,
        "INVALID_UPDATE",
        "ErrBadRoot",
    ),
    "root-cert-expired": (
        lambda c: _new_root_with(
            c, Signing.cert(NGUN, not_before=_LONG_AGO, not_after=_LONG_AGO + timedelta(days=30))
        ),
        400,
        "INVALID_UPDATE",
        "ErrBadRoot",
    ),
    "root-cert-sha1": (
        lambda c: _new_root_with(c, Signing.sha1_cert(NGUN)),
        400,
        "INVALID_UPDATE",
        "ErrBadRoot",
    ),
    "root-cert-not-a-cert": (
        lambda c: _new_root_with(c, Signing.bare()),
        400,
        "INVALID_UPDATE",
        "ErrBadRoot",
    ),
    "key-id-not-its-key": (_wrong_keyid, 400, "INVALID_UPDATE", "ErrBadRoot"),
    "one-key-two-ids-fakes-threshold": (_two_ids_one_key, 400, "INVALID_UPDATE", "ErrBadRoot"),
    "targets-rollback": (_targets_rollback, 400, "VERSION", None),
    "root-rollback": (_root_rollback, 400, "VERSION", None),
    "root-rotation-without-old-root": (
        _rotation_without_old_signature,
        400,
        "INVALID_UPDATE",
        "ErrBadRoot",
    ),
    "unsigned-delegation": (_unsigned_delegation, 400, "INVALID_UPDATE", "ErrBadTargets"),
    "wrongly-signed-delegation": (
        _wrongly_signed_delegation,
        400,
        "INVALID_UPDATE",
        "ErrBadTargets",
    ),
    "role-not-delegated": (_undelegated_role, 400, "INVALID_UPDATE", "ErrBadTargets"),
    "delegate-target-outside-paths": (
        _target_outside_paths,
        400,
        "INVALID_UPDATE",
        "ErrBadTargets",
    ),
    "client-snapshot-does-not-match": (_snapshot_mismatch, 400, "INVALID_UPDATE", "ErrBadSnapshot"),
    "client-snapshot-wrong-key": (_snapshot_by_wrong_key, 400, "INVALID_UPDATE", "ErrBadSnapshot"),
    "expired-targets": (_expired_targets, 400, "INVALID_UPDATE", "ErrBadTargets"),
}


@pytest.mark.parametrize("attack", list(ATTACKS), ids=list(ATTACKS))
def test_attack_is_refused_with_notarys_code_and_changes_nothing(client, attack: str):
    make, status, code, name = ATTACKS[attack]
    files = make(client)
    before = served(client, NGUN, ("targets/releases",))
    resp = upload(client, NGUN, files)
    assert error(resp) == (status, code, name), resp.data
    assert served(client, NGUN, ("targets/releases",)) == before
    err = json.loads(resp.data)["errors"][0]
    assert WHY.get(attack, "") in err["message"]
    assert err.get("detail", {}).get("rule") == RULE.get(attack)


# detail.rule, where one of the stable rule ids applies (docs/notary-dialect.md)
RULE = {
    "root-cert-wrong-cn": "root-certificate",
    "root-cert-expired": "root-certificate",
    "root-cert-sha1": "root-certificate",
    "root-cert-not-a-cert": "root-certificate",
    "one-key-two-ids-fakes-threshold": "root-signed-by-itself",
    "root-rotation-without-old-root": "root-signed-by-previous-root",
    "unsigned-delegation": "targets-signature-threshold",
    "wrongly-signed-delegation": "targets-signature-threshold",
    "role-not-delegated": "role-is-delegated",
    "delegate-target-outside-paths": "delegated-paths",
    "client-snapshot-does-not-match": "snapshot-hashes",
    "client-snapshot-wrong-key": "snapshot-signature-threshold",
    "expired-targets": "not-expired",
}


# The diagnosis names the rule (so each case fails for the reason it is about).
WHY = {
    "root-cert-wrong-cn": "common name",
    "root-cert-expired": "not valid now",
    "root-cert-sha1": "SHA-1",
    "root-cert-not-a-cert": "not an x509 certificate",
    "key-id-not-its-key": "is not the id of its key",
    "one-key-two-ids-fakes-threshold": "signed by 1 valid root keys, threshold is 2",
    "root-rotation-without-old-root": "previous root",
    "unsigned-delegation": "signed by 0 valid keys",
    "wrongly-signed-delegation": "signed by 0 valid keys",
    "role-not-delegated": "does not delegate",
    "delegate-target-outside-paths": "'latest', outside the paths",
    "client-snapshot-does-not-match": "entry for targets does not match",
    "client-snapshot-wrong-key": "signed by 0 valid keys",
    "expired-targets": "expired",
}


def test_a_root_cert_may_name_a_wildcard_prefix_of_the_gun(client):
    files = _new_root_with(client, Signing.cert("127.0.0.1:5000/notary/*"))
    assert upload(client, NGUN, files).status_code == 200


def test_a_chained_root_rotation_signed_by_old_and_new_is_accepted(client):
    owner, files = init(client)
    old = owner.root
    owner.root = Signing.cert(NGUN)
    signed = owner.root_signed(2)
    root2 = signed_file(signed, old, owner.root)
    snap = owner.snapshot_file(2, {"root": root2, "targets": files["targets"]})
    assert upload(client, NGUN, {"root": root2, "snapshot": snap}).status_code == 200
    assert client.get(f"/v2/{NGUN}/_trust/tuf/2.root.json").data == root2
    assert keyid_of(owner.root.obj) in Root.parse(root2).roles["root"].keyids


def test_renew_re_signs_timestamp_and_the_server_held_snapshot_in_notarys_format(
    service, client, clock
):
    init(client, server_snapshot=True)
    assert service.renew(NGUN) is False  # fresh: nothing to do
    snap1 = Snapshot.parse(served(client, NGUN)["snapshot"])
    clock.advance(days=5)  # inside the snapshot's 3-day renewal window of 7 days
    assert service.renew(NGUN) is True  # what `notary-server renew` runs per GUN
    got = served(client, NGUN)
    snap2, ts = Snapshot.parse(got["snapshot"]), Timestamp.parse(got["timestamp"])
    assert snap2.file.version == snap1.file.version + 1 and snap2.meta == snap1.meta
    assert ts.snapshot_meta["length"] == len(got["snapshot"])
    assert ts.file.expires > clock.now


def test_with_token_auth_a_notary_client_gets_no_signer_key_without_a_push_token(
    service, keyservice, tmp_path: Path
):
    from notary_server.app import create_app
    from notary_server.auth import TokenAuth
    from tests.tokens import ISSUER, REALM, SERVICE, Issuer, repo_access

    issuer = Issuer()
    auth = TokenAuth.from_bundle(
        str(issuer.write_bundle(tmp_path / "bundle.pem")), realm=REALM, service=SERVICE,
        issuer=ISSUER, clock=service.clock,
    )  # fmt: skip
    with create_app(service=service, auth=auth).test_client() as c:
        for method, scope in ((c.get, "push,pull"), (c.post, "*")):
            resp = method(f"/v2/{NGUN}/_trust/tuf/timestamp.key", headers=NOTARY_UA)
            assert resp.status_code == 401 and f':{scope}"' in resp.headers["WWW-Authenticate"]
        assert keyservice.list_keys(NGUN, "timestamp") == []
        pull = {"Authorization": f"Bearer {issuer.token(repo_access(NGUN, 'pull'))}", **NOTARY_UA}
        assert c.get(f"/v2/{NGUN}/_trust/tuf/timestamp.key", headers=pull).status_code == 401
        assert keyservice.list_keys(NGUN, "timestamp") == []
