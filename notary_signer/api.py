"""HTTP views of the signer (a Flask blueprint): parse, call the service, render.

Routes (all JSON; errors as ``{"errors": [{"code", "message", "detail"}]}``):

* ``POST /v1/keys`` ``{"gun", "role", "algorithm"?}`` -> 201 key object
* ``GET /v1/keys?gun=&role=`` -> 200 ``{"keys": [key object, ...]}`` oldest first
* ``GET /v1/keys/<keyid>`` -> 200 key object
* ``DELETE /v1/keys/<keyid>`` -> 204
* ``POST /v1/keys/retire`` ``{"gun"}`` -> 200 ``{"retired": [keyid, ...]}``: every key of
  a deleted repository destroyed, so that none is reused for a new owner of the name
* ``POST /v1/sign`` ``{"keyid", "gun", "role", "payload": base64}`` -> 200 ``{"keyid", "sig"}``
* ``POST /v1/sign/batch`` ``{"gun", "timestamp": {"keyids": [...], "payload": base64},
  "snapshot"?: {"keyids": [...], "payload": base64}}`` -> 200 ``{"snapshot": {"signatures":
  [{"keyid", "sig"}]}, "timestamp": {"payload": base64, "signatures": [...]}}``: a
  snapshot and the timestamp pointing at it in one round trip (see
  :meth:`~notary_signer.service.SigningService.sign_batch`)
* ``GET /health`` -> 200 ``{"status": "ok"}`` or 503

A key object is ``{"keyid", "gun", "role", "algorithm", "public_key": {"keytype",
"scheme", "keyval"}, "created_at", "last_used"}``.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal, overload

from flask import Blueprint, Response, current_app, jsonify, request

from notary_signer.errors import BadRequestError, SignerError
from notary_signer.keystore import StoredKey
from notary_signer.service import SigningService

__all__ = ["EXTENSION", "bp", "key_to_json"]

bp = Blueprint("notary_signer", __name__)

#: Key under which create_app() puts the SigningService in ``app.extensions``.
EXTENSION = "notary_signer"
_KEYID_RE = re.compile(r"[0-9a-f]{64}")


def key_to_json(key: StoredKey) -> dict[str, Any]:
    """Render a stored key as the API's key object."""
    pub = key.public_key.to_dict()
    return {
        "keyid": key.keyid,
        "gun": key.gun,
        "role": key.role,
        "algorithm": key.algorithm,
        "public_key": {"keytype": pub["keytype"], "scheme": pub["scheme"], "keyval": pub["keyval"]},
        "created_at": key.created_at.isoformat(),
        "last_used": key.last_used.isoformat() if key.last_used else None,
    }


@bp.post("/v1/keys")
def create_key() -> tuple[Response, int]:
    body = _json_body()
    algorithm = _field(body, "algorithm", required=False)
    key = _service().create_key(_field(body, "gun"), _field(body, "role"), algorithm or None)
    return jsonify(key_to_json(key)), 201


@bp.get("/v1/keys")
def list_keys() -> Response:
    args = request.args
    keys = _service().list_keys(_field(args, "gun"), _field(args, "role"))
    return jsonify({"keys": [key_to_json(k) for k in keys]})


@bp.get("/v1/keys/<keyid>")
def get_key(keyid: str) -> Response:
    return jsonify(key_to_json(_service().get_key(_keyid(keyid))))


@bp.delete("/v1/keys/<keyid>")
def delete_key(keyid: str) -> tuple[str, int]:
    _service().delete_key(_keyid(keyid))
    return "", 204


@bp.post("/v1/keys/retire")
def retire_keys() -> Response:
    retired = _service().retire_keys(_field(_json_body(), "gun"))
    return jsonify({"retired": [k.keyid for k in retired]})


@bp.post("/v1/sign")
def sign() -> Response:
    body = _json_body()
    keyid = _keyid(_field(body, "keyid"))
    try:
        payload = base64.b64decode(_field(body, "payload"), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("payload must be standard base64") from None
    sig = _service().sign(keyid, _field(body, "gun"), _field(body, "role"), payload)
    return jsonify({"keyid": sig.keyid, "sig": sig.signature})


@bp.post("/v1/sign/batch")
def sign_batch() -> Response:
    body = _json_body()
    timestamp = _part(body, "timestamp", required=True)
    snapshot = _part(body, "snapshot", required=False)
    result = _service().sign_batch(
        _field(body, "gun"),
        timestamp[0],
        timestamp[1],
        snapshot[0] if snapshot else (),
        snapshot[1] if snapshot else None,
    )
    return jsonify(
        {
            "snapshot": {"signatures": [_sig(s) for s in result.snapshot]},
            "timestamp": {
                "payload": base64.b64encode(result.timestamp_payload).decode(),
                "signatures": [_sig(s) for s in result.timestamp],
            },
        }
    )


@bp.get("/health")
def health() -> tuple[Response, int]:
    try:
        _service().check_health()
    except SignerError as e:
        return jsonify({"status": "unavailable", "errors": [e.to_dict()]}), 503
    return jsonify({"status": "ok"}), 200


def _service() -> SigningService:
    service: SigningService = current_app.extensions[EXTENSION]
    return service


def _json_body() -> dict[str, Any]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequestError("request body must be a JSON object")
    return body


def _field(source: Any, name: str, *, required: bool = True) -> str:
    value = source.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise BadRequestError(f"field {name!r} must be a non-empty string", field=name)
    return value


@overload
def _part(
    body: dict[str, Any], name: str, *, required: Literal[True]
) -> tuple[list[str], bytes]: ...


@overload
def _part(body: dict[str, Any], name: str, *, required: bool) -> tuple[list[str], bytes] | None: ...


def _part(body: dict[str, Any], name: str, *, required: bool) -> tuple[list[str], bytes] | None:
    """``{"keyids": [...], "payload": base64}`` of one role in a batch."""
    part = body.get(name)
    if part is None and not required:
        return None
    if not isinstance(part, dict):
        raise BadRequestError(f"field {name!r} must be an object", field=name)
    keyids = part.get("keyids")
    if not isinstance(keyids, list) or not all(isinstance(k, str) for k in keyids):
        raise BadRequestError(f"{name}.keyids must be a list of key ids", field=name)
    try:
        payload = base64.b64decode(_field(part, "payload"), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequestError("payload must be standard base64", field=name) from None
    return [_keyid(k) for k in keyids], payload


def _sig(sig: Any) -> dict[str, str]:
    return {"keyid": sig.keyid, "sig": sig.signature}


def _keyid(value: str) -> str:
    if not _KEYID_RE.fullmatch(value):
        raise BadRequestError("keyid must be 64 lowercase hex digits", field="keyid")
    return value
