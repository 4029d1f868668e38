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


def test_dev_command_brings_up_signer_and_server_and_ctrl_c_stops_both(tmp_path: Path) -> None:
    port, signer_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "notary_server", "dev",
            "--keys-dir", str(tmp_path / "keys"), "--var-dir", str(tmp_path / "var"),
            "--port", str(port), "--signer-port", str(signer_port),
        ],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        ca = tmp_path / "keys" / "dev-ca.pem"
        healthy = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and healthy is None:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            if ca.exists():
                try:
                    pool = urllib3.PoolManager(ca_certs=str(ca))
                    resp = pool.request("GET", f"https://127.0.0.1:{port}/_notary_server/health", retries=False, timeout=2)
                    if resp.status == 200:
                        healthy = json.loads(resp.data)
                except urllib3.exceptions.HTTPError:
                    pass
            time.sleep(0.2)
        assert healthy == {}, "the server never became healthy (database and signer checks)"
        print(f"\nDEV fresh start to healthy server: {time.monotonic() - started:.1f} s")

        for name in ("dev-ca.pem", "server.pem", "signer.pem", "server-client.pem"):
            assert (tmp_path / "keys" / name).exists()
        for key in (tmp_path / "keys").glob("*key*"):
            assert key.stat().st_mode & 0o777 == 0o600, key
        assert (tmp_path / "var" / "notary-server.db").exists()
        assert (tmp_path / "var" / "notary-signer.db").exists()

        os.kill(proc.pid, signal.SIGINT)  # Ctrl-C
        output = proc.communicate(timeout=30)[0].decode()
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
