"""The offline key store: encryption at rest, file modes, passphrases, import/export."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.secrets import remember
from trustctl.errors import (
    EXIT_USAGE,
    MissingKeyError,
    PassphraseError,
    UsageError,
    WrongPassphraseError,
)
from trustctl.keys import (
    DEFAULT_KDF_ITERATIONS,
    KeyStore,
    PassphraseSource,
    Prompt,
    encrypt_pkcs8,
    load_public_key_file,
    public_key_from_pem,
    public_key_to_pem,
)

ENV = {
    "TRUSTCTL_ROOT_PASSPHRASE": remember("root pw"),
    "TRUSTCTL_TARGETS_PASSPHRASE": remember("targets pw"),
    "TRUSTCTL_DELEGATION_PASSPHRASE": remember("delegation pw"),
}


def store(
    tmp_path: Path, env: dict[str, str] | None = None, prompt: Prompt | None = None
) -> KeyStore:
    return KeyStore(
        tmp_path / "private",
        PassphraseSource(ENV if env is None else env, prompt),
        kdf_iterations=1000,
    )


@pytest.mark.parametrize("algorithm", ["ecdsa", "ed25519", "rsa"])
def test_generated_key_is_encrypted_pkcs8_mode_0600_and_signs(
    tmp_path: Path, algorithm: str
) -> None:
    ks = store(tmp_path)
    info = ks.generate("targets", gun="reg.io/app", algorithm=algorithm)
    assert info.path == tmp_path / "private" / f"{info.keyid}.key"
    assert stat.S_IMODE(os.stat(info.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700
    text = info.path.read_text()
    assert text.startswith(
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nrole: targets\ngun: reg.io/app\n"
    )
    with pytest.raises(TypeError):  # encrypted: no password, no key
        serialization.load_pem_private_key(info.path.read_bytes(), None)
    fresh = store(tmp_path)  # a new process: decrypt from disk
    sig = fresh.signer(info.keyid).sign(b"payload")
    info.public.verify_signature(sig, b"payload")


def test_listing_needs_no_passphrase(tmp_path: Path) -> None:
    ks = store(tmp_path)
    root = ks.generate("root", gun="reg.io/app")
    alice = ks.generate("delegation", name="alice")
    listed = store(tmp_path, env={}).all_keys()
    assert [(k.keyid, k.role, k.gun, k.name) for k in listed] == [
        (root.keyid, "root", "reg.io/app", None),
        (alice.keyid, "delegation", None, "alice"),
    ]


def test_default_kdf_is_strong_and_written_into_the_file() -> None:
    assert DEFAULT_KDF_ITERATIONS >= 600_000
    der = encrypt_pkcs8(ec.generate_private_key(ec.SECP256R1()), "pw", DEFAULT_KDF_ITERATIONS)
    assert b"\x02\x03" + DEFAULT_KDF_ITERATIONS.to_bytes(3, "big") in der
    assert serialization.load_der_private_key(der, b"pw") is not None


def test_wrong_passphrase_is_a_usage_error_naming_the_variable(tmp_path: Path) -> None:
    info = store(tmp_path).generate("root")
    wrong = store(tmp_path, env={"TRUSTCTL_ROOT_PASSPHRASE": "not it"})
    with pytest.raises(WrongPassphraseError) as e:
        wrong.signer(info.keyid)
    assert e.value.exit_code == EXIT_USAGE
    assert "TRUSTCTL_ROOT_PASSPHRASE" in (e.value.hint or "")
    assert "not it" not in e.value.message


def test_no_passphrase_and_no_terminal_names_both_variables(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError) as e:
        store(tmp_path, env={}).generate("targets")
    assert "TRUSTCTL_TARGETS_PASSPHRASE" in (e.value.hint or "")
    assert "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE" in (e.value.hint or "")


@pytest.mark.parametrize(
    ("role", "variable"),
    [
        ("root", "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"),
        ("targets", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"),
        ("delegation", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"),
    ],
)
def test_dockers_passphrase_variables_work_too(tmp_path: Path, role: str, variable: str) -> None:
    info = store(tmp_path, env={variable: "docker pw"}).generate(role)
    assert store(tmp_path, env={variable: "docker pw"}).signer(info.keyid)


def test_trustctl_variable_wins_over_dockers(tmp_path: Path) -> None:
    env = {"TRUSTCTL_ROOT_PASSPHRASE": "ours", "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE": "theirs"}
    info = store(tmp_path, env=env).generate("root")
    assert store(tmp_path, env={"TRUSTCTL_ROOT_PASSPHRASE": "ours"}).signer(info.keyid)


def test_prompt_confirms_new_keys_and_allows_retyping_a_wrong_one(tmp_path: Path) -> None:
    asked: list[tuple[str, bool]] = []
    answers = iter(["typed pw", "typo", "typed pw"])

    def prompt(text: str, confirm: bool) -> str:
        asked.append((text, confirm))
        return next(answers)

    info = store(tmp_path, env={}, prompt=prompt).generate("root")
    assert asked[0][1] is True  # new key: asked twice by the prompt
    assert store(tmp_path, env={}, prompt=prompt).signer(info.keyid)
    assert [confirm for _, confirm in asked[1:]] == [False, False]


def test_a_tampered_public_header_is_detected(tmp_path: Path) -> None:
    ks = store(tmp_path)
    info = ks.generate("root")
    other = ks.generate("root")
    lines = info.path.read_text().splitlines()
    other_public = next(
        line for line in other.path.read_text().splitlines() if line.startswith("public: ")
    )
    info.path.write_text(
        "\n".join(other_public if line.startswith("public: ") else line for line in lines) + "\n"
    )
    assert info.keyid not in [
        k.keyid for k in store(tmp_path).all_keys()
    ]  # the id no longer matches
    with pytest.raises(MissingKeyError):
        store(tmp_path).signer(info.keyid)


def test_export_then_import_into_another_trust_dir(tmp_path: Path) -> None:
    source = store(tmp_path / "a")
    info = source.generate("delegation", name="alice")
    exported = source.export(info.keyid)
    target = store(tmp_path / "b", env={"TRUSTCTL_DELEGATION_PASSPHRASE": "new pw"})
    imported = target.import_pem(
        exported, role=None, gun=None, name=None, input_passphrase=lambda: "delegation pw"
    )
    assert [(k.keyid, k.role, k.name) for k in imported] == [(info.keyid, "delegation", "alice")]
    assert store(tmp_path / "b", env={"TRUSTCTL_DELEGATION_PASSPHRASE": "new pw"}).signer(
        info.keyid
    )


def test_import_an_unencrypted_pem_stores_it_encrypted(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (info,) = store(tmp_path).import_pem(
        pem, role="targets", gun="reg.io/app", name=None, input_passphrase=lambda: None
    )
    assert b"ENCRYPTED" in info.path.read_bytes()
    assert info.role == "targets" and info.gun == "reg.io/app"


def test_import_refuses_weak_rsa_keys(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pem = weak.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(UsageError, match="1024 bits is too weak"):
        store(tmp_path).import_pem(
            pem, role="targets", gun="reg.io/app", name=None, input_passphrase=lambda: None
        )
    assert store(tmp_path).all_keys() == []  # nothing stored
    public = weak.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(UsageError, match="too weak"):
        public_key_from_pem(public)


def test_import_with_a_wrong_passphrase_fails_clearly(tmp_path: Path) -> None:
    exported = store(tmp_path / "a").generate("root")
    data = store(tmp_path / "a").export(exported.keyid)
    with pytest.raises(WrongPassphraseError, match="cannot decrypt"):
        store(tmp_path / "b").import_pem(
            data, role=None, gun=None, name=None, input_passphrase=lambda: "wrong"
        )


def test_find_by_prefix(tmp_path: Path) -> None:
    ks = store(tmp_path)
    info = ks.generate("root")
    assert ks.find(info.keyid[:8]).keyid == info.keyid
    with pytest.raises(MissingKeyError):
        ks.find("0123")  # too short to be safe
    with pytest.raises(MissingKeyError):
        ks.find("f" * 64)


def test_public_key_files_pem_and_tuf_json(tmp_path: Path) -> None:
    info = store(tmp_path).generate("delegation", name="alice")
    pem = tmp_path / "alice.pub"
    pem.write_bytes(public_key_to_pem(info.public))
    assert load_public_key_file(pem).keyid == info.keyid
    tuf_json = tmp_path / "alice.json"
    tuf_json.write_text(json.dumps({"keyid": "whatever", **info.public.to_dict()}))
    assert load_public_key_file(tuf_json).keyid == info.keyid  # the id is recomputed, never trusted
    with pytest.raises(UsageError, match="private key"):
        load_public_key_file(info.path)
    junk = tmp_path / "junk.pub"
    junk.write_bytes(base64.b64encode(b"junk"))
    with pytest.raises(UsageError):
        load_public_key_file(junk)
