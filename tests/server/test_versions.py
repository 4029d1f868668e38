"""One version bound for every store and every client (issue 10, row 8): the largest
version is stored and served by number on memory, SQLite and PostgreSQL; anything
larger is refused at upload with VERSION_TOO_LARGE and changes nothing."""

from __future__ import annotations

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import MetaFile, Snapshot

MAX_VERSION = (
    2**31 - 1
)  # notary_server.validation.MAX_VERSION, spelt out: the bound is the contract
from tests.conftest import GUN
from tests.server.helpers import error_code, served, upload


def test_the_largest_version_is_stored_and_fetched_by_number_everywhere(client, make_owner) -> None:
    owner = make_owner()
    owner.add_tag("v1")
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    owner.add_tag("v2")
    owner.targets.version = MAX_VERSION
    largest = owner.targets_bytes()
    assert upload(client, GUN, {"targets": largest}).status_code == 200
    fast = client.get(f"/v2/{GUN}/_trust/tuf/{MAX_VERSION}.targets.json")
    flask = client.get(
        f"/v2/{GUN}/_trust/tuf/{MAX_VERSION}.targets.json",
        headers={"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},  # not the fast path
    )
    assert fast.data == flask.data == largest
    # a number past the bound was never stored: 404, whatever the store
    assert client.get(f"/v2/{GUN}/_trust/tuf/9999999999.targets.json").status_code == 404


@pytest.mark.parametrize(
    "version", [MAX_VERSION + 1, 10**10, 2**63, 10**30], ids=["2**31", "10**10", "2**63", "10**30"]
)
def test_a_version_past_the_bound_is_refused_at_upload(client, make_owner, version: int) -> None:
    owner = make_owner()
    owner.add_tag("v1")
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    before = served(client, GUN)
    owner.targets.version = version
    assert error_code(upload(client, GUN, {"targets": owner.targets_bytes()}))[:2] == (
        400,
        "VERSION_TOO_LARGE",
    )
    assert served(client, GUN) == before


def test_a_client_snapshot_listing_a_version_past_the_bound_is_refused(client, make_owner) -> None:
    snapshot_signer = CryptoSigner.generate_ecdsa()
    owner = make_owner(server_snapshot=False)
    owner.root.add_key(snapshot_signer.public_key, "snapshot")
    owner.add_tag("v1")
    snap = Snapshot(expires=owner.targets.expires, meta={"targets.json": MetaFile(version=2**40)})
    files = {
        "root": owner.root_bytes(),
        "targets": owner.targets_bytes(),
        "snapshot": owner.snapshot_bytes(snap, snapshot_signer),
    }
    assert error_code(upload(client, GUN, files))[:2] == (400, "VERSION_TOO_LARGE")


def test_the_server_never_builds_a_snapshot_or_timestamp_past_the_bound() -> None:
    """A client snapshot at the bound is the only road there; the server says so by name."""
    from datetime import UTC, datetime, timedelta

    from tuf.api.metadata import Timestamp

    from notary_server.errors import VersionTooLargeError
    from notary_server.publisher import build_snapshot, build_timestamp

    later = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(VersionTooLargeError):
        build_snapshot(Snapshot(version=MAX_VERSION, expires=later), {}, later)
    previous = Timestamp(version=MAX_VERSION, expires=later, snapshot_meta=MetaFile(version=1))
    with pytest.raises(VersionTooLargeError):
        build_timestamp(previous, 1, b"{}", later)
    assert (
        build_snapshot(Snapshot(version=MAX_VERSION - 1, expires=later), {}, later).version
        == MAX_VERSION
    )
