"""The SQL :class:`~notary_server.storage.MetadataStore`: SQLite by default, PostgreSQL at scale.

Every write runs in one database transaction that first takes the GUN's lock:

* PostgreSQL: insert the GUN's ``repositories`` row if missing, then
  ``SELECT ... FOR UPDATE`` it. Writers of one GUN queue up across processes and
  replicas; writers of different GUNs do not wait for each other.
* SQLite: ``BEGIN IMMEDIATE`` takes the database write lock (WAL mode, so readers
  never wait), with a 10 s busy timeout.

Inside the lock, :meth:`RepoTransaction.add` compares each role's stored version
with the new one; ``UNIQUE(gun, role, version)`` backs that check up. Database
errors surface as :class:`~notary_server.errors.StorageUnavailableError`, never raw.

The schema belongs to the Alembic migrations; run :func:`migrate` at start-up::

    migrate("sqlite:////var/lib/notary/server.db")
    store = SQLStore("sqlite:////var/lib/notary/server.db")
    with store.transaction("example.com/app") as tx:
        tx.add([MetaUpdate("timestamp", 2, data)])

Why one module of this size: the transaction, its lock, the change-feed order
and the hot-path raw queries must agree on one connection discipline per dialect;
they are kept where one reading shows all of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    URL,
    Engine,
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    make_url,
    select,
    text,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session, sessionmaker

from notary_server.errors import OldVersionError, StorageUnavailableError
from notary_server.storage import ChangeRecord, MetadataStore, MetaUpdate, StoredFile
from notary_server.storage.memory import MemoryStore, check_versions
from notary_server.storage.models import Change, PendingFile, Repository, TufFile

__all__ = ["SQLStore", "configure_sqlite", "migrate", "normalize_url", "open_store"]

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 10
# Connection execution option read by the SQLite "begin" hook: DEFERRED or IMMEDIATE.
SQLITE_BEGIN_OPTION = "notary_sqlite_begin"
_MIGRATE_LOCK = threading.Lock()
# pg_advisory_xact_lock key that orders change-feed inserts (any constant of our own)
_FEED_LOCK = 0x6E6F7461727966


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; a bare ``postgresql://`` URL gets the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def configure_sqlite(engine: Engine) -> None:
    """Make SQLAlchemy, not pysqlite, emit BEGIN; turn on WAL and foreign keys.

    Connections opened with execution option ``notary_sqlite_begin="IMMEDIATE"``
    take the write lock when their transaction begins. The busy timeout is
    pysqlite's ``timeout`` connect argument (:data:`SQLITE_BUSY_TIMEOUT_S` by default).
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not BEGIN on its own
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE"):
            raise ValueError(f"bad {SQLITE_BEGIN_OPTION}: {mode!r}")
        conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def _db_errors() -> Iterator[None]:
    """Turn database failures into StorageUnavailableError (usable as a decorator)."""
    try:
        yield
    except sa_exc.IntegrityError:
        raise
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as e:
        logger.warning("metadata database unavailable: %s", e)
        raise StorageUnavailableError() from e


def _version_conflict(gun: str, cause: Exception) -> OldVersionError:
    logger.info("unique violation writing %s: %s", gun, cause)
    return OldVersionError(
        "a concurrent update stored the same version first; fetch, rebase and retry", gun=gun
    )


def _stored(row: Any) -> StoredFile | None:
    """A row of (gun, role, version, data, sha256, created_at) read by plain SQL."""
    if row is None:
        return None
    created = row[5]
    if isinstance(created, str):  # SQLite: UTC wall-clock text
        created = datetime.fromisoformat(created)
    created = created.replace(tzinfo=UTC) if created.tzinfo is None else created.astimezone(UTC)
    return StoredFile(row[0], row[1], int(row[2]), bytes(row[3]), row[4], created)


class _SQLTransaction:
    """Internal: the RepoTransaction handed out by SQLStore.transaction()."""

    def __init__(self, session: Session, gun: str, mark: str, current_sql: str) -> None:
        self._session = session
        self._gun = gun
        self._mark = mark  # the driver's placeholder
        self._current_sql = current_sql
        self.failed = False
        self.changes: list[Change] = []  # inserted at commit: see SQLStore._commit

    @_db_errors()
    def current(self, role: str) -> StoredFile | None:
        # plain SQL on the transaction's connection: every publish reads each role it
        # checks twice (compare-and-store), and the ORM costs about 4x as much
        connection = self._session.connection()
        return _stored(connection.exec_driver_sql(self._current_sql, (self._gun, role)).first())

    @_db_errors()
    def current_all(self) -> dict[str, StoredFile]:
        latest = (
            select(TufFile.role, func.max(TufFile.version).label("version"))
            .where(TufFile.gun == self._gun)
            .group_by(TufFile.role)
            .subquery()
        )
        stmt = select(TufFile).join(
            latest,
            and_(
                TufFile.gun == self._gun,
                TufFile.role == latest.c.role,
                TufFile.version == latest.c.version,
            ),
        )
        return {row.role: row.to_stored() for row in self._session.scalars(stmt)}

    @_db_errors()
    def add(self, updates: Sequence[MetaUpdate]) -> None:
        if self.failed:
            raise OldVersionError("transaction already failed with a version conflict")
        roles = sorted({u.role for u in updates})
        marks = ", ".join([self._mark] * len(roles))
        stored = self._session.connection().exec_driver_sql(
            f"SELECT role, max(version) FROM tuf_files WHERE gun = {self._mark} "
            f"AND role IN ({marks}) GROUP BY role",
            (self._gun, *roles),
        )
        check_versions(updates, {role: int(version) for role, version in stored})
        now = datetime.now(UTC)
        rows = []
        for u in updates:
            sha256 = u.sha256
            rows.append(
                {
                    "gun": self._gun,
                    "role": u.role,
                    "version": u.version,
                    "sha256": sha256,
                    "data": bytes(u.data),
                    "created_at": now,
                }
            )
            if u.role == "timestamp":
                self.changes.append(
                    Change(
                        created_at=now,
                        gun=self._gun,
                        version=u.version,
                        sha256=sha256,
                        category="update",
                    )
                )
        try:
            # a bulk INSERT, not the ORM's unit of work (about half the cost)
            self._session.execute(insert(TufFile), rows)
        except sa_exc.IntegrityError as e:
            self.failed = True  # the session's transaction is gone; commit must not happen
            raise _version_conflict(self._gun, e) from e

    @_db_errors()
    def put_pending(self, update: MetaUpdate) -> None:
        self.delete_pending(update.role)
        self._session.add(
            PendingFile(
                gun=self._gun,
                role=update.role,
                version=update.version,
                sha256=update.sha256,
                data=bytes(update.data),
                created_at=datetime.now(UTC),
            )
        )
        self._session.flush()

    @_db_errors()
    def delete_pending(self, role: str) -> bool:
        result: Any = self._session.execute(
            delete(PendingFile).where(PendingFile.gun == self._gun, PendingFile.role == role),
            execution_options={"synchronize_session": False},
        )
        return bool(result.rowcount)


class SQLStore(MetadataStore):
    """Metadata store on any SQLAlchemy URL (tested: SQLite, PostgreSQL via psycopg 3).

    Args:
        url: SQLAlchemy database URL, e.g. ``sqlite:////var/lib/notary/server.db``
            or ``postgresql+psycopg://user@host/db``.
        engine_options: extra keyword arguments for ``create_engine``
            (``connect_args`` is merged with the defaults).
        create: run the migrations (:func:`migrate`) before first use.
        on_change: called after every committed write (a
            :class:`notary_server.generation.Generation`'s ``bump``).

    Raises:
        StorageUnavailableError: ``create`` is set and the database cannot be reached.
        ValueError: an in-memory SQLite URL (use ``memory://`` with :func:`open_store`).
    """

    def __init__(
        self,
        url: str,
        *,
        engine_options: dict[str, Any] | None = None,
        create: bool = False,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._on_change = on_change
        parsed = normalize_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and parsed.database in (None, "", ":memory:"):
            raise ValueError("in-memory SQLite is one database per connection: use memory://")
        if create:
            migrate(parsed)
        options: dict[str, Any] = {}
        connect_args: dict[str, Any] = {}
        if self.dialect == "sqlite":
            connect_args["timeout"] = SQLITE_BUSY_TIMEOUT_S
        else:
            options["pool_pre_ping"] = True
            if parsed.get_driver_name() in ("psycopg", "psycopg2"):
                connect_args["connect_timeout"] = 10
        options.update(engine_options or {})
        connect_args.update(options.pop("connect_args", {}))
        self.engine = create_engine(parsed, connect_args=connect_args, **options)
        if self.dialect == "sqlite":
            configure_sqlite(self.engine)
            write_engine: Engine = self.engine.execution_options(
                **{SQLITE_BEGIN_OPTION: "IMMEDIATE"}
            )
            read_engine = self.engine
        else:
            write_engine = self.engine
            # A read is one statement: skip the BEGIN/ROLLBACK round trips.
            read_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self._writes = sessionmaker(write_engine, expire_on_commit=False, autoflush=False)
        self._reads = sessionmaker(read_engine, expire_on_commit=False, autoflush=False)
        # Current-file checks use raw pooled connections; on PostgreSQL a pool of its
        # own in autocommit mode, so a check is one round trip (no BEGIN, no ROLLBACK).
        self._digest_engine = (
            self.engine
            if self.dialect == "sqlite"
            else create_engine(
                parsed, connect_args=connect_args, isolation_level="AUTOCOMMIT", **options
            )
        )
        self._mark = mark = "?" if self.engine.dialect.paramstyle == "qmark" else "%s"
        self._digest_sql = (
            f"SELECT version, sha256 FROM tuf_files WHERE gun = {mark} AND role = {mark} "
            "ORDER BY version DESC LIMIT 1"
        )
        columns = "SELECT gun, role, version, data, sha256, created_at FROM tuf_files"
        self._current_sql = (
            f"{columns} WHERE gun = {mark} AND role = {mark} ORDER BY version DESC LIMIT 1"
        )
        self._version_sql = f"{columns} WHERE gun = {mark} AND role = {mark} AND version = {mark}"
        self._checksum_sql = (
            f"{columns} WHERE gun = {mark} AND role = {mark} AND sha256 = {mark} "
            "ORDER BY version DESC LIMIT 1"
        )
        self._dbapi_error: type[Exception] = self.engine.dialect.loaded_dbapi.Error

    def __repr__(self) -> str:
        return f"SQLStore({self.engine.url!r})"

    # -- writes --------------------------------------------------------------

    def _lock_gun(self, session: Session, gun: str) -> None:
        """Take the GUN's write lock for the rest of the session's transaction."""
        if self.dialect == "postgresql":
            session.execute(pg_insert(Repository).values(gun=gun).on_conflict_do_nothing())
            session.execute(select(Repository.gun).where(Repository.gun == gun).with_for_update())
        elif self.dialect == "sqlite":
            # BEGIN IMMEDIATE already holds the database write lock.
            session.connection().exec_driver_sql(
                "INSERT INTO repositories (gun) VALUES (?) ON CONFLICT DO NOTHING", (gun,)
            )
        else:
            if session.get(Repository, gun, with_for_update=True) is None:
                try:
                    with session.begin_nested():
                        session.add(Repository(gun=gun))
                except sa_exc.IntegrityError:
                    pass  # a concurrent writer created it; lock it below
                session.get(Repository, gun, with_for_update=True, populate_existing=True)

    @contextmanager
    def _write_session(self, gun: str) -> Iterator[Session]:
        session = self._writes()
        try:
            self._lock_gun(session, gun)
            yield session
        finally:
            try:
                session.close()  # rolls back anything not committed
            except sa_exc.DBAPIError as e:
                logger.warning("rollback failed, connection discarded: %s", e)

    @contextmanager
    def transaction(self, gun: str) -> Iterator[_SQLTransaction]:
        with _db_errors(), self._write_session(gun) as session:
            tx = _SQLTransaction(session, gun, self._mark, self._current_sql)
            yield tx  # an exception here skips the commit: the session rolls back
            if tx.failed:
                raise OldVersionError("transaction failed with a version conflict", gun=gun)
            try:
                self._commit(session, tx.changes)
            except sa_exc.IntegrityError as e:
                raise _version_conflict(gun, e) from e

    def _commit(self, session: Session, changes: Sequence[Change]) -> None:
        """Commit, with the change records drawn and committed in one order.

        A change record's id comes from a sequence when it is inserted. Were it
        inserted early, a transaction that drew id 7 could commit after one that drew
        id 8, and a reader paging the feed with ``change_id=8`` would never see 7. On
        PostgreSQL the records are therefore inserted last, under one transaction-level
        advisory lock held until commit; SQLite's single writer already orders them.
        """
        if changes:
            if self.dialect == "postgresql":
                session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FEED_LOCK})
            session.execute(
                insert(Change),
                [
                    {
                        "created_at": c.created_at,
                        "gun": c.gun,
                        "version": c.version,
                        "sha256": c.sha256,
                        "category": c.category,
                    }
                    for c in changes
                ],
            )
        session.commit()
        if self._on_change is not None:
            self._on_change()

    @_db_errors()
    def delete(self, gun: str) -> bool:
        with self._write_session(gun) as session:
            session.execute(
                delete(PendingFile).where(PendingFile.gun == gun),
                execution_options={"synchronize_session": False},
            )
            result: Any = session.execute(
                delete(TufFile).where(TufFile.gun == gun),
                execution_options={"synchronize_session": False},
            )
            existed = bool(result.rowcount)
            now = datetime.now(UTC)
            deletion = Change(created_at=now, gun=gun, version=0, sha256="", category="deletion")
            self._commit(session, [deletion] if existed else [])
            return existed

    # -- reads ---------------------------------------------------------------

    def get_pending(self, gun: str, role: str) -> StoredFile | None:
        stmt = select(PendingFile).where(PendingFile.gun == gun, PendingFile.role == role)
        row = self._read(lambda s: s.scalars(stmt).first())
        return row.to_stored() if row else None

    def guns(self) -> list[str]:
        stmt = select(TufFile.gun).distinct().order_by(TufFile.gun)
        return list(self._read(lambda s: s.scalars(stmt).all()))

    def _read(self, query: Callable[[Session], Any]) -> Any:
        with _db_errors(), self._reads() as session:
            return query(session)

    def get_current(self, gun: str, role: str) -> StoredFile | None:
        return self._raw_file(self._current_sql, (gun, role))

    def _raw_row(self, sql: str, params: tuple[Any, ...]) -> Any:
        """One row by plain DB-API on a pooled connection: the hot read paths, about
        8x cheaper than a statement built and run through SQLAlchemy."""
        try:
            with _db_errors():
                conn = self._digest_engine.raw_connection()
            try:
                cursor = conn.cursor()
                cursor.execute(sql, params)
                row = cursor.fetchone()
                cursor.close()
            finally:
                conn.close()
        except self._dbapi_error as e:
            logger.warning("metadata database unavailable: %s", e)
            raise StorageUnavailableError() from e
        return row

    def _raw_file(self, sql: str, params: tuple[Any, ...]) -> StoredFile | None:
        return _stored(self._raw_row(sql, params))

    def current_digest(self, gun: str, role: str) -> tuple[int, str] | None:
        # The hottest query of the server (every read of a current file).
        row = self._raw_row(self._digest_sql, (gun, role))
        return (int(row[0]), str(row[1])) if row else None

    def get_version(self, gun: str, role: str, version: int) -> StoredFile | None:
        return self._raw_file(self._version_sql, (gun, role, version))

    def get_checksum(self, gun: str, role: str, sha256: str) -> StoredFile | None:
        return self._raw_file(self._checksum_sql, (gun, role, sha256.lower()))

    def changefeed(self, gun: str | None, change_id: int, records: int) -> list[ChangeRecord]:
        stmt = select(Change)
        if gun is not None:
            stmt = stmt.where(Change.gun == gun)
        if records > 0:
            if change_id == -1:
                return []
            stmt = stmt.where(Change.id > change_id).order_by(Change.id).limit(records)
        elif records < 0:
            if change_id != -1:
                stmt = stmt.where(Change.id < change_id)
            stmt = stmt.order_by(Change.id.desc()).limit(-records)
        else:
            return []
        rows = [row.to_record() for row in self._read(lambda s: s.scalars(stmt).all())]
        return sorted(rows, key=lambda r: r.id)

    def check_health(self) -> None:
        with _db_errors(), self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        if self._digest_engine is not self.engine:
            self._digest_engine.dispose()
        self.engine.dispose()


def migrate(url: str | URL) -> None:
    """Bring the database at ``url`` to the newest schema (``alembic upgrade head``).

    Safe to run from several processes (and threads) at once: on PostgreSQL an
    advisory lock, on SQLite the write lock, serialises them.

    Raises:
        StorageUnavailableError: the database cannot be reached.
    """
    from alembic import command
    from alembic.config import Config

    rendered = normalize_url(url).render_as_string(hide_password=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    with _MIGRATE_LOCK:  # Alembic's context is process-global
        try:
            command.upgrade(config, "head")
        except (sa_exc.DBAPIError, sa_exc.TimeoutError) as e:
            # Start-up only, for an operator: name the cause (never the password).
            cause = getattr(e, "orig", None) or e
            raise StorageUnavailableError(f"cannot migrate the metadata database: {cause}") from e


def open_store(
    url: str, *, create: bool = False, on_change: Callable[[], None] | None = None
) -> MetadataStore:
    """``memory://`` gives a fresh MemoryStore; any other URL an SQLStore (which calls
    ``on_change`` after every write, :class:`SQLStore`)."""
    if url.startswith("memory://"):
        return MemoryStore()
    return SQLStore(url, create=create, on_change=on_change)
