"""The signing service: policy applied in front of a key store.

Both the HTTP API (:mod:`notary_signer.app`) and the in-process
:class:`~notary_signer.client.LocalKeyService` go through :class:`SigningService`,
so the rules in :mod:`notary_signer.policy` are applied in exactly one place.

Example::

    service = SigningService(MemoryKeyStore())
    key = service.create_key("reg/app", "timestamp")
    sig = service.sign(key.keyid, "reg/app", "timestamp", canonical_payload)
"""

from __future__ import annotations

import logging

from securesystemslib.signer import Signature

from notary_signer import policy
from notary_signer.errors import SignerRefusedError
from notary_signer.keystore import KeyStore, StoredKey

__all__ = ["SigningService"]

logger = logging.getLogger(__name__)


class SigningService:
    """Creates keys and signs payloads, refusing whatever the policy refuses.

    Args:
        keystore: Where keys live.
        default_algorithm: Algorithm used when a request names none.
    """

    def __init__(self, keystore: KeyStore, *, default_algorithm: str = "ecdsa") -> None:
        self.keystore = keystore
        self.default_algorithm = default_algorithm

    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> StoredKey:
        """Generate a key for ``gun``/``role``.

        Raises:
            BadRequestError: malformed GUN.
            SignerRefusedError: role is not timestamp or snapshot.
            UnsupportedAlgorithmError: unknown algorithm.
            PassphraseError: the current passphrase alias is not set.
        """
        algo = algorithm or self.default_algorithm
        policy.check_create_request(gun, role, algo)
        return self.keystore.create(gun, role, algo)

    def list_keys(self, gun: str, role: str) -> list[StoredKey]:
        """Keys of ``gun``/``role``, oldest first.

        Raises:
            BadRequestError: malformed GUN.
        """
        policy.check_gun(gun)
        return self.keystore.list(gun, role)

    def get_key(self, keyid: str) -> StoredKey:
        """The key ``keyid``.

        Raises:
            KeyNotFoundError: no such key.
        """
        return self.keystore.get(keyid)

    def delete_key(self, keyid: str) -> None:
        """Delete the key ``keyid``.

        Raises:
            KeyNotFoundError: no such key.
        """
        self.keystore.delete(keyid)

    def sign(self, keyid: str, gun: str, role: str, payload: bytes) -> Signature:
        """Sign ``payload`` with ``keyid`` if the policy allows it.

        Raises:
            KeyNotFoundError: no such key.
            SignerRefusedError: the policy refuses (wrong GUN/role, not canonical TUF).
            PassphraseError: the key cannot be decrypted.
        """
        key = self.keystore.get(keyid)
        try:
            policy.check_sign_request(key, gun, role, payload)
        except SignerRefusedError as e:
            # security-relevant: a correct server never asks for these
            logger.warning("refused to sign with key %s: %s", keyid, e.message)
            raise
        signature = self.keystore.signer(keyid).sign(payload)
        self.keystore.mark_used(keyid)
        logger.debug("signed %s for %s with key %s", role, gun, keyid)
        return signature

    def check_health(self) -> None:
        """Raise a SignerError unless the key store is usable."""
        self.keystore.check_health()
