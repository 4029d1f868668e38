"""Builds and signs the server-managed snapshot and timestamp.

Pure apart from the ``Signer`` objects it is handed (which, in production, call the
signing service). Hashes and lengths are always computed over the exact stored
bytes, never over a re-serialisation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from securesystemslib.signer import Signer
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Snapshot, Timestamp

from notary_server import errors
from notary_server.storage import MAX_VERSION
from notary_signer.canonical import canonical_json

__all__ = ["Expiries", "build_snapshot", "build_timestamp", "payload_of", "sign"]


@dataclass(frozen=True)
class Expiries:
    """Lifetimes of server-generated metadata and when to renew them."""

    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)
    snapshot_renew_before: timedelta = timedelta(days=3)
    timestamp_renew_before: timedelta = timedelta(hours=8)


def _next_version(role: str, previous: Snapshot | Timestamp | None) -> int:
    """The version after ``previous``'s; past MAX_VERSION (only a client snapshot at the
    bound can lead there) no store could keep it."""
    version = previous.version + 1 if previous is not None else 1
    if version > MAX_VERSION:
        raise errors.VersionTooLargeError(
            f"the next {role} would be v{version}, past {MAX_VERSION}, the largest every store "
            "can keep and every client can fetch",
            role=role,
            max_version=MAX_VERSION,
        )
    return version


def _metafile(version: int, raw: bytes) -> MetaFile:
    return MetaFile(version=version, length=len(raw), hashes={"sha256": hashlib.sha256(raw).hexdigest()})


def build_snapshot(
    previous: Snapshot | None, changed: Mapping[str, tuple[int, bytes]], expires: datetime
) -> Snapshot:
    """The next snapshot: ``previous`` with the ``changed`` roles' entries replaced.

    Entries are never dropped (a TUF client refuses a snapshot that drops one), and
    each carries length and sha256 so clients bound downloads by the real size.
    """
    meta = dict(previous.meta) if previous is not None else {}
    for role, (version, raw) in changed.items():
        meta[f"{role}.json"] = _metafile(version, raw)
    return Snapshot(version=_next_version("snapshot", previous), expires=expires, meta=meta)


def build_timestamp(
    previous: Timestamp | None, snapshot_version: int, snapshot_raw: bytes, expires: datetime
) -> Timestamp:
    return Timestamp(
        version=_next_version("timestamp", previous),
        expires=expires,
        snapshot_meta=_metafile(snapshot_version, snapshot_raw),
    )


def payload_of(signed: Snapshot | Timestamp) -> bytes:
    """The canonical JSON bytes of ``signed``: what its signatures are over."""
    return canonical_json(signed.to_dict())


def sign(signed: Snapshot | Timestamp, signers: Sequence[Signer]) -> bytes:
    """Sign ``signed`` with every signer and return the compact JSON bytes.

    Raises:
        SignerUnavailableError: a signer failed (unreachable, refused, bad signature).
    """
    md: Metadata[Any] = Metadata(signed)
    for signer in signers:
        try:
            md.sign(signer, append=True)
        except UnsignedMetadataError as e:
            cause = e.__cause__ or e
            if isinstance(cause, errors.NotaryError):
                raise cause from e
            raise errors.SignerUnavailableError(role=signed.type) from e
    return md.to_bytes()
