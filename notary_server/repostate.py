"""The stored files of one GUN as the upload rules and the publisher read them.

:class:`TxState` reads inside a storage transaction (which holds the GUN's write lock);
:class:`ReadState` reads without the lock and records every read, so that the write
transaction can check that nothing it relied on changed meanwhile (compare-and-store,
:func:`compare_and_store`, for both dialects' publishes). Both are
:class:`~notary_server.validation.StoredState` and
:class:`~notary_server.publisher.StoredFiles`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from notary_server import errors
from notary_server.publisher import PUBLISH_ATTEMPTS
from notary_server.storage import MetadataStore, MetaUpdate, RepoTransaction, StoredFile

__all__ = ["ReadState", "TxState", "compare_and_store"]

logger = logging.getLogger(__name__)


class TxState:
    """Adapts a storage transaction to validation's StoredState (lazy reads, each role
    read once: nothing else writes the GUN while the transaction holds its lock)."""

    def __init__(self, tx: RepoTransaction) -> None:
        self._tx = tx
        self._files: dict[str, StoredFile | None] = {}

    def file(self, role: str) -> StoredFile | None:
        if role not in self._files:
            self._files[role] = self._tx.current(role)
        return self._files[role]

    def current(self, role: str) -> bytes | None:
        f = self.file(role)
        return f.data if f is not None else None

    def version(self, role: str) -> int | None:
        f = self.file(role)
        return f.version if f is not None else None

    def roles(self) -> list[str]:
        return list(self._tx.current_all())


class ReadState(TxState):
    """The stored files of one GUN read without its write lock, each read recorded,
    so that the write transaction can check that none changed since (compare-and-store)."""

    def __init__(self, store: MetadataStore, gun: str) -> None:
        self._store = store
        self._gun = gun
        self._files: dict[str, StoredFile | None] = {}
        self._roles: list[str] | None = None

    def file(self, role: str) -> StoredFile | None:
        if role not in self._files:
            self._files[role] = self._store.get_current(self._gun, role)
        return self._files[role]

    def roles(self) -> list[str]:
        if self._roles is None:  # rare (client-managed snapshots): a short transaction
            with self._store.transaction(self._gun) as tx:
                self._roles = sorted(tx.current_all())
        return self._roles

    def unchanged(self, tx: RepoTransaction) -> bool:
        """Whether every file read (and the list of roles, if read) is still current."""
        for role, seen in self._files.items():
            now = tx.current(role)
            if (now.sha256 if now else None) != (seen.sha256 if seen else None):
                return False
        return self._roles is None or sorted(tx.current_all()) == self._roles


def compare_and_store(
    store: MetadataStore,
    gun: str,
    prepare: Callable[[ReadState], tuple[list[MetaUpdate], Sequence[str]]],
) -> list[MetaUpdate]:
    """Store what ``prepare`` makes over a :class:`ReadState` (checked and signed
    without the GUN's write lock) if, under the lock, nothing it read has changed;
    otherwise prepare again, up to :data:`PUBLISH_ATTEMPTS` times. ``prepare`` returns
    the files to store and the roles whose pending files the store settles.
    Returns the files stored.

    Raises:
        OldVersionError: the repository kept changing.
    """
    for attempt in range(1, PUBLISH_ATTEMPTS + 1):
        state = ReadState(store, gun)
        files, settled = prepare(state)
        with store.transaction(gun) as tx:
            if state.unchanged(tx):
                tx.add(files)
                for role in settled:
                    tx.delete_pending(role)  # published: what waited for signatures is done
                return files
        logger.info("%s changed while an upload was checked; checking again (%d)", gun, attempt)
    raise errors.OldVersionError(
        "the repository kept changing while this upload was checked; fetch, rebase and retry",
        gun=gun,
    )
