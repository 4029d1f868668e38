"""The interface through which the trust server uses the signing service.

``notary_server`` depends on this module and :mod:`notary_signer.client` only. Two
implementations exist behind the same interface:

* :class:`notary_signer.client.SignerClient`: the real one, HTTPS with mutual TLS to
  a running ``notary-signer``.
* :class:`notary_signer.client.LocalKeyService`: in-process over a
  :class:`~notary_signer.keystore.KeyStore`, applying the same signing policy; for
  unit tests that need no sockets.

Keys are securesystemslib ``Key`` objects whose ``keyid`` is the standard TUF key id
(sha256 of the canonical ``{keytype, scheme, keyval}``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from securesystemslib.signer import Key, Signer

if TYPE_CHECKING:
    from notary_signer.client import OnlineFiles

__all__ = ["ONLINE_ROLES", "KeyService"]

#: The only roles the signer will ever hold keys for and sign.
ONLINE_ROLES = frozenset({"timestamp", "snapshot"})


class KeyService(Protocol):
    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> Key:
        """Generate a new key for ``gun``/``role`` inside the signer; return its public key.

        ``algorithm`` is "ecdsa" (P-256, the default) or "ed25519".

        Raises:
            SignerRefusedError: role is not timestamp or snapshot, or bad algorithm.
            SignerUnavailableError: the signer cannot be reached.
        """

    def list_keys(self, gun: str, role: str) -> list[Key]:
        """Public keys the signer holds for ``gun``/``role``, oldest first."""

    def retire_keys(self, gun: str) -> list[str]:
        """Destroy every key the signer holds for ``gun`` (its repository was deleted),
        so that they never sign again and never serve a later owner of the name.
        Returns the retired key ids.

        Raises:
            SignerUnavailableError: the signer cannot be reached.
        """

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        """A securesystemslib ``Signer`` that signs with ``key`` inside the signer.

        Its ``sign(payload)`` sends the canonical payload, and checks the returned
        signature against ``key`` before returning it.
        """

    def sign_batch(
        self,
        gun: str,
        timestamp_keys: Sequence[Key],
        timestamp_template: bytes,
        snapshot_keys: Sequence[Key] = (),
        snapshot_payload: bytes | None = None,
    ) -> OnlineFiles:
        """Sign a snapshot (when ``snapshot_payload`` is given) and the timestamp that
        points at it, in one request: the signer fills the snapshot file's length and
        sha256 into ``timestamp_template`` and signs the result.

        Every signature returned is checked against the key it was asked of.

        Raises:
            SignerRefusedError: a payload that is not a canonical snapshot or timestamp
                of ``gun``, or a key of another GUN or role.
            KeyNotFoundError: the signer does not hold a key.
            SignerUnavailableError: the signer cannot be reached or answered badly.
        """

    def check_health(self) -> None:
        """Raise SignerUnavailableError unless the signer answers its health check."""
