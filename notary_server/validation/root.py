"""The rules for an uploaded root (DESIGN section 4, rule 3). Pure."""

from __future__ import annotations

from datetime import datetime

from tuf.api.metadata import Root

from notary_server import errors
from notary_server.validation.parsing import Parsed
from notary_server.validation.state import ServerKeyIds

__all__ = ["check_root", "holds_threshold"]


def holds_threshold(root: Root, role: str, held: frozenset[str]) -> bool:
    r = root.roles[role]
    return len(set(r.keyids) & held) >= r.threshold


def check_root(new: Parsed, prev: Parsed | None, server_keys: ServerKeyIds, now: datetime) -> None:
    root: Root = new.signed
    stored_version = prev.version if prev else 0
    if root.version <= stored_version:
        raise errors.OldVersionError(
            f"root v{root.version} is not newer than the stored root v{stored_version}",
            role="root",
            stored_version=stored_version,
            sent_version=root.version,
        )
    if root.version != stored_version + 1:
        raise errors.BadRootError(
            f"expected root v{stored_version + 1}, got v{root.version}: "
            "root versions must increase one at a time",
            role="root",
            rule="root-version-step",
        )
    if not root.consistent_snapshot:
        raise errors.BadRootError(
            "root must set consistent_snapshot to true",
            role="root",
            rule="root-consistent-snapshot",
        )

    result = root.get_root_verification_result(
        prev.signed if prev else None, new.signed_bytes, new.md.signatures
    )
    if prev is not None and not result.first.verified:
        first = result.first
        raise errors.BadRootError(
            f"root v{root.version} carries {len(first.signed)} of the {first.threshold} "
            f"signatures that root v{prev.version} requires from its keys: a new root must be "
            "signed by the previous root's keys (this may be an attack)",
            role="root",
            rule="root-signed-by-previous-root",
            signed=sorted(first.signed),
            threshold=first.threshold,
        )
    if not result.second.verified:
        second = result.second
        raise errors.BadRootError(
            f"root v{root.version} carries {len(second.signed)} of the {second.threshold} "
            "signatures it requires from its own root keys",
            role="root",
            rule="root-signed-by-itself",
            signed=sorted(second.signed),
            threshold=second.threshold,
        )
    if root.is_expired(now):
        raise errors.ExpiredMetadataError(
            f"root v{root.version} expired at {root.expires:%Y-%m-%dT%H:%M:%SZ}",
            role="root",
            rule="not-expired",
        )
    if not holds_threshold(root, "timestamp", server_keys.timestamp):
        raise errors.BadRootError(
            "root must list the server's timestamp key for this repository "
            "(GET .../_trust/tuf/timestamp.key) under the timestamp role",
            role="root",
            rule="root-lists-server-timestamp-key",
            server_keyids=sorted(server_keys.timestamp),
        )
