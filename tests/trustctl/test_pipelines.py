"""Pipelines on real processes: many references per command, digests in references,
aborted commands.

Real trust server and signer processes (HTTPS, mutual TLS, SQLite), a real
docker-registry, and ``python -m trustctl`` as a subprocess (under a pseudo-terminal
where a person would type a passphrase). Issue 13 (many tags in one command, no fork
server) and cases 1 and 8 of issue 9.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Stack, start_stack
from tests.registry import RegistryProcess
from tests.trustctl import schema
from tests.trustctl.support import unique_repo
from tests.trustctl.test_e2e import ROOT, User, handoff_root, one_line, push

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


@pytest.fixture
def owner(stack: Stack, tmp_path: Path) -> User:
    return User("owner", tmp_path / "owner", stack.url, stack.pki.ca_cert)


@pytest.fixture
def deployer(stack: Stack, tmp_path: Path) -> User:
    return User("deployer", tmp_path / "deployer", stack.url, stack.pki.ca_cert)


def pushed(registry: RegistryProcess, count: int, prefix: str = "t") -> tuple[str, dict[str, str]]:
    """A new repository with ``count`` tags, each its own image: (gun, tag -> digest)."""
    repo = unique_repo()
    digests = {}
    gun = ""
    for i in range(count):
        gun, digests[f"{prefix}{i}"] = push(registry, repo, f"{prefix}{i}", f"{repo} {i}".encode())
    return gun, digests


def signed_tags(user: User, gun: str) -> dict[str, str]:
    doc = user.ok("--json", "inspect", gun).json
    return {t["tag"]: t["digest"] for t in doc["tags"]}


def staged(user: User, gun: str) -> list[str]:
    return [c["description"] for c in user.ok("--json", "status", gun).json["changes"]]


# --- issue 9, case 1: a digest in the reference ---------------------------------------


def test_case1_a_digest_in_the_reference_must_be_the_signed_digest(
    registry: RegistryProcess, owner: User, deployer: User
) -> None:
    gun, digests = pushed(registry, 2)
    signed, other = digests["t0"], digests["t1"]
    owner.ok("init", gun)
    owner.ok("sign", f"{gun}:t0")
    handoff_root(owner, gun, deployer)

    wrong = f"{gun}:t0@{other}"
    one_line(deployer.run("verify", wrong), 1, signed, other)
    one_line(deployer.run("verify", wrong, "--no-registry-check"), 1, signed, other)
    one_line(deployer.run("pull", wrong), 1, signed, other)
    refused = deployer.run("--json", "verify", wrong)
    assert refused.code == 1, str(refused)
    schema.check(refused.json, "error")
    assert refused.json["error"]["code"] == "DIGEST_MISMATCH"
    detail = refused.json["error"]["detail"]
    assert (detail["signed_digest"], detail["requested_digest"]) == (signed, other)

    right = f"{gun}:t0@{signed}"
    doc = deployer.ok("--json", "verify", right).json
    schema.check(doc, "verify")
    assert doc["image"] == right and doc["requested_digest"] == signed
    assert deployer.ok("pull", right).stdout == f"{gun}@{signed}\n"


# --- issue 9, case 8: aborted commands, other people's staged changes ----------------


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty on stdin, and
    Ctrl-C's SIGINT acted on as in a user's shell (a shell's background job, as a CI
    runner may start the suite, ignores SIGINT, and its children inherit that)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_at_terminal(user: User, args: list[str], keys: bytes) -> tuple[int, str]:
    """Run trustctl on a pseudo-terminal without passphrases in the environment; when
    it asks for one, type ``keys``. Returns (exit code, what the terminal showed)."""
    env = {k: v for k, v in user.env().items() if not k.endswith("_PASSPHRASE")}
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustctl", *args],
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        cwd=ROOT,
        preexec_fn=_own_terminal,  # noqa: PLW1509 - no threads yet; the child must own the pty
    )
    os.close(secondary)
    shown = b""
    sent = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(primary, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                shown += chunk
            if not sent and b"Passphrase" in shown:
                time.sleep(0.2)  # let the prompt start reading
                os.write(primary, keys)  # the terminal turns Ctrl-C into SIGINT
                sent = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(primary)
    assert sent, f"no passphrase prompt: {shown.decode(errors='replace')}"
    return code, shown.decode(errors="replace")


@pytest.mark.parametrize("keys", [b"\x03", b"\x04"], ids=["ctrl-c", "ctrl-d"])
def test_case8_an_aborted_sign_stages_nothing(
    registry: RegistryProcess, owner: User, keys: bytes
) -> None:
    gun, digests = pushed(registry, 2)
    owner.ok("init", gun)
    code, shown = run_at_terminal(owner, ["sign", f"{gun}:t0"], keys)
    assert code != 0, shown
    assert "Traceback" not in shown, shown
    assert staged(owner, gun) == []
    owner.ok("sign", f"{gun}:t1")
    assert signed_tags(owner, gun) == {"t1": digests["t1"]}


def test_case8_sign_does_not_publish_changes_it_did_not_make(
    registry: RegistryProcess, owner: User
) -> None:
    gun, digests = pushed(registry, 2)
    owner.ok("init", gun)
    owner.ok("sign", "--no-publish", f"{gun}:t0")
    signed = owner.ok("sign", f"{gun}:t1")
    assert signed_tags(owner, gun) == {"t1": digests["t1"]}
    assert "t0" in signed.stderr and "trustctl publish" in signed.stderr, str(signed)
    assert len(staged(owner, gun)) == 1
    published = owner.ok("publish", gun)
    assert "t0" in published.stdout, str(published)
    assert signed_tags(owner, gun) == digests


# --- issue 13: many references in one command -----------------------------------------


def test_a_batch_sign_with_one_bad_reference_publishes_nothing(
    registry: RegistryProcess, owner: User
) -> None:
    gun, digests = pushed(registry, 12)
    owner.ok("init", gun)
    refs = [f"{gun}:{tag}" for tag in digests]
    bad = f"{gun}:never-pushed"
    failed = owner.run("sign", *refs[:6], bad, *refs[6:])
    one_line(failed, 1, bad)
    assert signed_tags(owner, gun) == {}
    assert staged(owner, gun) == []

    doc = owner.run("--json", "sign", *refs, bad).json
    schema.check(doc, "error")
    assert doc["error"]["detail"]["reference"] == bad
    assert signed_tags(owner, gun) == {}


def test_a_batch_sign_and_verify_one_line_and_one_object_per_tag(
    registry: RegistryProcess, owner: User, deployer: User
) -> None:
    gun, digests = pushed(registry, 12)
    owner.ok("init", gun)
    refs = [f"{gun}:{tag}" for tag in digests]
    signed_run = owner.ok("-vv", "--json", "sign", *refs)
    opened = [line for line in signed_run.stderr.splitlines() if "PBKDF2" in line]
    assert len(opened) == 1, opened  # one key file (the bins key), one derivation, 12 bins
    signed = signed_run.json
    schema.check(signed, "sign batch", "publish")
    assert [(t["tag"], t["digest"], t["status"]) for t in signed["tags"]] == [
        (tag, digest, "published") for tag, digest in digests.items()
    ]
    for entry in signed["tags"]:
        schema.check({"ok": True, "schema_version": 1, "command": "sign", **entry}, "sign")
    assert signed_tags(owner, gun) == digests

    handoff_root(owner, gun, deployer)
    lines = deployer.ok("verify", *refs).stdout.splitlines()
    assert lines == [f"OK: {gun}:{tag} {digest}" for tag, digest in digests.items()]
    verified = deployer.ok("--json", "verify", *refs).json
    schema.check(verified, "verify batch")
    for entry, (tag, digest) in zip(verified["tags"], digests.items(), strict=True):
        schema.check({"ok": True, "schema_version": 1, "command": "verify", **entry}, "verify")
        assert (entry["tag"], entry["digest"], entry["ok"]) == (tag, digest, True)
    pulled = deployer.ok("pull", *refs).stdout.splitlines()
    assert pulled == [f"{gun}@{digest}" for digest in digests.values()]


def test_a_batch_verify_names_the_one_moved_tag(
    registry: RegistryProcess, owner: User, deployer: User
) -> None:
    gun, digests = pushed(registry, 10)
    owner.ok("init", gun)
    refs = [f"{gun}:{tag}" for tag in digests]
    owner.ok("sign", *refs)
    handoff_root(owner, gun, deployer)
    _, moved = push(registry, gun.split("/", 1)[1], "t7", b"moved after signing")

    failed = deployer.run("verify", *refs)
    assert failed.code == 1, str(failed)
    assert [line for line in failed.stdout.splitlines() if not line.startswith("OK: ")] == []
    assert f"{gun}:t7" not in failed.stdout
    assert len(failed.stdout.splitlines()) == 9
    errors = [line for line in failed.stderr.splitlines() if line.startswith("Error: ")]
    assert any(f"{gun}:t7" in e and moved in e for e in errors), str(failed)
    assert all("t7" in e or "1 of 10" in e for e in errors), str(failed)

    doc = deployer.run("--json", "verify", *refs).json
    schema.check(doc, "error", "verify batch")
    bad = [t for t in doc["tags"] if not t["ok"]]
    assert [t["tag"] for t in bad] == ["t7"]
    assert bad[0]["error"]["code"] == "DIGEST_MISMATCH"
    assert doc["error"]["detail"]["failed"] == [f"{gun}:t7"]


def test_references_from_a_file_or_stdin_and_a_batch_revoke(
    registry: RegistryProcess, owner: User, tmp_path: Path
) -> None:
    gun, digests = pushed(registry, 6)
    owner.ok("init", gun)
    listing = tmp_path / "refs.txt"
    listing.write_text("# release 1\n" + "".join(f"{gun}:{tag}\n\n" for tag in list(digests)[:3]))
    owner.ok("sign", "--from-file", str(listing))
    proc = subprocess.run(
        [sys.executable, "-m", "trustctl", "sign", "--from-file", "-"],
        input="".join(f"{gun}:{tag}\n" for tag in list(digests)[3:]),
        env=owner.env(),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert signed_tags(owner, gun) == digests
    revoked = owner.ok("revoke", f"{gun}:t1", f"{gun}:t4").stdout
    assert f"OK: revoked {gun}:t1" in revoked and f"OK: revoked {gun}:t4" in revoked
    assert sorted(signed_tags(owner, gun)) == ["t0", "t2", "t3", "t5"]


# --- issue 13: no fork server ---------------------------------------------------------


def test_no_agent_remains_and_its_socket_variable_is_ignored(
    registry: RegistryProcess, owner: User, tmp_path: Path
) -> None:
    assert not (ROOT / "trustctl" / "agent.py").exists()
    assert not (ROOT / "trustctl" / "commands" / "agent.py").exists()
    assert not (ROOT / "docs" / "agent.md").exists()
    one_line(owner.run("agent", "start"), 2, "agent")

    gun, _ = pushed(registry, 1)
    owner.ok("init", gun)
    path = tmp_path / "s" / "agent.sock"
    path.parent.mkdir(mode=0o700)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen()
    listener.settimeout(0.2)
    knocked: list[bool] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            knocked.append(True)
            conn.close()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        result = owner.run("sign", f"{gun}:t0", env={"TRUSTCTL_AGENT_SOCKET": str(path)})
    finally:
        done.set()
        watcher.join()
        listener.close()
    assert knocked == [], "trustctl connected to TRUSTCTL_AGENT_SOCKET"
    assert result.code == 0 and "agent" not in result.stderr, str(result)
