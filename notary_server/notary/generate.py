"""The server-held snapshot and timestamp in Notary's format. Pure.

``signed`` payloads are canonical JSON with a capitalised ``_type``, RFC 3339
``expires`` and ``meta`` entries ``{length, hashes{sha256, sha512}}`` (base64) of
the *stored* bytes, keyed by role name without ``.json``; the snapshot lists root.
Signatures are ``{"keyid", "method", "sig"}`` with ECDSA as raw ``r || s``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

from notary_server.notary.model import NotarySignature, b64, canonical, format_expires, meta_entry

__all__ = ["assemble", "snapshot_payload", "timestamp_payload"]


def snapshot_payload(
    previous: Mapping[str, object] | None, files: Mapping[str, bytes], expires: datetime
) -> bytes:
    """The next snapshot: ``previous``'s ``signed`` with ``files``' entries replaced
    (every role whose stored bytes changed, root included), version + 1."""
    meta = dict(previous["meta"]) if previous else {}  # type: ignore[call-overload]
    for role, data in files.items():
        meta[role] = meta_entry(data)
    version = int(previous["version"]) + 1 if previous else 1  # type: ignore[call-overload]
    return canonical(
        {"_type": "Snapshot", "expires": format_expires(expires), "meta": meta, "version": version}
    )


def timestamp_payload(previous_version: int | None, snapshot: bytes, expires: datetime) -> bytes:
    """The next timestamp, pointing at the stored ``snapshot`` bytes."""
    return canonical(
        {
            "_type": "Timestamp",
            "expires": format_expires(expires),
            "meta": {"snapshot": meta_entry(snapshot)},
            "version": (previous_version or 0) + 1,
        }
    )


def assemble(payload: bytes, signatures: Sequence[NotarySignature]) -> bytes:
    """The file to store: ``{"signed": <payload>, "signatures": [...]}``, compact."""
    sigs = [{"keyid": s.keyid, "method": s.method, "sig": b64(s.sig)} for s in signatures]
    tail = json.dumps(sigs, separators=(",", ":")).encode()
    return b'{"signed":' + payload + b',"signatures":' + tail + b"}"
