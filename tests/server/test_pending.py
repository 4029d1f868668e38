"""Partially signed metadata waits on the server until k of n signers have signed."""

from __future__ import annotations

from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner, Signature
from tuf.api.metadata import Metadata

from tests.client_view import FlaskFetcher, judge
from tests.conftest import GUN
from tests.server.helpers import error_code, upload

RELEASES = "targets/releases"
URL = f"/v2/{GUN}/_trust/pending/targets%2Freleases.json"


def _team(client, make_owner):
    owner = make_owner()
    alice, bob = CryptoSigner.generate_ecdsa(), CryptoSigner.generate_ecdsa()
    owner.delegate(RELEASES, [alice, bob], threshold=2)
    files = {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
    assert upload(client, GUN, files).status_code == 200
    return owner, alice, bob


def test_two_of_two_signers_through_the_pending_store(client, make_owner, tmp_path: Path):
    owner, alice, bob = _team(client, make_owner)
    owner.add_tag("v1", role=RELEASES)
    alice_only = owner.delegated_bytes(RELEASES, [alice])

    refused = upload(client, GUN, {RELEASES: alice_only})
    assert error_code(refused) == (400, "INVALID_UPDATE", "BAD_TARGETS")
    assert b"signed by 1 of the 2" in refused.data

    assert client.get(URL).status_code == 404
    assert client.put(URL, data=alice_only).status_code == 200
    pending = client.get(URL)
    assert pending.status_code == 200 and pending.data == alice_only

    md = Metadata.from_bytes(pending.data)
    md.sign(bob, append=True)
    both = md.to_bytes()
    assert upload(client, GUN, {RELEASES: both}).status_code == 200
    assert client.get(URL).status_code == 404  # published: nothing waits any more
    assert (
        judge(tmp_path, "http://localhost", GUN, "v1", FlaskFetcher(client), owner.root_bytes())
        is not None
    )


def test_pending_store_refuses_what_could_never_be_published(client, make_owner):
    owner, alice, bob = _team(client, make_owner)
    owner.add_tag("v1", role=RELEASES)
    stranger = owner.delegated_bytes(RELEASES, [CryptoSigner.generate_ecdsa()])
    assert error_code(client.put(URL, data=stranger)) == (400, "INVALID_UPDATE", "BAD_TARGETS")
    assert error_code(client.put(URL, data=b"{nope"))[:2] == (400, "MALFORMED_JSON")
    root_url = f"/v2/{GUN}/_trust/pending/root.json"
    assert error_code(client.put(root_url, data=owner.root_bytes()))[:2] == (400, "INVALID_ROLE")
    owner.delegated[RELEASES].version = 1  # the stored version
    stale = owner.delegated_bytes(RELEASES, [alice])
    upload(client, GUN, {RELEASES: owner.delegated_bytes(RELEASES, [alice, bob])})
    assert error_code(client.put(URL, data=stale))[:2] == (409, "VERSION")
    assert client.get(URL).status_code == 404
    assert client.delete(URL).status_code == 404


def test_co_signers_of_the_same_payload_are_merged_not_replaced(client, make_owner):
    owner, alice, bob = _team(client, make_owner)
    owner.add_tag("v1", role=RELEASES)
    # both fetched "nothing pending" and PUT at the same moment
    assert client.put(URL, data=owner.delegated_bytes(RELEASES, [alice])).status_code == 200
    assert client.put(URL, data=owner.delegated_bytes(RELEASES, [bob])).status_code == 200
    merged = Metadata.from_bytes(client.get(URL).data)
    assert set(merged.signatures) == {alice.public_key.keyid, bob.public_key.keyid}
    assert upload(client, GUN, {RELEASES: merged.to_bytes()}).status_code == 200

    # different content replaces what waited
    owner.add_tag("v2", role=RELEASES)
    assert client.put(URL, data=owner.delegated_bytes(RELEASES, [alice])).status_code == 200
    owner.add_tag("v3", role=RELEASES)
    owner.delegated[RELEASES].version -= 1
    assert client.put(URL, data=owner.delegated_bytes(RELEASES, [bob])).status_code == 200
    assert set(Metadata.from_bytes(client.get(URL).data).signatures) == {bob.public_key.keyid}


def _garbage(md, alice, bob, stranger):
    md.signatures[bob.public_key.keyid] = Signature(bob.public_key.keyid, "00" * 64)


def _alices_bytes_under_bobs_id(md, alice, bob, stranger):
    sig = md.signatures[alice.public_key.keyid].signature
    md.signatures[bob.public_key.keyid] = Signature(bob.public_key.keyid, sig)


def _strangers_signature(md, alice, bob, stranger):
    md.sign(stranger, append=True)


#: A push user without a key of the role re-PUTs the waiting payload (issue 10, row 7).
FORGED = {
    "garbage under a co-signer's key id": _garbage,
    "another signer's bytes under a co-signer's key id": _alices_bytes_under_bobs_id,
    "a signature by a key the role does not list": _strangers_signature,
}


@pytest.mark.parametrize("forge", FORGED.values(), ids=FORGED.keys())
def test_a_valid_co_signature_is_never_replaced_by_an_invalid_one(client, make_owner, forge):
    owner = make_owner()
    alice, bob, carol = (CryptoSigner.generate_ecdsa() for _ in range(3))
    owner.delegate(RELEASES, [alice, bob, carol], threshold=3)
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    owner.add_tag("v1", role=RELEASES)
    for signer in (alice, bob):
        assert client.put(URL, data=owner.delegated_bytes(RELEASES, [signer])).status_code == 200
    waiting = client.get(URL).data

    forged = Metadata.from_bytes(waiting)
    forge(forged, alice, bob, CryptoSigner.generate_ecdsa())
    resp = client.put(URL, data=forged.to_bytes())
    assert error_code(resp) == (400, "INVALID_UPDATE", "BAD_TARGETS")
    assert b"may be an attack" in resp.data
    assert client.get(URL).data == waiting
    kept = Metadata.from_bytes(waiting)
    kept.sign(carol, append=True)
    assert upload(client, GUN, {RELEASES: kept.to_bytes()}).status_code == 200
