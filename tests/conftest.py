"""Fixtures shared by every test package: a clock, an in-process trust service, and
the secrets scan of every log after the last test."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.service import TrustService
from notary_server.storage import MetadataStore
from notary_server.storage.memory import MemoryStore
from notary_server.storage.sql import SQLStore, migrate
from notary_signer.client import LocalKeyService
from notary_signer.keystore.memory import MemoryKeyStore
from tests.pg import pg_cluster, pg_url  # noqa: F401  (pytest fixtures)
from tests.secrets import KEYS, KNOWN, scan_logs
from tests.tufrepo import Owner


@dataclass
class FakeClock:
    """A clock the test moves by hand; injected wherever the code asks the time."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


E2E_DIR = Path(__file__).parent / "e2e"
#: Fixtures that start real processes on 127.0.0.1 (the ``e2e`` mark) or a throwaway
#: PostgreSQL cluster (the ``postgres`` mark).
PROCESS_FIXTURES = frozenset({"stack", "registry", "basic_registry", "token_registry"})
POSTGRES_FIXTURES = frozenset({"pg_cluster", "pg_url", "own_cluster"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``e2e`` and ``postgres`` marks, by what a test uses, so ``-m`` selects them
    whether or not a module remembered to mark itself."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if E2E_DIR in item.path.parents or names & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.e2e)
        if names & POSTGRES_FIXTURES or any(
            v in ("postgres", "postgresql") for v in params.values() if isinstance(v, str)
        ):
            item.add_marker(pytest.mark.postgres)


#: What this process's secrets scan read, one line (pytest-xdist: each worker scans the
#: logs under its own base directory, with the secrets its own tests made; the
#: controller prints every worker's line at the end).
SCANNED: list[str] = []
#: Whether this process ran a test that starts real processes (a worker runs a share).
RAN_E2E: list[bool] = []


def pytest_runtest_setup(item: pytest.Item) -> None:
    if not RAN_E2E and item.get_closest_marker("e2e"):
        RAN_E2E.append(True)


@pytest.fixture(scope="session", autouse=True)
def secrets_scan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """After the last test of any selection: no log holds a secret (tests/secrets.py).

    Captures every record our packages log in process to ``suite.log``; the log files
    of the real processes the tests start are under the same base directory. Set up
    before any other fixture, so torn down after all of them (every process stopped).
    Under pytest-xdist each worker has its own base directory and scans it.
    """
    base = tmp_path_factory.getbasetemp()
    path = base / "suite.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    loggers = [logging.getLogger(n) for n in ("notary_server", "notary_signer", "trustctl")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)
    yield path
    for log, level in zip(loggers, levels, strict=True):
        log.removeHandler(handler)
        log.setLevel(level)
    handler.close()
    result = scan_logs(base)
    SCANNED.append(
        f"SECRETS scanned {result.files} log files, {result.lines} lines under {base.name}, "
        f"{len(KNOWN)} known secrets, {len(KEYS)} known key encodings"
    )
    print("\n" + SCANNED[-1])
    # Real processes always log: an end-to-end run that left no log line means the
    # scan looked in the wrong place (a unit-only run may log nothing).
    if result.lines == 0 and RAN_E2E:
        pytest.fail("the secrets scan read no log line, yet real processes ran")
    if result.findings:
        pytest.fail("secrets in the logs:\n" + "\n".join(result.findings[:50]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its scan's line to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["secrets_scanned"] = list(SCANNED)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """pytest-xdist's controller: a worker finished; keep its scan's line."""
    SCANNED.extend(getattr(node, "workeroutput", {}).get("secrets_scanned", []))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in SCANNED:
        terminalreporter.write_line(line)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def keyservice() -> LocalKeyService:
    return LocalKeyService(MemoryKeyStore())


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MetadataStore]:
    """Every in-process server test runs on each store: memory, SQLite and PostgreSQL."""
    if request.param == "memory":
        yield MemoryStore()
        return
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'server.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    migrate(url)
    sql = SQLStore(url)
    try:
        yield sql
    finally:
        sql.dispose()


@pytest.fixture
def service(store: MetadataStore, keyservice: LocalKeyService, clock: FakeClock) -> TrustService:
    config = ServerConfig(
        max_file_bytes=256 * 1024, max_body_bytes=1024 * 1024, max_targets_per_role=50, max_parts=20
    )
    return TrustService(store, keyservice, config, clock=clock)


@pytest.fixture
def app(service: TrustService) -> Flask:
    return create_app(service=service)


@pytest.fixture
def client(app: Flask) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


GUN = "127.0.0.1:5000/library/app"


@pytest.fixture
def make_owner(service: TrustService, clock: FakeClock) -> Callable[..., Owner]:
    """An owner of a GUN whose root lists the server-held timestamp and snapshot keys."""

    def make(gun: str = GUN, *, server_snapshot: bool = True, **kwargs: object) -> Owner:
        ts = service.server_key(gun, "timestamp")
        snap = service.server_key(gun, "snapshot") if server_snapshot else None
        return Owner(timestamp_key=ts, snapshot_key=snap, now=clock.now, **kwargs)  # type: ignore[arg-type]

    return make
