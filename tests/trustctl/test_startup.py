"""Lean start-up: each command imports only what it needs.

A fresh ``python -m trustctl`` pays for every module it imports, on every deploy.
These tests run the CLI in a clean interpreter and look at ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.trustctl.support import Person, Run

ROOT = Path(__file__).resolve().parents[2]
GUN = "127.0.0.1:5999/lean/app"
PROBE = """
import json, sys
from trustctl.cli import main
code = main(sys.argv[1:], standalone_mode=False)
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*args: str) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    return doc["code"], set(doc["modules"])


def ok(run: Run) -> None:
    assert run.exit_code == 0, str(run)


def test_version_and_help_load_no_tuf_http_or_crypto() -> None:
    for args in (["--version"], ["--help"], ["verify", "--help"], ["key", "rotate", "--help"]):
        code, modules = loaded(*args)
        assert code == 0
        heavy = {
            m
            for m in modules
            if m.split(".")[0] in {"tuf", "urllib3", "cryptography", "securesystemslib"}
        }
        assert not heavy, (args, sorted(heavy)[:10])


def test_verify_loads_no_key_store_publisher_or_skopeo(
    person: Callable[..., Person], tmp_path: Path
) -> None:
    owner = person("owner")
    ok(owner.run("init", GUN))
    ok(owner.run("trust", "export", GUN, "-o", str(tmp_path / "root.json")))
    deployer = person("deployer")
    ok(deployer.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    # a server that refuses connections: verify goes all the way to the network
    code, modules = loaded(
        "--trust-dir",
        str(deployer.trust_dir),
        "--server",
        "https://127.0.0.1:9",
        "--retry-budget",  # refused at once: no 30 s of retries
        "0",
        "verify",
        f"{GUN}:v1",
        "--no-registry-check",
    )
    assert code == 3
    assert {"trustctl.tufview", "tuf.ngclient"} <= modules  # it did run the TUF client
    unneeded = {
        "trustctl.keys",
        "trustctl.keyformat",
        "trustctl.repo",
        "trustctl.edits",
        "trustctl.admin",
        "trustctl.copy",
        "trustctl.registry",
        "trustctl.commands.admin",
        "trustctl.commands.keys",
        "trustctl.commands.signers",
        "cryptography.hazmat.primitives.kdf.pbkdf2",
        "trustctl.notary.verify",  # a pinned TUF root: no Notary support, no X.509 code
        "cryptography.x509",
    }
    assert not unneeded & modules, sorted(unneeded & modules)


def test_option_choices_match_the_key_store() -> None:
    from trustctl.commands._common import ALGORITHMS, KEY_ROLES
    from trustctl.keys import ALGORITHMS as KEY_ALGORITHMS
    from trustctl.keys import ROLES

    assert (ALGORITHMS, KEY_ROLES) == (KEY_ALGORITHMS, ROLES)
