"""Encryption of private keys at rest.

Private keys are stored as PKCS#8 DER encrypted with AES-256-GCM under a key derived
from a passphrase with scrypt. Passphrases are named by an *alias* and read from the
environment variable ``NOTARY_SIGNER_<ALIAS>`` (``default`` ->
``NOTARY_SIGNER_DEFAULT``); several aliases can be readable at once, so a passphrase
can be rotated with ``notary-signer reencrypt``.

Stored blob (version 1) is compact UTF-8 JSON::

    {"v": 1, "cipher": "AES-256-GCM", "alias": "default",
     "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1},
     "salt": "<b64>", "nonce": "<b64, 12 bytes>", "ct": "<b64 ciphertext+tag>"}

The GCM associated data binds the blob to its row (key id, GUN, role and alias), so
a blob copied onto another row does not decrypt.

Deriving a key costs ~0.1 s by design. Derived keys are cached in process memory
per (alias, passphrase, salt, parameters), and one salt is reused per alias for the
blobs a process encrypts (each blob still has its own random nonce), so signing and
key creation stay fast after the first use.

Example::

    enc = KeyEncryptor(os.environ, alias="default")
    blob = enc.encrypt(der, keyid=kid, gun="reg/app", role="timestamp")
    der == enc.decrypt(blob, keyid=kid, gun="reg/app", role="timestamp")
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from notary_signer.errors import PassphraseError, SignerError

__all__ = [
    "ENV_PREFIX",
    "FORMAT_VERSION",
    "KeyEncryptor",
    "ScryptParams",
    "env_var_for_alias",
    "normalize_alias",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
ENV_PREFIX = "NOTARY_SIGNER_"
_CIPHER = "AES-256-GCM"
_ALIAS_RE = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")


def normalize_alias(alias: str) -> str:
    """Return ``alias`` lower-cased, or raise PassphraseError if it is not a valid name.

    Raises:
        PassphraseError: ``alias`` is not letters, digits and ``_`` (max 64).
    """
    norm = alias.lower()
    if not _ALIAS_RE.fullmatch(norm):
        raise PassphraseError(
            f"invalid passphrase alias {alias!r}: use letters, digits and '_' (max 64)"
        )
    return norm


def env_var_for_alias(alias: str) -> str:
    """Return the environment variable holding the passphrase of ``alias``."""
    return ENV_PREFIX + normalize_alias(alias).upper()


@dataclass(frozen=True)
class ScryptParams:
    """scrypt cost parameters (RFC 7914); ``n=2**15`` costs about 0.1 s here."""

    n: int = 2**15
    r: int = 8
    p: int = 1

    def check(self) -> None:
        """Refuse parameters outside sane bounds (a tampered blob must not hang us).

        Raises:
            SignerError: parameters out of bounds.
        """
        if not (2**10 <= self.n <= 2**20 and self.n & (self.n - 1) == 0):
            raise SignerError(f"scrypt n must be a power of two in [2^10, 2^20], got {self.n}")
        if not (1 <= self.r <= 32 and 1 <= self.p <= 16):
            raise SignerError(f"scrypt r/p out of bounds: r={self.r} p={self.p}")


class KeyEncryptor:
    """Encrypts and decrypts private keys with passphrases named by alias.

    Args:
        passphrases: Mapping read for ``NOTARY_SIGNER_<ALIAS>`` (``os.environ`` at the
            edge, a dict in tests). Read on every use, never copied.
        alias: Alias new blobs are encrypted under.
        kdf: scrypt parameters for new blobs (old blobs carry their own).

    Raises:
        PassphraseError: ``alias`` is not a valid alias name.
    """

    def __init__(
        self,
        passphrases: Mapping[str, str],
        *,
        alias: str = "default",
        kdf: ScryptParams | None = None,
    ) -> None:
        self._passphrases = passphrases
        self._alias = normalize_alias(alias)
        self._kdf = kdf or ScryptParams()
        self._kdf.check()
        self._lock = threading.Lock()
        self._derived: dict[tuple[Any, ...], bytes] = {}
        self._salts: dict[tuple[str, bytes], bytes] = {}

    @classmethod
    def ephemeral(cls) -> KeyEncryptor:
        """An encryptor with a random in-memory passphrase, for in-memory stores."""
        return cls(
            {env_var_for_alias("default"): secrets.token_urlsafe(32)}, kdf=ScryptParams(n=2**10)
        )

    @property
    def alias(self) -> str:
        """The alias new blobs are encrypted under."""
        return self._alias

    def use_alias(self, alias: str) -> None:
        """Encrypt new blobs under ``alias`` from now on (after checking it is set).

        Raises:
            PassphraseError: the alias is invalid or its variable is not set.
        """
        norm = normalize_alias(alias)
        self._passphrase(norm)
        self._alias = norm

    def check_alias(self, alias: str | None = None) -> None:
        """Raise PassphraseError unless the passphrase of ``alias`` is set.

        Args:
            alias: Alias to check; the encryptor's own alias when None.
        """
        self._passphrase(normalize_alias(alias) if alias else self._alias)

    def encrypt(
        self, plaintext: bytes, *, keyid: str, gun: str, role: str, alias: str | None = None
    ) -> bytes:
        """Encrypt ``plaintext`` (a PKCS#8 DER key) for the row (keyid, gun, role).

        Args:
            plaintext: The secret to protect.
            keyid: Key id of the row the blob belongs to.
            gun: GUN of that row.
            role: Role of that row.
            alias: Passphrase alias; the encryptor's own alias when None.

        Returns:
            The versioned blob (UTF-8 JSON bytes).

        Raises:
            PassphraseError: the alias's passphrase is not set.
        """
        use = normalize_alias(alias) if alias else self._alias
        passphrase = self._passphrase(use)
        salt = self._salt_for(use, passphrase)
        key = self._derive(use, passphrase, salt, self._kdf)
        nonce = os.urandom(12)
        ct = AESGCM(key).encrypt(nonce, plaintext, _aad(keyid, gun, role, use))
        doc = {
            "v": FORMAT_VERSION,
            "cipher": _CIPHER,
            "alias": use,
            "kdf": {"name": "scrypt", "n": self._kdf.n, "r": self._kdf.r, "p": self._kdf.p},
            "salt": _b64(salt),
            "nonce": _b64(nonce),
            "ct": _b64(ct),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    def decrypt(self, blob: bytes, *, keyid: str, gun: str, role: str) -> bytes:
        """Decrypt a blob made by :meth:`encrypt` for the same (keyid, gun, role).

        Raises:
            PassphraseError: passphrase not set, wrong, or the blob belongs to another row.
            SignerError: the blob is malformed or of an unknown format version.
        """
        doc = _parse_blob(blob)
        alias = doc["alias"]
        passphrase = self._passphrase(alias)
        key = self._derive(alias, passphrase, doc["salt"], doc["kdf"])
        try:
            return AESGCM(key).decrypt(doc["nonce"], doc["ct"], _aad(keyid, gun, role, alias))
        except InvalidTag:
            raise PassphraseError(
                f"cannot decrypt key {keyid} under alias {alias!r}: wrong passphrase in "
                f"{env_var_for_alias(alias)}, or the stored blob belongs to another row",
                keyid=keyid,
                alias=alias,
            ) from None

    @staticmethod
    def blob_alias(blob: bytes) -> str:
        """Return the alias a blob is encrypted under.

        Raises:
            SignerError: the blob is malformed.
        """
        return str(_parse_blob(blob)["alias"])

    def _passphrase(self, alias: str) -> bytes:
        var = env_var_for_alias(alias)
        value = self._passphrases.get(var)
        if not value:
            raise PassphraseError(
                f"passphrase for alias {alias!r} is not set: set {var}",
                hint=f"export {var} in the signer's environment",
                alias=alias,
                variable=var,
            )
        return value.encode()

    def _salt_for(self, alias: str, passphrase: bytes) -> bytes:
        ident = (alias, hashlib.sha256(passphrase).digest())
        with self._lock:
            return self._salts.setdefault(ident, os.urandom(16))

    def _derive(self, alias: str, passphrase: bytes, salt: bytes, kdf: ScryptParams) -> bytes:
        ident = (alias, hashlib.sha256(passphrase).digest(), salt, kdf)
        with self._lock:
            cached = self._derived.get(ident)
        if cached is not None:
            return cached
        logger.debug("deriving key-encryption key for alias %s", alias)
        key = Scrypt(salt=salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(passphrase)
        with self._lock:
            self._derived[ident] = key
        return key


def _aad(keyid: str, gun: str, role: str, alias: str) -> bytes:
    return json.dumps(["notary-signer-key", FORMAT_VERSION, keyid, gun, role, alias]).encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _parse_blob(blob: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(blob)
        if doc["v"] != FORMAT_VERSION or doc["cipher"] != _CIPHER:
            raise SignerError(f"unsupported key blob format {doc['v']!r}/{doc['cipher']!r}")
        kdf = doc["kdf"]
        if kdf["name"] != "scrypt":
            raise SignerError(f"unsupported key blob KDF {kdf['name']!r}")
        params = ScryptParams(n=int(kdf["n"]), r=int(kdf["r"]), p=int(kdf["p"]))
        params.check()
        return {
            "alias": normalize_alias(str(doc["alias"])),
            "kdf": params,
            "salt": base64.b64decode(doc["salt"], validate=True),
            "nonce": base64.b64decode(doc["nonce"], validate=True),
            "ct": base64.b64decode(doc["ct"], validate=True),
        }
    except SignerError:
        raise
    except (ValueError, KeyError, TypeError, binascii.Error) as e:
        raise SignerError(f"stored key blob is malformed: {type(e).__name__}") from None
