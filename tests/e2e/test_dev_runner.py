"""`make run` runs `notary-server dev`: generated certificates, signer and server on
127.0.0.1, healthy over HTTPS with the dev CA, and Ctrl-C stops both cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import urllib3

from tests.procs import ROOT, free_port


def _start_dev(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """``notary-server dev`` on free ports, in its own session, with no NOTARY_ settings
    from the caller's environment. Its output goes to ``tmp_path/dev.log`` (read by
    :func:`_output`), where the session's secrets scan reads it too."""
    port, signer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    with (tmp_path / "dev.log").open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "notary_server",
                "dev",
                "--keys-dir",
                str(tmp_path / "keys"),
                "--var-dir",
                str(tmp_path / "var"),
                "--port",
                str(port),
                "--signer-port",
                str(signer_port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, port, signer_port


def _output(tmp_path: Path) -> str:
    return (tmp_path / "dev.log").read_text(errors="replace")


def test_dev_command_brings_up_signer_and_server_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    started = time.monotonic()
    proc, port, signer_port = _start_dev(tmp_path)
    try:
        ca = tmp_path / "keys" / "dev-ca.pem"
        healthy = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and healthy is None:
            assert proc.poll() is None, _output(tmp_path)
            if ca.exists():
                try:
                    pool = urllib3.PoolManager(ca_certs=str(ca))
                    resp = pool.request(
                        "GET",
                        f"https://127.0.0.1:{port}/_notary_server/health",
                        retries=False,
                        timeout=2,
                    )
                    if resp.status == 200:
                        healthy = json.loads(resp.data)
                except urllib3.exceptions.HTTPError:
                    pass
            time.sleep(0.2)
        assert healthy == {"status": "ok"}, (
            "the server never became healthy (database and signer checks)"
        )
        print(f"\nDEV fresh start to healthy server: {time.monotonic() - started:.1f} s")

        for name in ("dev-ca.pem", "server.pem", "signer.pem", "server-client.pem"):
            assert (tmp_path / "keys" / name).exists()
        for key in (tmp_path / "keys").glob("*key*"):
            assert key.stat().st_mode & 0o777 == 0o600, key
        assert (tmp_path / "var" / "notary-server.db").exists()
        assert (tmp_path / "var" / "notary-signer.db").exists()

        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        proc.wait(timeout=30)
        output = _output(tmp_path)
        assert proc.returncode == 0, output
        assert f"https://127.0.0.1:{port}" in output and "Traceback" not in output
        # both children are gone: nothing listens any more
        for p in (port, signer_port):
            try:
                socket.create_connection(("127.0.0.1", p), timeout=2).close()
                raise AssertionError(f"something still listens on {p}")
            except ConnectionRefusedError:
                pass
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their workers, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.split("=", 1) for e in raw.decode(errors="replace").split("\0") if "=" in e)


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def test_dev_command_gives_the_signers_passphrase_to_the_signer_only(tmp_path: Path) -> None:
    """Issue 10, row 11: the trust server's processes never see the signer's passphrase."""
    proc, port, _ = _start_dev(tmp_path)
    try:
        deadline = time.monotonic() + 60
        healthy = False
        while time.monotonic() < deadline and not healthy:
            assert proc.poll() is None, "notary-server dev stopped"
            ca = tmp_path / "keys" / "dev-ca.pem"
            if ca.exists():
                try:
                    pool = urllib3.PoolManager(ca_certs=str(ca))
                    url = f"https://127.0.0.1:{port}/_notary_server/health"
                    healthy = pool.request("GET", url, retries=False, timeout=2).status == 200
                except urllib3.exceptions.HTTPError:
                    pass
            time.sleep(0.2)
        assert healthy, "the dev stack never became healthy"
        passphrase = (tmp_path / "keys" / "dev-signer-passphrase").read_text().strip()

        processes = {pid: _cmdline(pid) for pid in _descendants(proc.pid)}
        signer = [p for p, cmd in processes.items() if "notary_signer" in cmd]
        server = [p for p, cmd in processes.items() if "notary_server" in cmd]
        server += [d for p in server for d in _descendants(p)]  # its workers too
        assert signer and len(server) >= 2, processes
        assert _environ(signer[0])["NOTARY_SIGNER_DEFAULT"] == passphrase
        for pid in server:
            leaked = [
                k
                for k, v in _environ(pid).items()
                if passphrase in v or k.startswith("NOTARY_SIGNER_")
            ]
            assert leaked == [], f"{processes.get(pid, pid)} has {leaked}"
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _one_line_error(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert len([line for line in run.stderr.splitlines() if line.startswith("Error: ")]) == 1


def test_dev_command_with_an_unwritable_keys_directory_says_so_in_one_line(tmp_path: Path) -> None:
    # a keys directory below a regular file can never be created (mode bits would not
    # stop root, who runs some CI machines)
    (tmp_path / "file").write_text("not a directory")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "notary_server",
            "dev",
            "--keys-dir",
            str(tmp_path / "file" / "keys"),
            "--var-dir",
            str(tmp_path / "var"),
            "--port",
            str(free_port()),
            "--signer-port",
            str(free_port()),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _one_line_error(run)
    assert "--keys-dir" in run.stderr


def test_renew_with_an_unreachable_database_says_so_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    env["NOTARY_SERVER_DATABASE_URL"] = (
        f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/notary"
    )
    run = subprocess.run(
        [sys.executable, "-m", "notary_server", "renew"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _one_line_error(run)
    assert "database" in run.stderr
