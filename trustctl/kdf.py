"""Decrypting a key while the command does other work.

trustctl's key files are PBES2 (PBKDF2-HMAC-SHA256, 600,000 rounds, AES-256-CBC, see
:mod:`trustctl.keyformat`): deriving the key-encryption key takes 100-150 ms here by
design. cryptography's PBKDF2 releases the GIL while it runs (its PKCS#8 loader does
not), so ``sign`` derives the key in a thread, on the other core, while it imports
python-tuf and asks the trust server for the current metadata:

* :func:`pbes2_params` reads salt, rounds, IV and ciphertext of an encrypted
  PKCS#8 DER as trustctl writes it (None for anything else);
* :class:`Derivation` runs PBKDF2 in a daemon thread and hands back the 32-byte key;
* :func:`decrypt` turns that key and the parameters into the private key.

Derived keys live only in the command that derived them (its key store keeps the
decrypted signer, so each key file costs one PBKDF2 per command however many tags it
signs); nothing caches them across commands.

Any failure only means the normal, in-process decryption runs instead, and reports
what is wrong (a wrong passphrase, a damaged file).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["Derivation", "Pbes2Params", "decrypt", "pbes2_params"]

logger = logging.getLogger(__name__)

_PBES2 = bytes.fromhex("2a864886f70d01050d")  # 1.2.840.113549.1.5.13
_PBKDF2 = bytes.fromhex("2a864886f70d01050c")  # 1.2.840.113549.1.5.12
_HMAC_SHA256 = bytes.fromhex("2a864886f70d0209")  # 1.2.840.113549.2.9
_AES256_CBC = bytes.fromhex("60864801650304012a")  # 2.16.840.1.101.3.4.1.42


@dataclass(frozen=True)
class Pbes2Params:
    salt: bytes
    iterations: int
    iv: bytes
    ciphertext: bytes


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    """One DER element at ``pos``: (tag, content, position after it)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, data[pos:end], end


def _children(content: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(content):
        tag, body, pos = _read(content, pos)
        out.append((tag, body))
    return out


def pbes2_params(der: bytes) -> Pbes2Params | None:
    """The PBES2 parameters of an ``EncryptedPrivateKeyInfo`` trustctl wrote, or None."""
    try:
        tag, outer, _ = _read(der, 0)
        algorithm, encrypted = _children(outer)
        scheme, params = _children(algorithm[1])
        kdf, cipher = _children(params[1])
        kdf_oid, kdf_params = _children(kdf[1])
        kdf_fields = _children(kdf_params[1])
        cipher_oid, iv = _children(cipher[1])
        prf = _children(kdf_fields[-1][1])[0] if kdf_fields[-1][0] == 0x30 else None
        if (
            tag != 0x30
            or scheme[1] != _PBES2
            or kdf_oid[1] != _PBKDF2
            or prf is None
            or prf[1] != _HMAC_SHA256
            or cipher_oid[1] != _AES256_CBC
            or encrypted[0] != 0x04
            or len(iv[1]) != 16
        ):
            return None
        salt, iterations = kdf_fields[0][1], int.from_bytes(kdf_fields[1][1], "big")
        return Pbes2Params(salt, iterations, iv[1], encrypted[1])
    except (ValueError, IndexError):
        return None


class Derivation:
    """PBKDF2-HMAC-SHA256 of ``passphrase`` in a background thread (see module docstring)."""

    def __init__(self, passphrase: str, params: Pbes2Params) -> None:
        self.passphrase = passphrase
        self.params = params
        self._key: bytes | None = None

        from cryptography.hazmat.primitives.hashes import SHA256
        from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

        kdf = PBKDF2HMAC(SHA256(), 32, params.salt, params.iterations)

        def run() -> None:
            try:
                self._key = kdf.derive(passphrase.encode())
            except Exception as e:  # noqa: BLE001 - the in-process decryption reports it
                logger.debug("background key derivation failed: %s", e)

        self._thread = threading.Thread(target=run, name="trustctl-kdf", daemon=True)
        self._thread.start()

    def key(self, timeout: float = 30.0) -> bytes | None:
        """The derived 32-byte key, or None when the derivation failed."""
        self._thread.join(timeout)
        return self._key


def decrypt(params: Pbes2Params, key: bytes) -> Any | None:
    """The private key, or None if ``key`` does not open it (e.g. another passphrase)."""
    from cryptography.hazmat.primitives import padding, serialization
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        decryptor = Cipher(algorithms.AES(key), modes.CBC(params.iv)).decryptor()
        padded = decryptor.update(params.ciphertext) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        return serialization.load_der_private_key(plain, None)
    except ValueError:
        return None
