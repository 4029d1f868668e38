"""SQLAlchemy models of the trust server's tables.

The schema itself is owned by the Alembic migrations in ``notary_server/migrations``;
these declarations must match them (``tests/server/test_storage_contract.py`` compares
the two). Change both together.

Tables:

* ``tuf_files``: every version of every role file of every GUN, as the exact bytes
  stored. ``UNIQUE(gun, role, version)`` is the last line of defence against two
  writers publishing the same version.
* ``repositories``: one row per GUN, used as the per-GUN write lock
  (``SELECT ... FOR UPDATE`` on PostgreSQL).
* ``changefeed``: an append-only log of new timestamps and deleted GUNs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    CHAR,
    BigInteger,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from notary_server.storage import ChangeRecord, StoredFile

__all__ = ["ID_TYPE", "Base", "Change", "Repository", "TufFile", "UTCDateTime"]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an ``INTEGER PRIMARY KEY``; elsewhere use 64-bit ids.
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no timezone support: values are stored as UTC wall-clock time and
    read back with ``tzinfo=UTC``. Naive datetimes are refused on write.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC datetimes only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class _FileContent:
    """Columns shared by stored and pending files, and their value type."""

    gun: Mapped[str]
    role: Mapped[str]
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(CHAR(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_stored(self) -> StoredFile:
        return StoredFile(
            gun=self.gun,
            role=self.role,
            version=self.version,
            data=bytes(self.data),
            sha256=self.sha256,
            created_at=self.created_at,
        )


class TufFile(_FileContent, Base):
    __tablename__ = "tuf_files"
    __table_args__ = (
        UniqueConstraint("gun", "role", "version"),
        Index("ix_tuf_files_gun_role_sha256", "gun", "role", "sha256"),
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    gun: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(255))


class PendingFile(_FileContent, Base):
    """Partially signed metadata waiting for more signatures: one per (gun, role)."""

    __tablename__ = "pending_files"

    gun: Mapped[str] = mapped_column(String(255), primary_key=True)
    role: Mapped[str] = mapped_column(String(255), primary_key=True)


class Repository(Base):
    """One row per GUN ever written: the per-GUN lock row."""

    __tablename__ = "repositories"

    gun: Mapped[str] = mapped_column(String(255), primary_key=True)


class Change(Base):
    __tablename__ = "changefeed"
    # Never reuse an id on SQLite, even after the newest row is gone.
    __table_args__ = (
        Index("ix_changefeed_gun_id", "gun", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    gun: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))

    def to_record(self) -> ChangeRecord:
        return ChangeRecord(
            id=self.id,
            created_at=self.created_at,
            gun=self.gun,
            version=self.version,
            sha256=self.sha256,
            category=self.category,
        )
