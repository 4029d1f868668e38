"""How publish gets snapshot and timestamp signed: one batch; the held-key hint is
refreshed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from securesystemslib.signer import Key, Signer

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.service import TrustService
from notary_server.storage import MetadataStore
from notary_signer.keyservice import KeyService
from tests.conftest import GUN, FakeClock
from tests.server.helpers import upload
from tests.tufrepo import Owner

if TYPE_CHECKING:
    from notary_signer.client import OnlineFiles


class CountingKeyService:
    """A :class:`KeyService` that answers through another and records which roles'
    keys were listed (the question the held-key hint saves)."""

    def __init__(self, inner: KeyService) -> None:
        self.inner = inner
        self.listed: list[str] = []

    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> Key:
        return self.inner.create_key(gun, role, algorithm)

    def list_keys(self, gun: str, role: str) -> list[Key]:
        self.listed.append(role)
        return self.inner.list_keys(gun, role)

    def retire_keys(self, gun: str) -> list[str]:
        return self.inner.retire_keys(gun)

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        return self.inner.get_signer(gun, role, key)

    def sign_batch(
        self,
        gun: str,
        timestamp_keys: Sequence[Key],
        timestamp_template: bytes,
        snapshot_keys: Sequence[Key] = (),
        snapshot_payload: bytes | None = None,
    ) -> OnlineFiles:
        return self.inner.sign_batch(
            gun, timestamp_keys, timestamp_template, snapshot_keys, snapshot_payload
        )

    def check_health(self) -> None:
        self.inner.check_health()


def test_batch_publish_needs_no_key_listing_once_hinted(
    store: MetadataStore, keyservice: KeyService, clock: FakeClock
) -> None:
    keys = CountingKeyService(keyservice)
    config = ServerConfig(max_file_bytes=256 * 1024, max_body_bytes=1024 * 1024)
    service = TrustService(store, keys, config, clock=clock)
    client = create_app(service=service).test_client()
    owner = Owner(
        timestamp_key=service.server_key(GUN, "timestamp"),
        snapshot_key=service.server_key(GUN, "snapshot"),
        now=clock.now,
    )
    owner.add_tag("v1")
    first = upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert first.status_code == 200
    keys.listed.clear()

    owner.add_tag("v2")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    assert keys.listed == []  # the hint says which online keys the signer holds

    service.publisher.forget(GUN)  # a replica that has never seen the GUN
    owner.add_tag("v3")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    assert sorted(keys.listed) == ["snapshot", "timestamp"]
