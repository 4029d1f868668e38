"""Run the TUF conformance suite against trustctl (``make test`` runs this).

    python scripts/conformance.py setup --suite DIR --venv DIR   # the suite's own venv
    python scripts/conformance.py run --suite DIR --venv DIR     # both modes

The suite (``tuf-conformance``, MIT, used unmodified and read-only) pins its own
python-tuf and pytest, so it runs from its own virtual environment; it is never
written to (no cache provider, no bytecode). It runs twice against
``python -m trustctl.conformance`` (see that module):

* ``fresh``: a new process and a new ``Verifier`` for every command;
* ``kept``: one keeper process keeps one ``Verifier`` per test across its commands;
  its clock follows each command's ``faketime`` through libfaketime.

Exits non-zero when the suite fails in either mode. Needs Debian's ``faketime``.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT = [sys.executable, "-m", "trustctl.conformance"]


def setup(suite: Path, venv: Path) -> int:
    deps = tomllib.loads((suite / "pyproject.toml").read_text())["project"]["dependencies"]
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, *deps], check=True)
    (venv / ".installed").write_text("\n".join(deps) + "\n")
    return 0


def _libfaketime() -> str:
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1")) + sorted(
        glob.glob("/usr/lib/faketime/libfaketime.so.1")
    )
    if not found or shutil.which("faketime") is None:
        sys.exit(
            "the TUF conformance suite needs faketime and libfaketime: "
            "apt-get install faketime (scripts/install-system-deps.sh)"
        )
    return found[0]


def _pytest(suite: Path, venv: Path, entrypoint: str, extra: list[str]) -> int:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [
        str(venv / "bin" / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--rootdir",
        str(suite),
        "-q",
        str(suite / "tuf_conformance"),
        "--entrypoint",
        entrypoint,
        *extra,
    ]
    return subprocess.run(cmd, cwd=suite, env=env, check=False).returncode


def run_mode(mode: str, suite: Path, venv: Path, extra: list[str]) -> int:
    entry = " ".join(CLIENT)
    if " " in sys.executable:
        sys.exit(
            "the conformance suite splits its --entrypoint on spaces: use a venv path without spaces"
        )
    if mode == "fresh":
        return _pytest(suite, venv, entry, extra)
    lib = _libfaketime()
    with tempfile.TemporaryDirectory(prefix="trustctl-keeper-") as tmp:
        sock = os.path.join(tmp, "keeper.sock")
        clock = os.path.join(tmp, "clock")
        env = {
            **os.environ,
            "LD_PRELOAD": lib,
            "FAKETIME_TIMESTAMP_FILE": clock,
            "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }
        Path(clock).write_text("+0\n")
        keeper = subprocess.Popen(
            [*CLIENT, "serve", sock, "--clock-file", clock], env=env, cwd=ROOT
        )
        try:
            for _ in range(200):
                if os.path.exists(sock) or keeper.poll() is not None:
                    break
                time.sleep(0.05)
            if not os.path.exists(sock):
                print("the conformance keeper did not start", file=sys.stderr)
                return 1
            return _pytest(suite, venv, f"{entry} --keeper {sock}", extra)
        finally:
            keeper.terminate()
            keeper.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["setup", "run"])
    parser.add_argument("--suite", type=Path, default=ROOT.parent / "shared" / "tuf-conformance")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-conformance")
    parser.add_argument("--mode", choices=["fresh", "kept", "both"], default="both")
    args, extra = parser.parse_known_args()
    suite = args.suite.resolve()
    if not (suite / "tuf_conformance").is_dir():
        sys.exit(f"the TUF conformance suite is not at {suite} (set CONFORMANCE=DIR)")
    if args.action == "setup":
        return setup(suite, args.venv.resolve())
    failed = []
    for mode in ["fresh", "kept"] if args.mode == "both" else [args.mode]:
        print(f"=== TUF conformance suite, {mode} mode (trustctl.conformance) ===", flush=True)
        if run_mode(mode, suite, args.venv.resolve(), extra) != 0:
            failed.append(mode)
    if failed:
        print(f"TUF conformance suite FAILED in mode(s): {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
