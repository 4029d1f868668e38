"""``trustctl gate serve`` as a real process on 127.0.0.1, and ``gate manifest``."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import urllib3
import yaml

from notary_signer.devcerts import DevPKI, ensure_dev_pki
from tests.procs import ROOT, free_port
from tests.trustctl.apiserver import ApiServer, Webhook
from tests.trustctl.gatekit import workload

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


@pytest.fixture
def gate_process(tmp_path: Path, pki: DevPKI) -> Iterator[str]:
    (tmp_path / "policy.yaml").write_text(POLICY)
    port = free_port()
    log = (tmp_path / "gate.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "trustctl", "--trust-dir", str(tmp_path / "trust"), "gate", "serve",
         "--policy", str(tmp_path / "policy.yaml"), "--listen", f"127.0.0.1:{port}",
         "--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(pki.ca_cert), retries=False)
    base = f"https://127.0.0.1:{port}"
    try:
        for _ in range(100):
            assert proc.poll() is None, (tmp_path / "gate.log").read_text()
            try:
                if pool.request("GET", f"{base}/healthz", timeout=1).status == 200:
                    break
            except urllib3.exceptions.HTTPError:
                time.sleep(0.2)
        yield base
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_served_gate_denies_and_refuses_malformed_reviews(gate_process: str, pki: DevPKI) -> None:
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
    run = trustctl("gate", "manifest", "--image", "r.io/gate:1", "--ca-bundle", str(pki.ca_cert), tmp=tmp_path)
    assert run.returncode == 0, run
    docs = list(yaml.safe_load_all(run.stdout))
    assert [d["kind"] for d in docs] == ["Deployment", "Service", "MutatingWebhookConfiguration",
                                         "ValidatingWebhookConfiguration"]  # fmt: skip
    assert docs[3]["webhooks"][0]["clientConfig"]["caBundle"]
