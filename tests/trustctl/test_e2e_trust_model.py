"""Issue 9, end to end on real processes: who may sign which tags (case 6), pinning
after a root rotation (case 7), and the new user's walkthrough (the smaller findings: help, typos, key status, rotation
steps, ``-v``, pending signatures).

Real trust server and signer processes (HTTPS, mutual TLS, SQLite), a real
docker-registry, and ``python -m trustctl`` as a subprocess (helpers from
``test_e2e``). python-tuf's own ``ngclient.Updater`` is the independent judge of
what a TUF client accepts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata, TargetFile, Targets

from tests.client_view import HTTPSFetcher, judge
from tests.procs import Stack
from tests.registry import RegistryProcess
from tests.trustctl import schema, test_e2e
from tests.trustctl.support import unique_repo
from tests.trustctl.test_e2e import User, handoff_root, one_line, push
from trustctl.client import ServerClient
from trustctl.keys import KeyStore, PassphraseSource
from trustctl.transport import HttpTransport

pytestmark = pytest.mark.e2e

stack = test_e2e.stack  # the real server and signer processes (fixture, one per module)
users = test_e2e.users  # owner, alice, bob, deployer (fixture)


def team_of_two(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path, *extra: str
) -> tuple[str, str]:
    """A repository whose owner added alice and bob with threshold 2 (``extra``: more
    options for the first ``signer add``); alice and bob sign v1.5. Returns (gun, digest)."""
    owner, alice, bob, deployer = (users[n] for n in ("owner", "alice", "bob", "deployer"))
    repo = unique_repo()
    gun, digest = push(registry, repo, "v1.5", b"the team's release")
    owner.ok("init", gun)
    handoff_root(owner, gun, alice, bob, deployer)
    alice.ok("key", "generate", "alice", "--dir", str(tmp_path))
    bob.ok("key", "generate", "bob", "--dir", str(tmp_path))
    owner.ok("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), gun, *extra)
    owner.ok("signer", "add", "bob", "--key", str(tmp_path / "bob.pub"), gun, "--threshold", "2")
    alice.ok("sign", f"{gun}:v1.5")
    bob.ok("sign", f"{gun}:v1.5")
    assert deployer.ok("--json", "verify", f"{gun}:v1.5").json["digest"] == digest
    return gun, digest


def python_tuf_digest(stack: Stack, gun: str, root: bytes, tag: str, where: Path) -> str | None:
    """What python-tuf's own client says ``tag`` is (the independent judge)."""
    info = judge(where, stack.url, gun, tag, HTTPSFetcher(str(stack.pki.ca_cert)), root)
    return None if info is None else f"sha256:{info.hashes['sha256']}"


def forge_owner_bin(owner: User, stack: Stack, gun: str, tag: str, digest: str) -> str:
    """What a CI job holding only the bins key can do without trustctl: put ``tag`` ->
    ``digest`` into the owner's hash bin for it, sign it with the bins key and upload it.
    Returns the bin's name."""
    keys = KeyStore(
        owner.trust_dir / "private",
        PassphraseSource({"TRUSTCTL_TARGETS_PASSPHRASE": f"{owner.name} targets passphrase"}),
    )
    bins_key = next(k for k in keys.all_keys() if k.name == "bins" and k.gun == gun)
    client = ServerClient(stack.url, HttpTransport(ca_file=str(stack.pki.ca_cert)))
    targets = Metadata[Targets].from_bytes(client.get_file(gun, "targets.json") or b"")
    d = targets.signed.delegations
    assert d is not None and d.roles is not None
    name = next(
        r.name for r in d.roles.values() if r.path_hash_prefixes and r.is_delegated_path(tag)
    )
    current = client.get_file(gun, f"{name}.json")
    md = Metadata[Targets].from_bytes(current) if current else Metadata(Targets(version=0))
    md.signed.version += 1
    md.signed.expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    md.signed.targets[tag] = TargetFile(
        100, {"sha256": digest.removeprefix("sha256:")}, tag, {"custom": {"mediaType": "x/y"}}
    )
    md.signatures.clear()
    md.sign(keys.signer(bins_key.keyid))
    client.publish(gun, {name: md.to_bytes()})
    return name


def lay_out_as_before(owner: User, stack: Stack, gun: str) -> None:
    """Re-publish ``targets`` the way trustctl laid it out before the signers' tags were
    theirs: the owner's bins first, ``targets/releases`` after them, not terminating."""
    keys = KeyStore(
        owner.trust_dir / "private",
        PassphraseSource({"TRUSTCTL_TARGETS_PASSPHRASE": f"{owner.name} targets passphrase"}),
    )
    client = ServerClient(stack.url, HttpTransport(ca_file=str(stack.pki.ca_cert)))
    md = Metadata[Targets].from_bytes(client.get_file(gun, "targets.json") or b"")
    d = md.signed.delegations
    assert d is not None and d.roles is not None
    releases = d.roles.pop("targets/releases")
    releases.terminating = False
    rest = dict(d.roles)
    d.roles.clear()
    d.roles.update({n: r for n, r in rest.items() if n.startswith("bins-")})
    d.roles["targets/releases"] = releases
    d.roles.update({n: r for n, r in rest.items() if not n.startswith("bins-")})
    md.signed.version += 1
    md.signatures.clear()
    targets_key = next(k for k in keys.all_keys() if k.role == "targets" and k.name is None)
    md.sign(keys.signer(targets_key.keyid))
    client.publish(gun, {"targets": md.to_bytes()})


# --- case 6: one CI key overrides the team ----------------------------------------------------


def test_case6_the_bins_key_cannot_repoint_a_tag_the_signers_hold(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path, stack: Stack
) -> None:
    owner, deployer = users["owner"], users["deployer"]
    gun, team_digest = team_of_two(registry, users, tmp_path)
    repo = gun.split("/", 1)[1]
    _, ci_digest = push(registry, repo, "v1.5", b"what CI built later")

    # trustctl refuses to sign the signers' tag with the bins key (the key CI holds)
    refused = owner.run("--json", "sign", f"{gun}:v1.5")
    assert refused.code == 2, str(refused)
    assert refused.json["error"]["code"] == "SIGNERS_HOLD_TAG", str(refused)
    assert "targets/releases" in refused.json["error"]["message"]
    assert "bins key" in refused.json["error"]["message"]

    # the owner's targets key (read first by every TUF client) may not re-point it either
    overriding = owner.run("--json", "sign", f"{gun}:v1.5", "--role", "targets")
    assert overriding.json["error"]["code"] == "SIGNERS_HOLD_TAG", str(overriding)
    assert "override" in overriding.json["error"]["message"]

    # ... and a CI job that signs the bin anyway is ignored by every TUF client
    forge_owner_bin(owner, stack, gun, "v1.5", ci_digest)
    shown = deployer.ok("--json", "verify", f"{gun}:v1.5", "--no-registry-check")
    assert shown.json["digest"] == team_digest
    assert shown.json["signers"] == ["alice", "bob"]
    root = (deployer.trust_dir / "tuf" / gun / "pinned_root.json").read_bytes()
    assert python_tuf_digest(stack, gun, root, "v1.5", tmp_path / "judge") == team_digest


def test_case6_the_owner_chooses_which_tags_the_signers_hold(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path, stack: Stack
) -> None:
    owner, deployer = users["owner"], users["deployer"]
    gun, team_digest = team_of_two(registry, users, tmp_path, "--paths", "v1.*")
    repo = gun.split("/", 1)[1]
    _, nightly = push(registry, repo, "nightly", b"a nightly build")

    # tags outside the signers' paths stay the bins key's (CI) ...
    owner.ok("sign", f"{gun}:nightly")
    got = deployer.ok("--json", "verify", f"{gun}:nightly")
    assert got.json["digest"] == nightly and got.json["signers"] == []
    # ... the signers' tags do not
    _, ci_digest = push(registry, repo, "v1.5", b"CI again")
    refused = owner.run("--json", "sign", f"{gun}:v1.5")
    assert refused.json["error"]["code"] == "SIGNERS_HOLD_TAG", str(refused)

    # inspect shows who holds which tags
    shown = deployer.ok("--json", "inspect", gun).json
    schema.check(shown, "inspect")
    listed = owner.ok("--json", "signer", "list", gun).json
    schema.check(listed, "signer list")
    assert listed["tag_policy"] == shown["tag_policy"]
    assert shown["tag_policy"] == {
        "signer_paths": ["v1.*"],
        "signers_first": True,
        "terminating": True,
    }
    text = deployer.ok("inspect", gun).stdout
    assert "v1.*" in text and "bins key" in text

    # the owner changes it: the signers take every tag (nightly then stops verifying
    # unless forced; the owner forces it and nightly is gone)
    one_line(owner.run("signer", "paths", gun, "*"), 1, "nightly")
    owner.ok("signer", "paths", gun, "*", "--force")
    one_line(deployer.run("verify", f"{gun}:nightly"), 1, "not signed")
    assert (
        deployer.ok("--json", "verify", f"{gun}:v1.5", "--no-registry-check").json["digest"]
        == team_digest
    )
    del ci_digest


def test_case6_a_repository_laid_out_before_is_told_and_fixed(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path, stack: Stack
) -> None:
    owner, deployer = users["owner"], users["deployer"]
    gun, team_digest = team_of_two(registry, users, tmp_path)
    lay_out_as_before(owner, stack, gun)
    shown = deployer.ok("--json", "inspect", gun).json
    assert shown["tag_policy"] == {
        "signer_paths": ["*"],
        "signers_first": False,
        "terminating": False,
    }
    assert "can override the signers" in deployer.ok("inspect", gun).stdout

    # trustctl still refuses to re-point the signers' tag with the bins key ...
    _, ci_digest = push(registry, gun.split("/", 1)[1], "v1.5", b"CI, once more")
    refused = owner.run("--json", "sign", f"{gun}:v1.5")
    assert refused.json["error"]["code"] == "SIGNERS_HOLD_TAG", str(refused)
    assert "override" in refused.json["error"]["message"]
    # ... but there TUF lets the bins key win, which is what `signer paths` fixes
    forge_owner_bin(owner, stack, gun, "v1.5", ci_digest)
    root = (deployer.trust_dir / "tuf" / gun / "pinned_root.json").read_bytes()
    assert python_tuf_digest(stack, gun, root, "v1.5", tmp_path / "before") == ci_digest
    owner.ok("signer", "paths", gun, "v*", "--force")
    assert deployer.ok("--json", "inspect", gun).json["tag_policy"]["signers_first"] is True
    assert python_tuf_digest(stack, gun, root, "v1.5", tmp_path / "after") == team_digest
    got = deployer.ok("--json", "verify", f"{gun}:v1.5", "--no-registry-check").json
    assert got["digest"] == team_digest


# --- case 7: new deployers after a root rotation ---------------------------------------------


def test_case7_new_deployers_after_a_root_rotation_pin_the_current_root(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path, stack: Stack
) -> None:
    owner = users["owner"]
    gun, digest = push(registry, unique_repo(), "v1", b"rotated")
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:v1")
    first_key = owner.ok("--json", "trust", "export", gun).json["root_keyids"][0]
    owner.ok("key", "rotate", gun, "root")
    owner.ok("key", "rotate", gun, "root")

    exported = owner.ok("--json", "trust", "export", gun, "-o", str(tmp_path / "root.json")).json
    assert exported["root_version"] == 3
    current_key = exported["root_keyids"][0]
    assert current_key != first_key

    by_file = User("by-file", tmp_path / "by-file", stack.url, stack.pki.ca_cert)
    pinned = by_file.ok("--json", "trust", "pin", gun, str(tmp_path / "root.json")).json
    assert pinned["root_version"] == 3
    assert by_file.ok("--json", "verify", f"{gun}:v1").json["digest"] == digest

    by_key = User("by-key", tmp_path / "by-key", stack.url, stack.pki.ca_cert)
    pinned = by_key.ok("--json", "trust", "pin", gun, "--keyid", current_key).json
    assert pinned["root_version"] == 3 and pinned["root_keyids"] == [current_key]
    assert by_key.ok("--json", "verify", f"{gun}:v1").json["digest"] == digest

    # a key that is no longer a root key of the current root is not a trust anchor
    stale = User("stale", tmp_path / "stale", stack.url, stack.pki.ca_cert)
    refused = stale.run("--json", "trust", "pin", gun, "--keyid", first_key)
    assert refused.code == 1 and refused.json["error"]["code"] == "BAD_SIGNATURE", str(refused)
    assert "root v3" in refused.json["error"]["message"]

    # the whole chain, when asked, pins too (each step checked) ...
    chain = owner.ok("--json", "trust", "export", gun, "--chain").json
    assert [json.loads(r)["signed"]["version"] for r in chain["chain"]] == [1, 2, 3]
    owner.ok("trust", "export", gun, "--chain", "-o", str(tmp_path / "chain.json"))
    by_chain = User("by-chain", tmp_path / "by-chain", stack.url, stack.pki.ca_cert)
    pinned = by_chain.ok("--json", "trust", "pin", gun, str(tmp_path / "chain.json")).json
    assert pinned["root_version"] == 3 and "chain v1-v3 verified" in pinned["source"]
    # ... and a chain with a forged step is refused
    docs = [json.loads(r) for r in chain["chain"]]
    docs[1]["signed"]["expires"] = "2099-01-01T00:00:00Z"
    (tmp_path / "forged.json").write_text(json.dumps(docs))
    forged = by_chain.run("--json", "trust", "pin", gun, str(tmp_path / "forged.json"))
    assert forged.code == 1 and forged.json["error"]["code"] == "BAD_SIGNATURE", str(forged)
    assert (
        "root v2" in forged.json["error"]["message"] and "attack" in forged.json["error"]["message"]
    )
    assert by_chain.ok("--json", "trust", "show", gun).json["pins"][0]["root_version"] == 3


# --- the new user's walkthrough ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [(), ("key",), ("signer",), ("trust",)], ids=["bare", "key", "signer", "trust"]
)
def test_a_bare_group_prints_its_help(users: dict[str, User], args: tuple[str, ...]) -> None:
    shown = users["owner"].run(*args)
    assert shown.code == 0, str(shown)
    assert shown.stdout.startswith("Usage: trustctl"), str(shown)
    assert "Commands:" in shown.stdout
    assert "Error" not in shown.stderr and "\\n" not in shown.stdout + shown.stderr


@pytest.mark.parametrize(
    ("args", "meant"),
    [
        (("verfy", "x"), "verify"),
        (("sigh",), "sign"),
        (("key", "lsit"), "list"),
        (("trust", "pni"), "pin"),
    ],
    ids=["verfy", "sigh", "key-lsit", "trust-pni"],
)
def test_a_typo_suggests_the_command_meant(
    users: dict[str, User], args: tuple[str, ...], meant: str
) -> None:
    one_line(users["owner"].run(*args), 2, f"Did you mean '{meant}'")


def test_key_list_marks_current_and_retired_keys_and_rotation_says_what_next(
    registry: RegistryProcess, users: dict[str, User]
) -> None:
    owner = users["owner"]
    gun, _ = push(registry, unique_repo(), "v1", b"keys")
    owner.ok("init", gun)
    listed = owner.ok("--json", "key", "list").json
    schema.check(listed, "key list")
    before = {k["keyid"]: k for k in listed["keys"]}
    assert {k["status"] for k in before.values()} == {"current"}
    assert {k["name"] for k in before.values() if k["role"] == "targets"} == {None, "bins"}

    rotated = owner.ok("key", "rotate", gun, "targets")
    nexts = [line for line in rotated.stdout.splitlines() if line.strip().startswith("next:")]
    assert nexts and "key export" in rotated.stdout and "key remove" in rotated.stdout, str(rotated)
    old = owner.ok("--json", "key", "rotate", gun, "bins").json
    assert old["next_steps"] and any("key export" in s for s in old["next_steps"])

    after = {k["keyid"]: k for k in owner.ok("--json", "key", "list").json["keys"]}
    retired = {k for k, v in after.items() if v["status"] == "retired"}
    assert retired == {k for k, v in before.items() if v["role"] == "targets"}
    table = owner.ok("key", "list").stdout
    assert "STATUS" in table.splitlines()[0] and "retired" in table and "current" in table
    assert " bins " in table  # the bins key has its name in the listing


def test_the_bins_key_is_called_the_bins_key_in_errors(
    registry: RegistryProcess, users: dict[str, User]
) -> None:
    owner = users["owner"]
    gun, _ = push(registry, unique_repo(), "v1", b"bins key errors")
    owner.ok("init", gun)
    wrong = owner.run("sign", f"{gun}:v1", env={"TRUSTCTL_TARGETS_PASSPHRASE": "wrong"})
    one_line(wrong, 2, "wrong passphrase for the bins key")


def test_verify_v_says_what_it_checked(registry: RegistryProcess, users: dict[str, User]) -> None:
    owner = users["owner"]
    gun, _ = push(registry, unique_repo(), "v1", b"verbose")
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:v1")
    quiet = owner.ok("verify", f"{gun}:v1")
    loud = owner.ok("-v", "verify", f"{gun}:v1")
    assert quiet.stdout == loud.stdout
    assert quiet.stderr == ""
    assert "pinned root:  root v1" in loud.stderr, str(loud)
    assert "timestamp (expires" in loud.stderr and "bins-" in loud.stderr
    assert "signed by key(s)" in loud.stderr


def test_cosigners_see_what_waits_for_them(
    registry: RegistryProcess, users: dict[str, User], tmp_path: Path
) -> None:
    owner, alice, bob = users["owner"], users["alice"], users["bob"]
    gun, digest = push(registry, unique_repo(), "v2", b"waiting")
    owner.ok("init", gun)
    handoff_root(owner, gun, alice, bob)
    alice.ok("key", "generate", "alice", "--dir", str(tmp_path))
    bob.ok("key", "generate", "bob", "--dir", str(tmp_path))
    owner.ok("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), gun)
    owner.ok("signer", "add", "bob", "--key", str(tmp_path / "bob.pub"), gun, "--threshold", "2")
    alice.ok("sign", f"{gun}:v2")

    # inspect IMAGE:TAG shows the pending signatures, as the docs say
    shown = bob.ok("inspect", f"{gun}:v2")
    assert "Waiting for signatures" in shown.stdout and "1 of 2" in shown.stdout, str(shown)
    assert bob.ok("--json", "inspect", f"{gun}:v2").json["pending"]["signatures"] == 1

    # `pending` lists what waits, for the whole repository or one tag
    listed = bob.ok("--json", "pending", gun).json
    schema.check(listed, "pending")
    waiting = [
        (p["tag"], p["digest"], p["signatures"], p["threshold"], p["signers"])
        for p in listed["pending"]
    ]
    assert waiting == [("v2", digest, 1, 2, ["alice"])]
    text = bob.ok("pending", f"{gun}:v2").stdout
    assert "v2" in text and "alice" in text and f"trustctl sign {gun}:v2" in text
    bob.ok("sign", f"{gun}:v2")
    assert bob.ok("--json", "pending", gun).json["pending"] == []
