"""``trustctl agent``: commands run through the agent behave exactly like a fresh process.

Real trust server and signer processes (HTTPS, mutual TLS), ``python -m trustctl`` as a
subprocess with its standard input not a terminal (as in a pipeline), the agent started
by ``trustctl agent start`` and stopped by ``trustctl agent stop`` (or by its pid, if a
test fails half way).
"""

from __future__ import annotations

import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.procs import Stack, start_stack
from tests.trustctl.bulk import MEDIA_TYPE
from tests.trustctl.httpd import Reply, Request, serve
from tests.trustctl.support import unique_repo
from tests.trustctl.test_e2e import ROOT, Result, User, one_line
from trustctl import agent as agent_mod
from trustctl.launcher import read_message, send_message

pytestmark = pytest.mark.e2e

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = start_stack(tmp_path_factory.mktemp("stack"))
    yield s
    s.stop()


class Agent:
    """One agent started through the CLI; stopped at the end of the test."""

    def __init__(self, starter: User, socket_path: Path, *args: str) -> None:
        self.socket = socket_path
        started = starter.run("--json", "agent", "start", "--socket", str(socket_path), *args)
        assert started.code == 0, str(started)
        self.status = started.json
        self.pid = int(self.status["pid"])

    def env(self) -> dict[str, str]:
        return {"TRUSTCTL_AGENT_SOCKET": str(self.socket)}

    def commands(self) -> int:
        return agent_mod.status(self.socket).commands

    def status_now(self) -> agent_mod.AgentStatus:
        return agent_mod.status(self.socket)

    def stop(self) -> None:
        try:
            agent_mod.stop(self.socket)
        except agent_mod.AgentError:
            pass
        try:  # the agent this test started, by its pid, if it did not go
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def private_dir(tmp_path: Path) -> Path:
    d = tmp_path / "agent"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def team(
    stack: Stack, tmp_path: Path, private_dir: Path
) -> Iterator[tuple[User, User, str, Agent]]:
    """An owner who signed one tag, a deployer who pinned the root, an unlocked agent."""
    owner = User("agent-owner", tmp_path / "owner", stack.url, stack.pki.ca_cert)
    deployer = User("agent-deployer", tmp_path / "deployer", stack.url, stack.pki.ca_cert)
    gun = f"127.0.0.1:5999/{unique_repo()}"
    owner.ok("init", gun)
    owner.ok(*_sign(f"{gun}:v1"))
    root = tmp_path / "root.json"
    owner.ok("trust", "export", gun, "-o", str(root))
    deployer.ok("trust", "pin", gun, str(root))
    agent = Agent(owner, private_dir / "agent.sock")
    yield owner, deployer, gun, agent
    agent.stop()


def _sign(ref: str) -> tuple[str, ...]:
    return ("sign", ref, "--digest", DIGEST, "--size", "7", "--media-type", MEDIA_TYPE)


def _same(a: Result, b: Result) -> None:
    assert (a.code, a.stdout, a.stderr) == (b.code, b.stdout, b.stderr), f"{a}\n=== vs\n{b}"


def test_commands_through_the_agent_match_a_fresh_process(
    team: tuple[User, User, str, Agent],
) -> None:
    owner, deployer, gun, agent = team
    cases = [  # (who, argv, expected exit code)
        (owner, ["--version"], 0),
        (owner, ["key", "list"], 0),
        (deployer, ["verify", f"{gun}:v1", "--no-registry-check"], 0),
        (deployer, ["--json", "verify", f"{gun}:v1", "--no-registry-check"], 0),
        (deployer, ["verify", f"{gun}:missing", "--no-registry-check"], 1),
        (deployer, ["verify", "not a reference"], 2),
        (deployer, ["trust", "show", gun], 0),
        (deployer, ["no-such-command"], 2),
    ]
    before = agent.commands()
    for who, argv, code in cases:
        fresh = who.run(*argv)
        through = who.run(*argv, env=agent.env())
        assert through.code == code, str(through)
        _same(through, fresh)
        assert "Warning" not in through.stderr
    assert agent.commands() == before + len(cases)  # every one really went through it


def test_sign_with_the_unlocked_key_still_needs_the_passphrase(
    team: tuple[User, User, str, Agent],
) -> None:
    owner, deployer, gun, agent = team
    assert agent.status["unlocked_keys"] >= 2  # root, targets, bins keys of the owner

    signed = owner.run("-vv", *_sign(f"{gun}:v2"), env=agent.env())
    assert signed.code == 0, str(signed)
    assert "opened with the key trustctl agent derived" in signed.stderr

    wrong = {**agent.env(), "TRUSTCTL_TARGETS_PASSPHRASE": "not the passphrase"}
    one_line(owner.run(*_sign(f"{gun}:v3"), env=wrong), 2, "wrong passphrase")
    missing = {**agent.env(), "TRUSTCTL_TARGETS_PASSPHRASE": ""}
    one_line(owner.run(*_sign(f"{gun}:v3"), env=missing), 2, "no passphrase")
    owner.ok("reset", gun, "--all")

    deployer.ok("verify", f"{gun}:v2", "--no-registry-check", env=agent.env())
    one_line(deployer.run("verify", f"{gun}:v3", "--no-registry-check", env=agent.env()), 1, "v3")


def test_the_agent_keeps_no_passphrase_in_its_environment(
    team: tuple[User, User, str, Agent],
) -> None:
    owner, _, _, agent = team
    environ = Path(f"/proc/{agent.pid}/environ").read_bytes()
    for name in ("TRUSTCTL_ROOT_PASSPHRASE", "TRUSTCTL_TARGETS_PASSPHRASE"):
        assert name.encode() not in environ
        assert owner.env()[name].encode() not in environ
    cmdline = Path(f"/proc/{agent.pid}/cmdline").read_bytes()
    assert b"passphrase" not in cmdline


def test_at_a_terminal_commands_run_in_process(team: tuple[User, User, str, Agent]) -> None:
    owner, _, _, agent = team
    before = agent.commands()
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "trustctl", "--version"],
            env={**owner.env(), **agent.env()},
            stdin=secondary,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
    finally:
        os.close(primary)
        os.close(secondary)
    assert proc.returncode == 0 and "trustctl" in proc.stdout
    assert agent.commands() == before  # prompts must reach the terminal: not the agent


def test_an_unreachable_agent_means_one_warning_and_the_command_runs(
    team: tuple[User, User, str, Agent], tmp_path: Path
) -> None:
    owner = team[0]
    result = owner.run("key", "list", env={"TRUSTCTL_AGENT_SOCKET": str(tmp_path / "nothing")})
    assert result.code == 0, str(result)
    assert result.stderr.startswith("Warning: trustctl agent at ")
    assert len(result.stderr.splitlines()) == 1


def test_the_agent_refuses_a_socket_directory_others_can_enter(
    stack: Stack, tmp_path: Path
) -> None:
    owner = User("agent-owner", tmp_path / "owner", stack.url, stack.pki.ca_cert)
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    one_line(owner.run("agent", "start", "--socket", str(shared / "s")), 2, "only you can enter")
    assert not (shared / "s").exists()


def test_status_and_stop_and_idle_timeout(stack: Stack, tmp_path: Path, private_dir: Path) -> None:
    owner = User("agent-owner", tmp_path / "owner", stack.url, stack.pki.ca_cert)
    path = private_dir / "idle.sock"
    agent = Agent(owner, path, "--idle-timeout", "1")
    try:
        assert agent.status["idle_timeout"] == 1.0
        again = owner.run("agent", "start", "--socket", str(path))
        one_line(again, 2, "already listens")
        deadline = time.monotonic() + 15
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not path.exists()  # it went away by itself
        one_line(owner.run("agent", "status", "--socket", str(path)), 2, "no trustctl agent")
    finally:
        agent.stop()

    agent = Agent(owner, path)
    try:
        stopped = owner.ok("agent", "stop", "--socket", str(path))
        assert f"pid {agent.pid}" in stopped.stdout
        assert not path.exists()
    finally:
        agent.stop()


def test_the_agent_turns_away_another_trustctl_or_another_user(
    team: tuple[User, User, str, Agent], tmp_path: Path
) -> None:
    _, _, _, agent = team
    before = agent.commands()
    request = {
        "protocol": "1",
        "version": "0.0.0-other",
        "package": "/elsewhere/trustctl",
        "argv": ["--version"],
        "env": {},
        "cwd": "/",
        "umask": 0o022,
    }
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(agent.socket))
        send_message(sock, request, [0, 1, 2])
        answer = read_message(sock)
    assert "error" in answer and "runs trustctl" in answer["error"]
    assert agent.commands() == before

    # SO_PEERCRED: a process of another user gets an error before anything is read
    listener, client = socket.socketpair()
    server = agent_mod._Server(
        listener, tmp_path / "unused", 0, 0, peer_uid=lambda _conn: os.getuid() + 1
    )
    try:
        server.handle(listener)
        assert "own user" in read_message(client)["error"]
        assert server.commands == 0
    finally:
        listener.close()
        client.close()


def test_ctrl_c_reaches_the_command_running_in_the_agent(
    stack: Stack, team: tuple[User, User, str, Agent]
) -> None:
    _, deployer, gun, agent = team
    asked, release = threading.Event(), threading.Event()

    def hang(_request: Request) -> Reply:  # a trust server that never answers in time
        asked.set()
        release.wait(30)
        return Reply(503)

    server = serve(hang, cert=stack.pki.server_cert, key=stack.pki.server_key)
    try:
        client = deployer.start(
            "--server", server.url, "verify", f"{gun}:v1", "--no-registry-check", env=agent.env()
        )
        assert asked.wait(30), "the command never reached the server"
        assert agent.status_now().running == 1
        started = time.monotonic()
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=20)
        assert time.monotonic() - started < 10
        assert client.returncode == 1 and "aborted" in err, err
        deadline = time.monotonic() + 10
        while agent.status_now().running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.status_now().running == 0  # the forked command is gone too
    finally:
        release.set()
        server.stop()
