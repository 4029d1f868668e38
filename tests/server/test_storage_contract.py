"""One contract for every MetadataStore: memory, SQLite (migrated file), PostgreSQL.

The PostgreSQL cases run on a throwaway cluster (``tests/pg.py``), one fresh
database per test.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from notary_server.errors import OldVersionError, StorageUnavailableError
from notary_server.storage import MetadataStore, MetaUpdate, sha256_hex
from notary_server.storage import sql as sql_module
from notary_server.storage.memory import MemoryStore
from notary_server.storage.models import Base
from notary_server.storage.sql import SQLStore, migrate, open_store
from tests.pg import PostgresCluster

GUN = "example.com/app"
OTHER = "example.com/other"


@dataclass
class Backend:
    name: str
    url: str | None  # None: the memory store
    stores: list[MetadataStore] = field(default_factory=list)

    def open(self) -> MetadataStore:
        """A store on this backend; SQL backends get a new engine (a "new process")."""
        if self.url is None:
            if not self.stores:
                self.stores.append(MemoryStore())
            return self.stores[0]
        store = SQLStore(self.url)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.dispose()  # type: ignore[attr-defined]


def _url_for(
    name: str, request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool = True
) -> str | None:
    if name == "memory":
        return None
    if name == "sqlite":
        url = f"sqlite:///{tmp_path / 'server.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    if migrated:
        migrate(url)
    return url


ALL = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
SQL = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=ALL)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    b = Backend(request.param, _url_for(request.param, request, tmp_path))
    yield b
    b.close()


@pytest.fixture(params=SQL)
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = _url_for(request.param, request, tmp_path)
    assert url is not None
    return url


@pytest.fixture(params=SQL)
def fresh_sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = _url_for(request.param, request, tmp_path, migrated=False)
    assert url is not None
    return url


@pytest.fixture
def store(backend: Backend) -> MetadataStore:
    return backend.open()


def publish(store: MetadataStore, gun: str, *files: tuple[str, int]) -> None:
    with store.transaction(gun) as tx:
        tx.add([MetaUpdate(role, version, body(gun, role, version)) for role, version in files])


def body(gun: str, role: str, version: int) -> bytes:
    return f'{{"gun": "{gun}", "role": "{role}", "version": {version}}}'.encode()


def snapshot(store: MetadataStore, gun: str = GUN) -> dict[str, int | None]:
    roles = ("root", "targets", "snapshot", "timestamp")
    return {r: (f.version if (f := store.get_current(gun, r)) else None) for r in roles}


# -- reads -----------------------------------------------------------------


def test_empty_store(store: MetadataStore) -> None:
    assert store.get_current(GUN, "root") is None
    assert store.get_version(GUN, "root", 1) is None
    assert store.get_checksum(GUN, "root", "0" * 64) is None
    assert store.changefeed(None, 0, 100) == []
    store.check_health()


def test_reads_current_version_and_checksum(store: MetadataStore) -> None:
    before = datetime.now(UTC)
    publish(store, GUN, ("root", 1), ("targets", 1))
    publish(store, GUN, ("root", 2))
    publish(store, OTHER, ("root", 7))

    current = store.get_current(GUN, "root")
    assert current is not None
    assert (current.gun, current.role, current.version) == (GUN, "root", 2)
    assert current.data == body(GUN, "root", 2)
    assert current.sha256 == sha256_hex(current.data)
    assert current.created_at.tzinfo is not None
    assert current.created_at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=5) <= current.created_at <= datetime.now(UTC)

    old = store.get_version(GUN, "root", 1)
    assert old is not None and old.data == body(GUN, "root", 1)
    assert store.get_version(GUN, "root", 3) is None
    assert store.get_version(GUN, "targets", 2) is None

    by_hash = store.get_checksum(GUN, "root", sha256_hex(body(GUN, "root", 1)))
    assert by_hash is not None and by_hash.version == 1
    assert store.get_checksum(GUN, "targets", sha256_hex(body(GUN, "root", 1))) is None
    assert store.get_checksum(OTHER, "root", sha256_hex(body(GUN, "root", 1))) is None
    # every way to one file gives the same file, down to its UTC timestamp
    assert store.get_version(GUN, "root", 2) == current
    assert store.get_checksum(GUN, "root", current.sha256) == current

    assert snapshot(store) == {"root": 2, "targets": 1, "snapshot": None, "timestamp": None}
    assert snapshot(store, OTHER)["root"] == 7


def test_transaction_sees_its_own_staged_files(store: MetadataStore) -> None:
    publish(store, GUN, ("root", 1), ("targets", 1))
    with store.transaction(GUN) as tx:
        tx.add([MetaUpdate("targets", 2, body(GUN, "targets", 2))])
        staged = tx.current("targets")
        assert staged is not None and staged.version == 2
        assert {r: f.version for r, f in tx.current_all().items()} == {"root": 1, "targets": 2}
        assert store.get_current(GUN, "targets").version == 1  # type: ignore[union-attr]
    assert store.get_current(GUN, "targets").version == 2  # type: ignore[union-attr]


# -- version checks and rollback -------------------------------------------


@pytest.mark.parametrize("sent", [3, 2], ids=["same", "older"])
def test_add_rejects_same_and_older_versions(store: MetadataStore, sent: int) -> None:
    publish(store, GUN, ("root", 1), ("targets", 3), ("timestamp", 1))
    feed = store.changefeed(None, 0, 100)
    with pytest.raises(OldVersionError) as info, store.transaction(GUN) as tx:
        tx.add([MetaUpdate("timestamp", 2, b"ts2"), MetaUpdate("targets", sent, b"t")])
    assert info.value.detail == {"role": "targets", "stored_version": 3, "sent_version": sent}
    assert info.value.code == "VERSION"
    assert snapshot(store) == {"root": 1, "targets": 3, "snapshot": None, "timestamp": 1}
    assert store.get_current(GUN, "targets").data == body(GUN, "targets", 3)  # type: ignore[union-attr]
    assert store.changefeed(None, 0, 100) == feed


def test_add_rejects_repeated_role_in_one_call(store: MetadataStore) -> None:
    with pytest.raises(OldVersionError), store.transaction(GUN) as tx:
        tx.add([MetaUpdate("targets", 2, b"a"), MetaUpdate("targets", 2, b"b")])
    assert store.get_current(GUN, "targets") is None


def test_exception_in_transaction_discards_everything(store: MetadataStore) -> None:
    publish(store, GUN, ("root", 1))
    with pytest.raises(RuntimeError, match="validation failed"), store.transaction(GUN) as tx:
        tx.add([MetaUpdate("root", 2, b"r2"), MetaUpdate("targets", 1, b"t1")])
        tx.add([MetaUpdate("timestamp", 1, b"ts1")])
        raise RuntimeError("validation failed")
    assert snapshot(store) == {"root": 1, "targets": None, "snapshot": None, "timestamp": None}
    assert store.changefeed(None, 0, 100) == []


def test_caught_version_error_keeps_earlier_adds(store: MetadataStore) -> None:
    publish(store, GUN, ("root", 1))
    with store.transaction(GUN) as tx:
        tx.add([MetaUpdate("targets", 1, b"t1")])
        with pytest.raises(OldVersionError):
            tx.add([MetaUpdate("root", 1, b"again")])
    assert snapshot(store)["targets"] == 1
    assert store.get_current(GUN, "root").data == body(GUN, "root", 1)  # type: ignore[union-attr]


def test_unique_violation_is_a_version_error(sql_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the version check were ever bypassed, the UNIQUE constraint still holds."""
    store = SQLStore(sql_url)
    publish(store, GUN, ("root", 1))
    monkeypatch.setattr(sql_module, "check_versions", lambda *_: None)
    with pytest.raises(OldVersionError), store.transaction(GUN) as tx:
        tx.add([MetaUpdate("root", 1, b"dup")])
    # swallowing it does not commit a broken tx
    with pytest.raises(OldVersionError), store.transaction(GUN) as tx:
        tx.add([MetaUpdate("targets", 1, b"t1")])
        try:
            tx.add([MetaUpdate("root", 1, b"dup")])
        except OldVersionError:
            pass
    assert snapshot(store) == {"root": 1, "targets": None, "snapshot": None, "timestamp": None}
    store.dispose()


# -- change feed -------------------------------------------------------------


def test_changefeed_records_timestamps_only(store: MetadataStore) -> None:
    publish(store, GUN, ("root", 1), ("targets", 1), ("snapshot", 1), ("timestamp", 1))
    publish(store, GUN, ("targets", 2))
    [record] = store.changefeed(GUN, 0, 100)
    assert (record.gun, record.version, record.category) == (GUN, 1, "update")
    assert record.sha256 == sha256_hex(body(GUN, "timestamp", 1))
    assert record.created_at.utcoffset() == timedelta(0)
    assert record.to_dict()["created_at"].endswith("Z")


def test_changefeed_ids_follow_commit_order_across_repositories(store: MetadataStore) -> None:
    """A reader that saw change N must find every change committed after it at ids > N,
    even when the later commit began first (on PostgreSQL ids come from a sequence)."""
    added, other_done = threading.Event(), threading.Event()
    committed: list[str] = []
    errors: list[BaseException] = []

    def slow() -> None:  # begins first, commits last (where the store lets them overlap)
        try:
            with store.transaction(GUN) as tx:
                tx.add([MetaUpdate("timestamp", 1, body(GUN, "timestamp", 1))])
                added.set()
                other_done.wait(0.5)  # SQLite's single writer makes the other one wait
            committed.append(GUN)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            added.set()

    def fast() -> None:
        added.wait(10)
        publish(store, OTHER, ("timestamp", 1))
        committed.append(OTHER)
        other_done.set()

    threads = [threading.Thread(target=slow), threading.Thread(target=fast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(committed) == 2
    feed = store.changefeed(None, 0, 100)
    assert [r.gun for r in feed] == committed  # id order is commit order
    first = feed[0].id
    assert [r.gun for r in store.changefeed(None, first, 100)] == committed[1:]


def test_changefeed_paging(store: MetadataStore) -> None:
    for version in (1, 2, 3):
        publish(store, GUN, ("timestamp", version))
        publish(store, OTHER, ("timestamp", version))
    every = store.changefeed(None, 0, 100)
    ids = [r.id for r in every]
    assert ids == sorted(ids) and len(set(ids)) == 6
    assert [(r.gun, r.version) for r in every] == [(g, v) for v in (1, 2, 3) for g in (GUN, OTHER)]

    def page(gun: str | None, change_id: int, records: int) -> list[int]:
        return [r.id for r in store.changefeed(gun, change_id, records)]

    assert page(None, 0, 2) == ids[:2]
    assert page(None, ids[1], 2) == ids[2:4]
    assert page(None, ids[5], 2) == []
    assert page(None, -1, 5) == []
    assert page(None, -1, -2) == ids[4:]
    assert page(None, ids[4], -2) == ids[2:4]
    assert page(None, ids[0], -2) == []
    assert page(None, -1, -100) == ids
    assert page(None, 0, 0) == []
    assert page(GUN, 0, 100) == ids[0::2]
    assert page(OTHER, ids[1], 1) == [ids[3]]
    assert page(OTHER, -1, -1) == [ids[5]]
    assert page(GUN, ids[4], -5) == [ids[0], ids[2]]
    assert page("nobody", -1, -10) == []


# -- delete -------------------------------------------------------------------


def test_delete(store: MetadataStore) -> None:
    assert store.delete(GUN) is False
    assert store.changefeed(None, -1, -10) == []
    publish(store, GUN, ("root", 1), ("timestamp", 1))
    publish(store, OTHER, ("root", 1))
    assert store.delete(GUN) is True
    assert snapshot(store) == dict.fromkeys(("root", "targets", "snapshot", "timestamp"))
    assert store.get_version(GUN, "root", 1) is None
    assert snapshot(store, OTHER)["root"] == 1
    last = store.changefeed(None, -1, -1)[0]
    assert (last.gun, last.version, last.sha256, last.category) == (GUN, 0, "", "deletion")
    assert store.delete(GUN) is False
    publish(store, GUN, ("root", 1))  # a deleted GUN starts again from version 1
    assert snapshot(store)["root"] == 1


# -- concurrency ---------------------------------------------------------------


@pytest.mark.parametrize("read_inside", [True, False], ids=["read-in-tx", "read-before-tx"])
def test_concurrent_writers_never_lose_an_update(backend: Backend, read_inside: bool) -> None:
    """Two writers (separate engines on SQL, like two server processes) race 20 rounds.

    Reading inside the transaction, both always succeed, one after the other.
    Reading before it (a client that fetched earlier), exactly one wins each round.
    """
    rounds, stores = 20, [backend.open(), backend.open()]
    barrier = threading.Barrier(2, timeout=30)
    won: list[list[int | None]] = [[], []]
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        store = stores[n]
        try:
            for r in range(rounds):
                seen = store.get_current(GUN, "targets")
                barrier.wait()
                try:
                    with store.transaction(GUN) as tx:
                        if read_inside:
                            seen = tx.current("targets")
                        version = seen.version + 1 if seen else 1
                        time.sleep(0.002)  # widen the read-then-write window
                        tx.add([MetaUpdate("targets", version, f"{n}:{r}:{version}".encode())])
                    won[n].append(version)
                except OldVersionError:
                    won[n].append(None)
                barrier.wait()
        except BaseException as e:  # noqa: BLE001  (reported below)
            failures.append(e)
            barrier.abort()

    threads = [threading.Thread(target=writer, args=(n,)) for n in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    versions = [v for per_writer in won for v in per_writer if v is not None]
    assert sorted(versions) == list(range(1, len(versions) + 1))  # no duplicate, no gap
    for r in range(rounds):
        winners = [won[n][r] for n in (0, 1) if won[n][r] is not None]
        assert len(winners) == (2 if read_inside else 1), (r, won)
    check = backend.open()
    assert check.get_current(GUN, "targets").version == len(versions)  # type: ignore[union-attr]
    for n in (0, 1):
        for r, version in enumerate(won[n]):
            if version is not None:
                stored = check.get_version(GUN, "targets", version)
                assert stored is not None and stored.data == f"{n}:{r}:{version}".encode()


# -- schema, factories, health --------------------------------------------------


def test_migrations_create_exactly_the_models(sql_url: str) -> None:
    engine = create_engine(sql_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": "notary_server_alembic_version", "compare_type": True}
        )
        assert compare_metadata(context, Base.metadata) == []
    engine.dispose()


def test_concurrent_migrations(fresh_sql_url: str) -> None:
    """Replicas starting together all run migrate(); all succeed, one upgrades."""
    code = "import sys; from notary_server.storage.sql import migrate; migrate(sys.argv[1])"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, fresh_sql_url], stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
    store = SQLStore(fresh_sql_url)
    publish(store, GUN, ("root", 1))
    store.dispose()


def test_open_store(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    store = open_store(f"sqlite:///{tmp_path / 'x.db'}", create=True)
    assert isinstance(store, SQLStore)
    publish(store, GUN, ("root", 1))
    store.check_health()
    store.dispose()


# -- database unavailable ---------------------------------------------------------


def _operations(store: MetadataStore) -> dict[str, Callable[[], object]]:
    def write() -> None:
        with store.transaction(GUN) as tx:
            tx.add([MetaUpdate("root", 9, b"r")])

    return {
        "health": store.check_health,
        "current": lambda: store.get_current(GUN, "root"),
        "version": lambda: store.get_version(GUN, "root", 1),
        "checksum": lambda: store.get_checksum(GUN, "root", "0" * 64),
        "changefeed": lambda: store.changefeed(None, -1, -10),
        "delete": lambda: store.delete(GUN),
        "write": write,
    }


def _assert_unavailable(store: MetadataStore) -> None:
    for name, operation in _operations(store).items():
        with pytest.raises(StorageUnavailableError):
            operation()
            pytest.fail(f"{name} did not raise")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////nonexistent/notary/server.db",
        pytest.param("postgresql+psycopg://postgres@127.0.0.1:1/db", marks=pytest.mark.postgres),
    ],
    ids=["sqlite-missing-dir", "postgresql-closed-port"],
)
def test_unreachable_database(url: str) -> None:
    store = SQLStore(url)
    _assert_unavailable(store)
    with pytest.raises(StorageUnavailableError):
        migrate(url)
    store.dispose()


def test_sqlite_write_lock_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    migrate(url)
    store = SQLStore(url, engine_options={"connect_args": {"timeout": 0.2}})
    publish(store, GUN, ("root", 1))
    holder = sqlite3.connect(tmp_path / "locked.db", isolation_level=None)
    assert holder.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailableError):
            publish(store, GUN, ("root", 2))
        assert snapshot(store)["root"] == 1  # readers are not blocked (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    publish(store, GUN, ("root", 2))
    store.dispose()


@pytest.mark.postgres
def test_postgres_outage_never_leaves_a_partial_write() -> None:
    with PostgresCluster.started() as cluster:
        url = cluster.create_database()
        migrate(url)
        store = SQLStore(url)
        publish(store, GUN, ("root", 1))
        with pytest.raises(StorageUnavailableError), store.transaction(GUN) as tx:
            tx.add([MetaUpdate("root", 2, b"r2"), MetaUpdate("timestamp", 1, b"ts")])
            cluster.stop()
        _assert_unavailable(store)
        cluster.start()
        assert snapshot(store) == {"root": 1, "targets": None, "snapshot": None, "timestamp": None}
        assert store.changefeed(None, 0, 10) == []
        publish(store, GUN, ("root", 2))
        store.dispose()


def test_guns_lists_repositories_with_files(store: MetadataStore) -> None:
    assert store.guns() == []
    publish(store, "reg/b", ("root", 1))
    publish(store, GUN, ("root", 1))
    assert store.guns() == sorted([GUN, "reg/b"])
    store.delete("reg/b")
    assert store.guns() == [GUN]


def test_pending_files_replace_delete_and_roll_back(store: MetadataStore) -> None:
    assert store.get_pending(GUN, "targets/releases") is None
    with store.transaction(GUN) as tx:
        tx.put_pending(MetaUpdate("targets/releases", 2, b"one signature"))
    assert store.get_pending(GUN, "targets/releases").data == b"one signature"
    with store.transaction(GUN) as tx:
        tx.put_pending(MetaUpdate("targets/releases", 2, b"two signatures"))
    found = store.get_pending(GUN, "targets/releases")
    assert (found.version, found.data) == (2, b"two signatures")
    with pytest.raises(RuntimeError), store.transaction(GUN) as tx:
        assert tx.delete_pending("targets/releases") is True
        raise RuntimeError("abort")
    assert store.get_pending(GUN, "targets/releases") is not None
    with store.transaction(GUN) as tx:
        assert tx.delete_pending("targets/releases") is True
        assert tx.delete_pending("targets/releases") is False
    assert store.get_pending(GUN, "targets/releases") is None
    publish(store, GUN, ("root", 1))
    with store.transaction(GUN) as tx:
        tx.put_pending(MetaUpdate("targets/releases", 2, b"x"))
    store.delete(GUN)
    assert store.get_pending(GUN, "targets/releases") is None
