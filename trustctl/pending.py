"""Partially signed metadata: how k-of-n signer thresholds work.

A tag signed into ``targets/releases`` with threshold K counts only when K signers'
keys signed the *same* metadata. The trust server accepts only metadata that meets
its threshold, so the first K-1 signatures wait in a *pending store*:

1. alice runs ``trustctl sign reg/app:v1``: trustctl builds the next version of
   ``targets/releases`` (current + v1), signs it with her key, sees 1 of 2, and
   stores it as pending. ``verify`` then says "v1 is waiting for signatures: 1 of 2".
2. bob runs ``trustctl sign reg/app:v1``: trustctl resolves v1's digest from the
   registry *itself*, builds current + v1 again and compares it with the pending
   payload. Only when the content is identical does it add his signature to alice's
   payload (so each signer vouches for exactly what they checked); at 2 of 2 it
   publishes and removes the pending file.

Pending files are untrusted input: they are used only when they are the next version
of the role, unexpired, within the delegation's paths, and carry at least one valid
signature from a key the trusted parent delegates to.

Stores: the trust server (``GET|PUT|DELETE /v2/<gun>/_trust/pending/<role>.json``)
or, when the server lacks that, a directory shared by the signers (``--pending-dir``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import quote

from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.api.serialization import DeserializationError

from trustctl.atomicfile import write_atomic
from trustctl.client import ServerClient
from trustctl.errors import TrustctlError
from trustctl.tufview import TrustedRepository

__all__ = [
    "DirectoryPendingStore",
    "PendingRole",
    "PendingStore",
    "ServerPendingStore",
    "content_of",
    "read_pending",
]

logger = logging.getLogger(__name__)

# A co-signer adopts the first signer's payload, expiry included: refuse absurd ones.
MAX_PENDING_LIFETIME = timedelta(days=400)


class PendingStore(Protocol):
    """Where partially signed role metadata waits for more signatures."""

    where: str

    def get(self, gun: str, role: str) -> bytes | None: ...

    def put(self, gun: str, role: str, data: bytes) -> None: ...

    def delete(self, gun: str, role: str) -> None: ...


class ServerPendingStore:
    """Pending metadata kept by the trust server."""

    def __init__(self, client: ServerClient) -> None:
        self._client = client
        self.where = f"the trust server ({client.server})"

    def get(self, gun: str, role: str) -> bytes | None:
        return self._client.get_pending(gun, role)

    def put(self, gun: str, role: str, data: bytes) -> None:
        self._client.put_pending(gun, role, data)

    def delete(self, gun: str, role: str) -> None:
        self._client.delete_pending(gun, role)


class DirectoryPendingStore:
    """Pending metadata in a directory shared by the signers (``--pending-dir``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.where = f"the pending directory {directory}"

    def _path(self, gun: str, role: str) -> Path:
        return self.directory / quote(gun, safe="") / f"{quote(role, safe='')}.json"

    def get(self, gun: str, role: str) -> bytes | None:
        try:
            return self._path(gun, role).read_bytes()
        except FileNotFoundError:
            return None

    def put(self, gun: str, role: str, data: bytes) -> None:
        path = self._path(gun, role)
        write_atomic(path, data)
        os.chmod(path, 0o644)

    def delete(self, gun: str, role: str) -> None:
        self._path(gun, role).unlink(missing_ok=True)


def content_of(targets: Targets) -> dict[str, object]:
    """What a signer vouches for: targets and delegations, without version/expiry."""
    d = targets.to_dict()
    return {"targets": d.get("targets", {}), "delegations": d.get("delegations")}


@dataclass(frozen=True)
class PendingRole:
    """A validated pending role: who signed it so far and what it changes."""

    role: str
    md: Metadata[Targets]
    signed_keyids: frozenset[str]
    threshold: int
    added: dict[str, TargetFile]
    removed: tuple[str, ...]

    @property
    def missing(self) -> int:
        return max(0, self.threshold - len(self.signed_keyids))

    def changes_text(self) -> str:
        parts = [
            f"signs {tag} (sha256:{t.hashes.get('sha256', '?')[:12]}…)"
            for tag, t in sorted(self.added.items())
        ]
        parts += [f"revokes {tag}" for tag in self.removed]
        return ", ".join(parts) or "re-signs without changes"


def read_pending(store: PendingStore, repo: TrustedRepository, role: str) -> PendingRole | None:
    """The usable pending metadata of ``role``, or None (absent, stale or junk).

    Raises:
        TrustctlError: the store cannot be read (network, unsupported).
    """
    data = store.get(repo.gun, role)
    if data is None:
        return None
    try:
        parsed: Metadata[Any] = Metadata.from_bytes(data)
    except DeserializationError as e:
        logger.warning("ignoring unreadable pending %s in %s: %s", role, store.where, e)
        return None
    if not isinstance(parsed.signed, Targets):
        return None
    md = cast("Metadata[Targets]", parsed)
    try:
        delegator = repo.delegator(role)
    except (KeyError, TrustctlError):
        delegator = None
    if delegator is None or not isinstance(delegator, Targets):
        return None
    current_version = repo.version_of(role)
    if md.signed.version != current_version + 1:
        logger.info(
            "ignoring pending %s v%d: the published version is %d",
            role,
            md.signed.version,
            current_version,
        )
        return None
    if md.signed.is_expired():
        logger.info("ignoring expired pending %s", role)
        return None
    if md.signed.expires > datetime.now(UTC) + MAX_PENDING_LIFETIME:
        logger.warning("ignoring pending %s in %s: it expires implausibly late", role, store.where)
        return None
    try:
        result = delegator.get_verification_result(role, md.signed_bytes, md.signatures)
    except ValueError:
        return None
    if not result.signed:
        logger.warning(
            "ignoring pending %s in %s: no valid signature from a delegated key", role, store.where
        )
        return None
    d = delegator.delegations
    assert d is not None
    if d.roles is not None:
        delegation = d.roles.get(role)
        if delegation is None or any(
            not delegation.is_delegated_path(p) for p in md.signed.targets
        ):
            return None
    elif d.succinct_roles is not None:
        succinct = d.succinct_roles
        if any(succinct.get_role_for_target(p) != role for p in md.signed.targets):
            return None
    try:
        current = repo.role(role)
    except TrustctlError:
        current = None
    before = current.signed.targets if current is not None else {}
    added = {p: t for p, t in md.signed.targets.items() if before.get(p) != t}
    removed = tuple(sorted(p for p in before if p not in md.signed.targets))
    return PendingRole(role, md, frozenset(result.signed), result.threshold, added, removed)
