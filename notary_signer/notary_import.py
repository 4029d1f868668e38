"""Bring the keys of a notary-signer 0.7.0 database into ours.

notary-signer keeps each private key in ``private_keys`` as a JWE (compact form,
``PBES2-HS256+A128KW`` key wrapping, ``A256GCM`` content encryption) whose
passphrase comes from ``NOTARY_SIGNER_<ALIAS>`` for the row's ``passphrase_alias``.
The plaintext is the SEC1 DER of an ECDSA key (or the 64 bytes of an ed25519 key).
Each key is decrypted, checked against the row's public key and Notary key id, and
stored in our signer re-encrypted under our default alias, with the same GUN and
role. Nothing is written unless every key passes (one transaction); a key already
imported is skipped, so a second run is a no-op.

Example::

    plan = read_notary_keys(engine, os.environ)       # raises on any bad row
    imported = import_keys(store, plan)               # count of new keys
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from notary_signer.canonical import notary_keyid
from notary_signer.errors import SignerError

__all__ = ["NotaryKeyRow", "decrypt_jwe", "import_keys", "read_notary_keys"]

_ROLES = frozenset({"timestamp", "snapshot"})
#: notary-signer's own PBES2 iteration counts are in the thousands; refuse absurd ones.
_MAX_P2C = 10_000_000


class ImportRefusedError(SignerError):
    code = "IMPORT_REFUSED"


@dataclass(frozen=True)
class NotaryKeyRow:
    keyid: str  # Notary's key id (sha256 of its canonical public key object)
    gun: str
    role: str
    algorithm: str
    pkcs8: bytes = field(repr=False)  # PKCS#8 DER private key
    created_at: datetime | None = None
    last_used: datetime | None = None


def _b64url(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise ImportRefusedError("JWE part is not base64url") from None


def decrypt_jwe(token: str, passphrase: str) -> bytes:
    """Decrypt a compact JWE with ``PBES2-HS256+A128KW`` and ``A256GCM`` (RFC 7516/7518).

    Raises:
        SignerError: another algorithm, a malformed token or a wrong passphrase.
    """
    parts = token.strip().split(".")
    if len(parts) != 5:
        raise ImportRefusedError("not a compact JWE (five parts)")
    header_b64, wrapped, iv, ciphertext, tag = parts
    try:
        header = json.loads(_b64url(header_b64))
    except ValueError:
        raise ImportRefusedError("JWE header is not JSON") from None
    if header.get("alg") != "PBES2-HS256+A128KW" or header.get("enc") != "A256GCM":
        raise ImportRefusedError(
            f"unsupported JWE algorithms {header.get('alg')}/{header.get('enc')}"
        )
    p2c = header.get("p2c")
    if type(p2c) is not int or not 0 < p2c <= _MAX_P2C:
        raise ImportRefusedError("JWE p2c is not a sane iteration count")
    salt = b"PBES2-HS256+A128KW\x00" + _b64url(str(header.get("p2s", "")))
    kek = PBKDF2HMAC(hashes.SHA256(), 16, salt, p2c).derive(passphrase.encode())
    try:
        cek = aes_key_unwrap(kek, _b64url(wrapped))
        return AESGCM(cek).decrypt(
            _b64url(iv), _b64url(ciphertext) + _b64url(tag), header_b64.encode("ascii")
        )
    except (InvalidUnwrap, InvalidTag, ValueError):
        raise ImportRefusedError(
            "cannot decrypt the key: wrong passphrase or damaged data"
        ) from None


def _private_key(algorithm: str, plain: bytes) -> Any:
    if algorithm == "ecdsa":
        return serialization.load_der_private_key(plain, password=None)
    if algorithm == "ed25519" and len(plain) == 64:
        return ed25519.Ed25519PrivateKey.from_private_bytes(plain[:32])
    raise ImportRefusedError(f"unsupported key algorithm {algorithm!r}")


def _public_bytes(algorithm: str, key: Any) -> bytes:
    if algorithm == "ed25519":
        raw: bytes = key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return raw
    der: bytes = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _bytes(value: Any) -> bytes:
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, str):
        return value.encode("latin-1")
    return bytes(value)


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_notary_keys(engine: Any, environ: Mapping[str, str]) -> list[NotaryKeyRow]:
    """Every live key of a notary-signer database, decrypted and checked.

    Raises:
        SignerError: a passphrase variable is missing, or any row does not decrypt,
            does not match its public key or key id, or has an unexpected role.
    """
    from sqlalchemy import text

    query = text(
        "SELECT key_id, algorithm, passphrase_alias, gun, role, public, private, "
        "created_at, last_used FROM private_keys WHERE deleted_at IS NULL ORDER BY id"
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    out = []
    for row in rows:
        where = f"key {row.key_id} ({row.gun}/{row.role})"
        if row.role not in _ROLES:
            raise ImportRefusedError(f"{where}: role is not timestamp or snapshot")
        var = f"NOTARY_SIGNER_{str(row.passphrase_alias).upper()}"
        passphrase = environ.get(var)
        if not passphrase:
            raise ImportRefusedError(
                f"{where}: set {var} to the passphrase of alias {row.passphrase_alias!r}"
            )
        token = _bytes(row.private).decode("ascii", errors="replace")
        try:
            key = _private_key(row.algorithm, decrypt_jwe(token, passphrase))
        except ImportRefusedError as e:
            raise ImportRefusedError(f"{where}: {e.message}") from None
        except ValueError:
            raise ImportRefusedError(f"{where}: the decrypted key does not load") from None
        public = _public_bytes(row.algorithm, key)
        keytype = "ed25519" if row.algorithm == "ed25519" else "ecdsa"
        if public != _bytes(row.public) or notary_keyid(keytype, public) != row.key_id:
            raise ImportRefusedError(f"{where}: private key, public key and key id do not agree")
        if row.algorithm == "ecdsa" and not isinstance(key.curve, ec.SECP256R1):
            raise ImportRefusedError(f"{where}: only P-256 ECDSA keys are supported")
        pkcs8 = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        out.append(
            NotaryKeyRow(
                row.key_id,
                row.gun,
                row.role,
                row.algorithm,
                pkcs8,
                _utc(row.created_at),
                _utc(row.last_used),
            )
        )
    return out


def import_keys(store: Any, keys: list[NotaryKeyRow]) -> int:
    """Store ``keys`` in ``store`` (an SQLKeyStore) in one transaction; the number of
    keys that were new."""
    imported: int = store.import_keys(
        [(k.gun, k.role, k.algorithm, k.pkcs8, k.created_at, k.last_used) for k in keys]
    )
    return imported
