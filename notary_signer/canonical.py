"""Canonical JSON and key ids: the one implementation the server, the signer and trustctl share.

Canonical JSON is the OLPC form TUF signs (securesystemslib's ``encode_canonical``):
sorted keys, no whitespace, UTF-8, and strings escaping only ``"`` and ``\\``. A key
id is the sha256 of the canonical JSON of a key's public part: ``{keytype, scheme,
keyval}`` for TUF, ``{keytype, keyval: {public, private: null}}`` for Notary v1.

Speed matters (the server canonicalises every uploaded role and every file it signs),
so :func:`canonical_json` uses the C JSON encoder. With sorted keys, no spaces and
``ensure_ascii=False`` it writes exactly the canonical bytes whenever its output holds
no backslash: the two encoders differ only in how they escape quotes, backslashes and
control characters, and each such escape is a backslash. Output with a backslash is
rare and goes through securesystemslib's own encoder.

Documents given to :func:`canonical_json` must hold no floats (canonical JSON has
none): the C encoder would write them where securesystemslib refuses. Every parser
whose output reaches it refuses floats (``json.loads(..., parse_float=...)``). Key
ids are small, come from any key file, and must equal python-tuf's exactly, so they
always use securesystemslib's encoder, which refuses floats itself.

This module lives in ``notary_signer`` because the signer is the package the trust
server (and through it trustctl) already imports; it imports nothing of theirs.

Example::

    canonical_json({"b": 1, "a": "é"})  # b'{"a":"\\xc3\\xa9","b":1}'
    compute_keyid(key) == key.keyid  # for any key securesystemslib built
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Protocol

__all__ = ["canonical_json", "compute_keyid", "holds_float", "is_canonical", "notary_keyid"]


class _PublicKey(Protocol):
    keytype: str
    scheme: str
    keyval: dict[str, Any]


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value``, a JSON value without floats.

    Raises:
        ValueError: ``value`` cannot be canonicalised (a type JSON does not have,
            a string that is not valid Unicode, ...).
    """
    try:
        fast = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    except (TypeError, ValueError) as e:
        raise ValueError(f"cannot be canonicalised: {e}") from None
    if "\\" in fast:
        return _exact(value)
    try:
        return fast.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate
        raise ValueError(f"cannot be canonicalised: {e}") from None


def _exact(value: Any) -> bytes:
    """securesystemslib's canonical encoding of ``value``, refusing floats (slow, exact)."""
    from securesystemslib.formats import encode_canonical  # not loaded by most callers

    try:
        text = encode_canonical(value)
        assert isinstance(text, str)
        return text.encode("utf-8")
    except Exception as e:  # noqa: BLE001 - FormatError, UnicodeEncodeError (lone surrogates), ...
        raise ValueError(f"cannot be canonicalised: {e}") from None


def holds_float(value: Any) -> bool:
    """Whether a JSON value holds a float anywhere (it then has no canonical form, and
    :func:`canonical_json` must not be given it)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return True
    return False


def is_canonical(value: Any, payload: bytes) -> bool:
    """Whether ``payload`` is exactly the canonical JSON of ``value`` (its parse)."""
    try:
        return canonical_json(value) == payload
    except ValueError:
        return False


def compute_keyid(key: _PublicKey) -> str:
    """The TUF key id of ``key``: sha256 of the canonical ``{keytype, scheme, keyval}``.

    Recomputed from the key, never read from input; ``key`` is any object with those
    three attributes (securesystemslib's ``Key``, for one).

    Raises:
        ValueError: the key's fields cannot be canonicalised (a float, for one).
    """
    public = {"keytype": key.keytype, "scheme": key.scheme, "keyval": key.keyval}
    return hashlib.sha256(_exact(public)).hexdigest()


def notary_keyid(keytype: str, public: bytes) -> str:
    """Notary v1's key id: sha256 of canonical ``{keytype, keyval: {private: null, public}}``.

    ``public`` is the key's public bytes (DER SubjectPublicKeyInfo, a certificate, or
    raw Ed25519), written base64 as Notary does.
    """
    obj = {
        "keytype": keytype,
        "keyval": {"private": None, "public": base64.b64encode(public).decode()},
    }
    return hashlib.sha256(_exact(obj)).hexdigest()
