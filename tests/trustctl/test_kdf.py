"""Decrypting the signing key in a background thread (``sign`` overlaps it with I/O)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from trustctl.errors import WrongPassphraseError
from trustctl.kdf import Derivation, decrypt, pbes2_params
from trustctl.keyformat import encrypt_pkcs8
from trustctl.keys import PREFETCH_MIN_ITERATIONS, KeyStore, PassphraseSource

ITERATIONS = PREFETCH_MIN_ITERATIONS  # the smallest work factor worth a thread


def test_parameters_round_trip_and_a_wrong_key_opens_nothing() -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    params = pbes2_params(encrypt_pkcs8(private, "pw", 1000))
    assert params is not None and params.iterations == 1000 and len(params.iv) == 16
    key = Derivation("pw", params).key()
    assert key is not None
    opened = decrypt(params, key)
    assert opened is not None and opened.private_numbers() == private.private_numbers()
    assert decrypt(params, bytes(32)) is None
    assert pbes2_params(b"\x30\x03\x02\x01\x00") is None  # not PBES2: no shortcut


def _store(tmp_path: Path, passphrase: str) -> KeyStore:
    env = {"TRUSTCTL_TARGETS_PASSPHRASE": passphrase}
    return KeyStore(tmp_path / "private", PassphraseSource(env), kdf_iterations=ITERATIONS)


def test_a_prefetched_key_signs_like_a_loaded_one(tmp_path: Path) -> None:
    info = _store(tmp_path, "right").generate("targets", gun="reg.io/app", name="bins")
    store = _store(tmp_path, "right")  # a new process: nothing decrypted yet
    assert store.likely_signing_key("reg.io/app") == info.keyid
    assert store.prefetch(info.keyid) is True
    signature = store.signer(info.keyid).sign(b"payload")
    assert info.public.verify_signature(signature, b"payload") is None


def test_a_wrong_passphrase_still_fails_plainly(tmp_path: Path) -> None:
    info = _store(tmp_path, "right").generate("targets", gun="reg.io/app", name="bins")
    store = _store(tmp_path, "wrong")
    assert store.prefetch(info.keyid) is True
    with pytest.raises(WrongPassphraseError):
        store.signer(info.keyid)


def test_no_prefetch_without_a_passphrase_in_the_environment(tmp_path: Path) -> None:
    info = _store(tmp_path, "right").generate("targets", gun="reg.io/app")
    store = KeyStore(tmp_path / "private", PassphraseSource({}), kdf_iterations=ITERATIONS)
    assert store.prefetch(info.keyid) is False  # it never prompts from a thread


def test_a_key_file_is_opened_once_per_store_however_many_signatures(tmp_path: Path) -> None:
    info = _store(tmp_path, "right").generate("targets", gun="reg.io/app", name="bins")
    store = _store(tmp_path, "right")  # one command
    assert store.prefetch(info.keyid) is True
    first = store.signer(info.keyid)
    info.path.unlink()  # a second derivation would have to read the file again
    for i in range(20):
        signer = store.signer(info.keyid)
        assert signer is first
        assert info.public.verify_signature(signer.sign(b"tag %d" % i), b"tag %d" % i) is None
    assert store.prefetch(info.keyid) is False  # nothing left to derive
