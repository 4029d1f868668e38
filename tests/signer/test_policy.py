"""The signing policy as a table of named scenarios (pure: bytes in, refusal out).

A compromised trust server must not get anything but a canonical timestamp or
snapshot for the key's own GUN and role out of the signer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Snapshot

from notary_signer.errors import BadRequestError, SignerRefusedError, UnsupportedAlgorithmError
from notary_signer.keystore import StoredKey
from notary_signer.policy import (
    MAX_PAYLOAD_BYTES,
    check_create_request,
    check_sign_request,
)

from .conftest import (
    GUN,
    OTHER_GUN,
    canonical,
    root_payload,
    snapshot_payload,
    soon,
    targets_payload,
    timestamp_payload,
)

_PUBLIC = CryptoSigner.generate_ed25519().public_key


def stored(role: str, gun: str = GUN) -> StoredKey:
    return StoredKey(_PUBLIC.keyid, gun, role, "ed25519", _PUBLIC, datetime(2030, 1, 1, tzinfo=UTC))


def _spaced(payload: bytes) -> bytes:
    return json.dumps(json.loads(payload), sort_keys=True, indent=1).encode()


def _with(payload: bytes, **changes: object) -> bytes:
    obj = json.loads(payload)
    obj.update(changes)
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Case:
    key: StoredKey
    payload: bytes
    role: str
    gun: str = GUN
    refused: str | None = None  # regex of the refusal message; None = signed


CASES = {
    "sign timestamp": Case(stored("timestamp"), timestamp_payload(), "timestamp"),
    "sign snapshot": Case(stored("snapshot"), snapshot_payload(7), "snapshot"),
    "root payload with a timestamp key": Case(
        stored("timestamp"), root_payload(), "timestamp", refused="_type is 'root'"
    ),
    "targets payload with a snapshot key": Case(
        stored("snapshot"), targets_payload(), "snapshot", refused="_type is 'targets'"
    ),
    "request names role root": Case(
        stored("timestamp"), root_payload(), "root", refused="role 'root'"
    ),
    "request names role targets": Case(
        stored("snapshot"), targets_payload(), "targets", refused="role 'targets'"
    ),
    "key of another gun": Case(
        stored("timestamp", OTHER_GUN), timestamp_payload(), "timestamp", refused="belongs to gun"
    ),
    "role mismatch (snapshot key asked for timestamp)": Case(
        stored("snapshot"), timestamp_payload(), "timestamp", refused="snapshot key"
    ),
    "_type mismatch (snapshot payload for timestamp)": Case(
        stored("timestamp"), snapshot_payload(), "timestamp", refused="_type is 'snapshot'"
    ),
    "non-canonical JSON (whitespace)": Case(
        stored("timestamp"), _spaced(timestamp_payload()), "timestamp", refused="not canonical"
    ),
    "non-canonical JSON (duplicate key)": Case(
        stored("timestamp"),
        timestamp_payload().replace(
            b'{"_type":"timestamp",', b'{"_type":"timestamp","_type":"timestamp",'
        ),
        "timestamp",
        refused="not canonical",
    ),
    "garbage bytes": Case(
        stored("timestamp"), b"\x00\xff\xfe not json", "timestamp", refused="UTF-8 JSON"
    ),
    "JSON but not an object": Case(
        stored("timestamp"), b'["timestamp"]', "timestamp", refused="object"
    ),
    "float in payload": Case(
        stored("timestamp"),
        _with(timestamp_payload(), version=1.5),
        "timestamp",
        refused="canonical",
    ),
    "NaN in payload": Case(
        stored("timestamp"),
        timestamp_payload().replace(b'"version":1}', b'"version":NaN}'),
        "timestamp",
        refused="UTF-8 JSON",
    ),
    "canonical but not valid TUF timestamp": Case(
        stored("timestamp"),
        b'{"_type":"timestamp","version":1}',
        "timestamp",
        refused="not valid TUF",
    ),
    "timestamp with negative version": Case(
        stored("timestamp"),
        _with(timestamp_payload(), version=-1),
        "timestamp",
        refused="not valid TUF",
    ),
    "key stored for an offline role": Case(
        stored("root"), root_payload(), "root", refused="role 'root'"
    ),
    "timestamp valid for a year (far-future freshness)": Case(
        stored("timestamp"),
        timestamp_payload(expires=soon(365)),
        "timestamp",
        refused="longer than",
    ),
    "snapshot valid for two years": Case(
        stored("snapshot"),
        canonical(Snapshot(version=1, expires=soon(730))),
        "snapshot",
        refused="longer than",
    ),
    "oversized payload": Case(
        stored("timestamp"), b" " * (MAX_PAYLOAD_BYTES + 1), "timestamp", refused="at most"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_sign_policy(case: Case) -> None:
    if case.refused is None:
        check_sign_request(case.key, case.gun, case.role, case.payload)
    else:
        with pytest.raises(SignerRefusedError, match=case.refused) as exc:
            check_sign_request(case.key, case.gun, case.role, case.payload)
        assert exc.value.code == "SIGN_REFUSED" and exc.value.http_status == 403


CREATE_CASES: dict[str, tuple[str, str, str, type[Exception] | None]] = {
    "timestamp ecdsa": (GUN, "timestamp", "ecdsa", None),
    "snapshot ed25519": ("docker.io/library/alpine", "snapshot", "ed25519", None),
    "root key refused": (GUN, "root", "ecdsa", SignerRefusedError),
    "targets key refused": (GUN, "targets", "ecdsa", SignerRefusedError),
    "delegation key refused": (GUN, "targets/releases", "ecdsa", SignerRefusedError),
    "rsa unsupported": (GUN, "timestamp", "rsa", UnsupportedAlgorithmError),
    "empty gun": ("", "timestamp", "ecdsa", BadRequestError),
    "gun with whitespace": ("reg/app name", "timestamp", "ecdsa", BadRequestError),
    "gun with traversal": ("reg/../etc", "timestamp", "ecdsa", BadRequestError),
    "gun with control character": ("reg/app\n", "timestamp", "ecdsa", BadRequestError),
}


@pytest.mark.parametrize("case", CREATE_CASES.values(), ids=list(CREATE_CASES))
def test_create_policy(case: tuple[str, str, str, type[Exception] | None]) -> None:
    gun, role, algorithm, error = case
    if error is None:
        check_create_request(gun, role, algorithm)
    else:
        with pytest.raises(error):
            check_create_request(gun, role, algorithm)


def test_unsupported_algorithm_is_also_a_refusal() -> None:
    # KeyService.create_key documents SignerRefusedError for a bad algorithm
    assert issubclass(UnsupportedAlgorithmError, SignerRefusedError)
    assert UnsupportedAlgorithmError.http_status == 400
