"""Hash-bin (succinct, TAP 15) delegations: a tag's cost does not grow with the repository."""

from __future__ import annotations

from pathlib import Path

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Delegations, Metadata, SuccinctRoles, Targets

from tests.client_view import FlaskFetcher, judge
from tests.conftest import GUN
from tests.server.helpers import error_code, upload
from tests.tufrepo import days, target_for


def _binned_owner(make_owner, bit_length: int = 4):
    owner = make_owner()
    bins_signer = CryptoSigner.generate_ecdsa()
    succinct = SuccinctRoles(keyids=[], threshold=1, bit_length=bit_length, name_prefix="bins")
    owner.targets.delegations = Delegations(keys={}, succinct_roles=succinct)
    owner.targets.add_key(bins_signer.public_key)
    return owner, succinct, bins_signer


def _bin_bytes(tags: list[str], signer: CryptoSigner, version: int = 1) -> bytes:
    t = Targets(version=version, expires=days(30))
    for tag in tags:
        t.targets[tag] = target_for(tag)
    md = Metadata(t)
    md.sign(signer)
    return md.to_bytes()


def test_tags_in_hash_bins_are_found_by_a_tuf_client(client, make_owner, tmp_path: Path):
    owner, succinct, signer = _binned_owner(make_owner)
    tags = [f"v{i}" for i in range(40)]
    by_bin: dict[str, list[str]] = {}
    for tag in tags:
        by_bin.setdefault(succinct.get_role_for_target(tag), []).append(tag)
    files = {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
    files.update({name: _bin_bytes(t, signer) for name, t in by_bin.items()})
    resp = upload(client, GUN, files)
    assert resp.status_code == 200, resp.data

    # one more tag touches exactly one bin
    extra = "v-extra"
    name = succinct.get_role_for_target(extra)
    resp = upload(
        client, GUN, {name: _bin_bytes([*by_bin.get(name, []), extra], signer, version=2)}
    )
    assert resp.status_code == 200, resp.data

    fetcher = FlaskFetcher(client)
    found = judge(tmp_path, "http://localhost", GUN, extra, fetcher, owner.root_bytes())
    assert found is not None
    fetched_bins = [p for p in fetcher.fetched if ".bins-" in p]
    assert len(fetched_bins) == 1  # the client read one bin, not the whole repository
    snapshot = client.get(f"/v2/{GUN}/_trust/tuf/snapshot.json").get_json()["signed"]
    assert f"{name}.json" in snapshot["meta"] and snapshot["meta"][f"{name}.json"]["version"] == 2


def test_a_tag_in_the_wrong_bin_is_refused(client, make_owner):
    owner, succinct, signer = _binned_owner(make_owner)
    assert (
        upload(
            client, GUN, {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        ).status_code
        == 200
    )
    tag = "v1"
    right = succinct.get_role_for_target(tag)
    wrong = next(r for r in succinct.get_roles() if r != right)
    resp = upload(client, GUN, {wrong: _bin_bytes([tag], signer)})
    assert error_code(resp) == (400, "INVALID_UPDATE", "BAD_TARGETS")
