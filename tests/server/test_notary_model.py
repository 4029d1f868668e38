"""Notary's wire format, parsed by notary_server.notary.model (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notary_server.notary.dialect import NOTARY, TUF, file_dialect, request_wants_notary
from notary_server.notary.model import (
    FormatError,
    parse_expires,
    parse_key,
    parse_signed,
    path_allowed,
)
from tests.notaryrepo import Signing, canonical, keyid_of, signed_file


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2027-01-02T03:04:05Z", datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2027-01-02T03:04:05.123456789Z", datetime(2027, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
        ("2027-01-01T22:04:05.5-05:00", datetime(2027, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
    ],
    ids=["seconds", "go-nanoseconds", "zone-offset"],
)
def test_expiry_times_as_go_writes_them(text: str, expected: datetime):
    assert parse_expires(text) == expected


@pytest.mark.parametrize(
    "text",
    ["2027-01-02", "2027-01-02 03:04:05Z", "2027-01-02T03:04:05"],
    ids=["date", "space", "no-zone"],
)
def test_other_times_are_refused(text: str):
    with pytest.raises(FormatError):
        parse_expires(text)


def test_key_ids_are_recomputed_from_the_key_never_read():
    s = Signing.bare()
    assert parse_key(s.obj).keyid == keyid_of(s.obj)
    cert = Signing.cert("reg.example/a")
    key = parse_key(cert.obj)
    assert key.keyid == keyid_of(cert.obj) and key.certificate is not None
    assert key.spki == parse_key(Signing.bare(cert.private).obj).spki  # same key, other id


def test_raw_r_s_ecdsa_signatures_verify_and_der_ones_do_not():
    s = Signing.bare()
    f = parse_signed(
        "targets",
        signed_file({"_type": "Targets", "expires": "2030-01-01T00:00:00Z", "version": 1}, s),
    )
    key = parse_key(s.obj)
    sig = f.signatures[0]
    assert len(sig.sig) == 64 and key.verify("ecdsa", sig.sig, f.signed_bytes)
    assert not key.verify("eddsa", sig.sig, f.signed_bytes)
    assert not key.verify("ecdsa", sig.sig, canonical({"other": 1}))


@pytest.mark.parametrize(
    ("role", "signed"),
    [
        ("root", {"_type": "root", "expires": "2030-01-01T00:00:00Z", "version": 1}),
        ("targets", {"_type": "Targets", "expires": "2030-01-01T00:00:00Z", "version": 0}),
        ("snapshot", {"_type": "Snapshot", "expires": "soon", "version": 1}),
    ],
    ids=["lowercase-type", "version-0", "bad-expires"],
)
def test_malformed_metadata_is_refused(role: str, signed: dict):
    with pytest.raises(FormatError):
        parse_signed(role, signed_file(signed))


@pytest.mark.parametrize(
    "number",
    ["1.5", "1e3", "-0.0", "2E-7"],
    ids=["decimal", "exponent", "negative-zero", "upper-exponent"],
)
def test_floats_are_refused(number: str):
    # canonical JSON has no floats, and the fast canonical encoder would write them
    raw = b'{"signatures":[],"signed":{"_type":"Targets","expires":"2030-01-01T00:00:00Z","version":1,"x":%s}}'
    with pytest.raises(FormatError, match="float"):
        parse_signed("targets", raw % number.encode())


def test_delegation_paths_are_prefixes():
    assert path_allowed("release-1", ["release-"]) and path_allowed("anything", [""])
    assert not path_allowed("latest", ["release-"]) and not path_allowed("x", [])


def test_dialect_of_files_and_requests():
    assert file_dialect(b'{"signed":{"_type":"Timestamp"}}') == NOTARY
    assert file_dialect(b'{\n "signatures": [],\n "signed": {\n  "_type": "timestamp"}}') == TUF
    assert request_wants_notary("r/a", "Go-http-client/1.1", ())
    assert request_wants_notary("r/a", "Docker-Client/28.5.1 (linux)", ())
    assert not request_wants_notary("r/a", "python-urllib3/2.2", ())
    assert request_wants_notary("legacy/a", None, ("legacy/",))
