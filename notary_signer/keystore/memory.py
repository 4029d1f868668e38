"""An in-memory :class:`~notary_signer.keystore.KeyStore`, for tests and in-process use.

It behaves like the SQL store, encryption included: private keys are kept as
encrypted blobs (under a random in-memory passphrase unless an encryptor is given),
so the contract suite exercises aliases and re-encryption on both stores.

Example::

    store = MemoryKeyStore()
    key = store.create("reg/app", "snapshot", "ed25519")
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from securesystemslib.signer import CryptoSigner

from notary_signer.crypto import KeyEncryptor, normalize_alias
from notary_signer.errors import KeyNotFoundError
from notary_signer.keystore import StoredKey, _material

__all__ = ["MemoryKeyStore"]

logger = logging.getLogger(__name__)


@dataclass
class _Row:
    key: StoredKey
    blob: bytes


class MemoryKeyStore:
    """Dict-backed key store (thread-safe; contents vanish with the process).

    Args:
        encryptor: Encrypts private keys; an ephemeral one when None.
        clock: Returns the current UTC time (injected by tests).
    """

    def __init__(
        self,
        *,
        encryptor: KeyEncryptor | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._enc = encryptor or KeyEncryptor.ephemeral()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()

    def create(self, gun: str, role: str, algorithm: str) -> StoredKey:
        """See :meth:`KeyStore.create`."""
        self._enc.check_alias()
        signer, der = _material.generate(algorithm)
        pub = signer.public_key
        blob = self._enc.encrypt(der, keyid=pub.keyid, gun=gun, role=role)
        key = StoredKey(pub.keyid, gun, role, algorithm, pub, self._clock())
        with self._lock:
            self._rows[key.keyid] = _Row(key, blob)
        logger.info("created %s key %s for %s/%s", algorithm, key.keyid, gun, role)
        return key

    def get(self, keyid: str) -> StoredKey:
        """See :meth:`KeyStore.get`."""
        return self._row(keyid).key

    def list(self, gun: str, role: str) -> builtins.list[StoredKey]:
        """See :meth:`KeyStore.list`."""
        with self._lock:
            rows = [r.key for r in self._rows.values() if r.key.gun == gun and r.key.role == role]
        # dicts keep insertion order, which breaks ties in created_at
        return sorted(rows, key=lambda k: k.created_at)

    def signer(self, keyid: str) -> CryptoSigner:
        """See :meth:`KeyStore.signer`."""
        row = self._row(keyid)
        k = row.key
        der = self._enc.decrypt(row.blob, keyid=k.keyid, gun=k.gun, role=k.role)
        return _material.load(der, k.public_key)

    def mark_used(self, keyid: str) -> None:
        """See :meth:`KeyStore.mark_used`."""
        with self._lock:
            row = self._rows.get(keyid)
            if row is not None:
                row.key = replace(row.key, last_used=self._clock())

    def delete(self, keyid: str) -> None:
        """See :meth:`KeyStore.delete`."""
        with self._lock:
            if self._rows.pop(keyid, None) is None:
                raise KeyNotFoundError(f"no key {keyid}", keyid=keyid)
        logger.info("deleted key %s", keyid)

    def reencrypt(self, new_alias: str) -> int:
        """See :meth:`KeyStore.reencrypt`."""
        alias = normalize_alias(new_alias)
        self._enc.check_alias(alias)
        with self._lock:
            updated: dict[str, bytes] = {}
            for keyid, row in self._rows.items():
                if self._enc.blob_alias(row.blob) == alias:
                    continue
                k = row.key
                der = self._enc.decrypt(row.blob, keyid=k.keyid, gun=k.gun, role=k.role)
                updated[keyid] = self._enc.encrypt(
                    der, keyid=k.keyid, gun=k.gun, role=k.role, alias=alias
                )
            for keyid, blob in updated.items():  # all or nothing
                self._rows[keyid].blob = blob
            self._enc.use_alias(alias)
        logger.info("re-encrypted %d keys under alias %s", len(updated), alias)
        return len(updated)

    def check_health(self) -> None:
        """See :meth:`KeyStore.check_health`."""
        self._enc.check_alias()

    def _row(self, keyid: str) -> _Row:
        with self._lock:
            row = self._rows.get(keyid)
        if row is None:
            raise KeyNotFoundError(f"no key {keyid}", keyid=keyid)
        return row
