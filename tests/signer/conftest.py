"""Fixtures for the signer's tests: passphrase environments, key stores, payloads."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import MetaFile, Root, Snapshot, Targets, Timestamp

from notary_signer.crypto import KeyEncryptor, ScryptParams
from tests.secrets import remember

#: Cheap scrypt cost for fixtures; tests of crypto.py use the production default.
FAST_KDF = ScryptParams(n=2**12)
GUN = "127.0.0.1:5000/library/app"
OTHER_GUN = "127.0.0.1:5000/library/other"


@dataclass
class StepClock:
    """Returns a strictly increasing time on every call (orders keys deterministically)."""

    now: datetime = field(default_factory=lambda: datetime(2030, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def env() -> dict[str, str]:
    """A passphrase environment (tests add and remove aliases in it)."""
    return {"NOTARY_SIGNER_DEFAULT": remember("first passphrase (test only)")}


@pytest.fixture
def encryptor(env: dict[str, str]) -> KeyEncryptor:
    return KeyEncryptor(env, alias="default", kdf=FAST_KDF)


def canonical(signed: Timestamp | Snapshot | Root | Targets) -> bytes:
    """The exact bytes python-tuf signs for ``signed``."""
    text = encode_canonical(signed.to_dict())
    assert isinstance(text, str)
    return text.encode()


def soon(days: float = 1) -> datetime:
    """An expiry inside the signer's lifetime cap, at whole seconds."""
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def timestamp_payload(version: int = 1, expires: datetime | None = None) -> bytes:
    ts = Timestamp(version=version, expires=expires or soon())
    ts.snapshot_meta = MetaFile(version=version)
    return canonical(ts)


def snapshot_payload(version: int = 1) -> bytes:
    return canonical(Snapshot(version=version, expires=soon(7)))


def root_payload() -> bytes:
    return canonical(Root(expires=datetime(2031, 1, 1, tzinfo=UTC)))


def targets_payload() -> bytes:
    return canonical(Targets(expires=datetime(2031, 1, 1, tzinfo=UTC)))


@pytest.fixture
def scan_files() -> Callable[[Path, list[bytes]], list[str]]:
    """Return which of ``needles`` occur in any file under a directory."""

    def scan(directory: Path, needles: list[bytes]) -> list[str]:
        found = []
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{path.name}: {n[:16]!r}" for n in needles if n in data]
        return found

    return scan


def private_needles(signer: CryptoSigner) -> list[bytes]:
    """Every form in which a leaked private key could show up in a file."""
    pem = signer.private_bytes
    key = load_pem_private_key(pem, password=None)
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        raw = key.private_numbers().private_value.to_bytes(32, "big")
    else:
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    return [b"PRIVATE KEY", pem, der, raw, base64.b64encode(der), raw.hex().encode()]
