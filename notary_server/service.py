"""The server's use cases: what each HTTP route asks for, in one place.

:class:`TrustService` wires validation, the publisher, storage and the signing
service together. Views call one method and render its result; nothing here knows
about HTTP. Collaborators come in through the constructor: a
:class:`~notary_server.storage.MetadataStore`, a
:class:`~notary_signer.keyservice.KeyService` and a clock.

Why one module of this size: it is the list of use cases, one method each, and
the place to read what a route does end to end; the rules themselves live in
``validation``, ``publisher``, ``repostate`` and ``notary``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import cast

from securesystemslib.signer import Key
from tuf.api.metadata import Metadata, Root, Snapshot, Timestamp

from notary_server import errors
from notary_server.caches import Bounded, FileCache
from notary_server.clientview import check_client_view
from notary_server.config import ServerConfig
from notary_server.generation import MISSING, CurrentHints
from notary_server.names import check_gun, check_role
from notary_server.notary.dialect import NOTARY, file_dialect, request_wants_notary, upload_dialect
from notary_server.notary.service import NotaryRepos
from notary_server.publisher import (
    RENEWAL_RETRY,
    Expiries,
    OnlineSigning,
    Publisher,
    signer_call,
)
from notary_server.repostate import ReadState, TxState, compare_and_store
from notary_server.storage import (
    ChangeRecord,
    MetadataStore,
    MetaUpdate,
    StoredFile,
)
from notary_server.validation import (
    MAX_VERSION,
    ParsedUpload,
    ServerKeyIds,
    ValidatedUpload,
    merge_pending,
    parse_upload,
    validate_pending,
    validate_upload,
)
from notary_signer.keyservice import ONLINE_ROLES, KeyService

__all__ = ["Clock", "TrustService"]

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
#: Change record ids are 64-bit signed integers in every store.
MAX_CHANGE_ID = 2**63 - 1


#: Uploads larger than this count against ``max_parallel_large_uploads``.
LARGE_UPLOAD_BYTES = 1024 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


class TrustService:
    def __init__(
        self,
        store: MetadataStore,
        keys: KeyService,
        config: ServerConfig | None = None,
        *,
        clock: Clock = utcnow,
        hints: CurrentHints | None = None,
    ) -> None:
        self.store = store
        #: Reused answers to "which file is current" (None: ask the store every time).
        self.hints = hints
        self.config = config or ServerConfig()
        self._expiries_of_config: ServerConfig | None = None
        self._expiries = self.config.expiries
        self.clock = clock
        #: Online signing of the next snapshot and timestamp, through ``keys``.
        self.publisher = Publisher(keys, lambda: self.expiries)
        # expiry of (timestamp, its snapshot) by the timestamp's checksum: stored files
        # are immutable, so this is correct across replicas and saves parsing the
        # snapshot on every read of timestamp.json
        self._freshness: Bounded[str, tuple[datetime, datetime | None]] = Bounded(4096)
        self._files = FileCache()
        # when renewing a GUN's timestamp last failed (signer or database down): reads
        # serve the still valid timestamp without trying again for RENEWAL_RETRY
        self._renewal_failed: Bounded[str, datetime] = Bounded(4096)
        # large uploads parsed at once in this process: parsing takes about 11x an
        # upload's size in memory, so this bounds what uploads can take
        self._large_uploads = threading.BoundedSemaphore(self.config.max_parallel_large_uploads)
        #: Repositories in Notary v1's dialect (notary_server/notary/).
        self.notary = NotaryRepos(self)

    @property
    def keys(self) -> KeyService:
        """The signing service (the publisher's)."""
        return self.publisher.keys

    @keys.setter
    def keys(self, keys: KeyService) -> None:
        self.publisher.keys = keys

    @property
    def expiries(self) -> Expiries:
        # built once per configuration: every read of timestamp.json asks for it
        if self._expiries_of_config is not self.config:
            self._expiries, self._expiries_of_config = self.config.expiries, self.config
        return self._expiries

    def check_gun(self, gun: str) -> str:
        return check_gun(gun, self.config.gun_prefixes)

    # --- reads ------------------------------------------------------------------

    def get_current(self, gun: str, role: str) -> StoredFile:
        """The current version of ``role``; timestamp and snapshot are renewed first
        when they are inside their renewal window.

        Raises:
            MetadataNotFoundError: nothing stored.
            SignerUnavailableError: renewal was needed, failed, and the stored
                timestamp has expired (an expired timestamp is never served).
        """
        self.check_gun(gun)
        check_role(role)
        if role == "timestamp":
            return self._found(self._ensure_fresh(gun), gun, role)
        if role == "snapshot":
            self._ensure_fresh(gun)
        return self._found(self._current(gun, role), gun, role)

    def _current(self, gun: str, role: str) -> StoredFile | None:
        """The current file, from the cache when the database says it is still current
        (or, with :attr:`hints`, said so since the last write)."""
        hints = self.hints
        if hints is None:
            digest = self.store.current_digest(gun, role)
        else:
            hint = hints.get(gun, role)
            if hint is MISSING:
                started = hints.start()
                digest = self.store.current_digest(gun, role)
                hints.put(gun, role, started, digest)
            else:
                digest = cast("tuple[int, str] | None", hint)
        if digest is None:
            return None
        cached = self._files.get(gun, role, digest[1])
        if cached is not None:
            return cached
        found = self.store.get_current(gun, role)
        if found is not None:
            self._files.put(found)
        return found

    def get_version(self, gun: str, role: str, version: int) -> StoredFile:
        self.check_gun(gun)
        check_role(role)
        if version > MAX_VERSION:  # never stored; some stores cannot even be asked
            return self._found(None, gun, role)
        return self._found(self.store.get_version(gun, role, version), gun, role)

    def get_checksum(self, gun: str, role: str, sha256: str) -> StoredFile:
        self.check_gun(gun)
        check_role(role)
        return self._found(self.store.get_checksum(gun, role, sha256), gun, role)

    def changefeed(self, gun: str | None, change_id: int, records: int) -> list[ChangeRecord]:
        if gun is not None:
            self.check_gun(gun)
        limit = self.config.changefeed_max_records
        if records == 0 or abs(records) > limit:
            raise errors.InvalidParametersError(
                f"records must be a non-zero integer between -{limit} and {limit}"
            )
        if not -1 <= change_id <= MAX_CHANGE_ID:
            raise errors.InvalidParametersError(
                f"change_id must be -1 or a record id (at most {MAX_CHANGE_ID})"
            )
        return self.store.changefeed(gun, change_id, records)

    @staticmethod
    def _found(f: StoredFile | None, gun: str, role: str) -> StoredFile:
        if f is None:
            raise errors.MetadataNotFoundError(f"no {role} metadata for {gun}", gun=gun, role=role)
        return f

    # --- publishing ---------------------------------------------------------------

    def publish(self, gun: str, uploads: Mapping[str, bytes]) -> None:
        """Validate an upload and store it with a new snapshot and timestamp, atomically.

        Compare-and-store: the upload is parsed, checked against the stored state (read
        without the repository's write lock) and the new snapshot and timestamp are
        signed; the write lock is then held only to check that none of the stored files
        this relied on changed meanwhile, and to store. Had one changed (another
        publish, a renewal), everything but the parsing is done again, up to
        :data:`PUBLISH_ATTEMPTS` times.

        Raises:
            NotaryError: the named rule the upload breaks; nothing is stored.
        """
        self.check_gun(gun)
        try:
            self._publish(gun, uploads)
        except errors.OldVersionError:
            # the upload was made on a view older than the database: the client
            # fetches again to rebase, so what this server remembers must go too
            if self.hints is not None:
                self.hints.generation.bump()
            raise

    def _publish(self, gun: str, uploads: Mapping[str, bytes]) -> None:
        if upload_dialect(uploads) == NOTARY:
            self.notary.publish(gun, uploads)
            return
        if "root" not in uploads and self.store.current_digest(gun, "root") is None:
            # refused before any parsing (validation checks it again with the rest)
            raise errors.BadHierarchyError(
                "this repository has no root yet: the first upload must include root and targets"
            )
        large = sum(len(raw) for raw in uploads.values()) > LARGE_UPLOAD_BYTES
        if large and not self._large_uploads.acquire(blocking=False):
            raise errors.BusyError(
                max_parallel_large_uploads=self.config.max_parallel_large_uploads
            )
        try:
            files = self._compare_and_store(gun, uploads)
        finally:
            if large:
                self._large_uploads.release()
        logger.info("published %s: %s", gun, ", ".join(f"{f.role} v{f.version}" for f in files))

    def _compare_and_store(self, gun: str, uploads: Mapping[str, bytes]) -> list[MetaUpdate]:
        """Parse, check and sign without the write lock; store under it if nothing
        read meanwhile changed (see :meth:`publish`). Returns the files stored."""
        parsed = parse_upload(uploads, self.config.limits)
        return compare_and_store(
            self.store, gun, lambda state: self._prepare(gun, parsed, state, self.clock())
        )

    def _prepare(
        self, gun: str, parsed: ParsedUpload, state: ReadState, now: datetime
    ) -> tuple[list[MetaUpdate], list[str]]:
        """The files to store for ``parsed`` over ``state``: validated, with the next
        snapshot and timestamp signed and the result replayed through python-tuf's
        client rules. Returns them and the targets-type roles uploaded."""
        fresh = "root" in parsed  # a new root is checked against what the signer says now
        held = self.publisher.held_ids(gun, fresh=fresh)
        try:
            validated = self._validate(parsed, state, held, now)
        except errors.BadHierarchyError as e:
            if fresh or e.detail.get("missing") != "snapshot":
                raise
            held, fresh = self.publisher.held_ids(gun, fresh=True), True  # a stale hint?
            validated = self._validate(parsed, state, held, now)
        except errors.MalformedJSONError:
            stored_root = state.current("root")
            if stored_root is not None and file_dialect(stored_root) == NOTARY:
                raise errors.InvalidUpdateError(
                    f"{gun} is a Notary v1 repository (its first root fixed the dialect): "
                    "publish to it with the notary CLI or docker trust",
                    reason="DIALECT",
                ) from None
            raise
        files = validated.files()
        root = validated.root.signed
        if validated.server_snapshot:
            changed = {r: (p.version, p.raw) for r, p in validated.targets.items()}
            snapshot_update, timestamp_update = self.publisher.sign_online(
                OnlineSigning(gun, state, root, held, now, changed=changed, fresh=fresh)
            )
            assert snapshot_update is not None
            files.append(snapshot_update)
            snapshot_raw = snapshot_update.data
        else:
            assert validated.snapshot is not None
            snapshot_raw = validated.snapshot.raw
            _, timestamp_update = self.publisher.sign_online(
                OnlineSigning(
                    gun,
                    state,
                    root,
                    held,
                    now,
                    client_snapshot=(validated.snapshot.version, snapshot_raw),
                    fresh=fresh,
                )
            )
        files.append(timestamp_update)

        stored_root = state.current("root")
        new_root = validated.new_root.raw if validated.new_root else None
        get = validated.lookup
        check_client_view(
            stored_root if stored_root is not None else validated.root.raw,
            new_root if stored_root is not None else None,
            timestamp_update.data,
            snapshot_raw,
            list(validated.targets),
            get,
            now,
        )
        return files, list(validated.targets)

    def _validate(
        self,
        uploads: ParsedUpload,
        state: TxState | ReadState,
        held: Mapping[str, frozenset[str]],
        now: datetime,
    ) -> ValidatedUpload:
        return validate_upload(
            uploads,
            state,
            server_keys=ServerKeyIds(timestamp=held["timestamp"], snapshot=held["snapshot"]),
            now=now,
            limits=self.config.limits,
        )

    # --- freshness ----------------------------------------------------------------

    def _expiries_of(self, gun: str, ts: StoredFile) -> tuple[datetime, datetime | None]:
        cached = self._freshness.get(ts.sha256)
        if cached is None:
            timestamp = Metadata[Timestamp].from_bytes(ts.data).signed
            snap = self.store.get_version(gun, "snapshot", timestamp.snapshot_meta.version)
            snap_expires = Metadata[Snapshot].from_bytes(snap.data).signed.expires if snap else None
            cached = (timestamp.expires, snap_expires)
            self._freshness.put(ts.sha256, cached)
        return cached

    def _needs_renewal(self, gun: str, ts: StoredFile, now: datetime) -> bool:
        ts_expires, snap_expires = self._expiries_of(gun, ts)
        if ts_expires - now < self.expiries.timestamp_renew_before:
            return True
        return snap_expires is not None and snap_expires - now < self.expiries.snapshot_renew_before

    def _ensure_fresh(self, gun: str) -> StoredFile | None:
        """The current timestamp, renewed first if it is inside its renewal window."""
        now = self.clock()
        ts = self._current(gun, "timestamp")
        if ts is not None and file_dialect(ts.data) == NOTARY:
            return self.notary.ensure_fresh(gun, ts)
        if ts is None or not self._needs_renewal(gun, ts, now):
            return ts
        failed = self._renewal_failed.get(gun)
        if (
            failed is not None
            and now - failed < RENEWAL_RETRY
            and self._expiries_of(gun, ts)[0] > now
        ):
            return ts  # renewal failed moments ago: a read does not wait for the signer again
        try:
            self.renew(gun)
            return self._current(gun, "timestamp")
        except (
            errors.SignerUnavailableError,
            errors.StorageUnavailableError,
            errors.BadHierarchyError,
            errors.VersionTooLargeError,
        ) as e:
            ts_expires, _ = self._expiries_of(gun, ts)
            if ts_expires <= now:
                raise errors.SignerUnavailableError(
                    f"the timestamp of {gun} has expired and could not be renewed yet; "
                    "try again in a few seconds",
                    gun=gun,
                ) from e
            # serve the still valid timestamp, and spare the next reads the wait
            self._renewal_failed.put(gun, now)
            logger.warning(
                "could not renew the timestamp of %s yet: %s (%s)",
                gun,
                e.message,
                errors.describe_cause(e),
            )
            return ts

    def renew(self, gun: str) -> bool:
        """Re-sign timestamp (and the server-held snapshot) if inside the renewal window.

        Returns whether anything was written. Safe to run from several replicas at
        once: the per-GUN transaction makes the second one see the first's result.
        """
        now = self.clock()
        if self.dialect(gun) == NOTARY:
            return self.notary.renew(gun)
        with self.store.transaction(gun) as tx:
            ts = tx.current("timestamp")
            root_file = tx.current("root")
            if ts is None or root_file is None or not self._needs_renewal(gun, ts, now):
                return False
            root = Metadata[Root].from_bytes(root_file.data).signed
            snap = tx.current("snapshot")
            assert snap is not None
            _, snap_expires = self._expiries_of(gun, ts)
            files = self.publisher.renewal(gun, TxState(tx), root, snap, snap_expires, now)
            tx.add(files)
        logger.info("renewed %s: %s", gun, ", ".join(f"{f.role} v{f.version}" for f in files))
        return True

    # --- partially signed metadata ---------------------------------------------------

    def get_pending(self, gun: str, role: str) -> StoredFile:
        self.check_gun(gun)
        check_role(role)
        found = self.store.get_pending(gun, role)
        if found is None:
            raise errors.MetadataNotFoundError(f"no pending {role} for {gun}", gun=gun, role=role)
        return found

    def put_pending(self, gun: str, role: str, raw: bytes) -> None:
        """Keep ``raw`` (signed by fewer keys than the threshold) until it is published."""
        self.check_gun(gun)
        with self.store.transaction(gun) as tx:
            state = TxState(tx)
            parsed = validate_pending(role, raw, state, now=self.clock(), limits=self.config.limits)
            existing = self.store.get_pending(gun, role)
            if existing is not None:
                raw = merge_pending(existing.data, parsed, state)
            tx.put_pending(MetaUpdate(role, parsed.version, raw))
        logger.info("stored pending %s v%d for %s", role, parsed.version, gun)

    def delete_pending(self, gun: str, role: str) -> bool:
        self.check_gun(gun)
        check_role(role)
        with self.store.transaction(gun) as tx:
            return tx.delete_pending(role)

    # --- server-held keys, deletion, health ---------------------------------------------

    def server_key(self, gun: str, role: str) -> Key:
        """The signer-held key for ``role``: the one the current root lists, else the
        newest pending one, else a new one."""
        self.check_gun(gun)
        self._check_online_role(role)
        held = signer_call(self.keys.list_keys, gun, role)
        root_file = self.store.get_current(gun, "root")
        if root_file is not None and file_dialect(root_file.data) == NOTARY:
            active_key = self.notary.active_key(gun, role, root_file.data)
            if active_key is not None:
                return active_key
        elif root_file is not None:
            listed = set(Metadata[Root].from_bytes(root_file.data).signed.roles[role].keyids)
            active = [k for k in held if k.keyid in listed]
            if active:
                return active[-1]
        if held:
            return held[-1]
        self.publisher.forget(gun)
        self.notary.forget(gun)
        return signer_call(self.keys.create_key, gun, role, self.config.key_algorithm)

    def rotate_server_key(self, gun: str, role: str) -> Key:
        """A new signer-held key for ``role``; used once a root listing it is published."""
        self.check_gun(gun)
        self._check_online_role(role)
        key = signer_call(self.keys.create_key, gun, role, self.config.key_algorithm)
        self.publisher.forget(gun)
        self.notary.forget(gun)
        logger.info("created pending %s key %s for %s", role, key.keyid, gun)
        return key

    def dialect(self, gun: str) -> str | None:
        """The dialect of ``gun`` (fixed by its stored root), None when it has none."""
        root = self._current(gun, "root")
        return file_dialect(root.data) if root is not None else None

    def key_dialect(self, gun: str, user_agent: str | None) -> str:
        """The format a key route answers in: the repository's dialect, or for a
        repository without a root, the one the client's request asks for."""
        found = self.dialect(gun)
        if found is not None:
            return found
        prefixes = self.config.notary_dialect_prefixes
        return NOTARY if request_wants_notary(gun, user_agent, prefixes) else "tuf"

    @staticmethod
    def _check_online_role(role: str) -> None:
        if role not in ONLINE_ROLES:
            raise errors.InvalidRoleError(
                f"the server holds keys only for timestamp and snapshot, not {role!r}", role=role
            )

    def delete(self, gun: str) -> bool:
        """Delete a repository's trust data and retire its online keys in the signer.

        The keys go first: if the signer cannot be reached nothing is deleted (503,
        retry). Were the data deleted first, a failed retirement would hand the old
        timestamp and snapshot keys to whoever creates the name next, and deployers
        still pinned to the old root would accept that owner's metadata.
        """
        self.check_gun(gun)
        retired = signer_call(self.keys.retire_keys, gun)
        self.publisher.forget(gun)
        deleted = self.store.delete(gun)
        self.notary.forget(gun)
        logger.info(
            "deleted trust data of %s (existed: %s); retired %d online key(s)",
            gun,
            deleted,
            len(retired),
        )
        return deleted

    def health(self) -> dict[str, str]:
        """Problems by component, with their causes; empty when healthy. For the log
        and administrators only (``notary_server.app`` decides who sees them)."""
        problems: dict[str, str] = {}
        try:
            self.store.check_health()
        except errors.NotaryError as e:
            problems["database"] = f"{e.message} ({errors.describe_cause(e)})"
        try:
            signer_call(self.keys.check_health)
        except errors.NotaryError as e:
            problems["signer"] = f"{e.message} ({errors.describe_cause(e)})"
        return problems
