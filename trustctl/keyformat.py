"""Key formats: encrypted PKCS#8 with a strong KDF, public keys, TUF key ids.

* :func:`encrypt_pkcs8` writes a DER ``EncryptedPrivateKeyInfo`` (RFC 8018 PBES2:
  PBKDF2-HMAC-SHA256 with a chosen work factor, AES-256-CBC). cryptography itself
  writes PKCS#8 with only 2,048 PBKDF2 iterations, so the structure is encoded here;
  reading it back uses cryptography's parser (and ``openssl pkcs8`` reads it too).
* :func:`public_key_from_pem`, :func:`public_key_to_pem`, :func:`load_public_key_file`
  convert between PEM SubjectPublicKeyInfo, TUF key JSON and securesystemslib keys.
* Key ids are recomputed (:func:`notary_signer.canonical.compute_keyid`), never trusted
  from input.

Example:
    >>> from cryptography.hazmat.primitives.asymmetric import ec
    >>> der = encrypt_pkcs8(ec.generate_private_key(ec.SECP256R1()), "pw", 1000)
    >>> der[:1]
    b'0'
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from securesystemslib.exceptions import FormatError
from securesystemslib.signer import Key, SSlibKey

from notary_signer.canonical import compute_keyid
from trustctl.errors import UsageError

__all__ = [
    "PrivateKey",
    "encrypt_pkcs8",
    "load_public_key_file",
    "public_key_from_pem",
    "public_key_to_pem",
    "scheme_for",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

# --- PKCS#8 PBES2 encryption with a strong KDF ---------------------------------------
# cryptography writes PKCS#8 with only 2,048 PBKDF2 iterations; we encode the
# EncryptedPrivateKeyInfo ourselves (RFC 8018) so the work factor is ours to choose.
# Reading uses cryptography's own parser.


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        length = bytes([n])
    else:
        raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
        length = bytes([0x80 | len(raw)]) + raw
    return bytes([tag]) + length + content


def _seq(*parts: bytes) -> bytes:
    return _der(0x30, b"".join(parts))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return _der(0x06, bytes(out))


def _int(value: int) -> bytes:
    raw = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return _der(0x02, raw)


_PBES2 = "1.2.840.113549.1.5.13"
_PBKDF2 = "1.2.840.113549.1.5.12"
_HMAC_SHA256 = "1.2.840.113549.2.9"
_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def encrypt_pkcs8(
    private_key: PrivateKey,
    passphrase: str,
    iterations: int,
) -> bytes:
    """DER ``EncryptedPrivateKeyInfo`` (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC)."""
    plain = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    key = hashlib.pbkdf2_hmac("sha256", passphrase.encode(), salt, iterations, 32)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    kdf = _seq(
        _oid(_PBKDF2),
        _seq(_der(0x04, salt), _int(iterations), _seq(_oid(_HMAC_SHA256), _der(0x05, b""))),
    )
    cipher = _seq(_oid(_AES256_CBC), _der(0x04, iv))
    return _seq(_seq(_oid(_PBES2), _seq(kdf, cipher)), _der(0x04, encrypted))


# --- public key helpers -----------------------------------------------------------------


_EC_SCHEMES = {
    "secp256r1": "ecdsa-sha2-nistp256",
    "secp384r1": "ecdsa-sha2-nistp384",
    "secp521r1": "ecdsa-sha2-nistp521",
}


MIN_RSA_BITS = 2048  # NIST SP 800-131A: 1024-bit RSA is disallowed for signatures


def scheme_for(public: object) -> str:
    if isinstance(public, ec.EllipticCurvePublicKey):
        # by name: secp256k1 and brainpoolP256r1 are 256-bit curves too, but not P-256
        scheme = _EC_SCHEMES.get(public.curve.name)
        if scheme is None:
            raise UsageError(
                f"unsupported elliptic curve {public.curve.name}: use P-256, P-384 or P-521"
            )
        return scheme
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise UsageError(
                f"RSA key of {public.key_size} bits is too weak: at least {MIN_RSA_BITS} bits"
                " (or use ECDSA P-256 or Ed25519)"
            )
        return "rsassa-pss-sha256"
    raise UsageError(f"unsupported key type {type(public).__name__}: use ECDSA, Ed25519 or RSA")


def public_key_from_pem(pem: bytes, *, scheme: str | None = None) -> Key:
    """A TUF key from a PEM SubjectPublicKeyInfo (what ``key generate`` writes)."""
    try:
        public = serialization.load_pem_public_key(pem)
    except ValueError as e:
        raise UsageError(f"not a PEM public key: {e}") from e
    return SSlibKey.from_crypto(public, scheme=scheme or scheme_for(public))


def public_key_to_pem(key: Key) -> bytes:
    """PEM SubjectPublicKeyInfo for a TUF key (ECDSA/RSA PEM, Ed25519 hex)."""
    value = str(key.keyval["public"])
    if value.startswith("-----BEGIN"):
        return value.encode() if value.endswith("\n") else (value + "\n").encode()
    public = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_file(path: Path) -> Key:
    """A public key from a file: PEM SPKI, or TUF key JSON (``{"keytype", "scheme", "keyval"}``).

    Raises:
        UsageError: unreadable, or not a public key.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UsageError(f"cannot read public key file {path}: {e.strerror}") from e
    if data.lstrip().startswith(b"{"):
        try:
            doc = json.loads(data)
            doc.pop("keyid", None)
            key = SSlibKey.from_dict("x", doc)
            key = SSlibKey.from_dict(compute_keyid(key), key.to_dict())
            _check_public_key(key)
        except (
            ValueError,
            KeyError,
            TypeError,
            RecursionError,
            FormatError,
            UnsupportedAlgorithm,
        ) as e:
            raise UsageError(f"{path} is not a TUF public key: {e}") from e
        return key
    if b"PRIVATE KEY" in data:
        raise UsageError(f"{path} holds a private key: hand over the public key (.pub) only")
    return public_key_from_pem(data)


def _check_public_key(key: SSlibKey) -> None:
    """A key from TUF key JSON must be one that signatures can be checked with: its
    ``keyval`` holds a key of its ``keytype``, with a scheme for that key (else the
    repository would carry a key that breaks every later verification).

    Raises:
        ValueError: it is not; UsageError: an unsupported key type or curve.
    """
    value = key.keyval["public"]
    public: PublicKeyTypes
    if key.keytype == "ed25519":
        public = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))
    else:
        public = serialization.load_pem_public_key(value.encode())
    expected = scheme_for(public)
    rsa_scheme = isinstance(public, rsa.RSAPublicKey) and key.scheme.startswith(
        ("rsassa-pss-sha", "rsa-pkcs1v15-sha")
    )
    if SSlibKey.from_crypto(public).keytype != key.keytype or not (
        key.scheme == expected or rsa_scheme
    ):
        raise ValueError(
            f"keytype {key.keytype!r} with scheme {key.scheme!r} does not match its {expected} key"
        )
