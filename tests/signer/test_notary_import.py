"""Decrypting notary-signer 0.7.0's private keys (compact JWE, PBES2-HS256+A128KW
and A256GCM, RFC 7516/7518); the real notary-signer's keys are imported in
tests/e2e/test_notary_migration.py."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from notary_signer.errors import SignerError
from notary_signer.notary_import import decrypt_jwe


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwe(
    plaintext: bytes,
    passphrase: str,
    alg: str = "PBES2-HS256+A128KW",
    p2c: int = 8192,
    header_p2c: int | None = None,
) -> str:
    salt = os.urandom(16)
    p2c_claim = p2c if header_p2c is None else header_p2c
    header = _b64(
        json.dumps({"alg": alg, "enc": "A256GCM", "p2c": p2c_claim, "p2s": _b64(salt)}).encode()
    )
    kek = PBKDF2HMAC(hashes.SHA256(), 16, alg.encode() + b"\0" + salt, p2c).derive(
        passphrase.encode()
    )
    cek, iv = os.urandom(32), os.urandom(12)
    sealed = AESGCM(cek).encrypt(iv, plaintext, header.encode())
    return ".".join(
        [header, _b64(aes_key_wrap(kek, cek)), _b64(iv), _b64(sealed[:-16]), _b64(sealed[-16:])]
    )


def test_a_notary_signer_jwe_decrypts_with_its_passphrase():
    assert (
        decrypt_jwe(jwe(b"secret key bytes", "alias passphrase"), "alias passphrase")
        == b"secret key bytes"
    )


def _tampered(token: str) -> str:
    parts = token.split(".")
    ct = bytearray(base64.urlsafe_b64decode(parts[3] + "=" * (-len(parts[3]) % 4)))
    ct[0] ^= 1
    parts[3] = _b64(bytes(ct))
    return ".".join(parts)


CASES = {
    "wrong-passphrase": (lambda: jwe(b"k", "right"), "wrong", "wrong passphrase"),
    "other-algorithm": (lambda: jwe(b"k", "p", alg="PBES2-HS512+A256KW"), "p", "unsupported JWE"),
    "absurd-iterations": (lambda: jwe(b"k", "p", header_p2c=0), "p", "iteration count"),
    "not-a-jwe": (lambda: "a.b.c", "p", "five parts"),
    "tampered-ciphertext": (lambda: _tampered(jwe(b"key bytes here", "p")), "p", "damaged"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_tokens_are_refused_by_name(case: str):
    make, passphrase, why = CASES[case]
    with pytest.raises(SignerError, match=why):
        decrypt_jwe(make(), passphrase)
