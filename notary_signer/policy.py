"""What the signer agrees to do: pure checks, no I/O.

The signer holds only *online* keys (``timestamp`` and ``snapshot``). Even a fully
compromised trust server must not get anything else signed with them, so every
request is checked here before a private key is touched:

* a key is created only for an online role, a well-formed GUN and a known algorithm;
* a payload is signed only if the request's GUN and role are the key's own, and the
  payload is the canonical JSON (OLPC, what python-tuf signs) of a TUF ``timestamp``
  or ``snapshot`` whose ``_type`` is the key's role. A ``root`` or ``targets``
  payload, or any bytes that are not exactly canonical, are refused.

Example::

    check_sign_request(stored_key, "reg/app", "timestamp", payload)  # raises if refused
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from tuf.api.metadata import Snapshot, Timestamp

from notary_signer.canonical import is_canonical
from notary_signer.errors import BadRequestError, SignerRefusedError, UnsupportedAlgorithmError
from notary_signer.keyservice import ONLINE_ROLES
from notary_signer.keystore._material import ALGORITHMS
from notary_signer.notary_payload import NOTARY_TYPES, NotaryPayload, check_notary_payload

if TYPE_CHECKING:
    from notary_signer.keystore import StoredKey

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "check_create_request",
    "check_gun",
    "check_key",
    "check_payload",
    "check_sign_request",
]

logger = logging.getLogger(__name__)

#: ngclient's default cap for snapshot metadata; a bigger payload is useless to clients.
MAX_PAYLOAD_BYTES = 2_000_000
_MAX_GUN_LENGTH = 255
# A GUN is "host[:port]/path": printable, no whitespace or control characters.
_GUN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]*")
#: The longest lifetime the signer grants, so that even a compromised server cannot
#: mint far-future freshness with the online keys.
MAX_LIFETIME = {"timestamp": timedelta(days=31), "snapshot": timedelta(days=400)}
_PAYLOAD_CLASSES: dict[str, type[Timestamp | Snapshot]] = {
    "timestamp": Timestamp,
    "snapshot": Snapshot,
}


def check_gun(gun: Any) -> str:
    """Return ``gun`` if it is a well-formed repository name.

    Raises:
        BadRequestError: not a non-empty string of allowed characters (max 255).
    """
    if not isinstance(gun, str) or not gun:
        raise BadRequestError("gun must be a non-empty string")
    if len(gun) > _MAX_GUN_LENGTH or not _GUN_RE.fullmatch(gun) or ".." in gun:
        raise BadRequestError(f"invalid gun {gun[:80]!r}", gun=gun[:80])
    return gun


def check_create_request(gun: str, role: str, algorithm: str) -> None:
    """Check a key-creation request.

    Raises:
        BadRequestError: malformed GUN.
        SignerRefusedError: ``role`` is not an online role.
        UnsupportedAlgorithmError: ``algorithm`` is not ecdsa or ed25519.
    """
    check_gun(gun)
    if role not in ONLINE_ROLES:
        raise SignerRefusedError(
            f"the signer holds only timestamp and snapshot keys, not {role!r}", role=role
        )
    if algorithm not in ALGORITHMS:
        raise UnsupportedAlgorithmError(
            f"unsupported algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}",
            algorithm=algorithm,
        )


def check_key(stored_key: StoredKey, gun: str, role: str) -> None:
    """Refuse unless ``stored_key`` is a key of ``gun`` and ``role`` (an online role).

    Raises:
        SignerRefusedError: the key belongs to another GUN or role.
    """
    detail = {"keyid": stored_key.keyid}
    if role not in ONLINE_ROLES:
        raise SignerRefusedError(f"refusing to sign for role {role!r}", role=role, **detail)
    if role != stored_key.role:
        raise SignerRefusedError(
            f"key is a {stored_key.role} key, request is for {role}", role=role, **detail
        )
    if gun != stored_key.gun:
        raise SignerRefusedError(
            f"key belongs to gun {stored_key.gun!r}, request is for {gun!r}", gun=gun, **detail
        )


def check_payload(
    role: str, payload: bytes, now: datetime | None = None, **detail: str
) -> Timestamp | Snapshot | NotaryPayload:
    """Refuse unless ``payload`` is the canonical JSON of a TUF ``role`` payload (or of
    a Notary-dialect one, see :mod:`notary_signer.notary_payload`) whose lifetime is
    within the cap; return it parsed.

    Raises:
        SignerRefusedError: any rule is broken; the message says which.
    """
    if role not in ONLINE_ROLES:
        raise SignerRefusedError(f"refusing to sign for role {role!r}", role=role, **detail)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise SignerRefusedError(
            f"payload is {len(payload)} bytes, at most {MAX_PAYLOAD_BYTES} allowed", **detail
        )
    obj = _parse_json_object(payload, detail)
    payload_type = obj.get("_type")
    if payload_type == NOTARY_TYPES[role]:
        return _check_notary(role, obj, payload, now, detail)
    if payload_type != role:
        raise SignerRefusedError(
            f"payload _type is {payload_type!r}, expected {role!r}", role=role, **detail
        )
    if not is_canonical(obj, payload):
        raise SignerRefusedError("payload is not canonical JSON", **detail)
    try:
        # from_dict consumes its argument; obj is not used afterwards.
        signed = _PAYLOAD_CLASSES[role].from_dict(obj)
    except Exception as e:  # noqa: BLE001 - tuf raises several types for bad input
        raise SignerRefusedError(
            f"payload is not valid TUF {role} metadata: {type(e).__name__}: {e}", **detail
        ) from None
    _check_lifetime(role, signed.expires, now, detail)
    return signed


def _check_notary(
    role: str, obj: dict[str, Any], payload: bytes, now: datetime | None, detail: dict[str, str]
) -> NotaryPayload:
    """A Notary-dialect payload of ``role``: same canonical-form and lifetime rules."""
    if not is_canonical(obj, payload):
        raise SignerRefusedError("payload is not canonical JSON", **detail)
    signed = check_notary_payload(role, obj, **detail)
    _check_lifetime(role, signed.expires, now, detail)
    return signed


def _check_lifetime(
    role: str, expires: datetime, now: datetime | None, detail: dict[str, str]
) -> None:
    lifetime = expires - (now or datetime.now(UTC))
    if lifetime > MAX_LIFETIME[role]:
        raise SignerRefusedError(
            f"{role} would be valid for {lifetime.days} days, longer than the "
            f"{MAX_LIFETIME[role].days} days the signer grants",
            **detail,
        )


def check_sign_request(
    stored_key: StoredKey, gun: str, role: str, payload: bytes, now: datetime | None = None
) -> None:
    """Refuse unless ``payload`` is a canonical TUF payload the key may sign.

    Args:
        stored_key: The key asked to sign.
        gun: GUN the caller says it signs for; must be the key's.
        role: Role the caller says it signs for; must be the key's.
        payload: Bytes to sign.
        now: Reference time for the lifetime cap (the current time by default).

    Raises:
        SignerRefusedError: any rule is broken; the message says which.
    """
    check_key(stored_key, gun, role)
    check_payload(role, payload, now, keyid=stored_key.keyid)
    logger.debug("sign request for key %s (%s/%s) passes policy", stored_key.keyid, gun, role)


def _parse_json_object(payload: bytes, detail: dict[str, str]) -> dict[str, Any]:
    try:
        obj = json.loads(
            payload.decode("utf-8"), parse_constant=_reject_constant, parse_float=_reject_float
        )
    except _FloatError:
        raise SignerRefusedError(
            "payload is not canonical JSON: it holds a float, which has no canonical form",
            **detail,
        ) from None
    except (UnicodeDecodeError, ValueError) as e:
        raise SignerRefusedError(
            f"payload is not UTF-8 JSON: {type(e).__name__}", **detail
        ) from None
    if not isinstance(obj, dict):
        raise SignerRefusedError("payload is not a JSON object", **detail)
    return obj


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed")


class _FloatError(Exception):
    pass


def _reject_float(text: str) -> None:
    # canonical JSON has no floats: such a payload can never be canonical
    raise _FloatError(text[:20])
