"""The signer signs Notary-dialect timestamps and snapshots under the same rules as
TUF 1.0 ones: the key's own GUN and role, canonical JSON, the role's payload type,
the lifetime caps. Named cases; pure (bytes in, refusal out)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from securesystemslib.signer import CryptoSigner

from notary_server.notary.generate import snapshot_payload, timestamp_payload
from notary_signer.errors import SignerRefusedError
from notary_signer.keystore import StoredKey
from notary_signer.policy import check_sign_request
from tests.notaryrepo import canonical

GUN = "reg.example/team/app"
NOW = datetime(2027, 1, 1, tzinfo=UTC)
_PUBLIC = CryptoSigner.generate_ed25519().public_key


def key(role: str, gun: str = GUN) -> StoredKey:
    return StoredKey(_PUBLIC.keyid, gun, role, "ed25519", _PUBLIC, NOW)


SNAPSHOT = snapshot_payload(None, {"root": b"r", "targets": b"t"}, NOW + timedelta(days=7))
TIMESTAMP = timestamp_payload(3, b"snapshot bytes", NOW + timedelta(days=1))


def _edit(payload: bytes, **changes: object) -> bytes:
    import json

    obj = json.loads(payload)
    obj.update(changes)
    return canonical(obj)


def test_notary_timestamp_and_snapshot_of_the_keys_own_gun_and_role_are_signed():
    check_sign_request(key("timestamp"), GUN, "timestamp", TIMESTAMP, now=NOW)
    check_sign_request(key("snapshot"), GUN, "snapshot", SNAPSHOT, now=NOW)


REFUSED = {
    "other-gun": (key("timestamp", "reg.example/other"), "timestamp", TIMESTAMP),
    "snapshot-payload-with-timestamp-key": (key("timestamp"), "timestamp", SNAPSHOT),
    "timestamp-payload-with-snapshot-key": (key("snapshot"), "snapshot", TIMESTAMP),
    "root-payload": (key("timestamp"), "timestamp", _edit(TIMESTAMP, _type="Root")),
    "targets-payload": (key("snapshot"), "snapshot", _edit(SNAPSHOT, _type="Targets")),
    "not-canonical": (key("timestamp"), "timestamp", TIMESTAMP.replace(b",", b", ", 1)),
    "timestamp-beyond-lifetime-cap": (
        key("timestamp"),
        "timestamp",
        _edit(TIMESTAMP, expires="2027-03-01T00:00:00Z"),
    ),
    "snapshot-beyond-lifetime-cap": (
        key("snapshot"),
        "snapshot",
        _edit(SNAPSHOT, expires="2030-01-01T00:00:00Z"),
    ),
    "extra-field-smuggled": (key("timestamp"), "timestamp", _edit(TIMESTAMP, targets={})),
    "timestamp-listing-targets": (
        key("timestamp"),
        "timestamp",
        _edit(TIMESTAMP, meta={"targets": {"hashes": {"sha256": "AAAA"}, "length": 1}}),
    ),
    "hash-not-base64-sha256": (
        key("timestamp"),
        "timestamp",
        _edit(TIMESTAMP, meta={"snapshot": {"hashes": {"sha256": "00ff"}, "length": 1}}),
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_the_signer_refuses(case: str):
    stored_key, role, payload = REFUSED[case]
    with pytest.raises(SignerRefusedError):
        check_sign_request(stored_key, GUN, role, payload, now=NOW)
