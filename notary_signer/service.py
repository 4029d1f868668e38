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

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from securesystemslib.signer import Signature

from notary_signer import policy
from notary_signer.canonical import canonical_json
from notary_signer.envelope import metadata_bytes
from notary_signer.errors import BadRequestError, SignerRefusedError
from notary_signer.keyservice import ONLINE_ROLES
from notary_signer.keystore import KeyStore, StoredKey

__all__ = ["MAX_BATCH_KEYS", "BatchSignatures", "SigningService", "point_at"]

#: ``last_used`` of a key is written when it is older than this (or unset).
LAST_USED_PRECISION = timedelta(minutes=1)

#: Most keys one role of a batch may name (a threshold of online keys is small).
MAX_BATCH_KEYS = 16


@dataclass(frozen=True)
class BatchSignatures:
    """What :meth:`SigningService.sign_batch` produced.

    ``timestamp_payload`` is the canonical timestamp that was signed: the template
    with the snapshot file's length and sha256 filled in when a snapshot was signed.
    """

    snapshot: list[Signature]
    timestamp_payload: bytes
    timestamp: list[Signature]


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

    def retire_keys(self, gun: str) -> list[StoredKey]:
        """Retire every key of ``gun`` (the repository was deleted): the private keys
        are destroyed, so they never sign again and are never handed to whoever
        creates a repository of the same name later. Returns the retired keys.

        Raises:
            BadRequestError: malformed GUN.
        """
        policy.check_gun(gun)
        retired = [k for role in sorted(ONLINE_ROLES) for k in self.keystore.list(gun, role)]
        for key in retired:
            self.keystore.delete(key.keyid)
        if retired:
            logger.warning(
                "retired %d key(s) of %s (repository deleted): %s",
                len(retired),
                gun,
                ", ".join(f"{k.role} {k.keyid}" for k in retired),
            )
        return retired

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
        self._mark_used(key)
        logger.debug("signed %s for %s with key %s", role, gun, keyid)
        return signature

    def sign_batch(
        self,
        gun: str,
        timestamp_keyids: Sequence[str],
        timestamp_payload: bytes,
        snapshot_keyids: Sequence[str] = (),
        snapshot_payload: bytes | None = None,
        *,
        now: datetime | None = None,
    ) -> BatchSignatures:
        """Sign a snapshot and the timestamp that points at it, in one call.

        Every key must be a key of ``gun`` for its role, and every payload passes the
        same policy as :meth:`sign` (canonical TUF payload of the role, lifetime cap);
        no signature is returned unless every check passes. With a snapshot, the snapshot file is laid
        out as :func:`~notary_signer.envelope.metadata_bytes` does (signatures in
        ``snapshot_keyids`` order), and ``timestamp_payload`` is a template: its
        ``meta["snapshot.json"]`` must name the snapshot's version, and its ``length``
        and ``hashes`` are replaced by those of the snapshot file before it is
        re-encoded canonically, checked and signed. Without a snapshot the timestamp
        payload is signed as it is.

        Raises:
            BadRequestError: no keys, a key named twice, too many keys, or a snapshot
                payload without snapshot keys (or keys without a payload).
            KeyNotFoundError: a key is not held.
            SignerRefusedError: the policy refuses a key or a payload.
            PassphraseError: a key cannot be decrypted.
        """
        policy.check_gun(gun)
        _check_keyids("timestamp", timestamp_keyids, required=True)
        _check_keyids("snapshot", snapshot_keyids, required=snapshot_payload is not None)
        if snapshot_payload is None and snapshot_keyids:
            raise BadRequestError("snapshot keys without a snapshot payload", field="snapshot")
        try:
            keys: list[tuple[StoredKey, str]]
            keys = [(self.keystore.get(k), "snapshot") for k in snapshot_keyids]
            keys += [(self.keystore.get(k), "timestamp") for k in timestamp_keyids]
            for key, role in keys:
                policy.check_key(key, gun, role)
            snapshot_sigs: list[Signature] = []
            if snapshot_payload is not None:
                snapshot = policy.check_payload("snapshot", snapshot_payload, now)
                snapshot_sigs = [self._sign_checked(k, snapshot_payload) for k in snapshot_keyids]
                snapshot_file = metadata_bytes(
                    ((sig.keyid, sig.signature) for sig in snapshot_sigs), snapshot_payload
                )
                timestamp_payload = point_at(timestamp_payload, snapshot.version, snapshot_file)
            policy.check_payload("timestamp", timestamp_payload, now)
        except SignerRefusedError as e:
            logger.warning("refused to sign a batch for %s: %s", gun, e.message)
            raise
        timestamp_sigs = [self._sign_checked(k, timestamp_payload) for k in timestamp_keyids]
        for key, _ in keys:
            self._mark_used(key)
        logger.debug("signed a batch for %s", gun)
        return BatchSignatures(snapshot_sigs, timestamp_payload, timestamp_sigs)

    def _mark_used(self, key: StoredKey) -> None:
        """Record that ``key`` signed, at most once per :data:`LAST_USED_PRECISION`
        (a write per signature would cost a database commit on every publish)."""
        now = datetime.now(UTC)
        if key.last_used is None or now - key.last_used >= LAST_USED_PRECISION:
            self.keystore.mark_used(key.keyid)

    def _sign_checked(self, keyid: str, payload: bytes) -> Signature:
        """Sign with ``keyid``: only after its key and ``payload`` passed the policy."""
        return self.keystore.signer(keyid).sign(payload)

    def check_health(self) -> None:
        """Raise a SignerError unless the key store is usable."""
        self.keystore.check_health()


def _check_keyids(role: str, keyids: Sequence[str], *, required: bool) -> None:
    if required and not keyids:
        raise BadRequestError(f"name at least one {role} key", field=role)
    if len(keyids) > MAX_BATCH_KEYS:
        raise BadRequestError(f"at most {MAX_BATCH_KEYS} {role} keys per batch", field=role)
    if len(set(keyids)) != len(keyids):
        raise BadRequestError(f"a {role} key is named twice", field=role)


def point_at(template: bytes, snapshot_version: int, snapshot_file: bytes) -> bytes:
    """The canonical timestamp ``template`` with ``snapshot_file``'s length and sha256.

    Raises:
        SignerRefusedError: the template is not a timestamp naming this snapshot version.
    """
    try:
        obj = json.loads(template.decode("utf-8"))
        entry = obj["meta"]["snapshot.json"]
        ok = obj.get("_type") == "timestamp" and isinstance(entry, dict)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise SignerRefusedError("timestamp template is not a timestamp with a snapshot entry")
    if entry.get("version") != snapshot_version or type(entry.get("version")) is not int:
        raise SignerRefusedError(
            f"timestamp template names snapshot v{entry.get('version')!r}, "
            f"the batch signs v{snapshot_version}"
        )
    entry["length"] = len(snapshot_file)
    entry["hashes"] = {"sha256": hashlib.sha256(snapshot_file).hexdigest()}
    try:
        return canonical_json(obj)  # a float is written here, then refused by check_payload
    except ValueError:
        raise SignerRefusedError("timestamp template cannot be canonicalised") from None
