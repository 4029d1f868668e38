"""The last check before a publish is committed: would a TUF client accept the result?

Replays the candidate state through python-tuf's own client-side trust rules
(``TrustedMetadataSet``, internal to python-tuf: wrapped here, in one place). Pure.

Files the server has already parsed in this request (uploads, stored files, the
snapshot and timestamp it just generated) are handed over parsed, as ``known``:
python-tuf then skips only the parsing of those exact bytes and still runs every
client rule over them (signature thresholds, versions, expiry, the length and hashes
each file is referenced by). At 100,000 tags this saves re-parsing and
re-canonicalising a snapshot of 256+ entries and a bin of hundreds of targets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from securesystemslib.signer import Signature
from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Signed
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet, _load_from_metadata
from tuf.ngclient.config import EnvelopeType

from notary_server import errors
from notary_server.validation import delegator_of

__all__ = ["Loaded", "check_client_view"]


class Loaded(NamedTuple):
    """A file parsed from its bytes: what python-tuf's loader would have produced."""

    signed: Signed
    signed_bytes: bytes
    signatures: Mapping[str, Signature]


class _Replay(TrustedMetadataSet):
    """``TrustedMetadataSet`` whose loader reuses files parsed earlier in the request."""

    def __init__(self, root: bytes, known: Mapping[bytes, Loaded]) -> None:
        self._known = known
        super().__init__(root, EnvelopeType.METADATA)

    def _load_trusted_root(self, data: bytes) -> None:
        self._load_data = self._load  # type: ignore[assignment]
        super()._load_trusted_root(data)

    def _load(
        self, role: type[Any], data: bytes, delegator: Any = None, role_name: str | None = None
    ) -> tuple[Any, bytes, Mapping[str, Signature]]:
        found = self._known.get(data)
        if found is None:
            return _load_from_metadata(role, data, delegator, role_name)
        # the same steps as python-tuf's _load_from_metadata, minus Metadata.from_bytes
        if found.signed.type != role.type:
            raise tuf_exceptions.RepositoryError(
                f"Expected '{role.type}', got '{found.signed.type}'"
            )
        if delegator:
            delegator.verify_delegate(
                role_name or role.type, found.signed_bytes, dict(found.signatures)
            )
        return found.signed, found.signed_bytes, found.signatures


def check_client_view(
    trusted_root: bytes,
    new_root: bytes | None,
    timestamp: bytes,
    snapshot: bytes,
    targets: Sequence[str],
    get: Any,
    now: datetime,
    known: Mapping[bytes, Loaded] | None = None,
) -> None:
    """Replay the candidate state through python-tuf's client-side trust rules.

    ``trusted_root`` is the stored root (or the uploaded v1 for a new repository);
    ``targets`` the targets-type roles to load (their delegators are loaded first,
    found with :func:`delegator_of` over ``get``); ``known`` maps file bytes to their
    parsed form, for files already parsed from exactly those bytes.

    Raises:
        InvalidUpdateError: a TUF client would refuse the state.
    """
    try:
        trusted = _Replay(trusted_root, known or {})
        trusted.reference_time = now
        if new_root is not None:
            trusted.update_root(new_root)
        trusted.update_timestamp(timestamp)
        trusted.update_snapshot(snapshot)
        loaded: set[str] = set()

        def load(role: str) -> None:
            if role in loaded:
                return
            parsed = get(role)
            if role == "targets":
                trusted.update_targets(parsed.raw)
            else:
                parent, _ = delegator_of(role, get)
                load(parent)
                trusted.update_delegated_targets(parsed.raw, role, parent)
            loaded.add(role)

        for role in ["targets", *targets]:
            load(role)
    except (tuf_exceptions.RepositoryError, ValueError, KeyError) as e:
        raise errors.InvalidUpdateError(
            f"a TUF client would refuse the resulting repository: {e}"
        ) from e
