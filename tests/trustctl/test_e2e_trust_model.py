"""Issue 9, end to end on real processes: pinning after a root rotation (case 7), and
the new user's walkthrough (the smaller findings: help, typos, key status, rotation
steps, ``-v``, pending signatures).

Real trust server and signer processes (HTTPS, mutual TLS, SQLite), a real
docker-registry, and ``python -m trustctl`` as a subprocess (helpers from
``test_e2e``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.procs import Stack
from tests.registry import RegistryProcess
from tests.trustctl import schema, test_e2e
from tests.trustctl.support import unique_repo
from tests.trustctl.test_e2e import User, handoff_root, one_line, push

pytestmark = pytest.mark.e2e

stack = test_e2e.stack  # the real server and signer processes (fixture, one per module)
users = test_e2e.users  # owner, alice, bob, deployer (fixture)


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
