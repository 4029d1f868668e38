"""What the upload rules read and produce: the stored state of one GUN, the candidate
state (uploaded files over stored ones), the server's key ids and the validated upload."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from notary_server.storage import MetaUpdate
from notary_server.validation.parsing import Parsed, parse

__all__ = ["CandidateState", "ServerKeyIds", "StoredState", "ValidatedUpload"]


@dataclass(frozen=True)
class ServerKeyIds:
    """Key ids of the online keys the signer holds for one GUN."""

    timestamp: frozenset[str] = frozenset()
    snapshot: frozenset[str] = frozenset()


class StoredState(Protocol):
    """Read access to the current stored files of one GUN."""

    def current(self, role: str) -> bytes | None:
        """Raw bytes of the newest stored version of ``role``, or None."""

    def roles(self) -> Iterable[str]:
        """Names of every stored role."""

    # Optional: ``version(role) -> int | None``, the stored version without parsing.


class CandidateState:
    """The candidate state: uploaded files over stored ones, parsed on demand."""

    def __init__(self, stored: StoredState) -> None:
        self._stored = stored
        self._parsed: dict[str, Parsed | None] = {}
        self.uploaded: dict[str, Parsed] = {}

    def stored(self, role: str) -> Parsed | None:
        if role not in self._parsed:
            raw = self._stored.current(role)
            self._parsed[role] = parse(role, raw, canonical=False) if raw is not None else None
        return self._parsed[role]

    def stored_version(self, role: str) -> int | None:
        """The stored version of ``role``, without parsing it when the store can tell."""
        if role not in self._parsed:
            version = getattr(self._stored, "version", None)
            if version is not None:
                return version(role)
        found = self.stored(role)
        return found.version if found is not None else None

    def get(self, role: str) -> Parsed | None:
        return self.uploaded.get(role) or self.stored(role)


@dataclass
class ValidatedUpload:
    """An upload that passed every rule; what the publisher needs next."""

    root: Parsed  # the root in force after the update
    new_root: Parsed | None
    targets: dict[str, Parsed]  # uploaded targets-type roles, parents first
    snapshot: Parsed | None  # client-managed snapshot, if uploaded
    server_snapshot: bool  # the server must build the next snapshot
    #: The candidate state: uploaded files over stored ones, parsed once (role -> Parsed).
    lookup: Callable[[str], Parsed | None] = field(default=lambda role: None, repr=False)

    def files(self) -> list[MetaUpdate]:
        """Uploaded files to store, in the order they were checked."""
        parts = [self.new_root, *self.targets.values(), self.snapshot]
        return [MetaUpdate(p.role, p.version, p.raw) for p in parts if p is not None]
