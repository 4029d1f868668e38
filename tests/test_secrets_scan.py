"""The log scan of tests/secrets.py finds each kind of secret it promises to find."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from securesystemslib.signer import CryptoSigner

from tests import secrets

LINE = b"2026-01-01 INFO notary_server: published 127.0.0.1:5000/app targets v3 "
SHA256 = b"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def _der(key: object, fmt: PrivateFormat) -> bytes:
    return key.private_bytes(Encoding.DER, fmt, NoEncryption())  # type: ignore[attr-defined]


KEYS = {
    "ecdsa p-256": ec.generate_private_key(ec.SECP256R1()),
    "ecdsa p-384": ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
    "rsa 2048": rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
FORMATS = {"PKCS#8": PrivateFormat.PKCS8, "SEC 1 / PKCS#1": PrivateFormat.TraditionalOpenSSL}
DER = {
    f"{name}, {fmt_name}": _der(key, fmt)
    for name, key in KEYS.items()
    for fmt_name, fmt in FORMATS.items()
    if not (name == "ed25519" and fmt is PrivateFormat.TraditionalOpenSSL)
}


@pytest.mark.parametrize("der", DER.values(), ids=DER.keys())
@pytest.mark.parametrize(
    "encode", [base64.b64encode, lambda d: d.hex().encode()], ids=["base64", "hex"]
)
def test_any_der_private_key_is_found(der: bytes, encode: object) -> None:
    assert secrets.scan_bytes(LINE + encode(der) + b"\n")  # type: ignore[operator]


def test_a_remembered_keys_bare_value_is_found() -> None:
    signer = CryptoSigner.generate_ecdsa()
    secrets.remember_key(signer)
    raw = secrets.key_needles(signer)[0]  # the private scalar in hex: looks like a hash
    assert secrets.scan_bytes(LINE + raw + b"\n")
    assert secrets.scan_bytes(LINE + base64.b64encode(bytes.fromhex(raw.decode())) + b"\n")


def test_a_remembered_passphrase_is_found() -> None:
    secret = secrets.remember("scan self-test passphrase")
    assert secrets.scan_bytes(LINE + secret.encode() + b"\n")


@pytest.mark.parametrize(
    "text",
    [b"-----BEGIN EC PRIVATE KEY-----", b'{"private": "abc"}', b"passphrase=hunter2"],
    ids=["PEM", "securesystemslib JSON", "passphrase assignment"],
)
def test_known_shapes_are_found(text: bytes) -> None:
    assert secrets.scan_bytes(LINE + text + b"\n")


def test_public_material_and_hashes_are_not_findings() -> None:
    signer = CryptoSigner.generate_ecdsa()
    public = signer.public_key.keyval["public"].encode()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    spki = base64.b64encode(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo))
    assert secrets.scan_bytes(LINE + SHA256 + b" " + spki + b"\n" + public + b"\n") == []


def test_scan_logs_counts_lines_and_names_the_file() -> None:
    with tempfile.TemporaryDirectory() as d:  # outside pytest's base dir: not in the real scan
        base = Path(d)
        (base / "clean.log").write_bytes(LINE + b"\n" + LINE + b"\n")
        (base / "sub").mkdir()
        (base / "sub" / "leak.log").write_bytes(LINE + b"-----BEGIN PRIVATE KEY-----\n")
        (base / "ignored.txt").write_bytes(b"PRIVATE KEY\n")
        result = secrets.scan_logs(base)
    assert (result.files, result.lines) == (2, 3)
    assert [f.split(":")[0] for f in result.findings] == ["sub/leak.log"]
