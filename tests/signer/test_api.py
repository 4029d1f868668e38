"""The signer's HTTP API through Flask's test client: routes, status codes, envelopes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from securesystemslib.signer import Key, Signature

from notary_signer.app import MAX_REQUEST_BYTES, create_app
from notary_signer.config import SignerConfig
from notary_signer.crypto import KeyEncryptor
from notary_signer.keystore import StoredKey
from notary_signer.keystore.memory import MemoryKeyStore

from .conftest import GUN, OTHER_GUN, StepClock, root_payload, targets_payload, timestamp_payload


@pytest.fixture
def app(encryptor: KeyEncryptor) -> Flask:
    store = MemoryKeyStore(encryptor=encryptor, clock=StepClock())
    return create_app(SignerConfig(), keystore=store, environ={})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def create(
    client: FlaskClient, gun: str = GUN, role: str = "timestamp", **extra: str
) -> dict[str, Any]:
    resp = client.post("/v1/keys", json={"gun": gun, "role": role, **extra})
    assert resp.status_code == 201, resp.json
    return js(resp)


def js(resp: Any) -> Any:
    """The response's JSON (typed Any for the tests)."""
    return resp.get_json()


def sign(client: FlaskClient, key: dict[str, Any], data: bytes, **overrides: str) -> Any:
    body = {
        "keyid": key["keyid"],
        "gun": key["gun"],
        "role": key["role"],
        "payload": base64.b64encode(data).decode(),
        **overrides,
    }
    return client.post("/v1/sign", json=body)


def error_code(resp: Any) -> str:
    assert resp.is_json, resp.data
    [entry] = js(resp)["errors"]
    assert set(entry) == {"code", "message", "detail"}
    return str(entry["code"])


def test_create_key_default_algorithm(client: FlaskClient) -> None:
    key = create(client)
    assert key["gun"] == GUN and key["role"] == "timestamp" and key["algorithm"] == "ecdsa"
    assert set(key["public_key"]) == {"keytype", "scheme", "keyval"}
    assert key["public_key"]["scheme"] == "ecdsa-sha2-nistp256"
    assert Key.from_dict(key["keyid"], dict(key["public_key"])).keyid == key["keyid"]


def test_create_key_ed25519(client: FlaskClient) -> None:
    assert (
        create(client, role="snapshot", algorithm="ed25519")["public_key"]["keytype"] == "ed25519"
    )


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"gun": GUN, "role": "root"}, 403, "SIGN_REFUSED"),
        ({"gun": GUN, "role": "targets"}, 403, "SIGN_REFUSED"),
        ({"gun": GUN, "role": "timestamp", "algorithm": "rsa"}, 400, "UNSUPPORTED_ALGORITHM"),
        ({"gun": GUN, "role": "timestamp", "algorithm": 7}, 400, "BAD_REQUEST"),
        ({"role": "timestamp"}, 400, "BAD_REQUEST"),
        ({"gun": GUN}, 400, "BAD_REQUEST"),
        ({"gun": ["x"], "role": "timestamp"}, 400, "BAD_REQUEST"),
        ({"gun": "bad gun", "role": "timestamp"}, 400, "BAD_REQUEST"),
        (["not", "an", "object"], 400, "BAD_REQUEST"),
    ],
    ids=[
        "root",
        "targets",
        "rsa",
        "algorithm type",
        "no gun",
        "no role",
        "gun type",
        "gun chars",
        "array",
    ],
)
def test_create_key_errors(client: FlaskClient, body: Any, status: int, code: str) -> None:
    resp = client.post("/v1/keys", json=body)
    assert resp.status_code == status and error_code(resp) == code


@pytest.mark.parametrize(
    "data", [b"{not json", b"", b"\xff\xfe", b"null"], ids=["broken", "empty", "binary", "null"]
)
def test_malformed_bodies_are_400(client: FlaskClient, data: bytes) -> None:
    for path in ("/v1/keys", "/v1/sign"):
        resp = client.post(path, data=data, content_type="application/json")
        assert resp.status_code == 400 and error_code(resp) == "BAD_REQUEST"


def test_list_keys_oldest_first_per_gun_and_role(client: FlaskClient) -> None:
    first, second = create(client), create(client, algorithm="ed25519")
    create(client, role="snapshot")
    create(client, gun=OTHER_GUN)
    resp = client.get("/v1/keys", query_string={"gun": GUN, "role": "timestamp"})
    assert resp.status_code == 200
    assert [k["keyid"] for k in js(resp)["keys"]] == [first["keyid"], second["keyid"]]
    assert js(resp)["keys"][0] == first


@pytest.mark.parametrize(
    "query", [{}, {"gun": GUN}, {"role": "timestamp"}], ids=["none", "no role", "no gun"]
)
def test_list_keys_needs_gun_and_role(client: FlaskClient, query: dict[str, str]) -> None:
    resp = client.get("/v1/keys", query_string=query)
    assert resp.status_code == 400 and error_code(resp) == "BAD_REQUEST"


def test_get_and_delete_key(client: FlaskClient) -> None:
    key = create(client)
    resp = client.get(f"/v1/keys/{key['keyid']}")
    assert resp.status_code == 200 and resp.json == key
    resp = client.delete(f"/v1/keys/{key['keyid']}")
    assert resp.status_code == 204 and resp.data == b""
    for method in (client.get, client.delete):
        resp = method(f"/v1/keys/{key['keyid']}")
        assert resp.status_code == 404 and error_code(resp) == "KEY_NOT_FOUND"


def test_malformed_keyid_is_400(client: FlaskClient) -> None:
    resp = client.get("/v1/keys/NOT-A-KEYID")
    assert resp.status_code == 400 and error_code(resp) == "BAD_REQUEST"


def test_sign_timestamp_and_verify(client: FlaskClient) -> None:
    key = create(client)
    payload = timestamp_payload()
    resp = sign(client, key, payload)
    assert resp.status_code == 200 and js(resp)["keyid"] == key["keyid"]
    public = Key.from_dict(key["keyid"], dict(key["public_key"]))
    public.verify_signature(Signature(key["keyid"], js(resp)["sig"]), payload)
    assert js(client.get(f"/v1/keys/{key['keyid']}"))["last_used"] is not None


@pytest.mark.parametrize(
    ("payload", "overrides", "status", "code"),
    [
        (root_payload(), {}, 403, "SIGN_REFUSED"),
        (targets_payload(), {}, 403, "SIGN_REFUSED"),
        (root_payload(), {"role": "root"}, 403, "SIGN_REFUSED"),
        (timestamp_payload(), {"gun": OTHER_GUN}, 403, "SIGN_REFUSED"),
        (timestamp_payload(), {"role": "snapshot"}, 403, "SIGN_REFUSED"),
        (timestamp_payload(), {"keyid": "0" * 64}, 404, "KEY_NOT_FOUND"),
        (timestamp_payload(), {"keyid": "short"}, 400, "BAD_REQUEST"),
        (timestamp_payload(), {"payload": "not base64!"}, 400, "BAD_REQUEST"),
        (timestamp_payload(), {"gun": ""}, 400, "BAD_REQUEST"),
    ],
    ids=[
        "root",
        "targets",
        "role root",
        "other gun",
        "role mismatch",
        "unknown key",
        "bad keyid",
        "bad base64",
        "empty gun",
    ],
)
def test_sign_errors(
    client: FlaskClient, payload: bytes, overrides: dict[str, str], status: int, code: str
) -> None:
    resp = sign(client, create(client), payload, **overrides)
    assert resp.status_code == status and error_code(resp) == code


def test_sign_missing_fields(client: FlaskClient) -> None:
    key = create(client)
    for field in ("keyid", "gun", "role", "payload"):
        body = {"keyid": key["keyid"], "gun": GUN, "role": "timestamp", "payload": "e30="}
        del body[field]
        resp = client.post("/v1/sign", json=body)
        assert resp.status_code == 400 and error_code(resp) == "BAD_REQUEST", field


def test_health(client: FlaskClient) -> None:
    resp = client.get("/health")
    assert resp.status_code == 200 and resp.json == {"status": "ok"}


def test_health_503_without_passphrase(client: FlaskClient, env: dict[str, str]) -> None:
    env.clear()
    resp = client.get("/health")
    assert resp.status_code == 503 and js(resp)["status"] == "unavailable"
    assert js(resp)["errors"][0]["code"] == "PASSPHRASE"
    assert "NOTARY_SIGNER_DEFAULT" in js(resp)["errors"][0]["message"]


def test_sign_without_passphrase_is_500_passphrase(
    client: FlaskClient, env: dict[str, str]
) -> None:
    key = create(client)
    env.clear()
    resp = sign(client, key, timestamp_payload())
    assert resp.status_code == 500 and error_code(resp) == "PASSPHRASE"


def test_unknown_route_and_method(client: FlaskClient) -> None:
    resp = client.get("/v2/nothing")
    assert resp.status_code == 404 and error_code(resp) == "NOT_FOUND"
    resp = client.put("/v1/keys")
    assert resp.status_code == 405 and error_code(resp) == "METHOD_NOT_ALLOWED"


def test_oversized_body(client: FlaskClient) -> None:
    resp = client.post(
        "/v1/sign", data=b"x" * (MAX_REQUEST_BYTES + 1), content_type="application/json"
    )
    assert resp.status_code == 413 and error_code(resp) == "TOO_LARGE"


class BrokenStore(MemoryKeyStore):
    def get(self, keyid: str) -> StoredKey:
        raise RuntimeError("secret detail")


def test_unexpected_errors_are_json_500() -> None:
    client = create_app(SignerConfig(), keystore=BrokenStore(), environ={}).test_client()
    resp = client.get(f"/v1/keys/{'0' * 64}")
    assert resp.status_code == 500 and error_code(resp) == "INTERNAL_ERROR"
    assert b"secret detail" not in resp.data


def test_retiring_a_guns_keys_destroys_them_and_only_them(client: FlaskClient) -> None:
    """Issue 9, case 5: a deleted repository's online keys never sign again."""
    ts, snap = create(client), create(client, role="snapshot")
    other = create(client, gun=OTHER_GUN)
    resp = client.post("/v1/keys/retire", json={"gun": GUN})
    assert resp.status_code == 200
    assert sorted(js(resp)["retired"]) == sorted([ts["keyid"], snap["keyid"]])
    for key in (ts, snap):
        assert error_code(client.get(f"/v1/keys/{key['keyid']}")) == "KEY_NOT_FOUND"
    assert error_code(sign(client, ts, timestamp_payload())) == "KEY_NOT_FOUND"
    assert js(client.get("/v1/keys", query_string={"gun": GUN, "role": "timestamp"}))["keys"] == []
    assert sign(client, other, timestamp_payload()).status_code == 200
    # nothing left: retiring again is harmless; a malformed name is refused
    assert js(client.post("/v1/keys/retire", json={"gun": GUN}))["retired"] == []
    assert error_code(client.post("/v1/keys/retire", json={"gun": "bad gun\n"})) == "BAD_REQUEST"
    assert error_code(client.post("/v1/keys/retire", json={})) == "BAD_REQUEST"
