"""KeyService implementations: LocalKeyService in-process, RemoteSigner checks, SignerClient edges."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, Timestamp

from notary_signer.client import LocalKeyService, RemoteSigner, SignerClient
from notary_signer.crypto import KeyEncryptor
from notary_signer.devcerts import ensure_dev_pki
from notary_signer.errors import (
    ConfigError,
    KeyNotFoundError,
    SignerRefusedError,
    SignerUnavailableError,
)
from notary_signer.keyservice import KeyService
from notary_signer.keystore.memory import MemoryKeyStore

from .conftest import GUN, OTHER_GUN, root_payload, soon


@pytest.fixture
def keys(encryptor: KeyEncryptor) -> LocalKeyService:
    return LocalKeyService(MemoryKeyStore(encryptor=encryptor))


def test_local_key_service_signs_tuf_metadata(keys: LocalKeyService) -> None:
    service: KeyService = keys
    key = service.create_key(GUN, "timestamp")
    assert [k.keyid for k in service.list_keys(GUN, "timestamp")] == [key.keyid]
    md = Metadata(Timestamp(expires=soon()))
    md.sign(service.get_signer(GUN, "timestamp", key))
    key.verify_signature(md.signatures[key.keyid], md.signed_bytes)
    service.check_health()


def test_local_key_service_applies_the_policy(keys: LocalKeyService) -> None:
    key = keys.create_key(GUN, "timestamp", "ed25519")
    with pytest.raises(SignerRefusedError):
        keys.get_signer(GUN, "timestamp", key).sign(root_payload())
    with pytest.raises(SignerRefusedError):
        keys.get_signer(OTHER_GUN, "timestamp", key).sign(root_payload())
    with pytest.raises(SignerRefusedError):
        keys.create_key(GUN, "root")
    stranger = CryptoSigner.generate_ed25519().public_key
    with pytest.raises(KeyNotFoundError):
        keys.get_signer(GUN, "timestamp", stranger).sign(b"{}")


def test_local_health_maps_to_unavailable(keys: LocalKeyService, env: dict[str, str]) -> None:
    env.clear()
    with pytest.raises(SignerUnavailableError):
        keys.check_health()


class LyingBackend:
    """A signer that answers with a signature by some other key."""

    def __init__(self) -> None:
        self.other = CryptoSigner.generate_ecdsa()

    def sign_payload(self, keyid: str, gun: str, role: str, payload: bytes) -> str:
        return self.other.sign(payload).signature


def test_remote_signer_never_trusts_the_remote() -> None:
    expected = CryptoSigner.generate_ecdsa().public_key
    signer = RemoteSigner(expected, GUN, "timestamp", LyingBackend())
    with pytest.raises(SignerUnavailableError, match="does not verify"):
        signer.sign(b"payload")
    assert signer.public_key == expected
    with pytest.raises(NotImplementedError):
        RemoteSigner.from_priv_key_uri("notary-signer:abc", expected)


def test_signer_client_refuses_plain_http() -> None:
    with pytest.raises(ConfigError, match="https"):
        SignerClient("http://127.0.0.1:7899", ca_file="ca", cert_file="c", key_file="k")


def test_signer_client_unreachable(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path / "pki")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = SignerClient(
        f"https://127.0.0.1:{port}",
        ca_file=str(pki.ca_cert),
        cert_file=str(pki.client_cert),
        key_file=str(pki.client_key),
        timeout=1.0,
    )
    with pytest.raises(SignerUnavailableError, match="unreachable"):
        client.check_health()
