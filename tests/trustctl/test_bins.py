"""Hash-bin layout: a tag costs one bin to sign, verify or revoke, at any repository size.

The real trust server runs in process (memory store); repositories with thousands of
tags are filled directly (:mod:`tests.trustctl.bulk`), then the CLI signs, verifies
and revokes while the transport counts which role files travel. python-tuf's own
``ngclient`` checks that what trustctl publishes is what any TUF client finds.
"""

from __future__ import annotations

import random
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from tuf.api.metadata import DelegatedRole, SuccinctRoles

from tests.client_view import FlaskFetcher, judge
from tests.trustctl.bulk import fill, tag_name
from tests.trustctl.support import FlaskTransport, Person, Run
from trustctl.client import ServerClient
from trustctl.errors import EXIT_TRUST, EXIT_USAGE, UsageError
from trustctl.layout import bit_length_for, hash_prefixes

MakePerson = Callable[..., Person]
GUN = "127.0.0.1:5999/scale/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
OWNER_BINS = SuccinctRoles([], 1, 8, "bins")
SIGNER_BINS = SuccinctRoles([], 1, 8, "targets/releases/bins")


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


def digest_args(n: int) -> list[str]:
    return ["--digest", f"sha256:{n:064x}", "--size", "1234", "--media-type", MEDIA]


def role_files(server: FlaskTransport) -> list[str]:
    """Role files fetched since the last clear: ``bins-0a``, ``targets``, ..."""
    out = []
    for method, path in server.requests:
        m = re.search(r"/_trust/tuf/(?:\d+\.)?(.+)\.json$", path)
        if method == "GET" and m:
            out.append(m.group(1).replace("%2F", "/"))
    return out


def bins_in(files: list[str]) -> list[str]:
    return [f for f in files if f.rsplit("/", 1)[-1].startswith("bins-")]


def owner_and_deployer(person: MakePerson, tmp_path: Path, *init: str) -> tuple[Person, Person]:
    owner = person("owner")
    ok(owner.run("init", GUN, *init))
    ok(owner.run("trust", "export", GUN, "-o", str(tmp_path / "root.json")))
    deployer = person("deployer")
    ok(deployer.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    return owner, deployer


# --- the layout itself ------------------------------------------------------------------------


@pytest.mark.parametrize("bit_length", [1, 3, 4, 8, 9])
def test_named_bins_hold_exactly_the_tags_of_their_succinct_bins(bit_length: int) -> None:
    succinct = SuccinctRoles([], 1, bit_length, "bins")
    named = [
        DelegatedRole(name, [], 1, False, path_hash_prefixes=hash_prefixes(i, bit_length))
        for i, name in enumerate(succinct.get_roles())
    ]
    rng = random.Random(bit_length)
    for _ in range(500):
        tag = f"v{rng.randrange(10**9)}"
        assert [r.name for r in named if r.is_delegated_path(tag)] == [
            succinct.get_role_for_target(tag)
        ]


def test_hash_bins_must_be_a_power_of_two() -> None:
    assert bit_length_for(256) == 8 and bit_length_for(0) == 0
    for bad in (1, 3, 100, 1024):
        with pytest.raises(UsageError):
            bit_length_for(bad)


def test_init_refuses_a_bad_bin_count_before_making_keys(person: MakePerson) -> None:
    owner = person("owner")
    run = owner.run("init", GUN, "--hash-bins", "100")
    assert run.exit_code == EXIT_USAGE and "power of two" in run.stderr
    assert not (owner.trust_dir / "private").exists()


# --- one bin per tag ----------------------------------------------------------------------


def test_sign_verify_and_revoke_each_read_and_write_one_bin(
    person: MakePerson, server: FlaskTransport, tmp_path: Path
) -> None:
    owner, deployer = owner_and_deployer(person, tmp_path)
    sizes = fill(owner.trust_dir, owner.env, ServerClient("https://notary.test", server), GUN, 3000)
    assert len(sizes) == 256  # the tags span every bin

    tag = "release-1"
    server.requests.clear()
    signed = ok(owner.run("--json", "sign", f"{GUN}:{tag}", *digest_args(1)))
    holder = OWNER_BINS.get_role_for_target(tag)
    assert list(signed.json["published"]) == [holder]  # one bin signed and uploaded
    fetched = role_files(server)
    assert bins_in(fetched) == [holder], fetched  # one bin read (it already held tags)
    # root probe, timestamp, snapshot, the bin (targets too when it changed)
    assert fetched[:2] == ["root", "timestamp"] and len(fetched) <= 5, fetched

    server.requests.clear()
    verified = ok(deployer.run("--json", "verify", f"{GUN}:{tag}", "--no-registry-check"))
    assert verified.json["role"] == holder and verified.json["digest"] == f"sha256:{1:064x}"
    assert bins_in(role_files(server)) == [holder]

    other = tag_name(1234)  # a bulk-written tag in another bin, fresh deployer cache
    server.requests.clear()
    ok(deployer.run("verify", f"{GUN}:{other}", "--no-registry-check"))
    assert bins_in(role_files(server)) == [OWNER_BINS.get_role_for_target(other)]

    server.requests.clear()
    revoked = ok(owner.run("--json", "revoke", f"{GUN}:{tag}"))
    assert list(revoked.json["published"]) == [holder]
    assert len(bins_in(role_files(server))) <= 1
    gone = deployer.run("--json", "verify", f"{GUN}:{tag}", "--no-registry-check")
    assert gone.exit_code == EXIT_TRUST and gone.json["error"]["code"] == "NOT_SIGNED"


def test_inspect_lists_every_bin_but_one_tag_reads_one(
    person: MakePerson, server: FlaskTransport, tmp_path: Path
) -> None:
    owner, deployer = owner_and_deployer(person, tmp_path, "--hash-bins", "16")
    fill(owner.trust_dir, owner.env, ServerClient("https://notary.test", server), GUN, 500)
    listed = ok(deployer.run("--json", "inspect", GUN)).json
    assert len(listed["tags"]) == 500 and listed["hash_bins"] == 16
    assert {t["role"] for t in listed["tags"]} == set(SuccinctRoles([], 1, 4, "bins").get_roles())
    human = ok(deployer.run("inspect", GUN)).stdout
    assert "bins-0…f (16 bins)" in human and "Roles (16 hash bins)" in human

    fresh = person("fresh")
    ok(fresh.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    server.requests.clear()
    one = ok(fresh.run("--json", "inspect", f"{GUN}:{tag_name(7)}")).json
    assert [t["tag"] for t in one["tags"]] == [tag_name(7)]
    assert len(bins_in(role_files(server))) == 1


def test_signers_in_other_bins_do_not_conflict(
    person: MakePerson, server: FlaskTransport, tmp_path: Path
) -> None:
    owner, _ = owner_and_deployer(person, tmp_path)
    twin = person("twin")
    twin.env.update(owner.env)
    import shutil

    shutil.copytree(owner.trust_dir, twin.trust_dir)
    a, b = (
        "alpha",
        next(
            t
            for t in ("beta", "gamma", "delta")
            if OWNER_BINS.get_role_for_target(t) != OWNER_BINS.get_role_for_target("alpha")
        ),
    )
    ok(owner.run("sign", f"{GUN}:{a}", *digest_args(1)))
    # the twin's view is now one snapshot old, but its bin did not change: no rebase
    signed = ok(twin.run("--json", "sign", f"{GUN}:{b}", *digest_args(2)))
    assert signed.json["attempts"] == 1
    tags = [t["tag"] for t in ok(owner.run("--json", "inspect", GUN)).json["tags"]]
    assert sorted(tags) == sorted([a, b])


# --- signers, k of n per bin ----------------------------------------------------------------


def test_signers_get_their_own_bins_and_any_tuf_client_finds_every_tag(
    person: MakePerson, server: FlaskTransport, tmp_path: Path
) -> None:
    shared = tmp_path / "pending"
    owner = person("owner", pending_dir=shared)
    ok(owner.run("init", GUN, "--hash-bins", "16"))
    root = tmp_path / "root.json"
    ok(owner.run("trust", "export", GUN, "-o", str(root)))
    alice, bob = person("alice", pending_dir=shared), person("bob", pending_dir=shared)
    for p in (alice, bob):
        ok(p.run("trust", "pin", GUN, str(root)))
        ok(p.run("key", "generate", p.name, "--dir", str(tmp_path)))
    ok(owner.run("sign", f"{GUN}:owner-tag", *digest_args(1)))  # before any signer

    added = ok(
        owner.run(
            "--json",
            "signer",
            "add",
            "alice",
            "--key",
            str(tmp_path / "alice.pub"),
            GUN,
            "--paths",
            "team-*",
        )
    )
    # the owner's bins became named roles next to the signers; missing ones were created
    assert {"targets", "targets/releases"} <= set(added.json["published"])
    assert len([r for r in added.json["published"] if r.startswith("bins-")]) == 15
    ok(
        owner.run(
            "signer", "add", "bob", "--key", str(tmp_path / "bob.pub"), GUN, "--threshold", "2"
        )
    )

    bins = SuccinctRoles([], 1, 4, "targets/releases/bins")
    first = ok(alice.run("--json", "sign", f"{GUN}:team-tag", *digest_args(2)))
    assert first.json["status"] == "pending"
    assert first.json["pending"][0]["role"] == bins.get_role_for_target("team-tag")
    waiting = owner.run("verify", f"{GUN}:team-tag", "--no-registry-check")
    assert waiting.exit_code == EXIT_TRUST and "1 of 2" in waiting.stderr
    second = ok(bob.run("--json", "sign", f"{GUN}:team-tag", *digest_args(2)))
    assert second.json["published"] == {bins.get_role_for_target("team-tag"): 1}
    both = ok(
        owner.run(
            "verify",
            f"{GUN}:team-tag",
            "--no-registry-check",
            "--signer",
            "alice",
            "--signer",
            "bob",
        )
    )
    assert "alice, bob (targets/releases/bins-" in both.stdout
    ok(
        owner.run("sign", f"{GUN}:owner-later", *digest_args(3))
    )  # the owner still signs, into its bin

    for tag, digest in (("owner-tag", 1), ("team-tag", 2), ("owner-later", 3)):
        fetcher = FlaskFetcher(server.server.app.test_client())
        found = judge(
            Path(tempfile.mkdtemp(dir=tmp_path)),
            "http://localhost",
            GUN,
            tag,
            fetcher,
            root.read_bytes(),
        )
        assert found is not None and found.hashes["sha256"] == f"{digest:064x}", tag
        fetched_bins = [f for f in fetcher.fetched if "bins-" in f]
        assert len(fetched_bins) == 1  # the signers' bin for their tags, else the owner's

    listed = ok(owner.run("--json", "signer", "list", GUN)).json
    assert listed["threshold"] == 2 and listed["keys"] == 2
    ok(owner.run("signer", "remove", "alice", GUN, "--threshold", "1", "--force"))
    assert ok(owner.run("--json", "verify", f"{GUN}:team-tag", "--no-registry-check")).json[
        "signers"
    ] == ["bob"]


# --- keys -------------------------------------------------------------------------------------


def test_ci_with_only_the_bins_key_signs_but_cannot_change_signers(
    person: MakePerson, tmp_path: Path
) -> None:
    owner, _ = owner_and_deployer(person, tmp_path)
    keys = ok(owner.run("--json", "key", "list")).json["keys"]
    bins_key = next(k for k in keys if k["name"] == "bins")
    assert bins_key["role"] == "targets" and bins_key["gun"] == GUN
    ok(owner.run("key", "export", bins_key["keyid"], "-o", str(tmp_path / "bins.pem")))
    ci = person("ci")
    ci.env["TRUSTCTL_TARGETS_PASSPHRASE"] = owner.env["TRUSTCTL_TARGETS_PASSPHRASE"]
    ok(ci.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    ok(ci.run("key", "import", str(tmp_path / "bins.pem")))
    ok(ci.run("sign", f"{GUN}:ci-tag", *digest_args(5)))
    ok(ci.run("key", "generate", "eve", "--dir", str(tmp_path)))
    refused = ci.run("signer", "add", "eve", "--key", str(tmp_path / "eve.pub"), GUN)
    assert refused.exit_code == EXIT_USAGE and "keys that can sign targets" in refused.stderr


def test_rotating_the_bins_key_re_signs_the_bins(
    person: MakePerson, server: FlaskTransport, tmp_path: Path
) -> None:
    owner, deployer = owner_and_deployer(person, tmp_path, "--hash-bins", "16")
    sizes = fill(owner.trust_dir, owner.env, ServerClient("https://notary.test", server), GUN, 40)
    rotated = ok(owner.run("--json", "key", "rotate", GUN, "bins"))
    assert rotated.json["complete"] is True
    assert {r for r in rotated.json["published"] if r.startswith("bins-")} == set(sizes)
    for i in (0, 17, 39):
        ok(deployer.run("verify", f"{GUN}:{tag_name(i)}", "--no-registry-check"))
    ok(owner.run("sign", f"{GUN}:after", *digest_args(9)))
    ok(deployer.run("verify", f"{GUN}:after", "--no-registry-check"))


def test_the_flat_layout_still_signs_into_targets(person: MakePerson, tmp_path: Path) -> None:
    owner, deployer = owner_and_deployer(person, tmp_path, "--hash-bins", "0")
    signed = ok(owner.run("--json", "sign", f"{GUN}:v1", *digest_args(1)))
    assert signed.json["published"] == {"targets": 2}
    verified = ok(deployer.run("--json", "verify", f"{GUN}:v1", "--no-registry-check"))
    assert verified.json["role"] == "targets"
    assert ok(deployer.run("--json", "inspect", GUN)).json["hash_bins"] == 0
