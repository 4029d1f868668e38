"""trustctl's user stories through the CLI, against the real trust server app in process
(memory store, in-process signer) and a real docker-registry.

Each test is one story from issue 3: sign after push, verify before deploy, team
signers with thresholds, key rotation, staged changes, and their failure modes.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import SuccinctRoles

from tests.registry import RegistryProcess
from tests.trustctl.conftest import Image
from tests.trustctl.support import FlaskTransport, Mitm, Person, Run
from trustctl.errors import EXIT_NETWORK, EXIT_TRUST, EXIT_USAGE
from trustctl.transport import HttpTransport, Response

MakePerson = Callable[..., Person]
Push = Callable[..., Image]


class Racing:
    """A transport that runs ``before_first_post`` right before the first upload."""

    def __init__(self, inner: FlaskTransport) -> None:
        self.inner = inner
        self.before_first_post: Callable[[], None] | None = None

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if method == "POST" and self.before_first_post is not None:
            hook, self.before_first_post = self.before_first_post, None
            hook()
        return self.inner.request(method, url, **kwargs)


def ok(run: Run) -> None:
    assert run.exit_code == 0, str(run)


LAYOUTS = ["hash bins", "flat"]


def owner_with_repo(
    person: MakePerson, image: Image, layout: str = "hash bins", **kwargs: object
) -> Person:
    owner = person("owner", **kwargs)
    flat = ["--hash-bins", "0"] if layout == "flat" else []
    ok(owner.run("init", image.gun, *flat))
    return owner


def signer_role(tag: str, layout: str) -> str:
    """Where signers' signatures on ``tag`` go: a signer bin, or targets/releases."""
    if layout == "flat":
        return "targets/releases"
    return SuccinctRoles([], 1, 8, "targets/releases/bins").get_role_for_target(tag)


def pin(person_: Person, owner: Person, gun: str, tmp_path: Path) -> None:
    root = tmp_path / "root.json"
    ok(owner.run("trust", "export", gun, "-o", str(root)))
    ok(person_.run("trust", "pin", gun, str(root)))


# --- sign after push, verify before deploy ----------------------------------------------------


def test_sign_after_push_then_verify_and_pull(
    person: MakePerson, push: Push, tmp_path: Path
) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    signed = owner.run("--json", "sign", image.ref)
    ok(signed)
    assert signed.json["digest"] == image.digest
    assert signed.json["status"] == "published"

    deployer = person("deployer")
    pin(deployer, owner, image.gun, tmp_path)
    verified = deployer.run("verify", image.ref)
    ok(verified)
    assert verified.stdout.splitlines()[0] == f"OK: {image.ref} {image.digest}"
    assert "repository owner (bins key, bins-" in verified.stdout
    assert "fresh until:" in verified.stdout

    as_json = deployer.run("verify", image.ref, "--json")  # --json after the subcommand works too
    ok(as_json)
    doc = as_json.json
    assert (doc["digest"], doc["length"], doc["media_type"]) == (
        image.digest,
        image.size,
        image.media_type,
    )
    assert doc["registry"] == {
        "checked": True,
        "mode": "tag",
        "digest": image.digest,
        "match": True,
    }

    pulled = deployer.run("pull", image.ref)
    ok(pulled)
    assert pulled.stdout == f"{image.gun}@{image.digest}\n"


def test_a_moved_tag_fails_verify_naming_both_digests_and_pull_keeps_the_signed_one(
    person: MakePerson, push: Push
) -> None:
    image = push(content=b"the real release")
    owner = owner_with_repo(person, image)
    ok(owner.run("sign", image.ref))
    moved = push(repo=image.gun.split("/", 1)[1], tag=image.tag, content=b"something else")
    assert moved.digest != image.digest

    verified = owner.run("verify", image.ref)
    assert verified.exit_code == EXIT_TRUST
    assert image.digest in verified.stderr and moved.digest in verified.stderr
    assert "Traceback" not in verified.stderr

    pulled = owner.run("pull", image.ref)
    ok(pulled)
    assert pulled.stdout == f"{image.gun}@{image.digest}\n"
    assert f"now points at {moved.digest}" in pulled.stderr


def test_sign_with_a_known_digest_skips_nothing_it_should_not(
    person: MakePerson, push: Push
) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    ok(
        owner.run(
            "sign",
            image.ref,
            "--digest",
            image.digest,
            "--size",
            str(image.size),
            "--media-type",
            image.media_type,
        )
    )
    ok(owner.run("verify", image.ref))
    bad = owner.run("sign", image.ref, "--digest", image.digest, "--size", str(image.size + 1))
    assert bad.exit_code == EXIT_USAGE and "differs from the registry" in bad.stderr


def test_an_index_is_signed_by_its_own_digest(
    person: MakePerson, registry: RegistryProcess
) -> None:
    from tests.registry import push_index
    from tests.trustctl.support import unique_repo

    reg = registry
    repo = unique_repo()
    digest, size, media_type = push_index(
        reg.url, repo, "multi", {"linux/amd64": b"a", "linux/arm64": b"b"}
    )
    image = Image(f"{reg.host}/{repo}", "multi", digest, size, media_type)
    owner = owner_with_repo(person, image)
    ok(owner.run("sign", image.ref))
    doc = owner.run("--json", "verify", image.ref).json
    assert (doc["digest"], doc["media_type"]) == (digest, "application/vnd.oci.image.index.v1+json")


# --- trust bootstrap -------------------------------------------------------------------------


def test_no_trust_on_first_use_by_default(person: MakePerson, push: Push, tmp_path: Path) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    ok(owner.run("sign", image.ref))
    deployer = person("deployer")
    refused = deployer.run("verify", image.ref)
    assert refused.exit_code == EXIT_USAGE
    assert refused.stderr.startswith("Error: no root is pinned")
    assert "trust pin" in refused.stderr

    tofu = deployer.run("verify", image.ref, "--tofu")
    ok(tofu)
    root_keyid = owner.run("--json", "key", "list").json["keys"][0]["keyid"]
    assert "trusting on first use" in tofu.stderr and root_keyid[:16] in tofu.stderr


def test_pin_by_key_id(person: MakePerson, push: Push) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    root_keyid = owner.run("--json", "trust", "show", image.gun).json["pins"][0]["root_keyids"][0]
    deployer = person("deployer")
    wrong = deployer.run("trust", "pin", image.gun, "--keyid", "ab" * 32)
    assert wrong.exit_code == EXIT_TRUST and "not signed by root key" in wrong.stderr
    ok(deployer.run("trust", "pin", image.gun, "--keyid", root_keyid))
    ok(owner.run("sign", image.ref))
    ok(deployer.run("verify", image.ref))


# --- team signers with a real threshold ----------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("pending_store", ["trust server", "shared directory"])
def test_team_story_threshold_two(
    person: MakePerson, push: Push, tmp_path: Path, pending_store: str, layout: str
) -> None:
    image = push()
    shared = tmp_path / "pending" if pending_store == "shared directory" else None
    owner = owner_with_repo(person, image, layout, pending_dir=shared)
    role = signer_role(image.tag, layout)
    alice, bob = person("alice", pending_dir=shared), person("bob", pending_dir=shared)
    deployer = person("deployer", pending_dir=shared)
    for p in (alice, bob, deployer):
        pin(p, owner, image.gun, tmp_path)
    ok(alice.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(bob.run("key", "generate", "bob", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), image.gun))
    ok(
        owner.run(
            "signer",
            "add",
            "bob",
            "--key",
            str(tmp_path / "bob.pub"),
            image.gun,
            "--threshold",
            "2",
        )
    )

    first = alice.run("--json", "sign", image.ref)
    ok(first)
    assert first.json["status"] == "pending"
    assert first.json["pending"][0] | {"where": None} == {
        "role": role,
        "version": 1,
        "signatures": 1,
        "threshold": 2,
        "signers": ["alice"],
        "where": None,
    }
    alone = deployer.run("verify", image.ref)
    assert alone.exit_code == EXIT_TRUST
    assert "1 of 2" in alone.stderr and "alice" in alone.stderr

    ok(bob.run("sign", image.ref))
    both = deployer.run("verify", image.ref)
    ok(both)
    assert f"alice, bob ({role}, 2 of 2 required)" in both.stdout
    ok(deployer.run("verify", image.ref, "--signer", "alice", "--signer", "bob"))
    carol = deployer.run("verify", image.ref, "--signer", "carol")
    assert carol.exit_code == EXIT_TRUST and "not by carol" in carol.stderr

    too_few = owner.run("signer", "remove", "alice", image.gun)
    assert too_few.exit_code == EXIT_USAGE and "--threshold" in too_few.stderr
    assert (
        owner.run("--json", "status", image.gun).json["changes"] == []
    )  # the refused change is not left staged
    ok(owner.run("signer", "remove", "alice", image.gun, "--threshold", "1"))
    after = deployer.run("--json", "verify", image.ref)
    ok(after)
    assert after.json["signers"] == ["bob"]
    gone = deployer.run("verify", image.ref, "--signer", "alice")
    assert gone.exit_code == EXIT_TRUST and "not by alice" in gone.stderr
    assert alice.run("sign", image.ref).exit_code == EXIT_USAGE  # alice can no longer sign at all


def test_a_cosigner_signs_only_what_they_checked(
    person: MakePerson, push: Push, tmp_path: Path
) -> None:
    image = push(content=b"reviewed")
    shared = tmp_path / "pending"
    owner = owner_with_repo(person, image, pending_dir=shared)
    alice, bob = person("alice", pending_dir=shared), person("bob", pending_dir=shared)
    for p in (alice, bob):
        pin(p, owner, image.gun, tmp_path)
    ok(alice.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(bob.run("key", "generate", "bob", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), image.gun))
    ok(
        owner.run(
            "signer",
            "add",
            "bob",
            "--key",
            str(tmp_path / "bob.pub"),
            image.gun,
            "--threshold",
            "2",
        )
    )
    ok(alice.run("sign", image.ref))
    push(repo=image.gun.split("/", 1)[1], tag=image.tag, content=b"swapped after alice looked")
    refused = bob.run("sign", image.ref)
    assert refused.exit_code == EXIT_TRUST
    assert "waiting for signatures" in refused.stderr and "differs" in refused.stderr
    ok(bob.run("sign", image.ref, "--replace-pending"))  # bob starts over with what he sees
    assert owner.run("verify", image.ref).exit_code == EXIT_TRUST  # still 1 of 2


@pytest.mark.parametrize("layout", LAYOUTS)
def test_signer_with_threshold_one_publishes_directly(
    person: MakePerson, push: Push, tmp_path: Path, layout: str
) -> None:
    image = push()
    owner = owner_with_repo(person, image, layout)
    role = signer_role(image.tag, layout)
    alice = person("alice")
    pin(alice, owner, image.gun, tmp_path)
    ok(alice.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), image.gun))
    signed = alice.run("--json", "sign", image.ref)
    ok(signed)
    assert signed.json["published"] == {role: 1}
    listed = owner.run("--json", "signer", "list", image.gun).json
    assert listed["threshold"] == 1 and [s["name"] for s in listed["signers"]] == ["alice"]
    assert f"alice ({role}, 1 of 1 required)" in owner.run("verify", image.ref).stdout


# --- key rotation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_rotation_story_deployer_follows_without_change(
    person: MakePerson, push: Push, tmp_path: Path, layout: str
) -> None:
    image = push()
    owner = owner_with_repo(person, image, layout)
    ok(
        owner.run("key", "generate", "ci", "--dir", str(tmp_path))
    )  # the owner also runs the CI signer
    ok(owner.run("signer", "add", "ci", "--key", str(tmp_path / "ci.pub"), image.gun))
    ok(owner.run("sign", image.ref))
    deployer = person("deployer")
    pin(deployer, owner, image.gun, tmp_path)
    ok(deployer.run("verify", image.ref))
    for role in ("root", "targets", "timestamp", "snapshot", "ci"):
        rotated = owner.run("--json", "key", "rotate", image.gun, role)
        ok(rotated)
        assert rotated.json["complete"] is True
        after = deployer.run("--json", "verify", image.ref)
        ok(after)
        assert after.json["digest"] == image.digest
    roots = owner.run("--json", "inspect", image.gun).json["roles"]
    assert {r["role"]: r["version"] for r in roots}[
        "root"
    ] == 5  # root, targets, timestamp, snapshot


@pytest.mark.parametrize("layout", LAYOUTS)
def test_two_step_rotation_of_a_signer_key_held_by_the_signer(
    person: MakePerson, push: Push, tmp_path: Path, layout: str
) -> None:
    image = push()
    owner = owner_with_repo(person, image, layout)
    bob = person("bob")
    pin(bob, owner, image.gun, tmp_path)
    ok(bob.run("key", "generate", "bob", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "bob", "--key", str(tmp_path / "bob.pub"), image.gun))
    ok(bob.run("sign", image.ref))
    old = bob.run("--json", "key", "list").json["keys"][0]["keyid"]
    ok(bob.run("key", "generate", "bob-2027", "--dir", str(tmp_path)))
    step1 = owner.run(
        "--json", "key", "rotate", image.gun, "bob", "--key", str(tmp_path / "bob-2027.pub")
    )
    ok(step1)
    assert step1.json["complete"] is False and "witness" in step1.json["next_steps"][0]
    early = owner.run("signer", "remove", "bob", image.gun, "--key", old)
    assert early.exit_code == EXIT_TRUST and "would stop verifying" in early.stderr
    ok(bob.run("witness", image.gun))
    ok(owner.run("signer", "remove", "bob", image.gun, "--key", old))
    ok(owner.run("verify", image.ref))


def test_a_root_not_signed_by_the_previous_root_is_refused(
    person: MakePerson, push: Push, server: FlaskTransport
) -> None:
    from datetime import UTC, datetime, timedelta

    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, Root

    from trustctl.client import ServerClient
    from trustctl.errors import ServerRejectedError

    image = push()
    owner = owner_with_repo(person, image)
    current = Metadata[Root].from_bytes(
        (owner.trust_dir / "tuf" / image.gun / "pinned_root.json").read_bytes()
    )
    rogue = CryptoSigner.generate_ecdsa()
    root = current.signed
    for keyid in list(root.roles["root"].keyids):
        root.revoke_key(keyid, "root")
    root.add_key(rogue.public_key, "root")
    root.version += 1
    root.expires = datetime.now(UTC) + timedelta(days=30)
    forged = Metadata(root)
    forged.sign(rogue)
    try:
        ServerClient("https://notary.test", server).publish(image.gun, {"root": forged.to_bytes()})
        raise AssertionError("the server accepted a root not signed by the previous root")
    except ServerRejectedError as e:
        assert "root" in e.message

    # A server (or a man in the middle) that serves it anyway is refused by the client.
    mitm = Mitm(server)
    mitm.replay("/2.root.json", forged.to_bytes())
    owner.server_transport = mitm
    refused = owner.run("verify", image.ref, "--no-registry-check")
    assert refused.exit_code == EXIT_TRUST
    assert "not signed by enough trusted keys" in refused.stderr


# --- staged changes, revoke, delete, concurrency -------------------------------------------------


def test_stage_status_reset_publish(person: MakePerson, push: Push) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    ok(owner.run("sign", image.ref, "--no-publish"))
    ok(owner.run("revoke", f"{image.gun}:old", "--no-publish"))
    status = owner.run("--json", "status", image.gun).json
    assert [c["action"] for c in status["changes"]] == ["add-target", "remove-target"]
    ok(owner.run("reset", image.gun, "-n", "2"))
    assert owner.run("reset", image.gun).exit_code == EXIT_USAGE
    published = owner.run("--json", "publish", image.gun)
    ok(published)
    holder = SuccinctRoles([], 1, 8, "bins").get_role_for_target(image.tag)
    assert published.json["published"] == {holder: 1}  # one hash bin, not the whole repository
    ok(owner.run("verify", image.ref))
    ok(owner.run("revoke", image.ref))
    gone = owner.run("--json", "verify", image.ref)
    assert gone.exit_code == EXIT_TRUST and gone.json["error"]["code"] == "NOT_SIGNED"


def test_concurrent_publishers_rebase_and_nothing_is_lost(
    person: MakePerson, push: Push, server: FlaskTransport
) -> None:
    first = push(tag="a")
    second = push(repo=first.gun.split("/", 1)[1], tag="b")
    owner = owner_with_repo(person, first)
    ok(owner.run("sign", first.ref))
    twin = person("twin", server_transport=Racing(server))  # another CI job with the same keys
    shutil.copytree(owner.trust_dir, twin.trust_dir)
    twin.env.update(owner.env)
    # Just before the twin uploads, the owner publishes tag c into the hash bin the twin
    # edits (tags in other bins do not conflict at all): the twin's upload conflicts.
    bins = SuccinctRoles([], 1, 8, "bins")
    third = next(
        t
        for t in (f"c{i}" for i in range(10_000))
        if bins.get_role_for_target(t) == bins.get_role_for_target("b")
    )
    twin.server_transport.before_first_post = lambda: ok(  # type: ignore[attr-defined]
        owner.run(
            "sign",
            f"{first.gun}:{third}",
            "--digest",
            first.digest,
            "--size",
            str(first.size),
            "--media-type",
            first.media_type,
        )
    )
    raced = twin.run("--json", "sign", second.ref)
    ok(raced)
    assert raced.json["attempts"] == 2
    tags = [t["tag"] for t in owner.run("--json", "inspect", first.gun).json["tags"]]
    assert tags == ["a", "b", third]


def test_delete_remote_and_reinit(person: MakePerson, push: Push, tmp_path: Path) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    ok(owner.run("sign", image.ref))
    again = owner.run("init", image.gun)
    assert again.exit_code == EXIT_USAGE and "already has trust data" in again.stderr
    deployer = person("deployer")
    pin(deployer, owner, image.gun, tmp_path)
    ok(owner.run("delete", image.gun, "--remote"))
    unknown = deployer.run("verify", image.ref)
    assert unknown.exit_code == EXIT_TRUST and "no trust data" in unknown.stderr
    ok(owner.run("init", image.gun))


# --- failures: one line of diagnosis and a hint -----------------------------------------------------


def test_wrong_passphrase_missing_key_and_unknown_gun(
    person: MakePerson, push: Push, tmp_path: Path
) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    wrong = owner.run("sign", image.ref, env={"TRUSTCTL_TARGETS_PASSPHRASE": "not it"})
    assert wrong.exit_code == EXIT_USAGE
    assert wrong.stderr.splitlines()[-2:] == [
        wrong.stderr.splitlines()[-2],
        "Hint: check TRUSTCTL_TARGETS_PASSPHRASE or DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE",
    ]
    assert "wrong passphrase for the bins key" in wrong.stderr

    deployer = person("deployer")
    pin(deployer, owner, image.gun, tmp_path)
    missing = deployer.run("sign", image.ref)
    assert missing.exit_code == EXIT_USAGE and "you do not hold the bins key" in missing.stderr

    other = f"{image.gun}-nope"
    ok(deployer.run("trust", "pin", other, str(tmp_path / "root.json")))
    unknown = deployer.run("verify", f"{other}:v1")
    assert unknown.exit_code == EXIT_TRUST and "no trust data" in unknown.stderr
    for run in (wrong, missing, unknown):
        assert "Traceback" not in run.stderr
        assert run.stderr.count("Error:") == 1


def test_server_down_is_exit_3(person: MakePerson, push: Push, tmp_path: Path) -> None:
    from tests.registry import free_port

    image = push()
    owner = owner_with_repo(person, image)
    down = person(
        "owner",
        server_transport=HttpTransport(retries=0),
        server_url=f"https://127.0.0.1:{free_port()}",
    )
    down.env.update(owner.env)
    run = down.run("verify", image.ref)
    assert run.exit_code == EXIT_NETWORK
    assert "cannot reach the trust server" in run.stderr and "connection refused" in run.stderr


def test_registry_down_is_exit_3(person: MakePerson, push: Push) -> None:
    from tests.registry import free_port

    image = push()
    owner = owner_with_repo(person, image)
    run = owner.run("sign", f"127.0.0.1:{free_port()}/{image.gun.split('/', 1)[1]}:v1")
    assert run.exit_code == EXIT_NETWORK and "cannot reach registry" in run.stderr


class NoPendingEndpoint:
    """A trust server without the optional pending-signatures endpoint."""

    def __init__(self, inner: FlaskTransport) -> None:
        self.inner = inner

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        if "/_trust/pending/" in url:
            body = b'{"errors": [{"code": "GENERIC_NOT_FOUND", "message": "no such endpoint"}]}'
            return Response(404, {"content-type": "application/json"}, body, url)
        return self.inner.request(method, url, **kwargs)


def test_threshold_above_one_without_a_pending_store_says_how_to_get_one(
    person: MakePerson, push: Push, tmp_path: Path, server: FlaskTransport
) -> None:
    image = push()
    owner = owner_with_repo(person, image)
    alice = person("alice", server_transport=NoPendingEndpoint(server))
    pin(alice, owner, image.gun, tmp_path)
    ok(alice.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(owner.run("key", "generate", "bob", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), image.gun))
    ok(
        owner.run(
            "signer",
            "add",
            "bob",
            "--key",
            str(tmp_path / "bob.pub"),
            image.gun,
            "--threshold",
            "2",
        )
    )
    run = alice.run("--json", "sign", image.ref)
    assert run.exit_code == EXIT_USAGE
    assert run.json["error"]["code"] == "PENDING_UNSUPPORTED"
    assert "--pending-dir" in run.json["error"]["hint"]
    alice.pending_dir = tmp_path / "pending"  # a shared directory instead
    ok(alice.run("sign", image.ref))


def test_junk_in_the_pending_store_is_ignored(
    person: MakePerson, push: Push, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from securesystemslib.signer import CryptoSigner
    from tuf.api.metadata import Metadata, TargetFile, Targets

    from trustctl.pending import DirectoryPendingStore

    image = push()
    shared = tmp_path / "pending"
    owner = owner_with_repo(person, image, pending_dir=shared)
    ok(owner.run("key", "generate", "a", "--dir", str(tmp_path)))
    ok(owner.run("key", "generate", "b", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "a", "--key", str(tmp_path / "a.pub"), image.gun))
    ok(
        owner.run(
            "signer", "add", "b", "--key", str(tmp_path / "b.pub"), image.gun, "--threshold", "2"
        )
    )
    store = DirectoryPendingStore(shared)
    junk = Metadata(Targets(version=1, expires=datetime.now(UTC) + timedelta(days=1)))
    junk.signed.targets[image.tag] = TargetFile(image.size, {"sha256": image.digest[7:]}, image.tag)
    junk.sign(CryptoSigner.generate_ecdsa())  # not a signer's key
    role = signer_role(image.tag, "hash bins")
    store.put(image.gun, role, junk.to_bytes())
    run = owner.run("verify", image.ref)
    assert run.exit_code == EXIT_TRUST and "waiting" not in run.stderr
    store.put(image.gun, role, b"not json at all")
    assert "waiting" not in owner.run("verify", image.ref).stderr
    assert owner.run("--json", "inspect", image.gun).json["pending"] is None


@pytest.mark.parametrize("layout", LAYOUTS)
def test_raising_the_threshold_needs_force_and_fresh_signatures(
    person: MakePerson, push: Push, tmp_path: Path, layout: str
) -> None:
    image = push()
    shared = tmp_path / "pending"
    owner = owner_with_repo(person, image, layout, pending_dir=shared)
    alice, bob = person("alice", pending_dir=shared), person("bob", pending_dir=shared)
    for p in (alice, bob):
        pin(p, owner, image.gun, tmp_path)
    ok(alice.run("key", "generate", "alice", "--dir", str(tmp_path)))
    ok(bob.run("key", "generate", "bob", "--dir", str(tmp_path)))
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), image.gun))
    ok(alice.run("sign", image.ref))
    bob_pub = str(tmp_path / "bob.pub")
    refused = owner.run("signer", "add", "bob", "--key", bob_pub, image.gun, "--threshold", "2")
    assert refused.exit_code == EXIT_TRUST and "would stop verifying" in refused.stderr
    ok(
        owner.run(
            "signer", "add", "bob", "--key", bob_pub, image.gun, "--threshold", "2", "--force"
        )
    )
    assert (
        owner.run("verify", image.ref).exit_code == EXIT_TRUST
    )  # alice's lone signature no longer counts
    started = alice.run("sign", image.ref)
    ok(started)
    assert "starting it over" in started.stderr
    ok(bob.run("sign", image.ref))
    assert "alice, bob" in owner.run("verify", image.ref).stdout
