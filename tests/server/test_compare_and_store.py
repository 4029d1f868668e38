"""Publishing is compare-and-store: checked without the write lock, stored under it
only if nothing it read has changed meanwhile (issue 10, row 5).

The store is the real one (memory, SQLite, PostgreSQL) behind :class:`RacingStore`,
which lets another writer commit just before the publish's write transaction: what a
concurrent publish or renewal does while a large upload is being checked.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from notary_server import errors
from notary_server.config import ServerConfig
from notary_server.service import TrustService
from notary_server.storage import MetadataStore
from tests.conftest import GUN
from tests.tufrepo import Owner


class RacingStore:
    """A store whose next write transaction is preceded by ``race()`` (once per arm)."""

    def __init__(self, inner: MetadataStore) -> None:
        self.inner = inner
        self.race: Callable[[], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextmanager
    def transaction(self, gun: str) -> Iterator[Any]:
        race, self.race = self.race, None
        if race is not None:
            race()
        with self.inner.transaction(gun) as tx:
            yield tx


@pytest.fixture
def racing(store: MetadataStore) -> RacingStore:
    return RacingStore(store)


def _services(
    racing: RacingStore, keyservice: Any, clock: Any
) -> tuple[TrustService, TrustService]:
    config = ServerConfig()
    ours = TrustService(racing, keyservice, config, clock=clock)  # type: ignore[arg-type]
    other = TrustService(racing.inner, keyservice, config, clock=clock)
    return ours, other


def _owner(service: TrustService, clock: Any) -> Owner:
    return Owner(
        timestamp_key=service.server_key(GUN, "timestamp"),
        snapshot_key=service.server_key(GUN, "snapshot"),
        now=clock.now,
    )


def _version(store: MetadataStore, role: str) -> int:
    found = store.get_current(GUN, role)
    assert found is not None
    return int(json.loads(found.data)["signed"]["version"])


def test_a_renewal_while_an_upload_is_checked_makes_it_check_again(
    racing, keyservice, clock
) -> None:
    ours, other = _services(racing, keyservice, clock)
    owner = _owner(ours, clock)
    owner.add_tag("v1")
    ours.publish(GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    first = _version(racing.inner, "timestamp")

    clock.advance(hours=17)  # inside the timestamp's renewal window
    racing.race = lambda: other.renew(GUN)
    owner.add_tag("v2")
    ours.publish(GUN, {"targets": owner.targets_bytes()})

    # stored after the renewal, not over it: renewal first + 1, then this publish + 1
    assert _version(racing.inner, "timestamp") == first + 2
    targets = json.loads(racing.inner.get_current(GUN, "targets").data)["signed"]["targets"]
    assert set(targets) == {"v1", "v2"}


def test_a_publish_that_lost_the_race_is_a_version_conflict_not_an_overwrite(
    racing, keyservice, clock
) -> None:
    ours, other = _services(racing, keyservice, clock)
    owner = _owner(ours, clock)
    owner.add_tag("v1")
    ours.publish(GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})

    # the same owner publishes targets v3 from two places: two contents, one version
    owner.add_tag("from-elsewhere")
    elsewhere = owner.targets_bytes()
    del owner.targets.targets["from-elsewhere"]
    owner.targets.version -= 1
    owner.add_tag("ours")
    mine = owner.targets_bytes()

    racing.race = lambda: other.publish(GUN, {"targets": elsewhere})
    with pytest.raises(errors.OldVersionError):
        ours.publish(GUN, {"targets": mine})
    targets = json.loads(racing.inner.get_current(GUN, "targets").data)["signed"]["targets"]
    assert "from-elsewhere" in targets and "ours" not in targets


class WatchedStore(RacingStore):
    """Knows whether one of its write transactions is open."""

    def __init__(self, inner: MetadataStore) -> None:
        super().__init__(inner)
        self.open = False

    @contextmanager
    def transaction(self, gun: str) -> Iterator[Any]:
        with super().transaction(gun) as tx:
            self.open = True
            try:
                yield tx
            finally:
                self.open = False


class WatchingKeys:
    """The in-process key service, recording for each signature whether the store's
    write lock was held while the signer was asked."""

    def __init__(self, inner: Any, store: WatchedStore) -> None:
        self.inner, self.store = inner, store
        self.signed_under_lock: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def get_signer(self, gun: str, role: str, key: Any) -> Any:
        signer = self.inner.get_signer(gun, role, key)
        watch = self

        class Watched:
            public_key = signer.public_key

            def sign(self, payload: bytes) -> Any:
                watch.signed_under_lock.append(watch.store.open)
                return signer.sign(payload)

        return Watched()


def test_a_notary_publish_asks_the_signer_without_holding_the_write_lock(
    store, keyservice, clock
) -> None:
    """A slow signer must not hold the repository's (on SQLite: the database's) write
    lock: the Notary dialect checks and signs first, then stores by compare-and-store,
    as the TUF dialect does."""
    from flask.testing import FlaskClient

    from notary_server.app import create_app
    from tests.notaryrepo import signed_file
    from tests.server.helpers import upload
    from tests.server.test_notary_dialect import NGUN, init

    watched = WatchedStore(store)
    keys = WatchingKeys(keyservice, watched)
    service = TrustService(watched, keys, ServerConfig(), clock=clock)  # type: ignore[arg-type]
    client: FlaskClient = create_app(service=service).test_client()
    owner, _ = init(client, NGUN, server_snapshot=True)
    assert keys.signed_under_lock and not any(keys.signed_under_lock)

    # a later publish, with a renewal racing it before its write: checked again
    keys.signed_under_lock.clear()
    first = json.loads(store.get_current(NGUN, "timestamp").data)["signed"]["version"]
    clock.advance(hours=17)  # inside the timestamp's renewal window
    other = TrustService(store, keyservice, ServerConfig(), clock=clock)
    watched.race = lambda: other.notary.renew(NGUN)
    files = {"targets": signed_file(owner.targets_signed(2, {"v2": b"more"}), owner.targets)}
    assert upload(client, NGUN, files).status_code == 200
    assert not any(keys.signed_under_lock)
    now = json.loads(store.get_current(NGUN, "timestamp").data)["signed"]["version"]
    assert now == first + 2  # the renewal's, then this publish's
