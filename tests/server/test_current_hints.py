"""Reads of current files reuse "which version is current" until the next write
(notary_server/generation.py): a worker of the same server sees every write at once,
another server on the same database within ``current_recheck_seconds``.

Two TrustServices on one SQLite file stand for two workers (sharing one generation)
or for two servers (each with its own); a fake monotonic clock moves time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from notary_server.config import ServerConfig
from notary_server.errors import MetadataNotFoundError
from notary_server.generation import MISSING, CurrentHints, Generation, SharedGeneration
from notary_server.service import TrustService
from notary_server.storage import MetaUpdate
from notary_server.storage.sql import SQLStore, migrate
from tests.conftest import GUN


class Monotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_service(url: str, generation: Generation, clock: Monotonic, keys: Any) -> TrustService:
    store = SQLStore(url, on_change=generation.bump)
    hints = CurrentHints(generation, ttl=1.0, monotonic=clock)
    return TrustService(store, keys, ServerConfig(), hints=hints)


def write_targets(service: TrustService, version: int) -> None:
    with service.store.transaction(GUN) as tx:
        tx.add([MetaUpdate("targets", version, b'{"v": %d}' % version)])


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'server.db'}"
    migrate(url)
    return url


def test_workers_of_one_server_see_a_write_at_once(url: str, keyservice: Any) -> None:
    generation, clock = SharedGeneration(), Monotonic()
    one = make_service(url, generation, clock, keyservice)
    two = make_service(url, generation, clock, keyservice)
    write_targets(one, 1)
    assert two.get_current(GUN, "targets").version == 1  # remembered from here on
    write_targets(one, 2)
    assert two.get_current(GUN, "targets").version == 2  # no time passed


def test_another_server_sees_a_write_within_the_recheck_time(url: str, keyservice: Any) -> None:
    clock = Monotonic()
    server = make_service(url, Generation(), clock, keyservice)
    replica = make_service(url, Generation(), clock, keyservice)
    write_targets(server, 1)
    assert replica.get_current(GUN, "targets").version == 1
    write_targets(server, 2)
    clock.now += 0.5
    assert replica.get_current(GUN, "targets").version == 1  # its hint still holds
    clock.now += 0.6
    assert replica.get_current(GUN, "targets").version == 2


def test_a_missing_role_is_remembered_as_missing_until_a_write(url: str, keyservice: Any) -> None:
    generation, clock = SharedGeneration(), Monotonic()
    one = make_service(url, generation, clock, keyservice)
    two = make_service(url, generation, clock, keyservice)
    with pytest.raises(MetadataNotFoundError):
        two.get_current(GUN, "targets")
    write_targets(one, 1)
    assert two.get_current(GUN, "targets").version == 1


def test_a_hint_taken_before_a_write_is_not_kept_after_it() -> None:
    """The generation is read before the database is asked: a write that lands in
    between makes the hint stale at once."""
    generation, clock = Generation(), Monotonic()
    hints = CurrentHints(generation, ttl=10, monotonic=clock)
    started = hints.start()
    generation.bump()  # a commit while the database was being asked
    hints.put(GUN, "targets", started, (1, "aa" * 32))
    assert hints.get(GUN, "targets") is MISSING


def test_the_shared_generation_is_one_number_across_a_fork() -> None:
    generation = SharedGeneration()
    generation.bump()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        generation.bump()
        generation.bump()
        os._exit(0)
    os.waitpid(pid, 0)
    assert generation.value() == 3


def test_recheck_seconds_is_checked() -> None:
    from notary_server.config import ConfigError

    with pytest.raises(ConfigError, match="current_recheck_seconds"):
        ServerConfig(current_recheck_seconds=-1).check()
