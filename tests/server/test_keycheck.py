"""Keys compared as keys: one public key under two key ids, in any spelling, is refused,
and so is any key not written in its canonical encoding (issue 10, row 3)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import CryptoSigner, Key

from notary_server import errors
from notary_server.keycheck import check_keys
from notary_signer.canonical import compute_keyid


def respelled(key: Key, public: str | None = None, keytype: str | None = None) -> Key:
    """``key`` with another spelling of its public key (and its correctly computed id)."""
    d = {
        "keytype": keytype or key.keytype,
        "scheme": key.scheme,
        "keyval": {"public": public if public is not None else key.keyval["public"]},
    }
    probe = Key.from_dict("0", dict(d, keyval=dict(d["keyval"])))
    return Key.from_dict(compute_keyid(probe), d)


ECDSA = CryptoSigner.generate_ecdsa().public_key
ED25519 = CryptoSigner.generate_ed25519().public_key
RSA = CryptoSigner.generate_rsa().public_key
PEM: str = ECDSA.keyval["public"]
HEX: str = ED25519.keyval["public"]


def _rewrapped(pem: str, width: int) -> str:
    lines = pem.strip().splitlines()
    body = "".join(lines[1:-1])
    return (
        "\n".join([lines[0], *(body[i : i + width] for i in range(0, len(body), width)), lines[-1]])
        + "\n"
    )


#: Second spellings of one key: each one, listed next to the original, would count
#: twice towards a threshold in python-tuf.
SPELLINGS: dict[str, Callable[[], tuple[Key, Key]]] = {
    "pem with a leading line of text": lambda: (
        ECDSA,
        respelled(ECDSA, "my co-signer's key\n" + PEM),
    ),
    "pem with text after it": lambda: (ECDSA, respelled(ECDSA, PEM + "trailer\n")),
    "pem with CRLF line ends": lambda: (ECDSA, respelled(ECDSA, PEM.replace("\n", "\r\n"))),
    "pem with 76-character lines": lambda: (ECDSA, respelled(ECDSA, _rewrapped(PEM, 76))),
    "pem under the legacy keytype name": lambda: (
        ECDSA,
        respelled(ECDSA, keytype="ecdsa-sha2-nistp256"),
    ),
    "rsa pem with a leading line of text": lambda: (
        RSA,
        respelled(RSA, "x\n" + RSA.keyval["public"]),
    ),
    "ed25519 hex with a space inside": lambda: (
        ED25519,
        respelled(ED25519, HEX[:32] + " " + HEX[32:]),
    ),
    "ed25519 hex in upper case": lambda: (ED25519, respelled(ED25519, HEX.upper())),
    "ed25519 hex with a trailing newline": lambda: (ED25519, respelled(ED25519, HEX + "\n")),
}


@pytest.mark.parametrize("make", SPELLINGS.values(), ids=SPELLINGS.keys())
def test_one_key_in_two_spellings_is_refused(make: Callable[[], tuple[Key, Key]]) -> None:
    original, twin = make()
    assert original.keyid != twin.keyid
    with pytest.raises(errors.BadKeysError) as e:
        check_keys("root", {original.keyid: original, twin.keyid: twin}, 100)
    assert e.value.detail["reason"] == "BAD_KEYS"


NON_CANONICAL = {k: v for k, v in SPELLINGS.items() if k != "pem under the legacy keytype name"}


@pytest.mark.parametrize("make", NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_a_non_canonical_encoding_is_refused_on_its_own(
    make: Callable[[], tuple[Key, Key]],
) -> None:
    _, twin = make()
    with pytest.raises(errors.BadKeysError, match="canonical"):
        check_keys("targets", {twin.keyid: twin}, 100)


def test_canonical_keys_of_every_type_pass_and_parse_to_their_der() -> None:
    from notary_server.keycheck import public_der

    no_newline = respelled(ECDSA, PEM.removesuffix("\n"))
    keys = {k.keyid: k for k in (ECDSA, ED25519, RSA)}
    check_keys("root", keys, 100)
    check_keys("root", {no_newline.keyid: no_newline}, 100)
    loaded = serialization.load_pem_public_key(PEM.encode())
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert public_der(ECDSA) == loaded.public_bytes(serialization.Encoding.DER, spki)
    assert public_der(no_newline) == public_der(ECDSA)


WRONG = {
    "not a pem at all": lambda: respelled(ECDSA, "hello"),
    "ed25519 hex too short": lambda: respelled(ED25519, HEX[:-2]),
}


@pytest.mark.parametrize("make", WRONG.values(), ids=WRONG.keys())
def test_unparseable_keys_are_refused(make: Callable[[], Key]) -> None:
    key = make()
    with pytest.raises(errors.BadKeysError):
        check_keys("root", {key.keyid: key}, 100)
