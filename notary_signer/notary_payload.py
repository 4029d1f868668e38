"""The signer's check of Notary-dialect timestamp and snapshot payloads. Pure.

Repositories in Notary v1's dialect (see ``notary_server.notary``) have their
timestamp and snapshot made by the server and signed with the same online keys as
TUF 1.0 repositories, so the signer holds them to the same rules: only the key's own
GUN and role (checked by :func:`notary_signer.policy.check_key`), only canonical
JSON, only the role's payload type, and the same lifetime caps. A Notary payload
is ``{"_type": "Timestamp"|"Snapshot", "expires": RFC 3339, "meta": {role: {length,
hashes{sha256, sha512?}}}, "version": n}``; anything else is refused.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from notary_signer.errors import SignerRefusedError

__all__ = ["NOTARY_TYPES", "NotaryPayload", "check_notary_payload"]

NOTARY_TYPES = {"timestamp": "Timestamp", "snapshot": "Snapshot"}
_FIELDS = {"_type", "expires", "meta", "version"}
_ROLE = re.compile(r"root|targets(/[a-z0-9_-]+)*|snapshot")
_EXPIRES = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z")


@dataclass(frozen=True)
class NotaryPayload:
    role: str
    version: int
    expires: datetime


def check_notary_payload(role: str, obj: dict[str, Any], **detail: str) -> NotaryPayload:
    """Refuse unless ``obj`` (the parsed payload) is a well-formed Notary ``role``
    payload; the caller checks canonical form and lifetime.

    Raises:
        SignerRefusedError: the message says which rule is broken.
    """

    def refuse(why: str) -> SignerRefusedError:
        return SignerRefusedError(f"not a Notary {role} payload: {why}", role=role, **detail)

    if set(obj) != _FIELDS:
        raise refuse(f"fields must be {sorted(_FIELDS)}")
    version = obj["version"]
    if type(version) is not int or version < 1:
        raise refuse("version must be a positive integer")
    expires = obj["expires"]
    if not isinstance(expires, str) or not _EXPIRES.fullmatch(expires):
        raise refuse("expires must be an RFC 3339 UTC time")
    when = datetime.fromisoformat(expires[:19]).replace(tzinfo=UTC)
    meta = obj["meta"]
    if not isinstance(meta, dict) or not meta:
        raise refuse("meta must be a non-empty object")
    if role == "timestamp" and set(meta) != {"snapshot"}:
        raise refuse("a timestamp's meta lists exactly the snapshot")
    if role == "snapshot" and ("snapshot" in meta or "timestamp" in meta):
        raise refuse("a snapshot's meta lists root, targets and delegations only")
    for name, entry in meta.items():
        if not isinstance(name, str) or not _ROLE.fullmatch(name) or len(name) > 255:
            raise refuse(f"meta names an invalid role {str(name)[:40]!r}")
        _check_entry(entry, refuse)
    return NotaryPayload(role, version, when)


def _check_entry(entry: Any, refuse: Any) -> None:
    if not isinstance(entry, dict) or set(entry) != {"length", "hashes"}:
        raise refuse("a meta entry is {length, hashes}")
    if type(entry["length"]) is not int or entry["length"] < 0:
        raise refuse("a meta length is a non-negative integer")
    hashes = entry["hashes"]
    if (
        not isinstance(hashes, dict)
        or "sha256" not in hashes
        or not set(hashes) <= {"sha256", "sha512"}
    ):
        raise refuse("meta hashes are sha256 and optionally sha512")
    for alg, size in (("sha256", 32), ("sha512", 64)):
        if alg in hashes:
            try:
                ok = len(base64.b64decode(hashes[alg], validate=True)) == size
            except (binascii.Error, ValueError, TypeError):
                ok = False
            if not ok:
                raise refuse(f"meta {alg} must be {size} bytes in base64")
