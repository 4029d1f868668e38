"""The stored files of one GUN as the upload rules and the publisher read them.

:class:`TxState` reads inside a storage transaction (which holds the GUN's write lock);
:class:`ReadState` reads without the lock and records every read, so that the write
transaction can check that nothing it relied on changed meanwhile (compare-and-store,
:meth:`notary_server.service.TrustService.publish`). Both are
:class:`~notary_server.validation.StoredState` and
:class:`~notary_server.publisher.StoredFiles`.
"""

from __future__ import annotations

from notary_server.storage import MetadataStore, RepoTransaction, StoredFile

__all__ = ["ReadState", "TxState"]


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
