"""How publish gets snapshot and timestamp signed: one batch, or one request per
signature for a key service without batches; the held-key hint is refreshed."""

from __future__ import annotations

import json

from securesystemslib.signer import Key, Signer

from tests.conftest import GUN
from tests.server.helpers import upload


class OneByOne:
    """A key service with only the single-signature interface."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.signers = 0

    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> Key:
        return self.inner.create_key(gun, role, algorithm)

    def list_keys(self, gun: str, role: str) -> list[Key]:
        return self.inner.list_keys(gun, role)

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        self.signers += 1
        return self.inner.get_signer(gun, role, key)

    def retire_keys(self, gun: str) -> list[str]:
        return self.inner.retire_keys(gun)

    def check_health(self) -> None:
        self.inner.check_health()


def _signed(client, role: str) -> dict:
    return json.loads(client.get(f"/v2/{GUN}/_trust/tuf/{role}.json").data)["signed"]


def test_key_service_without_batches_still_publishes(client, make_owner, service) -> None:
    service.keys = OneByOne(service.keys)
    owner = make_owner()
    owner.add_tag("v1")
    resp = upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()})
    assert resp.status_code == 200, resp.data
    assert service.keys.signers == 2
    assert _signed(client, "timestamp")["meta"]["snapshot.json"]["version"] == _signed(client, "snapshot")["version"]


def test_batch_publish_needs_no_key_listing_once_hinted(client, make_owner, service) -> None:
    owner = make_owner()
    owner.add_tag("v1")
    assert upload(client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status_code == 200
    calls = []
    inner = service.keys.list_keys
    service.keys.list_keys = lambda gun, role: calls.append(role) or inner(gun, role)
    owner.add_tag("v2")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    assert calls == []
    service._held.forget(GUN)  # a replica that has never seen the GUN
    owner.add_tag("v3")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    assert sorted(calls) == ["snapshot", "timestamp"]
