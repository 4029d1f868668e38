"""Key checks the TUF client does not make: each key id is the id of its key, each key
is written in its one canonical encoding, and no public key is listed twice.

python-tuf counts signatures by key id, so one key listed under two ids would count
twice towards a threshold; the TUF specification says clients must compute key ids,
and python-tuf does not. Two entries are the same key when their public key material
is the same after parsing (the DER SubjectPublicKeyInfo), whatever the encoding: a
PEM with a line of text before it, an Ed25519 hex value with a space inside, upper
case hex or another keytype spelling all parse to the same key. Encodings other than
the canonical one are refused outright, so no second spelling of a key gets in. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import Key

from notary_server import errors
from notary_signer.canonical import compute_keyid

__all__ = ["check_keys", "public_der"]

_ED25519_HEX = re.compile(r"[0-9a-f]{64}")
#: keytype -> the class its PEM must parse to (securesystemslib's PEM key types).
_PEM_TYPES: dict[str, type] = {
    "rsa": rsa.RSAPublicKey,
    "ecdsa": ec.EllipticCurvePublicKey,
    "ecdsa-sha2-nistp256": ec.EllipticCurvePublicKey,
    "ecdsa-sha2-nistp384": ec.EllipticCurvePublicKey,
}
_DER = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
_PEM = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def public_der(key: Key) -> bytes:
    """The DER SubjectPublicKeyInfo of ``key``'s public key, if written canonically.

    Canonical: Ed25519 as exactly 64 lower-case hex digits; RSA and ECDSA as the PEM
    SubjectPublicKeyInfo that ``cryptography`` writes (nothing before or after it,
    64-character lines, ``\\n`` line ends; the final newline may be left out).

    Raises:
        ValueError: unknown key type, unparseable or non-canonical public key.
    """
    public = key.keyval.get("public")
    if not isinstance(public, str):
        raise ValueError("keyval.public must be a string")  # noqa: TRY004 - one error type for callers
    if key.keytype == "ed25519":
        if not _ED25519_HEX.fullmatch(public):
            raise ValueError("an ed25519 public key must be written as 64 lower-case hex digits")
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public)).public_bytes(*_DER)
    expected = _PEM_TYPES.get(key.keytype)
    if expected is None:
        raise ValueError(f"unsupported key type {key.keytype[:40]!r}")
    try:
        loaded = serialization.load_pem_public_key(public.encode())
    except (ValueError, TypeError) as e:
        raise ValueError(f"the {key.keytype} public key is not a PEM public key") from e
    if not isinstance(loaded, expected):
        raise ValueError(f"the public key is not a {key.keytype} key")  # noqa: TRY004
    canonical = loaded.public_bytes(*_PEM).decode()
    if public not in (canonical, canonical.removesuffix("\n")):
        raise ValueError(
            f"the {key.keytype} public key is not in canonical PEM form "
            "(text around it, other line breaks or line lengths)"
        )
    return loaded.public_bytes(*_DER)


def check_keys(where: str, keys: Mapping[str, Key], max_keys: int) -> None:
    """Raise BadKeysError for a wrong key id, a non-canonical or duplicated key, and
    TooLargeError past ``max_keys``."""
    if len(keys) > max_keys:
        raise errors.TooLargeError(f"{where}: {len(keys)} keys is more than allowed", role=where)
    owners: dict[bytes, str] = {}
    for keyid, key in keys.items():
        computed = compute_keyid(key)
        if keyid != computed:
            raise errors.BadKeysError(
                f"{where}: key id {keyid} is not the id of its key (expected {computed})",
                role=where,
                rule="key-id-matches-key",
                keyid=keyid,
                expected_keyid=computed,
            )
        try:
            ident = public_der(key)
        except ValueError as e:
            raise errors.BadKeysError(
                f"{where}: key {keyid}: {e}; a second spelling of a key could fake a "
                "signature threshold, so only the canonical one is accepted",
                role=where,
                rule="key-canonical-encoding",
                keyid=keyid,
            ) from e
        if ident in owners:
            raise errors.BadKeysError(
                f"{where}: one public key is listed under two key ids ({owners[ident]} and "
                f"{keyid}); this would fake a signature threshold and may be an attack",
                role=where,
                rule="key-listed-once",
                keyids=[owners[ident], keyid],
            )
        owners[ident] = keyid
