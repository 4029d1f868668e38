"""A real ``python -m notary_signer serve`` process on 127.0.0.1, mutual TLS.

One signer process serves the whole module (started once, stopped by pid at the
end). The scenarios are what an attacker on the network or on a compromised trust
server would try.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from securesystemslib.signer import Key
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

from notary_signer.client import RemoteSigner, SignerClient
from notary_signer.crypto import KeyEncryptor
from notary_signer.db import make_engine
from notary_signer.devcerts import DevPKI, ensure_dev_pki
from notary_signer.errors import KeyNotFoundError, SignerRefusedError, SignerUnavailableError
from notary_signer.keystore.sql import SQLKeyStore
from tests.secrets import remember, remember_key

from .conftest import GUN, OTHER_GUN, private_needles, root_payload, soon, targets_payload

pytestmark = pytest.mark.e2e

PASSPHRASE = remember("process test passphrase (test only)")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningSigner:
    url: str
    pki: DevPKI
    other_pki: DevPKI
    directory: Path
    proc: subprocess.Popen[bytes]

    def client(
        self, pki: DevPKI | None = None, *, cert: Path | None = None, key: Path | None = None
    ) -> SignerClient:
        pki = pki or self.pki
        return SignerClient(
            self.url,
            ca_file=str(self.pki.ca_cert),  # always trust the real signer's CA
            cert_file=str(cert or pki.client_cert),
            key_file=str(key or pki.client_key),
            timeout=3.0,
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSigner]:
    tmp = tmp_path_factory.mktemp("signer-process")
    pki = ensure_dev_pki(tmp / "pki")
    other_pki = ensure_dev_pki(tmp / "other-pki")  # a different CA entirely
    port = _free_port()
    (tmp / "signer.toml").write_text(
        "host = '127.0.0.1'\n"
        f"port = {port}\n"
        "tls_cert_file = 'pki/signer.pem'\n"  # relative to the config file
        "tls_key_file = 'pki/signer-key.pem'\n"
        "client_ca_file = 'pki/dev-ca.pem'\n"
        f"database_url = 'sqlite:///{tmp / 'db' / 'signer.db'}'\n"
        "workers = 1\nthreads = 4\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTARY_")}
    env.update(NOTARY_SIGNER_DEFAULT=PASSPHRASE, PYTHONPATH=str(ROOT))
    log = (tmp / "signer.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "notary_signer", "serve", "--config", str(tmp / "signer.toml")],
        env=env,
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    running = RunningSigner(f"https://127.0.0.1:{port}", pki, other_pki, tmp, proc)
    try:
        _wait_healthy(running, tmp / "signer.log")
        yield running
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_healthy(running: RunningSigner, log: Path) -> None:
    client = running.client()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            pytest.fail(f"signer exited with {running.proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            client.check_health()
            return
        except SignerUnavailableError:
            time.sleep(0.1)
    pytest.fail(f"signer did not become healthy:\n{log.read_text()[-3000:]}")


def _timestamp() -> Metadata[Timestamp]:
    ts = Timestamp(version=3, expires=soon())
    ts.snapshot_meta = MetaFile(version=3)
    return Metadata(ts)


def test_create_sign_and_verify(signer: RunningSigner) -> None:
    client = signer.client()
    key = client.create_key(GUN, "timestamp")
    assert key.scheme == "ecdsa-sha2-nistp256"
    assert [k.keyid for k in client.list_keys(GUN, "timestamp")] == [key.keyid]
    md = _timestamp()
    md.sign(client.get_signer(GUN, "timestamp", key))
    key.verify_signature(md.signatures[key.keyid], md.signed_bytes)

    snap_key = client.create_key(GUN, "snapshot", "ed25519")
    snap = Metadata(Snapshot(expires=soon()))
    snap.sign(client.get_signer(GUN, "snapshot", snap_key))
    snap_key.verify_signature(snap.signatures[snap_key.keyid], snap.signed_bytes)
    assert client.get_key(snap_key.keyid) == snap_key


def test_explicit_ca_wins_over_environment(signer: RunningSigner) -> None:
    with pytest.MonkeyPatch.context() as mp:
        for var in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            mp.setenv(var, str(signer.other_pki.ca_cert))
        mp.setenv("SSL_CERT_DIR", str(signer.other_pki.directory))
        mp.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        signer.client().check_health()


def test_raw_tls_with_the_right_client_certificate_works(signer: RunningSigner) -> None:
    # positive control for the raw-socket refusals below
    ctx = ssl.create_default_context(cafile=str(signer.pki.ca_cert))
    ctx.load_cert_chain(str(signer.pki.client_cert), str(signer.pki.client_key))
    answer = _raw_get(ctx, signer.url)
    assert answer is not None and answer.startswith(b"HTTP/1.1 200")


def test_client_without_certificate_is_refused_by_tls(signer: RunningSigner) -> None:
    pool = urllib3.PoolManager(ca_certs=str(signer.pki.ca_cert), retries=False)
    with pytest.raises(urllib3.exceptions.HTTPError):  # no HTTP answer at all
        pool.request("GET", f"{signer.url}/health", timeout=3)
    # and at the socket level: the handshake is aborted by the signer
    ctx = ssl.create_default_context(cafile=str(signer.pki.ca_cert))
    assert _raw_get(ctx, signer.url) is None


def test_certificate_from_another_ca_is_refused(signer: RunningSigner) -> None:
    with pytest.raises(SignerUnavailableError):
        signer.client(signer.other_pki).check_health()
    ctx = ssl.create_default_context(cafile=str(signer.pki.ca_cert))
    ctx.load_cert_chain(str(signer.other_pki.client_cert), str(signer.other_pki.client_key))
    assert _raw_get(ctx, signer.url) is None


def test_server_only_certificate_cannot_authenticate_as_client(signer: RunningSigner) -> None:
    # The trust server's public TLS certificate (serverAuth only) is not a client identity.
    client = signer.client(cert=signer.pki.server_cert, key=signer.pki.server_key)
    with pytest.raises(SignerUnavailableError):
        client.check_health()


@pytest.mark.parametrize(
    ("payload", "role"),
    [
        (root_payload, "timestamp"),
        (targets_payload, "timestamp"),
        (root_payload, "root"),
        (targets_payload, "targets"),
    ],
    ids=["root payload", "targets payload", "root role", "targets role"],
)
def test_root_and_targets_payloads_are_refused(
    signer: RunningSigner, payload: Callable[[], bytes], role: str
) -> None:
    client = signer.client()
    key = client.create_key(GUN, "timestamp")
    with pytest.raises(SignerRefusedError):
        client.sign_payload(key.keyid, GUN, role, payload())
    with pytest.raises(SignerRefusedError):
        client.create_key(GUN, role if role != "timestamp" else "root")


def test_key_of_another_gun_is_refused(signer: RunningSigner) -> None:
    client = signer.client()
    key = client.create_key(OTHER_GUN, "timestamp")
    md = _timestamp()
    with pytest.raises(SignerRefusedError):
        RemoteSigner(key, GUN, "timestamp", client).sign(md.signed_bytes)
    with pytest.raises(
        UnsignedMetadataError
    ) as exc:  # what the trust server sees via Metadata.sign
        md.sign(client.get_signer(GUN, "timestamp", key))
    assert isinstance(exc.value.__cause__, SignerRefusedError)
    with pytest.raises(SignerRefusedError, match="belongs to gun"):
        client.sign_payload(key.keyid, GUN, "timestamp", _timestamp().signed_bytes)


def test_unknown_and_deleted_keys(signer: RunningSigner) -> None:
    client = signer.client()
    key = client.create_key(GUN, "snapshot")
    client.delete_key(key.keyid)
    with pytest.raises(KeyNotFoundError):
        client.get_key(key.keyid)
    with pytest.raises(KeyNotFoundError):
        client.sign_payload(key.keyid, GUN, "snapshot", b"{}")


def test_database_holds_no_plain_private_key(
    signer: RunningSigner, scan_files: Callable[[Path, list[bytes]], list[str]]
) -> None:
    client = signer.client()
    keys: list[Key] = [
        client.create_key(GUN, "timestamp"),
        client.create_key(GUN, "snapshot", "ed25519"),
    ]
    db_dir = signer.directory / "db"
    # decrypt with the operator's passphrase to learn what must NOT be in the files
    engine = make_engine(f"sqlite:///{db_dir / 'signer.db'}")
    store = SQLKeyStore(engine, KeyEncryptor({"NOTARY_SIGNER_DEFAULT": PASSPHRASE}))
    needles = [n for k in keys for n in private_needles(remember_key(store.signer(k.keyid)))]
    engine.dispose()
    assert scan_files(db_dir, needles) == []


def _raw_get(ctx: ssl.SSLContext, url: str) -> bytes | None:
    """Send a GET over a raw TLS socket; the HTTP answer, or None if TLS refused us."""
    host, port = url.removeprefix("https://").split(":")
    try:
        with (
            socket.create_connection((host, int(port)), timeout=3) as raw,
            ctx.wrap_socket(raw, server_hostname=host) as tls,
        ):
            tls.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return tls.recv(4096) or None
    except (ssl.SSLError, ConnectionError, TimeoutError):
        return None


def _batch_payloads(version: int = 2) -> tuple[bytes, bytes]:
    from .conftest import canonical

    snap = canonical(Snapshot(version=version, expires=soon(7)))
    ts = canonical(Timestamp(version=version, expires=soon(), snapshot_meta=MetaFile(version)))
    return snap, ts


def test_batch_over_mutual_tls_in_one_round_trip(signer: RunningSigner) -> None:
    client = signer.client()
    ts_key, snap_key = client.create_key(GUN, "timestamp"), client.create_key(GUN, "snapshot")
    snap, template = _batch_payloads()
    files = client.sign_batch(GUN, [ts_key], template, [snap_key], snap)
    assert files.snapshot is not None
    ts = Metadata[Timestamp].from_bytes(files.timestamp)
    ts.signed.snapshot_meta.verify_length_and_hashes(files.snapshot)
    ts_key.verify_signature(ts.signatures[ts_key.keyid], ts.signed_bytes)
    snapshot = Metadata[Snapshot].from_bytes(files.snapshot)
    snap_key.verify_signature(snapshot.signatures[snap_key.keyid], snapshot.signed_bytes)


def test_batch_policy_refusals_over_mutual_tls(signer: RunningSigner) -> None:
    client = signer.client()
    ts_key, snap_key = client.create_key(GUN, "timestamp"), client.create_key(GUN, "snapshot")
    other = client.create_key(OTHER_GUN, "timestamp")
    snap, template = _batch_payloads()
    with pytest.raises(SignerRefusedError):  # another GUN's key
        client.sign_batch(GUN, [other], template, [snap_key], snap)
    with pytest.raises(SignerRefusedError):  # a root payload where the snapshot goes
        client.sign_batch(GUN, [ts_key], template, [snap_key], root_payload())
    with pytest.raises(SignerRefusedError):  # a targets payload signed as the timestamp
        client.sign_batch(GUN, [ts_key], targets_payload())
    long_lived = (
        _batch_payloads()[0]
        .replace(b'"version":2', b'"version":2')
        .replace(soon(7).strftime("%Y").encode(), str(soon(7).year + 3).encode(), 1)
    )
    with pytest.raises(SignerRefusedError):  # lifetime cap
        client.sign_batch(GUN, [ts_key], template, [snap_key], long_lived)


def test_batch_needs_a_client_certificate_of_the_ca(signer: RunningSigner) -> None:
    client = signer.client()
    ts_key = client.create_key(GUN, "timestamp")
    _, template = _batch_payloads()
    with pytest.raises(SignerUnavailableError):
        signer.client(signer.other_pki).sign_batch(GUN, [ts_key], template)
    with pytest.raises(SignerUnavailableError):
        signer.client(cert=signer.pki.server_cert, key=signer.pki.server_key).sign_batch(
            GUN, [ts_key], template
        )
