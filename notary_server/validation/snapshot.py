"""The rules for a snapshot the client manages (DESIGN section 4, rule 5). Pure."""

from __future__ import annotations

from datetime import datetime

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Root

from notary_server import errors
from notary_server.validation.parsing import Parsed
from notary_server.validation.state import CandidateState, StoredState

__all__ = ["check_client_snapshot"]


def check_client_snapshot(
    p: Parsed, root: Root, state: CandidateState, stored: StoredState, now: datetime
) -> None:
    result = root.get_verification_result("snapshot", p.signed_bytes, p.md.signatures)
    if not result.verified:
        raise errors.BadSnapshotError(
            f"snapshot is signed by {len(result.signed)} of the {result.threshold} keys "
            "that root requires",
            role="snapshot",
            rule="snapshot-signature-threshold",
        )
    prev = state.stored("snapshot")
    if prev is not None and p.version <= prev.version:
        raise errors.OldVersionError(
            f"snapshot v{p.version} is not newer than the stored v{prev.version}",
            role="snapshot",
            stored_version=prev.version,
            sent_version=p.version,
        )
    if p.signed.is_expired(now):
        raise errors.ExpiredMetadataError(
            "snapshot has expired", role="snapshot", rule="not-expired"
        )
    meta = p.signed.meta
    names = set(stored.roles()) | set(state.uploaded)
    for role in sorted(names - {"root", "snapshot", "timestamp"}):
        current = state.get(role)
        assert current is not None
        entry = meta.get(f"{role}.json")
        if entry is None or entry.version != current.version:
            listed = entry.version if entry else None
            raise errors.BadSnapshotError(
                f"snapshot lists {role} v{listed}, but the repository's {role} is "
                f"v{current.version}",
                role="snapshot",
                rule="snapshot-lists-current-versions",
            )
        try:
            entry.verify_length_and_hashes(current.raw)
        except tuf_exceptions.LengthOrHashMismatchError as e:
            raise errors.BadSnapshotError(
                f"snapshot entry for {role}: {e}", role="snapshot", rule="snapshot-hashes"
            ) from e
    if prev is not None:
        for name, old in prev.signed.meta.items():
            new = meta.get(name)
            if new is None or new.version < old.version:
                raise errors.BadSnapshotError(
                    f"snapshot drops or rolls back {name} (was v{old.version})",
                    role="snapshot",
                    rule="snapshot-keeps-every-entry",
                )
