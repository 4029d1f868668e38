"""How publish gets snapshot and timestamp signed: one batch; the held-key hint is
refreshed."""

from __future__ import annotations

import json

from tests.conftest import GUN
from tests.server.helpers import upload


def _signed(client, role: str) -> dict:
    return json.loads(client.get(f"/v2/{GUN}/_trust/tuf/{role}.json").data)["signed"]


def test_batch_publish_needs_no_key_listing_once_hinted(client, make_owner, service) -> None:
    owner = make_owner()
    owner.add_tag("v1")
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    calls = []
    inner = service.keys.list_keys
    service.keys.list_keys = lambda gun, role: calls.append(role) or inner(gun, role)
    owner.add_tag("v2")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    assert calls == []
    service.publisher.forget(GUN)  # a replica that has never seen the GUN
    owner.add_tag("v3")
    assert upload(client, GUN, {"targets": owner.targets_bytes()}).status_code == 200
    assert sorted(calls) == ["snapshot", "timestamp"]
