"""Timestamp and snapshot renewal, driven by an injected clock."""

from __future__ import annotations

import json
from pathlib import Path

from securesystemslib.signer import Key, Signer

from notary_signer.client import OnlineFiles
from notary_signer.errors import SignerUnavailableError
from tests.client_view import FlaskFetcher, judge
from tests.conftest import GUN
from tests.server.helpers import error_code, upload


class SignerDown:
    """A key service whose signer has gone away (same interface as the real one)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def create_key(self, gun: str, role: str, algorithm: str | None = None) -> Key:
        raise SignerUnavailableError("connection refused")

    def list_keys(self, gun: str, role: str) -> list[Key]:
        raise SignerUnavailableError("connection refused")

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        raise SignerUnavailableError("connection refused")

    def sign_batch(self, gun: str, *args: object, **kwargs: object) -> OnlineFiles:
        raise SignerUnavailableError("connection refused")

    def retire_keys(self, gun: str) -> list[str]:
        raise SignerUnavailableError("connection refused")

    def check_health(self) -> None:
        raise SignerUnavailableError("connection refused")


def _signed(client, role: str) -> dict:
    return json.loads(client.get(f"/v2/{GUN}/_trust/tuf/{role}.json").data)["signed"]


def _publish(client, make_owner):
    owner = make_owner()
    owner.add_tag("v1")
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    return owner


def test_timestamp_inside_its_renewal_window_is_resigned_and_a_client_sees_it(
    client, make_owner, clock, tmp_path: Path
):
    owner = _publish(client, make_owner)
    first = _signed(client, "timestamp")
    clock.advance(hours=10)  # 14 h left: outside the 8 h window
    assert _signed(client, "timestamp")["version"] == first["version"]

    clock.advance(hours=7)  # 7 h left: inside the window
    renewed = _signed(client, "timestamp")
    assert renewed["version"] == first["version"] + 1
    assert renewed["expires"] > first["expires"]
    found = judge(tmp_path, "http://localhost", GUN, "v1", FlaskFetcher(client), owner.root_bytes())
    assert found is not None


def test_snapshot_is_renewed_before_it_expires(client, make_owner, clock):
    _publish(client, make_owner)
    first = _signed(client, "snapshot")
    clock.advance(days=5)  # 2 days left: inside the 3-day window
    renewed = _signed(client, "snapshot")
    assert renewed["version"] == first["version"] + 1
    assert renewed["meta"] == first["meta"]
    assert _signed(client, "timestamp")["meta"]["snapshot.json"]["version"] == renewed["version"]


def test_renewal_failure_serves_the_still_valid_timestamp(app, client, make_owner, clock, service):
    _publish(client, make_owner)
    first = _signed(client, "timestamp")
    service.keys = SignerDown(service.keys)
    clock.advance(hours=20)  # inside the window, not expired
    assert _signed(client, "timestamp")["version"] == first["version"]


def test_an_expired_timestamp_is_never_served_as_current(app, client, make_owner, clock, service):
    _publish(client, make_owner)
    real_keys = service.keys
    service.keys = SignerDown(real_keys)
    clock.advance(hours=25)
    resp = client.get(f"/v2/{GUN}/_trust/tuf/timestamp.json")
    assert error_code(resp)[:2] == (503, "SIGNER_UNAVAILABLE")

    service.keys = real_keys  # the signer returns: the service recovers by itself
    assert _signed(client, "timestamp")["expires"] > clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_publishing_while_the_signer_is_down_is_a_clear_503_and_stores_nothing(
    client, make_owner, service
):
    owner = _publish(client, make_owner)
    before = client.get(f"/v2/{GUN}/_trust/tuf/targets.json").data
    service.keys = SignerDown(service.keys)
    owner.add_tag("v2")
    resp = upload(client, GUN, {"targets": owner.targets_bytes()})
    assert error_code(resp)[:2] == (503, "SIGNER_UNAVAILABLE")
    assert client.get(f"/v2/{GUN}/_trust/tuf/targets.json").data == before
