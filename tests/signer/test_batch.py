"""``POST /v1/sign/batch``: a snapshot and the timestamp pointing at it in one round trip.

Same policy as ``POST /v1/sign`` for every key and payload, all or nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from securesystemslib.signer import Key, Signature
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

from notary_signer.app import create_app
from notary_signer.client import LocalKeyService
from notary_signer.config import SignerConfig
from notary_signer.crypto import KeyEncryptor
from notary_signer.envelope import metadata_bytes
from notary_signer.errors import KeyNotFoundError, SignerRefusedError
from notary_signer.keystore.memory import MemoryKeyStore

from .conftest import GUN, OTHER_GUN, StepClock, canonical, root_payload, soon, targets_payload


@pytest.fixture
def app(encryptor: KeyEncryptor) -> Flask:
    return create_app(
        SignerConfig(), keystore=MemoryKeyStore(encryptor=encryptor, clock=StepClock()), environ={}
    )


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def create(client: FlaskClient, role: str, gun: str = GUN) -> dict[str, Any]:
    resp = client.post("/v1/keys", json={"gun": gun, "role": role})
    assert resp.status_code == 201
    return resp.get_json()


def public(key: dict[str, Any]) -> Key:
    return Key.from_dict(key["keyid"], dict(key["public_key"]))


def snapshot_bytes(version: int = 4, days: float = 7) -> bytes:
    meta = {
        f"targets/bins-{i:02x}.json": MetaFile(2, 100 + i, {"sha256": f"{i:064x}"})
        for i in range(4)
    }
    return canonical(Snapshot(version=version, expires=soon(days), meta=meta))


def template(snapshot_version: int = 4, days: float = 1) -> bytes:
    return canonical(
        Timestamp(
            version=9,
            expires=soon(days),
            snapshot_meta=MetaFile(snapshot_version, 0, {"sha256": "0" * 64}),
        )
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def batch(
    client: FlaskClient,
    gun: str,
    ts_keys: list[str],
    ts: bytes,
    snap_keys: list[str] | None = None,
    snap: bytes | None = None,
) -> Any:
    body: dict[str, Any] = {"gun": gun, "timestamp": {"keyids": ts_keys, "payload": b64(ts)}}
    if snap is not None:
        body["snapshot"] = {"keyids": snap_keys or [], "payload": b64(snap)}
    return client.post("/v1/sign/batch", json=body)


def code(resp: Any) -> str:
    return resp.get_json()["errors"][0]["code"]


def test_batch_signs_snapshot_and_the_timestamp_that_points_at_it(client: FlaskClient) -> None:
    ts_key, snap_key = create(client, "timestamp"), create(client, "snapshot")
    snap = snapshot_bytes()
    resp = batch(client, GUN, [ts_key["keyid"]], template(), [snap_key["keyid"]], snap)
    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    [ssig] = answer["snapshot"]["signatures"]
    assert ssig["keyid"] == snap_key["keyid"]
    public(snap_key).verify_signature(Signature(ssig["keyid"], ssig["sig"]), snap)
    snapshot_file = metadata_bytes([(ssig["keyid"], ssig["sig"])], snap)
    # the file is what python-tuf would write, and parses back to the signed payload
    md = Metadata[Snapshot].from_bytes(snapshot_file)
    assert md.signed_bytes == snap and md.to_bytes() == snapshot_file
    ts_payload = base64.b64decode(answer["timestamp"]["payload"])
    [tsig] = answer["timestamp"]["signatures"]
    public(ts_key).verify_signature(Signature(tsig["keyid"], tsig["sig"]), ts_payload)
    entry = json.loads(ts_payload)["meta"]["snapshot.json"]
    assert entry == {
        "version": 4,
        "length": len(snapshot_file),
        "hashes": {"sha256": hashlib.sha256(snapshot_file).hexdigest()},
    }
    assert canonical(Timestamp.from_dict(json.loads(ts_payload))) == ts_payload


def test_batch_without_snapshot_signs_the_timestamp_as_is(client: FlaskClient) -> None:
    ts_key = create(client, "timestamp")
    payload = template()
    resp = batch(client, GUN, [ts_key["keyid"]], payload)
    assert resp.status_code == 200
    assert base64.b64decode(resp.get_json()["timestamp"]["payload"]) == payload
    assert resp.get_json()["snapshot"] == {"signatures": []}


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("timestamp key of another gun", "SIGN_REFUSED"),
        ("snapshot key of another gun", "SIGN_REFUSED"),
        ("snapshot key for the timestamp", "SIGN_REFUSED"),
        ("root payload as snapshot", "SIGN_REFUSED"),
        ("targets payload as snapshot", "SIGN_REFUSED"),
        ("root payload as timestamp", "SIGN_REFUSED"),
        ("snapshot valid too long", "SIGN_REFUSED"),
        ("timestamp valid too long", "SIGN_REFUSED"),
        ("template names another snapshot version", "SIGN_REFUSED"),
        ("non-canonical snapshot", "SIGN_REFUSED"),
        ("unknown key", "KEY_NOT_FOUND"),
        ("no timestamp key", "BAD_REQUEST"),
        ("a key named twice", "BAD_REQUEST"),
        ("bad base64", "BAD_REQUEST"),
    ],
)
def test_batch_refusals(client: FlaskClient, case: str, expected: str) -> None:
    ts, snap = create(client, "timestamp"), create(client, "snapshot")
    other_ts, other_snap = (
        create(client, "timestamp", OTHER_GUN),
        create(client, "snapshot", OTHER_GUN),
    )
    ts_keys, snap_keys = [ts["keyid"]], [snap["keyid"]]
    ts_payload, snap_payload = template(), snapshot_bytes()
    if case == "timestamp key of another gun":
        ts_keys = [other_ts["keyid"]]
    elif case == "snapshot key of another gun":
        snap_keys = [other_snap["keyid"]]
    elif case == "snapshot key for the timestamp":
        ts_keys = [snap["keyid"]]
    elif case == "root payload as snapshot":
        snap_payload = root_payload()
    elif case == "targets payload as snapshot":
        snap_payload = targets_payload()
    elif case == "root payload as timestamp":
        ts_payload, snap_payload, snap_keys = root_payload(), None, []
    elif case == "snapshot valid too long":
        snap_payload = snapshot_bytes(days=500)
    elif case == "timestamp valid too long":
        ts_payload = template(days=60)
    elif case == "template names another snapshot version":
        ts_payload = template(snapshot_version=3)
    elif case == "non-canonical snapshot":
        snap_payload = json.dumps(json.loads(snapshot_bytes()), indent=1).encode()
    elif case == "unknown key":
        ts_keys = ["ab" * 32]
    elif case == "no timestamp key":
        ts_keys = []
    elif case == "a key named twice":
        ts_keys = [ts["keyid"], ts["keyid"]]
    if case == "bad base64":
        resp = client.post(
            "/v1/sign/batch", json={"gun": GUN, "timestamp": {"keyids": ts_keys, "payload": "%%"}}
        )
    else:
        resp = batch(client, GUN, ts_keys, ts_payload, snap_keys, snap_payload)
    assert code(resp) == expected, resp.get_json()
    assert "signatures" not in json.dumps(resp.get_json())


def test_refused_batch_marks_no_key_used(client: FlaskClient) -> None:
    ts, snap = create(client, "timestamp"), create(client, "snapshot")
    resp = batch(client, GUN, [ts["keyid"]], template(days=60), [snap["keyid"]], snapshot_bytes())
    assert code(resp) == "SIGN_REFUSED"
    assert client.get(f"/v1/keys/{snap['keyid']}").get_json()["last_used"] is None


def test_local_key_service_batch_verifies_and_lays_out_files(encryptor: KeyEncryptor) -> None:
    keys = LocalKeyService(MemoryKeyStore(encryptor=encryptor))
    ts, snap = keys.create_key(GUN, "timestamp"), keys.create_key(GUN, "snapshot")
    files = keys.sign_batch(GUN, [ts], template(), [snap], snapshot_bytes())
    assert files.snapshot is not None
    snapshot_md = Metadata[Snapshot].from_bytes(files.snapshot)
    snap.verify_signature(snapshot_md.signatures[snap.keyid], snapshot_md.signed_bytes)
    ts_md = Metadata[Timestamp].from_bytes(files.timestamp)
    assert ts_md.signed_bytes == files.timestamp_payload
    ts_md.signed.snapshot_meta.verify_length_and_hashes(files.snapshot)
    with pytest.raises(SignerRefusedError):
        keys.sign_batch(OTHER_GUN, [ts], template(), [snap], snapshot_bytes())
    with pytest.raises(KeyNotFoundError):
        stranger = LocalKeyService(MemoryKeyStore(encryptor=encryptor)).create_key(GUN, "timestamp")
        keys.sign_batch(GUN, [stranger], template())
