"""A server worker does not outlive its supervisor (notary_server.wsgi.exit_with_supervisor)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from notary_server.wsgi import exit_with_supervisor
exit_with_supervisor({"NOTARY_SERVER_SUPERVISOR_PID": sys.argv[1]})
print("still running")
"""


def _worker(supervisor: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, supervisor],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_a_worker_whose_supervisor_is_gone_stops_at_once() -> None:
    orphan = _worker("999999999")  # not this worker's parent: the supervisor is gone
    assert orphan.returncode == -signal.SIGTERM
    assert "still running" not in orphan.stdout


def test_a_worker_of_a_live_supervisor_runs_on() -> None:
    child = _worker(str(os.getpid()))  # this test process is the worker's parent
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "still running"


SUPERVISOR = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid())])
print(worker.pid, flush=True)
time.sleep(120)
"""
LONG_WORKER = """
import sys, time
from notary_server.wsgi import exit_with_supervisor
exit_with_supervisor({"NOTARY_SERVER_SUPERVISOR_PID": sys.argv[1]})
print("armed", flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # an exited child of a dead parent is reaped by init; a zombie counts as gone
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_worker_stops_when_its_supervisor_is_killed() -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, LONG_WORKER],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert supervisor.stdout is not None
    worker = int(supervisor.stdout.readline())
    try:
        # the worker says so once its parent-death signal is set (its stdout is ours)
        assert supervisor.stdout.readline().strip() == "armed"
        assert _alive(worker)
        supervisor.kill()  # SIGKILL: no chance to stop its workers itself
        supervisor.wait()
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
