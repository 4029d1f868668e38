"""``trustctl gate serve`` as a real process on 127.0.0.1, and ``gate manifest``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
import yaml

from notary_signer.devcerts import DevPKI, ensure_dev_pki
from tests.procs import ROOT, Stack, free_port, start_stack
from tests.trustctl.apiserver import ApiServer, Webhook
from tests.trustctl.gatekit import workload
from tests.trustctl.support import unique_repo
from tests.trustctl.test_e2e import FreezingProxy, User, handoff_root

pytestmark = pytest.mark.e2e  # `gate serve` runs as a real process

POLICY = """\
version: 1
servers:
  main: {url: "https://127.0.0.1:9"}
rules:
  - pattern: "127.0.0.1:5999/**"
    server: main
"""


def trustctl(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trustctl", "--trust-dir", str(tmp / "trust"), *args],
        check=False, capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip


@pytest.fixture
def pki(tmp_path: Path) -> DevPKI:
    return ensure_dev_pki(tmp_path / "pki")


class GateProcess:
    """``trustctl gate serve`` as a real process on 127.0.0.1; ``kill9()`` and ``start()``."""

    def __init__(self, tmp: Path, trust_dir: Path, pki: DevPKI) -> None:
        self.tmp, self.trust_dir, self.pki = tmp, trust_dir, pki
        self.port = free_port()
        self.base = f"https://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.pool = urllib3.PoolManager(
            cert_reqs="CERT_REQUIRED", ca_certs=str(pki.ca_cert), retries=False
        )

    def start(self) -> GateProcess:
        log = (self.tmp / "gate.log").open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "trustctl", "--trust-dir", str(self.trust_dir), "gate", "serve",
             "--policy", str(self.tmp / "policy.yaml"), "--listen", f"127.0.0.1:{self.port}",
             "--tls-cert", str(self.pki.server_cert), "--tls-key", str(self.pki.server_key)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        for _ in range(150):
            assert self.proc.poll() is None, (self.tmp / "gate.log").read_text()
            try:
                if self.pool.request("GET", f"{self.base}/healthz", timeout=1).status == 200:
                    return self
            except urllib3.exceptions.HTTPError:
                time.sleep(0.2)
        raise AssertionError(
            "the gate did not become healthy:\n" + (self.tmp / "gate.log").read_text()
        )

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def api(self) -> ApiServer:
        return ApiServer([Webhook("pin", f"{self.base}/mutate", self.pki.ca_cert, True)],
                         [Webhook("verify", f"{self.base}/validate", self.pki.ca_cert, False)])  # fmt: skip


@pytest.fixture
def gate_process(tmp_path: Path, pki: DevPKI) -> Iterator[str]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    g = GateProcess(tmp_path, tmp_path / "trust", pki).start()
    try:
        yield g.base
    finally:
        g.kill9()


def test_the_served_gate_denies_and_refuses_malformed_reviews(
    gate_process: str, pki: DevPKI
) -> None:
    api = ApiServer([Webhook("pin", f"{gate_process}/mutate", pki.ca_cert, True)],
                    [Webhook("verify", f"{gate_process}/validate", pki.ca_cert, False)])  # fmt: skip
    pod = workload("Pod", {"containers": [{"name": "a", "image": "127.0.0.1:5999/app:v1"}]})
    result = api.admit(pod)
    assert not result.allowed
    assert "NO_PINNED_ROOT" in result.message and "repository 127.0.0.1:5999/app" in result.message
    other = workload("Pod", {"containers": [{"name": "a", "image": "quay.io/app:v1"}]})
    assert "NO_RULE" in api.admit(other).message
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(pki.ca_cert))
    r = pool.request("POST", f"{gate_process}/validate", body=b"not json",
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status == 400 and b"BAD_REVIEW" in r.data


def test_an_invalid_policy_stops_the_gate_naming_the_line(tmp_path: Path, pki: DevPKI) -> None:
    (tmp_path / "policy.yaml").write_text(POLICY + "    mode: strict\n")
    run = trustctl("gate", "serve", "--policy", str(tmp_path / "policy.yaml"), "--listen", "127.0.0.1:0",
                   "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), tmp=tmp_path)  # fmt: skip
    assert run.returncode == 2, run
    assert f"{tmp_path / 'policy.yaml'}:7: rule: mode must be one of" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_manifest_command_prints_four_objects(tmp_path: Path, pki: DevPKI) -> None:
    run = trustctl(
        "gate", "manifest", "--image", "r.io/gate:1", "--ca-bundle", str(pki.ca_cert), tmp=tmp_path
    )
    assert run.returncode == 0, run
    docs = list(yaml.safe_load_all(run.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "MutatingWebhookConfiguration",
                                         "ValidatingWebhookConfiguration"]  # fmt: skip
    assert docs[3]["webhooks"][0]["clientConfig"]["caBundle"]


# --- state across kill -9 (the real trust server and signer processes) ---------------


MEDIA = "application/vnd.oci.image.manifest.v1+json"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, FreezingProxy]]:
    """A real server and signer, with a freezing proxy in front (shared by the module)."""
    s = start_stack(tmp_path_factory.mktemp("stack"))
    proxy = FreezingProxy(s.url, s.pki.ca_cert)
    try:
        yield s, proxy
    finally:
        proxy.server.stop()
        s.stop()


@dataclass
class Restartable:
    gun: str
    proxy: FreezingProxy
    owner: User
    gate: GateProcess

    def sign(self, tag: str, n: int) -> None:
        digest = f"sha256:{n:064x}"
        self.owner.ok(
            "sign", f"{self.gun}:{tag}", "--digest", digest, "--size", "10", "--media-type", MEDIA
        )

    def pod(self, tag: str) -> dict[str, object]:
        return workload("Pod", {"containers": [{"name": "a", "image": f"{self.gun}:{tag}"}]})


@pytest.fixture
def signed_stack(
    stack: tuple[Stack, FreezingProxy], tmp_path: Path, pki: DevPKI
) -> Iterator[Restartable]:
    """A signed repository of the test's own and a gate process whose policy points at
    the proxy."""
    s, proxy = stack
    proxy.frozen = None
    gun = f"127.0.0.1:5999/{unique_repo('gate')}"
    owner = User("owner", tmp_path / "owner", s.url, s.pki.ca_cert)
    deployer = User("deployer", tmp_path / "gate-trust", proxy.server.url, s.pki.ca_cert)
    owner.ok("init", gun)
    handoff_root(owner, gun, deployer)
    (tmp_path / "policy.yaml").write_text(
        f"version: 1\nservers:\n  main: {{url: '{proxy.server.url}'}}\n"
        f"rules:\n  - pattern: '{gun}'\n    server: main\n"
    )
    r = Restartable(gun, proxy, owner, GateProcess(tmp_path, deployer.trust_dir, pki).start())
    r.sign("v1", 1)
    try:
        yield r
    finally:
        r.gate.kill9()
        proxy.frozen = None


def test_a_rollback_after_kill_9_and_restart_is_refused(signed_stack: Restartable) -> None:
    r = signed_stack
    proxy, gate, GUN = r.proxy, r.gate, r.gun
    result = gate.api().admit(r.pod("v1"))
    assert result.allowed, result
    assert result.object["spec"]["containers"][0]["image"] == f"{GUN}:v1@sha256:{1:064x}"
    old_timestamp = proxy.timestamps[-1]
    r.sign("v2", 2)
    assert gate.api().admit(r.pod("v2")).allowed  # the gate now trusts the newer state

    gate.kill9()
    proxy.frozen = old_timestamp  # an attacker replays what v1 was admitted with
    gate.start()
    result = gate.api().admit(r.pod("v1"))
    assert not result.allowed
    assert "ROLLBACK" in result.message and f"repository {GUN}" in result.message
    assert "rollback attack" in result.message


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("garbage-timestamp", id="timestamp-unreadable"),
        pytest.param("no-timestamp", id="timestamp-missing"),
        pytest.param("garbage-snapshot", id="snapshot-unreadable"),
    ],
)
def test_corrupt_state_next_to_a_cache_stops_allows_until_reinitialised(
    signed_stack: Restartable, damage: str
) -> None:
    r = signed_stack
    proxy, gate, owner, GUN = r.proxy, r.gate, r.owner, r.gun
    assert gate.api().admit(r.pod("v1")).allowed
    old_timestamp = proxy.timestamps[-1]
    r.sign("v2", 2)
    assert gate.api().admit(r.pod("v2")).allowed
    gate.kill9()

    cache = gate.trust_dir / "tuf" / GUN / "metadata"
    assert (cache / "timestamp.json").exists() and (cache / "snapshot.json").exists()
    if damage == "no-timestamp":
        (cache / "timestamp.json").unlink()
    else:
        (cache / f"{damage.split('-')[1]}.json").write_bytes(b"{ not json")
    proxy.frozen = old_timestamp  # with the state gone, a replay would go unnoticed
    gate.start()
    for tag in ("v1", "v1"):  # every request, not just the first
        result = gate.api().admit(r.pod(tag))
        assert not result.allowed, result
        assert "STATE_CORRUPT" in result.message and "re-initialises" in result.message

    # The operator re-initialises: re-pin the root (drops the cache); fresh data admits again.
    proxy.frozen = None
    deployer = User("deployer", gate.trust_dir, proxy.server.url, owner.ca)
    handoff_root(owner, GUN, deployer)
    assert gate.api().admit(r.pod("v2")).allowed
