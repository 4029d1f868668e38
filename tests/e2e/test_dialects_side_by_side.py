"""One server, two dialects, real processes: a TUF 1.0 repository published with
trustctl and read by python-tuf's ngclient, and a Notary repository published and
read with the notary CLI 0.7.0, interleaved; neither disturbs the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.stacks import NOTARY_BIN, base_env, notary_available
from tests.client_view import HTTPSFetcher, judge
from tests.procs import ROOT, start_stack
from tests.secrets import remember

pytestmark = pytest.mark.e2e

TUF_GUN = "127.0.0.1:5000/tuf/app"
NOTARY_GUN = "127.0.0.1:5000/notary/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"


def test_a_tuf_repository_and_a_notary_repository_side_by_side(tmp_path: Path):
    if not notary_available():
        pytest.fail(
            "needs Debian's notary package (notary CLI 0.7.0): run scripts/install-system-deps.sh"
        )
    stack = start_stack(tmp_path / "stack")
    ca = stack.pki.ca_cert
    trustctl_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRUSTCTL_", "NOTARY_", "DOCKER_"))
    }
    trustctl_env.update(
        TRUSTCTL_SERVER=stack.url, TRUSTCTL_TLS_CA=str(ca), TRUSTCTL_TRUST_DIR=str(tmp_path / "trustctl"),
        TRUSTCTL_ROOT_PASSPHRASE=remember("side root passphrase"),
        TRUSTCTL_TARGETS_PASSPHRASE=remember("side targets passphrase"), DOCKER_CONFIG=str(tmp_path / "docker"),
    )  # fmt: skip
    notary_env = {**base_env(), **{f"NOTARY_{r}_PASSPHRASE": remember(f"side {r} passphrase")
                                   for r in ("ROOT", "TARGETS", "SNAPSHOT")}}  # fmt: skip
    config = tmp_path / "notary.json"
    config.write_text(json.dumps({"trust_dir": str(tmp_path / "notary"),
                                  "remote_server": {"url": stack.url, "root_ca": str(ca)}}))  # fmt: skip

    def trustctl(*args: str) -> str:
        p = subprocess.run([sys.executable, "-m", "trustctl", *args], env=trustctl_env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def notary(*args: str) -> str:
        p = subprocess.run([NOTARY_BIN, "-c", str(config), *args], env=notary_env, capture_output=True,
                           text=True, timeout=120, check=False)  # fmt: skip
        assert p.returncode == 0, p.stdout + p.stderr
        return p.stdout

    def sign(tag: str, digest: str) -> None:
        trustctl(
            "sign",
            f"{TUF_GUN}:{tag}",
            "--digest",
            f"sha256:{digest}",
            "--size",
            "10",
            "--media-type",
            MEDIA,
        )

    try:
        trustctl("init", TUF_GUN)
        notary("init", NOTARY_GUN, "-p")
        sign("v1", "1" * 64)
        notary("addhash", NOTARY_GUN, "n1", "3", "--sha256", "a" * 64, "-p")
        sign("v2", "2" * 64)
        notary("addhash", NOTARY_GUN, "n2", "4", "--sha256", "b" * 64, "-p")
        notary("key", "rotate", NOTARY_GUN, "snapshot", "-r")

        assert "v2" in trustctl("verify", "--no-registry-check", f"{TUF_GUN}:v2")
        root = tmp_path / "tuf-root.json"
        trustctl("trust", "export", TUF_GUN, "-o", str(root))
        fetcher = HTTPSFetcher(str(ca))
        for tag, digest in (("v1", "1" * 64), ("v2", "2" * 64)):
            found = judge(
                tmp_path / f"ngclient-{tag}", stack.url, TUF_GUN, tag, fetcher, root.read_bytes()
            )
            assert found is not None and found.hashes["sha256"] == digest
        fresh = subprocess.run(
            [NOTARY_BIN, "-d", str(tmp_path / "fresh"), "-s", stack.url, "--tlscacert", str(ca), "list", NOTARY_GUN],
            env=notary_env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert fresh.returncode == 0, fresh.stderr
        names = sorted(line.split()[0] for line in fresh.stdout.splitlines()[2:] if line.strip())
        assert names == ["n1", "n2"]
        # each client refuses the other dialect's repository instead of misreading it
        other = subprocess.run(
            [NOTARY_BIN, "-d", str(tmp_path / "fresh2"), "-s", stack.url, "--tlscacert", str(ca), "list", TUF_GUN],
            env=notary_env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert other.returncode == 1
    finally:
        stack.stop()
