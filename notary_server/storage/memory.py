"""An in-process :class:`~notary_server.storage.MetadataStore` for unit tests.

Same contract as :class:`~notary_server.storage.sql.SQLStore` (both run the suite in
``tests/server/test_storage_contract.py``), kept in dicts. One lock per GUN
serialises transactions on that GUN; staged files become visible to other readers
only when the transaction commits.

Example::

    store = MemoryStore()
    with store.transaction("example.com/app") as tx:
        tx.add([MetaUpdate("root", 1, root_bytes)])
    store.get_current("example.com/app", "root")
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from notary_server.errors import OldVersionError
from notary_server.storage import ChangeRecord, MetadataStore, MetaUpdate, StoredFile

__all__ = ["MemoryStore"]


def check_versions(updates: Sequence[MetaUpdate], current: dict[str, int]) -> None:
    """Raise OldVersionError unless every update is newer than ``current[role]``.

    Updates of one role within ``updates`` must also increase. Used by both stores.
    """
    seen = dict(current)
    for update in updates:
        stored = seen.get(update.role)
        if stored is not None and update.version <= stored:
            raise OldVersionError(
                f"{update.role} version {update.version} is not newer than stored version {stored}",
                role=update.role,
                stored_version=stored,
                sent_version=update.version,
            )
        seen[update.role] = update.version


class _MemoryTransaction:
    """Internal: the RepoTransaction handed out by MemoryStore.transaction()."""

    def __init__(self, store: MemoryStore, gun: str) -> None:
        self._store = store
        self._gun = gun
        self.staged: list[StoredFile] = []
        self.pending: dict[str, StoredFile | None] = {}  # role -> new pending (None: removed)

    def current(self, role: str) -> StoredFile | None:
        staged = [f for f in self.staged if f.role == role]
        if staged:
            return staged[-1]
        return self._store.get_current(self._gun, role)

    def current_all(self) -> dict[str, StoredFile]:
        result = self._store.current_all(self._gun)
        for staged in self.staged:
            result[staged.role] = staged
        return result

    def add(self, updates: Sequence[MetaUpdate]) -> None:
        current = {role: f.version for role, f in self.current_all().items()}
        check_versions(updates, current)
        now = datetime.now(UTC)
        for update in updates:
            self.staged.append(
                StoredFile(
                    gun=self._gun,
                    role=update.role,
                    version=update.version,
                    data=bytes(update.data),
                    sha256=update.sha256,
                    created_at=now,
                )
            )

    def put_pending(self, update: MetaUpdate) -> None:
        self.pending[update.role] = StoredFile(
            self._gun,
            update.role,
            update.version,
            bytes(update.data),
            update.sha256,
            datetime.now(UTC),
        )

    def delete_pending(self, role: str) -> bool:
        existed = (
            self.pending[role] if role in self.pending else self._store.get_pending(self._gun, role)
        )
        self.pending[role] = None
        return existed is not None


class MemoryStore(MetadataStore):
    """Dict-backed metadata store; thread-safe, not shared between processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards every dict and list below
        self._gun_locks: dict[str, threading.Lock] = {}
        self._files: dict[str, dict[str, dict[int, StoredFile]]] = {}
        self._changes: list[ChangeRecord] = []
        self._pending: dict[tuple[str, str], StoredFile] = {}

    def _gun_lock(self, gun: str) -> threading.Lock:
        with self._lock:
            return self._gun_locks.setdefault(gun, threading.Lock())

    @contextmanager
    def transaction(self, gun: str) -> Iterator[_MemoryTransaction]:
        with self._gun_lock(gun):
            tx = _MemoryTransaction(self, gun)
            yield tx  # an exception here skips the commit: nothing staged is kept
            with self._lock:
                roles = self._files.setdefault(gun, {})
                for stored in tx.staged:
                    roles.setdefault(stored.role, {})[stored.version] = stored
                    if stored.role == "timestamp":
                        self._append_change(gun, stored.version, stored.sha256, "update")
                for role, pending in tx.pending.items():
                    if pending is None:
                        self._pending.pop((gun, role), None)
                    else:
                        self._pending[(gun, role)] = pending

    def _append_change(self, gun: str, version: int, sha256: str, category: str) -> None:
        change_id = self._changes[-1].id + 1 if self._changes else 1
        self._changes.append(
            ChangeRecord(
                id=change_id,
                created_at=datetime.now(UTC),
                gun=gun,
                version=version,
                sha256=sha256,
                category=category,
            )
        )

    def current_all(self, gun: str) -> dict[str, StoredFile]:
        with self._lock:
            roles = self._files.get(gun, {})
            return {role: versions[max(versions)] for role, versions in roles.items()}

    def get_current(self, gun: str, role: str) -> StoredFile | None:
        with self._lock:
            versions = self._files.get(gun, {}).get(role)
            return versions[max(versions)] if versions else None

    def current_digest(self, gun: str, role: str) -> tuple[int, str] | None:
        found = self.get_current(gun, role)
        return (found.version, found.sha256) if found else None

    def get_version(self, gun: str, role: str, version: int) -> StoredFile | None:
        with self._lock:
            return self._files.get(gun, {}).get(role, {}).get(version)

    def get_checksum(self, gun: str, role: str, sha256: str) -> StoredFile | None:
        with self._lock:
            versions = self._files.get(gun, {}).get(role, {})
            matches = [f for f in versions.values() if f.sha256 == sha256]
            return max(matches, key=lambda f: f.version) if matches else None

    def get_pending(self, gun: str, role: str) -> StoredFile | None:
        with self._lock:
            return self._pending.get((gun, role))

    def delete(self, gun: str) -> bool:
        with self._gun_lock(gun), self._lock:
            for key in [k for k in self._pending if k[0] == gun]:
                del self._pending[key]
            existed = bool(self._files.pop(gun, None))
            if existed:
                self._append_change(gun, 0, "", "deletion")
            return existed

    def guns(self) -> list[str]:
        with self._lock:
            return sorted(g for g, files in self._files.items() if files)

    def changefeed(self, gun: str | None, change_id: int, records: int) -> list[ChangeRecord]:
        with self._lock:
            changes = [c for c in self._changes if gun is None or c.gun == gun]
        if records > 0:
            if change_id == -1:
                return []
            return [c for c in changes if c.id > change_id][:records]
        if records < 0:
            if change_id != -1:
                changes = [c for c in changes if c.id < change_id]
            return changes[records:]
        return []

    def check_health(self) -> None:
        """Always healthy."""

    def dispose(self) -> None:
        """Nothing to release."""
