"""Where the signer keeps its private keys: the :class:`KeyStore` interface.

Two implementations share one contract (``tests/signer/test_keystore_contract.py``):

* :class:`notary_signer.keystore.memory.MemoryKeyStore`: dict-backed, for tests and
  in-process use; it keeps private keys encrypted too.
* :class:`notary_signer.keystore.sql.SQLKeyStore`: SQLAlchemy, the production store.

Keys are generated inside the store and never leave it unencrypted except as a
``CryptoSigner`` handed to the signing service for one request.

Example::

    store = MemoryKeyStore()
    key = store.create("reg/app", "timestamp", "ecdsa")
    sig = store.signer(key.keyid).sign(payload)
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from securesystemslib.signer import CryptoSigner, Key

__all__ = ["KeyStore", "StoredKey"]


@dataclass(frozen=True)
class StoredKey:
    """Public facts about a key the signer holds (never the private part).

    Attributes:
        keyid: Standard TUF key id (sha256 of the canonical public key).
        gun: Repository the key belongs to.
        role: ``timestamp`` or ``snapshot``.
        algorithm: ``ecdsa`` or ``ed25519``.
        public_key: The securesystemslib public key.
        created_at: Creation time (UTC).
        last_used: Last signing time (UTC), or None if never used.
    """

    keyid: str
    gun: str
    role: str
    algorithm: str
    public_key: Key
    created_at: datetime
    last_used: datetime | None = None


class KeyStore(Protocol):
    """Storage of the signer's private keys, encrypted at rest."""

    def create(self, gun: str, role: str, algorithm: str) -> StoredKey:
        """Generate and store a key for ``gun``/``role``.

        Raises:
            UnsupportedAlgorithmError: ``algorithm`` is not ecdsa or ed25519.
            PassphraseError: the current alias's passphrase is not set.
        """

    def get(self, keyid: str) -> StoredKey:
        """Return the key with id ``keyid``.

        Raises:
            KeyNotFoundError: no such key.
        """

    def list(self, gun: str, role: str) -> builtins.list[StoredKey]:
        """Return the keys of ``gun``/``role``, oldest first."""

    def signer(self, keyid: str) -> CryptoSigner:
        """Decrypt the key ``keyid`` and return a signer for it.

        Raises:
            KeyNotFoundError: no such key.
            PassphraseError: its alias is not set or the passphrase is wrong.
        """

    def mark_used(self, keyid: str) -> None:
        """Record that ``keyid`` just signed something."""

    def delete(self, keyid: str) -> None:
        """Delete the key ``keyid``.

        Raises:
            KeyNotFoundError: no such key.
        """

    def reencrypt(self, new_alias: str) -> int:
        """Re-encrypt every key not already under ``new_alias``; return how many.

        New keys are encrypted under ``new_alias`` afterwards too.

        Raises:
            PassphraseError: the passphrase of ``new_alias`` or of an old alias is not set.
        """

    def check_health(self) -> None:
        """Raise a SignerError unless the store is usable."""
