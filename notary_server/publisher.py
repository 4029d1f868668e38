"""Builds and signs the server-managed snapshot and timestamp (online signing).

The functions (:func:`build_snapshot`, :func:`build_timestamp`, :func:`sign`) are pure
apart from the ``Signer`` objects they are handed. :class:`Publisher` signs the next
snapshot and timestamp of a publish or a renewal through the
:class:`~notary_signer.keyservice.KeyService`, in one batch round trip, and keeps the
hints that spare the signer questions. Hashes and lengths are always computed over the
exact stored bytes, never over a re-serialisation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ParamSpec, Protocol, TypeVar

from securesystemslib.signer import Key, Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from notary_server import errors
from notary_server.caches import Bounded
from notary_server.storage import MAX_VERSION, MetaUpdate, StoredFile
from notary_signer import errors as signer_errors
from notary_signer.canonical import canonical_json
from notary_signer.keyservice import KeyService

__all__ = [
    "Expiries",
    "OnlineSigning",
    "Publisher",
    "build_snapshot",
    "build_timestamp",
    "payload_of",
    "sign",
    "signer_call",
]

logger = logging.getLogger(__name__)

#: After a failed renewal, reads serve the still valid timestamp this long before
#: one of them tries to renew again (both dialects).
RENEWAL_RETRY = timedelta(seconds=5)
#: Times a publish is checked again when the repository changed while it was checked (both dialects).
PUBLISH_ATTEMPTS = 3

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class Expiries:
    """Lifetimes of server-generated metadata and when to renew them."""

    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)
    snapshot_renew_before: timedelta = timedelta(days=3)
    timestamp_renew_before: timedelta = timedelta(hours=8)


def _next_version(role: str, previous: Snapshot | Timestamp | None) -> int:
    """The version after ``previous``'s; past MAX_VERSION (only a client snapshot at the
    bound can lead there) no store could keep it."""
    version = previous.version + 1 if previous is not None else 1
    if version > MAX_VERSION:
        raise errors.VersionTooLargeError(
            f"the next {role} would be v{version}, past {MAX_VERSION}, the largest every store "
            "can keep and every client can fetch",
            role=role,
            max_version=MAX_VERSION,
        )
    return version


def _metafile(version: int, raw: bytes) -> MetaFile:
    return MetaFile(
        version=version, length=len(raw), hashes={"sha256": hashlib.sha256(raw).hexdigest()}
    )


def build_snapshot(
    previous: Snapshot | None, changed: Mapping[str, tuple[int, bytes]], expires: datetime
) -> Snapshot:
    """The next snapshot: ``previous`` with the ``changed`` roles' entries replaced.

    Entries are never dropped (a TUF client refuses a snapshot that drops one), and
    each carries length and sha256 so clients bound downloads by the real size.
    """
    meta = dict(previous.meta) if previous is not None else {}
    for role, (version, raw) in changed.items():
        meta[f"{role}.json"] = _metafile(version, raw)
    return Snapshot(version=_next_version("snapshot", previous), expires=expires, meta=meta)


def build_timestamp(
    previous: Timestamp | None, snapshot_version: int, snapshot_raw: bytes, expires: datetime
) -> Timestamp:
    return Timestamp(
        version=_next_version("timestamp", previous),
        expires=expires,
        snapshot_meta=_metafile(snapshot_version, snapshot_raw),
    )


def payload_of(signed: Snapshot | Timestamp) -> bytes:
    """The canonical JSON bytes of ``signed``: what its signatures are over."""
    return canonical_json(signed.to_dict())


def sign(signed: Snapshot | Timestamp, signers: Sequence[Signer]) -> bytes:
    """Sign ``signed`` with every signer and return the compact JSON bytes.

    Raises:
        SignerUnavailableError: a signer failed (unreachable, refused, bad signature).
    """
    md: Metadata[Any] = Metadata(signed)
    for signer in signers:
        try:
            md.sign(signer, append=True)
        except UnsignedMetadataError as e:
            cause = e.__cause__ or e
            if isinstance(cause, errors.NotaryError):
                raise cause from e
            raise errors.SignerUnavailableError(role=signed.type) from e
    return md.to_bytes()


def signer_call(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Call the signing service, mapping its errors onto the server's tree."""
    try:
        return fn(*args, **kwargs)
    except signer_errors.SignerRefusedError as e:
        raise errors.InvalidUpdateError(f"the signer refused: {e}") from e
    except signer_errors.SignerError as e:
        raise errors.SignerUnavailableError() from e


class StoredFiles(Protocol):
    """The stored files of one GUN (a transaction, or reads recorded for compare-and-store)."""

    def file(self, role: str) -> StoredFile | None: ...


@dataclass(frozen=True)
class OnlineSigning:
    """What the next snapshot and timestamp of ``gun`` are built from.

    With ``changed`` (role -> (version, exact bytes)), the server builds the next
    snapshot with those entries replaced and the timestamp points at it; without it,
    the timestamp points at ``client_snapshot`` (version, exact bytes).
    """

    gun: str
    #: Where the previous snapshot and timestamp are read (only when needed).
    state: StoredFiles
    #: The root whose timestamp and snapshot roles name the keys to sign with.
    root: Root
    #: Ids of the online keys the signer holds, by role (a hint: see :class:`Publisher`).
    held: Mapping[str, frozenset[str]]
    now: datetime
    changed: Mapping[str, tuple[int, bytes]] | None = None
    client_snapshot: tuple[int, bytes] | None = None
    #: Whether ``held`` was just asked of the signer (else a stale hint is refreshed once).
    fresh: bool = False


class Publisher:
    """Signs the next snapshot and timestamp through the key service.

    Args:
        keys: The signing service (``SignerClient``, or ``LocalKeyService`` in tests).
        expiries: The lifetimes in force (asked on every signing: configuration can change).
    """

    def __init__(self, keys: KeyService, expiries: Callable[[], Expiries]) -> None:
        self.keys = keys
        self._expiries = expiries
        # ids of the online keys the signer holds, by GUN: a hint that saves asking the
        # signer on every publish, never a source of trust (the signer checks every key
        # against GUN and role, the server verifies every signature, and a stale entry
        # is refreshed: a root upload always asks afresh, and so does a root listing
        # keys the entry lacks or a key the signer no longer has)
        self._held: Bounded[str, dict[str, frozenset[str]]] = Bounded(65536)
        # parsed snapshots by the sha256 of their stored bytes, so that building the
        # next snapshot does not re-parse the previous one
        self._snapshots: Bounded[str, Snapshot] = Bounded(256)

    def held_ids(self, gun: str, *, fresh: bool) -> dict[str, frozenset[str]]:
        """Ids of the online keys the signer holds for ``gun`` (from the hint unless ``fresh``)."""
        if not fresh:
            cached = self._held.get(gun)
            if cached is not None:
                return cached
        held = {
            role: frozenset(k.keyid for k in signer_call(self.keys.list_keys, gun, role))
            for role in ("timestamp", "snapshot")
        }
        self._held.put(gun, held)
        return held

    def forget(self, gun: str) -> None:
        """Drop the key hint of ``gun`` (a key was created or retired)."""
        self._held.forget(gun)

    def _parsed_snapshot(self, f: StoredFile) -> Snapshot:
        found = self._snapshots.get(f.sha256)
        if found is None:
            found = Metadata[Snapshot].from_bytes(f.data).signed
            self._snapshots.put(f.sha256, found)
        return found

    @staticmethod
    def _online_keys(
        gun: str, root: Root, role: str, held: Mapping[str, frozenset[str]]
    ) -> list[Key]:
        """The keys ``root`` lists for ``role`` that the signer holds (as root lists them).

        Raises:
            BadHierarchyError: fewer than the role's threshold.
        """
        keyids = [k for k in root.roles[role].keyids if k in held[role]]
        if len(keyids) < root.roles[role].threshold:
            raise errors.BadHierarchyError(
                f"the server does not hold enough {role} keys for {gun}", missing=role
            )
        return [root.keys[k] for k in keyids]

    def sign_online(self, request: OnlineSigning) -> tuple[MetaUpdate | None, MetaUpdate]:
        """The next snapshot (when ``request.changed`` is given) and the next timestamp,
        signed by the signer in one round trip.

        A stale key hint is refreshed once: when the root lists keys it lacks, or the
        signer no longer has a key.
        """
        for attempt in (1, 2):
            try:
                return self._sign_online_once(request)
            except (errors.BadHierarchyError, signer_errors.KeyNotFoundError) as e:
                if request.fresh or attempt == 2:
                    if isinstance(e, signer_errors.KeyNotFoundError):
                        raise errors.SignerUnavailableError() from e
                    raise
                request = replace(request, held=self.held_ids(request.gun, fresh=True), fresh=True)
        raise AssertionError("unreachable")

    def _sign_online_once(self, request: OnlineSigning) -> tuple[MetaUpdate | None, MetaUpdate]:
        gun, root, held, now = request.gun, request.root, request.held, request.now
        expiries = self._expiries()
        timestamp_keys = self._online_keys(gun, root, "timestamp", held)
        prev_ts = request.state.file("timestamp")
        previous_ts = Metadata[Timestamp].from_bytes(prev_ts.data).signed if prev_ts else None
        ts_expires = now + expiries.timestamp
        snapshot: Snapshot | None = None
        if request.changed is not None:
            snapshot_keys = self._online_keys(gun, root, "snapshot", held)
            prev = request.state.file("snapshot")
            previous = self._parsed_snapshot(prev) if prev else None
            snapshot = build_snapshot(previous, request.changed, now + expiries.snapshot)
            snapshot_payload: bytes | None = payload_of(snapshot)
            timestamp = build_timestamp(previous_ts, snapshot.version, b"", ts_expires)
        else:
            assert request.client_snapshot is not None
            snapshot_keys, snapshot_payload = [], None
            timestamp = build_timestamp(previous_ts, *request.client_snapshot, ts_expires)
        template = payload_of(timestamp)

        try:
            signed = self.keys.sign_batch(
                gun, timestamp_keys, template, snapshot_keys, snapshot_payload
            )
        except signer_errors.KeyNotFoundError:
            raise
        except signer_errors.SignerRefusedError as e:
            raise errors.InvalidUpdateError(f"the signer refused: {e}") from e
        except signer_errors.SignerError as e:
            raise errors.SignerUnavailableError() from e
        snapshot_update = None
        if snapshot is not None:
            assert signed.snapshot is not None and snapshot_payload is not None
            timestamp = build_timestamp(previous_ts, snapshot.version, signed.snapshot, ts_expires)
            snapshot_update = MetaUpdate("snapshot", snapshot.version, signed.snapshot)
            self._snapshots.put(snapshot_update.sha256, snapshot)
        if payload_of(timestamp) != signed.timestamp_payload:
            logger.error("the signer signed another timestamp than the server built for %s", gun)
            raise errors.SignerUnavailableError()
        return snapshot_update, MetaUpdate("timestamp", timestamp.version, signed.timestamp)

    def renewal(
        self,
        gun: str,
        state: StoredFiles,
        root: Root,
        snapshot: StoredFile,
        snapshot_expires: datetime | None,
        now: datetime,
    ) -> list[MetaUpdate]:
        """The files that renew ``gun``'s timestamp, and its snapshot too when the
        server holds the snapshot key and the snapshot is inside its renewal window."""
        held = self.held_ids(gun, fresh=False)
        snapshot_keyids = set(root.roles["snapshot"].keyids)
        if len(snapshot_keyids & held["snapshot"]) < root.roles["snapshot"].threshold:
            held = self.held_ids(gun, fresh=True)  # a stale hint, or a client-held key
        server_snapshot = len(snapshot_keyids & held["snapshot"]) >= (
            root.roles["snapshot"].threshold
        )
        files: list[MetaUpdate] = []
        if (
            server_snapshot
            and snapshot_expires is not None
            and snapshot_expires - now < self._expiries().snapshot_renew_before
        ):
            snapshot_update, timestamp_update = self.sign_online(
                OnlineSigning(gun, state, root, held, now, changed={})
            )
            assert snapshot_update is not None
            files.append(snapshot_update)
        else:
            _, timestamp_update = self.sign_online(
                OnlineSigning(
                    gun, state, root, held, now, client_snapshot=(snapshot.version, snapshot.data)
                )
            )
        files.append(timestamp_update)
        return files
