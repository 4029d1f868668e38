"""Where the server keeps TUF metadata: the storage interface and its value types.

A store holds, per repository (GUN), every version of every role file as the exact
bytes that were uploaded or generated, plus an ordered change feed. The server never
re-serialises what it stores: hashes in snapshot and timestamp are computed over
these bytes.

Two implementations share one contract suite (``tests/server/test_storage_contract.py``):
:class:`~notary_server.storage.memory.MemoryStore` for unit tests and
:class:`~notary_server.storage.sql.SQLStore` (SQLite by default, PostgreSQL at scale).

Writes happen inside :meth:`MetadataStore.transaction`, which holds an exclusive
per-GUN lock (a row lock in PostgreSQL, the database write lock in SQLite) for the
whole read-validate-write cycle, so two concurrent uploads to one GUN are serialised
and the loser sees the winner's state and gets a clean ``VERSION`` error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

__all__ = [
    "MAX_VERSION",
    "ChangeRecord",
    "MetaUpdate",
    "MetadataStore",
    "RepoTransaction",
    "StoredFile",
    "sha256_hex",
]


#: The largest metadata version the server accepts: every store keeps it (a 32-bit
#: signed integer column in PostgreSQL) and every client can fetch it by number
#: (``<version>.<role>.json`` has at most 10 digits). Uploads past it get
#: ``VERSION_TOO_LARGE``: nothing could ever follow a larger version.
MAX_VERSION = 2**31 - 1


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class StoredFile:
    """One stored version of one role's metadata file."""

    gun: str
    role: str
    version: int
    data: bytes = field(repr=False)
    sha256: str
    created_at: datetime


@dataclass(frozen=True)
class MetaUpdate:
    """A role file to write: ``version`` must be newer than any stored version of ``role``."""

    role: str
    version: int
    data: bytes = field(repr=False)

    @property
    def sha256(self) -> str:
        return sha256_hex(self.data)


@dataclass(frozen=True)
class ChangeRecord:
    """A change-feed entry: a new timestamp ("update") or a deleted GUN ("deletion")."""

    id: int
    created_at: datetime
    gun: str
    version: int
    sha256: str
    category: str

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "created_at": self.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "gun": self.gun,
            "version": self.version,
            "sha256": self.sha256,
            "category": self.category,
        }


class RepoTransaction(Protocol):
    """An exclusive write transaction on one GUN (see module docstring)."""

    def current(self, role: str) -> StoredFile | None:
        """The highest stored version of ``role``, or None."""

    def current_all(self) -> dict[str, StoredFile]:
        """The highest stored version of every role of the GUN, by role name."""

    def add(self, updates: Sequence[MetaUpdate]) -> None:
        """Stage new role versions; written when the transaction commits.

        Raises:
            OldVersionError: a stored version of the role is >= the update's version.
        """

    def put_pending(self, update: MetaUpdate) -> None:
        """Keep partially signed metadata for a role (replacing any), until it is
        published or removed."""

    def delete_pending(self, role: str) -> bool:
        """Remove a role's partially signed metadata; whether there was any."""


class MetadataStore(Protocol):
    """Versioned, content-addressed storage of TUF metadata per GUN."""

    def transaction(self, gun: str) -> AbstractContextManager[RepoTransaction]:
        """Open an exclusive write transaction on ``gun``.

        Commits when the block exits normally and rolls back when it raises, so a
        failed upload leaves nothing behind. Every new ``timestamp`` version staged
        in it adds an "update" record to the change feed.

        Raises:
            StorageUnavailableError: the database cannot be reached.
        """

    def get_current(self, gun: str, role: str) -> StoredFile | None:
        """The highest stored version of ``role``."""

    def current_digest(self, gun: str, role: str) -> tuple[int, str] | None:
        """(version, sha256) of the current file of ``role``: a cheap query that lets
        readers serve cached bytes and still see every new version at once."""

    def get_version(self, gun: str, role: str, version: int) -> StoredFile | None:
        """Exactly ``version`` of ``role``."""

    def get_checksum(self, gun: str, role: str, sha256: str) -> StoredFile | None:
        """The version of ``role`` whose bytes hash to ``sha256`` (hex)."""

    def get_pending(self, gun: str, role: str) -> StoredFile | None:
        """Partially signed metadata waiting for more signatures, if any."""

    def delete(self, gun: str) -> bool:
        """Remove all of a GUN's files (pending ones too); add a "deletion" change
        record if any existed."""

    def changefeed(self, gun: str | None, change_id: int, records: int) -> list[ChangeRecord]:
        """Change records, oldest first; ``gun=None`` reads every GUN.

        ``records`` > 0: the first ``records`` records with id > ``change_id``.
        ``records`` < 0: the last ``-records`` records with id < ``change_id``.
        ``change_id == -1`` means "from the newest": nothing going forwards, the
        newest records going backwards. ``records == 0`` returns nothing.
        """

    def guns(self) -> list[str]:
        """Every GUN that has stored files, sorted."""

    def check_health(self) -> None:
        """Raise StorageUnavailableError when the database cannot answer."""
