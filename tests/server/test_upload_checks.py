"""Every upload check of DESIGN section 4, broken on purpose.

Each named case sets up a healthy repository, sends one bad upload and expects an
HTTP 4xx with the named error code, and the served metadata unchanged byte for byte.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from securesystemslib.signer import CryptoSigner, Key, Signature
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Targets

from tests.conftest import GUN
from tests.server.helpers import error_code, served, upload
from tests.tufrepo import Owner


@dataclass
class Case:
    make: Callable[[Owner, Any], Any]  # returns files dict, or a full response
    status: int
    code: str
    reason: str | None = None
    rule: str | None = None  # detail.rule: the one rule that must have fired
    server_snapshot: bool = True


def _older_targets(o: Owner, client: Any) -> dict[str, bytes]:
    o.targets.version -= 1  # the stored one is v2 after setup; send v1 again
    o.add_tag("v9")  # bumps to 2: equal to stored
    return {"targets": o.targets_bytes()}


def _replayed_root(o: Owner, client: Any) -> dict[str, bytes]:
    return {"root": o.root_bytes()}  # still v1, as stored


def _root_skips_a_version(o: Owner, client: Any) -> dict[str, bytes]:
    o.root.version += 2
    return {"root": o.root_bytes()}


def _root_without_previous_signatures(o: Owner, client: Any) -> dict[str, bytes]:
    o.rotate_root([CryptoSigner.generate_ecdsa()])
    o.previous_root_signers = []  # signed only by the new key
    return {"root": o.root_bytes()}


def _root_without_own_signatures(o: Owner, client: Any) -> dict[str, bytes]:
    old = o.root_signers
    o.rotate_root([CryptoSigner.generate_ecdsa()])
    o.previous_root_signers = old
    o.root_signers = []  # the new key does not sign
    return {"root": o.root_bytes()}


def _root_without_server_timestamp_key(o: Owner, client: Any) -> dict[str, bytes]:
    o.bump_root()
    o.root.revoke_key(o.timestamp_key.keyid, "timestamp")
    o.root.add_key(CryptoSigner.generate_ecdsa().public_key, "timestamp")
    return {"root": o.root_bytes()}


def _keyid_not_of_its_key(o: Owner, client: Any) -> dict[str, bytes]:
    """One targets key listed under a made-up second id, threshold 2, signed "twice"."""
    o.bump_root()
    key = o.targets_signer.public_key
    fake = Key.from_dict("ab" * 32, copy.deepcopy(key.to_dict()))
    o.root.keys[fake.keyid] = fake
    o.root.roles["targets"].keyids.append(fake.keyid)
    o.root.roles["targets"].threshold = 2
    o.add_tag("v9")
    md = Metadata(o.targets)
    sig = md.sign(o.targets_signer)
    md.signatures[fake.keyid] = Signature(fake.keyid, sig.signature)
    return {"root": o.root_bytes(), "targets": md.to_bytes()}


def _same_key_under_two_ids(o: Owner, client: Any) -> dict[str, bytes]:
    """The same public key with a legacy keytype gets a second, correctly computed id."""
    o.bump_root()
    d = copy.deepcopy(o.targets_signer.public_key.to_dict())
    d["keytype"] = "ecdsa-sha2-nistp256"
    from notary_signer.canonical import compute_keyid

    probe = Key.from_dict("00", copy.deepcopy(d))
    twin = Key.from_dict(compute_keyid(probe), d)
    o.root.keys[twin.keyid] = twin
    o.root.roles["targets"].keyids.append(twin.keyid)
    o.root.roles["targets"].threshold = 2
    return {"root": o.root_bytes()}


def _expired_targets(o: Owner, client: Any) -> dict[str, bytes]:
    o.add_tag("v9")
    o.targets.expires = o.now - timedelta(days=1)
    return {"targets": o.targets_bytes()}


def _targets_signed_by_wrong_key(o: Owner, client: Any) -> dict[str, bytes]:
    o.add_tag("v9")
    return {"targets": o.targets_bytes([CryptoSigner.generate_ecdsa()])}


def _target_outside_delegation(o: Owner, client: Any) -> dict[str, bytes]:
    alice = CryptoSigner.generate_ecdsa()
    o.delegate("targets/alice", [alice], paths=["alice-*"])
    o.add_tag("bob-1", role="targets/alice")
    return {
        "targets": o.targets_bytes(),
        "targets/alice": o.delegated_bytes("targets/alice"),
    }


def _delegated_role_nobody_delegates(o: Owner, client: Any) -> dict[str, bytes]:
    stray = Targets(expires=o.targets.expires)
    md = Metadata(stray)
    md.sign(CryptoSigner.generate_ecdsa())
    return {"targets/stray": md.to_bytes()}


def _snapshot_that_does_not_match(o: Owner, client: Any) -> dict[str, bytes]:
    o.add_tag("v9")
    snapshot = Snapshot(
        version=2, expires=o.targets.expires, meta={"targets.json": MetaFile(version=7)}
    )
    return {"targets": o.targets_bytes(), "snapshot": o.snapshot_bytes(snapshot, o.snapshot_signer)}


def _malformed_json(o: Owner, client: Any) -> dict[str, bytes]:
    return {"targets": b'{"signed": {"_type": "targets", '}


def _wrong_type_for_role(o: Owner, client: Any) -> dict[str, bytes]:
    return {"root": o.targets_bytes()}


def _float_in_custom(o: Owner, client: Any) -> dict[str, bytes]:
    raw = o.targets_bytes().replace(b'"mediaType"', b'"weight":1.5,"mediaType"')
    return {"targets": raw}


def _timestamp_upload(o: Owner, client: Any) -> dict[str, bytes]:
    return {"timestamp": o.targets_bytes()}


def _bad_role_name(o: Owner, client: Any) -> dict[str, bytes]:
    return {"targets/../root": o.targets_bytes()}


def _bad_gun(o: Owner, client: Any) -> Any:
    return client.post(
        "/v2/..%2F..%2Fetc/_trust/tuf/", data={"files": [(io.BytesIO(b"{}"), "root")]}
    )


def _oversized_file(o: Owner, client: Any) -> dict[str, bytes]:
    o.add_tag("v9")
    raw = o.targets_bytes()
    return {"targets": raw + b" " * (client.application.extensions["notary"].config.max_file_bytes)}


def _oversized_body(o: Owner, client: Any) -> dict[str, bytes]:
    limit = client.application.extensions["notary"].config.max_body_bytes
    return {f"targets/r{i}": b"x" * (limit // 3) for i in range(4)}


def _deeply_nested_custom(o: Owner, client: Any) -> dict[str, bytes]:
    tf = o.add_tag("v9")
    nested: Any = "bottom"
    for _ in range(40):
        nested = {"n": nested}
    tf.unrecognized_fields["custom"] = {"mediaType": "x", "deep": nested}
    return {"targets": o.targets_bytes()}


def _too_many_targets(o: Owner, client: Any) -> dict[str, bytes]:
    limit = client.application.extensions["notary"].config.max_targets_per_role
    for i in range(limit + 1):
        o.targets.targets[f"t{i}"] = o.targets.targets["v1"]
    o.targets.version += 1
    return {"targets": o.targets_bytes()}


def _target_name_too_long(o: Owner, client: Any) -> dict[str, bytes]:
    o.add_tag("v" * 2000)
    return {"targets": o.targets_bytes()}


def _too_many_parts(o: Owner, client: Any) -> Any:
    limit = client.application.extensions["notary"].config.max_parts
    data = {"files": [(io.BytesIO(b"{}"), f"targets/r{i}") for i in range(limit + 1)]}
    return client.post(f"/v2/{GUN}/_trust/tuf/", data=data, content_type="multipart/form-data")


def _not_multipart(o: Owner, client: Any) -> Any:
    return client.post(
        f"/v2/{GUN}/_trust/tuf/", data=o.targets_bytes(), content_type="application/json"
    )


def _part_without_filename(o: Owner, client: Any) -> Any:
    return client.post(
        f"/v2/{GUN}/_trust/tuf/", data={"files": "not a file"}, content_type="multipart/form-data"
    )


def _empty_upload(o: Owner, client: Any) -> Any:
    return client.post(f"/v2/{GUN}/_trust/tuf/", data={}, content_type="multipart/form-data")


CASES: dict[str, Case] = {
    "targets version equal to stored (rollback)": Case(_older_targets, 409, "VERSION"),
    "root v1 replayed (rollback)": Case(_replayed_root, 409, "VERSION"),
    "root skips a version": Case(
        _root_skips_a_version, 400, "INVALID_UPDATE", "BAD_ROOT", "root-version-step"
    ),
    "root rotation without the previous root's signatures": Case(
        _root_without_previous_signatures,
        400,
        "INVALID_UPDATE",
        "BAD_ROOT",
        "root-signed-by-previous-root",
    ),
    "root not signed by its own keys": Case(
        _root_without_own_signatures, 400, "INVALID_UPDATE", "BAD_ROOT", "root-signed-by-itself"
    ),
    "root without the server's timestamp key": Case(
        _root_without_server_timestamp_key,
        400,
        "INVALID_UPDATE",
        "BAD_ROOT",
        "root-lists-server-timestamp-key",
    ),
    "threshold faked: key id that is not the key's": Case(
        _keyid_not_of_its_key, 400, "INVALID_UPDATE", "BAD_KEYS", "key-id-matches-key"
    ),
    "threshold faked: one key under two valid ids": Case(
        _same_key_under_two_ids, 400, "INVALID_UPDATE", "BAD_KEYS", "key-listed-once"
    ),
    "expired targets": Case(_expired_targets, 400, "INVALID_UPDATE", "EXPIRED", "not-expired"),
    "targets signed by an unknown key": Case(
        _targets_signed_by_wrong_key,
        400,
        "INVALID_UPDATE",
        "BAD_TARGETS",
        "targets-signature-threshold",
    ),
    "target outside its delegation's paths": Case(
        _target_outside_delegation, 400, "INVALID_UPDATE", "BAD_TARGETS", "delegated-paths"
    ),
    "delegated role nobody delegates": Case(
        _delegated_role_nobody_delegates,
        400,
        "INVALID_UPDATE",
        "BAD_HIERARCHY",
        "role-is-delegated",
    ),
    "client snapshot that does not match": Case(
        _snapshot_that_does_not_match,
        400,
        "INVALID_UPDATE",
        "BAD_SNAPSHOT",
        "snapshot-lists-current-versions",
        server_snapshot=False,
    ),
    "malformed JSON": Case(_malformed_json, 400, "MALFORMED_JSON"),
    "targets uploaded as root": Case(_wrong_type_for_role, 400, "MALFORMED_JSON"),
    "float in custom (not canonical JSON)": Case(_float_in_custom, 400, "MALFORMED_JSON"),
    "timestamp uploaded by a client": Case(_timestamp_upload, 400, "INVALID_ROLE"),
    "role name with traversal": Case(_bad_role_name, 400, "INVALID_ROLE"),
    "GUN with traversal": Case(_bad_gun, 400, "INVALID_GUN"),
    "oversized file": Case(_oversized_file, 413, "TOO_LARGE"),
    "oversized body": Case(_oversized_body, 413, "TOO_LARGE"),
    "custom data nested too deep": Case(_deeply_nested_custom, 413, "TOO_LARGE"),
    "too many targets in one role": Case(_too_many_targets, 413, "TOO_LARGE"),
    "target name too long": Case(
        _target_name_too_long, 400, "INVALID_UPDATE", "BAD_TARGETS", "target-name"
    ),
    "too many parts": Case(_too_many_parts, 413, "TOO_MANY_PARTS"),
    "not multipart": Case(_not_multipart, 400, "MALFORMED_UPLOAD"),
    "part without a filename": Case(_part_without_filename, 400, "NO_FILENAME"),
    "empty upload": Case(_empty_upload, 400, "MALFORMED_UPLOAD"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_upload_is_refused_and_changes_nothing(case: Case, client, make_owner) -> None:
    owner: Owner = make_owner(server_snapshot=case.server_snapshot)
    files = {"root": owner.root_bytes()}
    if not case.server_snapshot:
        owner.snapshot_signer = CryptoSigner.generate_ecdsa()
        owner.root.add_key(owner.snapshot_signer.public_key, "snapshot")
        files = {"root": owner.root_bytes()}
    owner.add_tag("v1")
    files["targets"] = owner.targets_bytes()
    if not case.server_snapshot:
        targets_raw = files["targets"]
        snap = Snapshot(
            version=1,
            expires=owner.targets.expires,
            meta={
                "targets.json": MetaFile.from_data(owner.targets.version, targets_raw, ["sha256"])
            },
        )
        files["snapshot"] = owner.snapshot_bytes(snap, owner.snapshot_signer)
    resp = upload(client, GUN, files)
    assert resp.status_code == 200, resp.data
    before = served(client, GUN, ("targets/alice",))

    made = case.make(owner, client)
    resp = made if not isinstance(made, dict) else upload(client, GUN, made)

    status, code, reason = error_code(resp)
    assert (status, code) == (case.status, case.code), resp.data
    if case.reason:
        assert reason == case.reason, resp.data
    if code == "INVALID_UPDATE":  # a reason covers several rules: the named one fired
        assert resp.get_json()["errors"][0]["detail"]["rule"] == case.rule, resp.data
    assert served(client, GUN, ("targets/alice",)) == before
