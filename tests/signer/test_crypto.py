"""Private keys at rest: AES-256-GCM under a scrypt key named by a passphrase alias."""

from __future__ import annotations

import json

import pytest

from notary_signer.crypto import KeyEncryptor, ScryptParams, env_var_for_alias
from notary_signer.errors import PassphraseError, SignerError
from tests.secrets import remember

from .conftest import FAST_KDF

SECRET = b"0\x81\x87 pretend PKCS#8 DER private key bytes"
ROW = {"keyid": "ab" * 32, "gun": "reg.example/app", "role": "timestamp"}


def test_round_trip_with_production_kdf() -> None:
    enc = KeyEncryptor({"NOTARY_SIGNER_DEFAULT": remember("correct horse")})
    blob = enc.encrypt(SECRET, **ROW)
    assert SECRET not in blob
    doc = json.loads(blob)
    assert doc["v"] == 1 and doc["cipher"] == "AES-256-GCM" and doc["alias"] == "default"
    assert doc["kdf"] == {"name": "scrypt", "n": 2**15, "r": 8, "p": 1}
    assert enc.decrypt(blob, **ROW) == SECRET
    # a fresh process (no cache) decrypts it too
    assert KeyEncryptor({"NOTARY_SIGNER_DEFAULT": "correct horse"}).decrypt(blob, **ROW) == SECRET


def test_each_blob_has_its_own_nonce() -> None:
    enc = KeyEncryptor({"NOTARY_SIGNER_DEFAULT": "pw"}, kdf=FAST_KDF)
    first, second = enc.encrypt(SECRET, **ROW), enc.encrypt(SECRET, **ROW)
    assert json.loads(first)["nonce"] != json.loads(second)["nonce"]


def test_wrong_passphrase_is_refused() -> None:
    blob = KeyEncryptor({"NOTARY_SIGNER_DEFAULT": "right"}, kdf=FAST_KDF).encrypt(SECRET, **ROW)
    wrong = KeyEncryptor({"NOTARY_SIGNER_DEFAULT": "wrong"}, kdf=FAST_KDF)
    with pytest.raises(PassphraseError, match="NOTARY_SIGNER_DEFAULT") as exc:
        wrong.decrypt(blob, **ROW)
    assert "wrong" not in exc.value.message.replace("wrong passphrase", "")


def test_changed_passphrase_is_not_masked_by_the_cache() -> None:
    env = {"NOTARY_SIGNER_DEFAULT": "right"}
    enc = KeyEncryptor(env, kdf=FAST_KDF)
    blob = enc.encrypt(SECRET, **ROW)
    env["NOTARY_SIGNER_DEFAULT"] = "now different"
    with pytest.raises(PassphraseError):
        enc.decrypt(blob, **ROW)


@pytest.mark.parametrize(
    "other_row",
    [
        {**ROW, "keyid": "cd" * 32},
        {**ROW, "gun": "reg.example/other"},
        {**ROW, "role": "snapshot"},
    ],
    ids=["other keyid", "other gun", "other role"],
)
def test_blob_moved_to_another_row_does_not_decrypt(other_row: dict[str, str]) -> None:
    enc = KeyEncryptor({"NOTARY_SIGNER_DEFAULT": "pw"}, kdf=FAST_KDF)
    blob = enc.encrypt(SECRET, **ROW)
    with pytest.raises(PassphraseError, match="another row"):
        enc.decrypt(blob, **other_row)


def test_missing_alias_names_the_variable_never_a_value() -> None:
    env = {"NOTARY_SIGNER_DEFAULT": remember("the-default-secret")}
    enc = KeyEncryptor(env, kdf=FAST_KDF)
    with pytest.raises(PassphraseError) as exc:
        enc.encrypt(SECRET, alias="Rotated_2026", **ROW)
    assert "NOTARY_SIGNER_ROTATED_2026" in exc.value.message
    assert exc.value.detail["variable"] == "NOTARY_SIGNER_ROTATED_2026"
    assert "the-default-secret" not in str(exc.value.to_dict())


def test_blob_records_its_alias_and_several_aliases_are_readable() -> None:
    env = {"NOTARY_SIGNER_DEFAULT": "old", "NOTARY_SIGNER_NEW": "new"}
    enc = KeyEncryptor(env, kdf=FAST_KDF)
    old_blob = enc.encrypt(SECRET, **ROW)
    new_blob = enc.encrypt(SECRET, alias="new", **ROW)
    assert KeyEncryptor.blob_alias(old_blob) == "default"
    assert KeyEncryptor.blob_alias(new_blob) == "new"
    assert enc.decrypt(old_blob, **ROW) == enc.decrypt(new_blob, **ROW) == SECRET


def test_env_var_names_and_invalid_aliases() -> None:
    assert env_var_for_alias("default") == "NOTARY_SIGNER_DEFAULT"
    assert env_var_for_alias("Q3_2026") == "NOTARY_SIGNER_Q3_2026"
    for bad in ["", "has space", "a-b", "../x", "x" * 65]:
        with pytest.raises(PassphraseError):
            env_var_for_alias(bad)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d["kdf"].update(n=2**30),
        lambda d: d.update(v=2),
        lambda d: d.update(nonce="%%%"),
        lambda d: d.pop("ct"),
    ],
    ids=["absurd scrypt cost", "unknown version", "bad base64", "missing field"],
)
def test_tampered_or_unknown_blobs_are_refused(tamper: object) -> None:
    enc = KeyEncryptor({"NOTARY_SIGNER_DEFAULT": "pw"}, kdf=FAST_KDF)
    doc = json.loads(enc.encrypt(SECRET, **ROW))
    tamper(doc)  # type: ignore[operator]
    with pytest.raises(SignerError):
        enc.decrypt(json.dumps(doc).encode(), **ROW)


def test_kdf_parameters_are_bounded() -> None:
    with pytest.raises(SignerError):
        ScryptParams(n=1000).check()
