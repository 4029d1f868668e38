"""notary_signer.canonical equals securesystemslib's canonical JSON and TUF's key ids.

The fast encoder (the C JSON encoder, securesystemslib's only for output with a
backslash) is checked against securesystemslib's ``encode_canonical`` on generated
JSON values; key ids against the ids securesystemslib gives the keys it builds.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import SSlibKey

from notary_signer.canonical import canonical_json, compute_keyid, is_canonical, notary_keyid

#: Characters the two encoders treat differently (escapes, control characters),
#: beyond-ASCII ones, and everything else Unicode has (lone surrogates apart).
_TRICKY = st.sampled_from(
    '"\\/\x00\x01\x08\t\n\x0c\r\x1f\x7f\x80\u00e9\u2028\u2029\ufeff\U0001f600'
)
TEXT = st.text(alphabet=st.one_of(_TRICKY, st.characters(exclude_categories=["Cs"])))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-(2**80), 2**80), TEXT)
JSON = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=30,
)


def reference(value: Any) -> bytes:
    text = encode_canonical(value)
    assert isinstance(text, str)
    return text.encode("utf-8")


@given(JSON)
def test_canonical_json_is_securesystemslibs(value: Any) -> None:
    assert canonical_json(value) == reference(value)


@given(JSON)
def test_is_canonical_accepts_exactly_the_canonical_bytes(value: Any) -> None:
    assert is_canonical(value, reference(value))
    spaced = json.dumps(value, sort_keys=True, indent=1).encode("utf-8")
    assert is_canonical(value, spaced) == (spaced == reference(value))
    assert not is_canonical(value, reference(value) + b" ")


@dataclass
class Fields:
    """Any object with a key's three public fields (what compute_keyid reads)."""

    keytype: str
    scheme: str
    keyval: dict[str, Any]


NOT_JSON = {
    "lone-surrogate": {"a": "\ud800"},
    "lone-low-surrogate": ["\udfff"],
    "surrogate-key": {"\ud83d": 1},
    "set": {"a": {1, 2}},
    "bytes": {"a": b"1"},
}
FLOATS = {"float": 1.5, "nested-float": {"a": [1, 0.5]}, "nan": float("nan")}


@pytest.mark.parametrize("value", NOT_JSON.values(), ids=NOT_JSON.keys())
def test_what_has_no_canonical_form_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="canonicalised"):
        canonical_json(value)
    assert not is_canonical(value, b"{}")


@pytest.mark.parametrize("value", [*NOT_JSON.values(), *FLOATS.values()], ids=[*NOT_JSON, *FLOATS])
def test_key_ids_of_keys_with_no_canonical_form_are_refused(value: Any) -> None:
    # key fields come from any key file: the exact encoder refuses floats as well
    with pytest.raises(ValueError, match="canonicalised"):
        compute_keyid(Fields("ed25519", "ed25519", {"public": "00", "extra": value}))


@given(st.binary(min_size=32, max_size=32))
def test_ed25519_key_ids_are_securesystemslibs(seed: bytes) -> None:
    key = SSlibKey.from_crypto(ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key())
    assert compute_keyid(key) == key.keyid


@given(st.integers(1, 2**255), st.sampled_from([ec.SECP256R1(), ec.SECP384R1()]))
def test_ecdsa_key_ids_are_securesystemslibs(secret: int, curve: ec.EllipticCurve) -> None:
    key = SSlibKey.from_crypto(ec.derive_private_key(secret, curve).public_key())
    assert compute_keyid(key) == key.keyid


@given(TEXT, TEXT, st.dictionaries(TEXT, st.one_of(TEXT, st.integers(), st.none()), max_size=4))
def test_key_ids_of_any_key_fields_are_the_tuf_definition(
    keytype: str, scheme: str, keyval: dict[str, Any]
) -> None:
    key = Fields(keytype, scheme, keyval)
    expected = hashlib.sha256(reference({"keytype": keytype, "scheme": scheme, "keyval": keyval}))
    assert compute_keyid(key) == expected.hexdigest()


@given(st.sampled_from(["ecdsa", "ecdsa-x509", "rsa", "ed25519"]), st.binary(max_size=300))
def test_notary_key_ids_are_notarys_definition(keytype: str, public: bytes) -> None:
    obj = {
        "keytype": keytype,
        "keyval": {"private": None, "public": base64.b64encode(public).decode()},
    }
    assert notary_keyid(keytype, public) == hashlib.sha256(reference(obj)).hexdigest()
