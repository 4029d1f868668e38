"""Offline bundles: made from the real trust server (in process), imported whole or not
at all, and the gate deciding from them with no request to the trust server."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import urllib3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.secrets import remember
from tests.trustctl.gatekit import (
    GUN,
    SIGNED,
    SIGNED_DIGEST,
    UNSIGNED,
    GateUnderTest,
    ok,
    pod_spec,
    sign,
    start_gate,
    workload,
)  # fmt: skip
from tests.trustctl.support import SERVER_URL, FlaskTransport, Person
from trustctl.client import ServerClient
from trustctl.gate.bundle import (
    BundleRefusedError,
    BundleStore,
    BundleTransport,
    Manifest,
    create_bundle,
)  # fmt: skip
from trustctl.gate.collect import collect

MakePerson = Callable[..., Person]
KEY = Ed25519PrivateKey.generate()


@pytest.fixture
def owner(person: MakePerson, tmp_path: Path) -> Person:
    owner = person("owner")
    ok(owner.run("init", GUN))
    sign(owner, "v1", 1)
    ok(owner.run("trust", "export", GUN, "-o", str(tmp_path / "root.json")))
    return owner


@pytest.fixture
def files(owner: Person, server: FlaskTransport) -> dict[str, bytes]:
    client = ServerClient(SERVER_URL, server)
    return collect(lambda name: client.get_file(GUN, name))


@pytest.fixture
def store(tmp_path: Path) -> BundleStore:
    return BundleStore(tmp_path / "bundles", [KEY.public_key()])


@pytest.fixture
def offline_gate(
    tmp_path: Path,
    person: MakePerson,
    files: dict[str, bytes],
    store: BundleStore,
    server: FlaskTransport,
) -> Iterator[tuple[GateUnderTest, Manifest]]:
    manifest = store.import_bundle(create_bundle({GUN: files}, key=KEY, sequence=1))
    d = person("deployer", server_transport=server)
    ok(d.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    g = start_gate(tmp_path, d.trust_dir, BundleTransport(store), bundle=store)
    server.requests.clear()
    yield g, manifest
    g.stop()


def test_the_gate_decides_from_the_bundle_with_no_request_to_the_trust_server(
    offline_gate: tuple[GateUnderTest, Manifest], server: FlaskTransport
) -> None:
    g, _ = offline_gate
    result = g.admit(workload("Deployment", pod_spec(SIGNED)))
    assert result.allowed, result
    assert (
        result.object["spec"]["template"]["spec"]["containers"][0]["image"]
        == f"{SIGNED}@{SIGNED_DIGEST}"
    )
    denied = g.admit(workload("Pod", pod_spec(UNSIGNED)))
    assert not denied.allowed and "NOT_SIGNED" in denied.message
    assert server.requests == []  # not one request reached the trust server
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(g.pki.ca_cert))
    metrics = pool.request("GET", f"https://127.0.0.1:{g.server.port}/metrics").data.decode()
    assert (
        "trustctl_gate_bundle_sequence 1" in metrics
        and "trustctl_gate_bundle_seconds_to_stale" in metrics
    )
    assert g.transport.calls > 0  # every metadata file came from the bundle


def test_allowed_before_not_after_and_denied_after_it(
    offline_gate: tuple[GateUnderTest, Manifest],
) -> None:
    g, manifest = offline_gate
    now = datetime.now(UTC)
    fresh = g.admit(workload("Pod", pod_spec(SIGNED)))
    assert fresh.allowed and fresh.warnings == []
    g.clock.offset = manifest.not_after - now - timedelta(seconds=1)
    late = g.admit(workload("Pod", pod_spec(SIGNED)))
    assert late.allowed, late
    assert len(late.warnings) == 1 and f"bundle {manifest.sequence} goes stale" in late.warnings[0]
    g.clock.offset = manifest.not_after - now + timedelta(seconds=1)
    result = g.admit(workload("Pod", pod_spec(SIGNED)))
    assert not result.allowed
    assert "BUNDLE_STALE" in result.message and f"sequence {manifest.sequence}" in result.message


def test_not_after_is_the_earliest_expiry_inside_or_the_budget(files: dict[str, bytes]) -> None:
    expiries = [datetime.strptime(json.loads(b)["signed"]["expires"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
                for b in files.values()]  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    long = Manifest.parse(
        _member(
            create_bundle({GUN: files}, key=KEY, sequence=1, budget=timedelta(days=90), now=now),
            "manifest.json",
        )
    )
    assert long.not_after == min(expiries)  # the bundle never extends an expiry
    short = Manifest.parse(
        _member(
            create_bundle({GUN: files}, key=KEY, sequence=1, budget=timedelta(hours=1), now=now),
            "manifest.json",
        )
    )
    assert short.not_after == now + timedelta(hours=1)


def _meta(version: int, expires: datetime, kind: str = "root") -> bytes:
    """A metadata file as far as a bundle's expiry reads it."""
    stamp = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"signed": {"_type": kind, "version": version, "expires": stamp}}).encode()


@pytest.mark.parametrize(
    ("newest_root", "older_roots"),
    [
        pytest.param("3.root.json", ["1.root.json", "2.root.json"], id="tuf-root-chain"),
        pytest.param("root.json", ["1.root.json", "2.root.json"], id="notary-root-walk"),
    ],
)
def test_an_older_roots_expiry_does_not_make_a_bundle_stale_at_birth(
    newest_root: str, older_roots: list[str]
) -> None:
    """A client reads the roots before the newest only to follow rotations, never
    checking their expiry (python-tuf's and Notary's workflows alike): a repository
    whose first root expired long ago still verifies, and so must its bundle."""
    now = datetime.now(UTC).replace(microsecond=0)
    files = {name: _meta(v, now - timedelta(days=30 * v)) for v, name in enumerate(older_roots, 1)}
    files[newest_root] = _meta(3, now + timedelta(days=365))
    files["timestamp.json"] = _meta(9, now + timedelta(days=1), "timestamp")
    bundle = create_bundle({GUN: files}, key=KEY, sequence=1, budget=timedelta(days=7), now=now)
    manifest = Manifest.parse(_member(bundle, "manifest.json"))
    assert manifest.not_after == now + timedelta(days=1)  # the timestamp's, not a past root's
    files[newest_root] = _meta(3, now + timedelta(hours=2))
    bundle = create_bundle({GUN: files}, key=KEY, sequence=1, budget=timedelta(days=7), now=now)
    assert Manifest.parse(_member(bundle, "manifest.json")).not_after == now + timedelta(hours=2)


def _member(bundle: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read()


def _rewrite(bundle: bytes, change: Callable[[str, bytes], bytes | None]) -> bytes:
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as src,
        tarfile.open(fileobj=out, mode="w:gz") as dst,
    ):
        for info in src:
            f = src.extractfile(info)
            assert f is not None
            data = change(info.name, f.read())
            if data is None:
                continue
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _tamper(name: str, data: bytes) -> bytes:
    return data.replace(b'"version"', b'"version" ', 1) if name.endswith("timestamp.json") else data


@pytest.mark.parametrize(
    ("make", "words"),
    [
        pytest.param(lambda f: create_bundle({GUN: f}, key=KEY, sequence=1), "not above 2", id="older-sequence"),
        pytest.param(lambda f: create_bundle({GUN: f}, key=KEY, sequence=2), "not above 2", id="same-sequence"),
        pytest.param(lambda f: _rewrite(create_bundle({GUN: f}, key=KEY, sequence=3), _tamper), "tampered", id="tampered-byte"),
        pytest.param(lambda f: _rewrite(create_bundle({GUN: f}, key=KEY, sequence=3),
                                        lambda n, d: None if n == "manifest.sig" else d), "no signed manifest", id="unsigned-manifest"),
        pytest.param(lambda f: create_bundle({GUN: f}, key=Ed25519PrivateKey.generate(), sequence=3),
                     "not signed by a pinned bundle key", id="unknown-key"),
        pytest.param(lambda f: _rewrite(create_bundle({GUN: f}, key=KEY, sequence=3),
                                        lambda n, d: None if n.endswith("timestamp.json") else d), "differ", id="file-missing"),
        pytest.param(lambda f: b"not a tar", "not a readable tar.gz", id="not-a-bundle"),
    ],
)  # fmt: skip
def test_a_refused_import_changes_nothing(
    store: BundleStore,
    files: dict[str, bytes],
    make: Callable[[dict[str, bytes]], bytes],
    words: str,
) -> None:
    store.import_bundle(create_bundle({GUN: files}, key=KEY, sequence=2))
    before = store.current()
    listing = sorted(p.relative_to(store.directory) for p in store.directory.rglob("*"))
    with pytest.raises(BundleRefusedError, match=words):
        store.import_bundle(make(files))
    assert store.current() == before
    assert sorted(p.relative_to(store.directory) for p in store.directory.rglob("*")) == listing


def test_a_newer_bundle_takes_over(store: BundleStore, files: dict[str, bytes]) -> None:
    store.import_bundle(create_bundle({GUN: files}, key=KEY, sequence=1))
    assert store.import_bundle(create_bundle({GUN: files}, key=KEY, sequence=5)).sequence == 5
    current = store.current()
    assert current is not None and current.sequence == 5


def test_bundle_create_and_import_bundle_commands(owner: Person, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    pem = KEY.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"bundle passphrase"))  # fmt: skip
    (tmp_path / "bundle-key.pem").write_bytes(pem)
    (tmp_path / "bundle-pub.pem").write_bytes(KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    out = tmp_path / "gate-bundle.tgz"
    env = {"TRUSTCTL_BUNDLE_PASSPHRASE": remember("bundle passphrase")}
    ok(owner.run("bundle", "create", "--gun", GUN, "--key", str(tmp_path / "bundle-key.pem"),
                 "--sequence", "4", "--budget", "2d", "-o", str(out), env=env))  # fmt: skip
    imported = ok(owner.run("gate", "import-bundle", str(out), "--bundle-dir", str(tmp_path / "b"),
                            "--bundle-key", str(tmp_path / "bundle-pub.pem")))  # fmt: skip
    assert "imported bundle sequence 4" in imported.stdout + imported.stderr
    again = owner.run("gate", "import-bundle", str(out), "--bundle-dir", str(tmp_path / "b"),
                      "--bundle-key", str(tmp_path / "bundle-pub.pem"))  # fmt: skip
    assert again.exit_code == 1
    assert "not above 4" in again.stderr and "Traceback" not in again.stderr


DRIVER = r"""
import json, os, signal, socket, subprocess, sys, threading, time
sys.path.insert(0, sys.argv[1])
from tests.trustctl.apiserver import ApiServer, Webhook

root, tmp, trust_port, gate_port, image_ok, image_bad = sys.argv[1:7]
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
attempts = []
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", int(trust_port)))
listener.listen(64)

def accept():
    while True:
        conn, _ = listener.accept()
        attempts.append(1)
        conn.close()

threading.Thread(target=accept, daemon=True).start()
gate = subprocess.Popen(
    [sys.executable, "-m", "trustctl", "--trust-dir", f"{tmp}/gate-trust", "gate", "serve",
     "--policy", f"{tmp}/policy.yaml", "--listen", f"127.0.0.1:{gate_port}",
     "--tls-cert", f"{tmp}/gate-pki/server.pem", "--tls-key", f"{tmp}/gate-pki/server-key.pem",
     "--offline-bundle-dir", f"{tmp}/bundles"],
    cwd=root, stdout=open(f"{tmp}/gate.log", "wb"), stderr=subprocess.STDOUT)
base = f"https://127.0.0.1:{gate_port}"
ca = f"{tmp}/gate-pki/dev-ca.pem"
api = ApiServer([Webhook("pin", f"{base}/mutate", ca, True)], [Webhook("verify", f"{base}/validate", ca, False)])
import urllib3
pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=ca, retries=False)
for _ in range(150):
    try:
        pool.request("GET", f"{base}/healthz", timeout=1)
        break
    except urllib3.exceptions.HTTPError:
        time.sleep(0.2)
pod = lambda image: {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                     "spec": {"containers": [{"name": "a", "image": image}]}}
ok = api.admit(pod(image_ok))
bad = api.admit(pod(image_bad))
routes = subprocess.run(["ip", "route"], capture_output=True, text=True).stdout
gate.send_signal(signal.SIGKILL)
gate.wait()
print(json.dumps({"allowed": ok.allowed, "image": ok.object["spec"]["containers"][0]["image"],
                  "ok_message": ok.message, "bad_allowed": bad.allowed, "bad_message": bad.message,
                  "attempts": len(attempts), "routes": routes}))
"""


@pytest.mark.e2e
def test_offline_in_a_network_namespace_with_no_route(
    tmp_path: Path,
    person: MakePerson,
    files: dict[str, bytes],
    store: BundleStore,
    server: FlaskTransport,
) -> None:
    """The gate process runs in a network namespace with loopback only; the policy's
    trust server address has a listener there that counts connections: none come."""
    import shutil
    import subprocess
    import sys

    from notary_signer.devcerts import ensure_dev_pki
    from tests.procs import ROOT

    assert shutil.which("unshare") and shutil.which("ip"), "install util-linux and iproute2"
    store.import_bundle(create_bundle({GUN: files}, key=KEY, sequence=1))
    d = person("deployer", server_transport=server)
    ok(d.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    shutil.move(str(d.trust_dir), str(tmp_path / "gate-trust"))
    ensure_dev_pki(tmp_path / "gate-pki")
    (tmp_path / "policy.yaml").write_text(
        f"version: 1\nservers:\n  main: {{url: 'https://127.0.0.1:9443'}}\n"
        f"rules:\n  - pattern: '{GUN}'\n    server: main\n"
    )
    (tmp_path / "driver.py").write_text(DRIVER)
    run = subprocess.run(
        ["unshare", "-n", sys.executable, str(tmp_path / "driver.py"), str(ROOT), str(tmp_path),
         "9443", "8443", SIGNED, UNSIGNED],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["allowed"], (out, (tmp_path / "gate.log").read_text()[-2000:])
    assert out["image"] == f"{SIGNED}@{SIGNED_DIGEST}"
    assert not out["bad_allowed"] and "NOT_SIGNED" in out["bad_message"]
    assert out["attempts"] == 0
    assert "default" not in out["routes"]  # loopback only: no route anywhere else


def test_kill_9_during_an_import_leaves_the_previous_bundle_in_force(
    tmp_path: Path, store: BundleStore, files: dict[str, bytes]
) -> None:
    """``gate import-bundle`` is killed while it writes the new bundle (its staging
    directory exists): the bundle in force is still the previous one, whole; a later
    import succeeds."""
    import os
    import signal
    import subprocess
    import sys

    from cryptography.hazmat.primitives import serialization

    from tests.procs import ROOT

    many = {GUN: files, **{f"{GUN}-copy{i}": files for i in range(80)}}  # a slow enough write
    store.import_bundle(create_bundle(many, key=KEY, sequence=1))
    pub = tmp_path / "bundle-pub.pem"
    pub.write_bytes(KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    killed_mid_import = 0
    sequence = 1
    for attempt in range(2, 30):
        path = tmp_path / f"bundle-{attempt}.tgz"
        path.write_bytes(create_bundle(many, key=KEY, sequence=attempt))
        proc = subprocess.Popen(
            [sys.executable, "-m", "trustctl", "gate", "import-bundle", str(path),
             "--bundle-dir", str(store.directory), "--bundle-key", str(pub)],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        while proc.poll() is None and not any(store.directory.glob(".incoming-*/metadata/*/*/*")):
            pass
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        current = store.current()
        assert current is not None
        if current.sequence == sequence:  # the kill came before the swap
            killed_mid_import += 1
        else:
            assert current.sequence == attempt  # the import had finished: whole and in force
            sequence = attempt
        for name, meta in current.files.items():  # the bundle in force is whole
            assert len((store.current_dir / "metadata" / name).read_bytes()) == meta["length"]
        if killed_mid_import >= 2:
            break
    assert killed_mid_import >= 2, "no kill landed during an import"
    final = store.import_bundle(create_bundle({GUN: files}, key=KEY, sequence=100))
    assert final.sequence == 100 and store.current() == final
