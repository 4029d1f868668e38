"""Internal: key generation and (de)serialisation shared by the key stores."""

from __future__ import annotations

from typing import cast

from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_der_private_key,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from notary_signer.errors import UnsupportedAlgorithmError

#: Key algorithms the signer generates, and the securesystemslib generator for each.
ALGORITHMS = ("ecdsa", "ed25519")


def generate(algorithm: str) -> tuple[CryptoSigner, bytes]:
    """Generate a key; return its signer and its PKCS#8 DER private key.

    Raises:
        UnsupportedAlgorithmError: ``algorithm`` is not in :data:`ALGORITHMS`.
    """
    if algorithm == "ecdsa":
        signer = CryptoSigner.generate_ecdsa()
    elif algorithm == "ed25519":
        signer = CryptoSigner.generate_ed25519()
    else:
        raise UnsupportedAlgorithmError(
            f"unsupported algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}",
            algorithm=algorithm,
        )
    # CryptoSigner exposes PKCS#8 PEM only; store the smaller DER form.
    private = load_pem_private_key(signer.private_bytes, password=None)
    der = private.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    return signer, der


def load(der: bytes, public_key: Key) -> CryptoSigner:
    """Build a signer from a PKCS#8 DER private key and its stored public key."""
    return CryptoSigner(load_der_private_key(der, password=None), cast(SSlibKey, public_key))
