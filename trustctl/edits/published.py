"""What one publish attempt read of the verified repository, before any edit runs.

Edits are pure: every role they may read is fetched (and verified, by
:class:`~trustctl.tufview.TrustedRepository`) first, by :meth:`Published.fetch`, which
asks each edit what it needs (:meth:`~trustctl.edits.plan.Edit.fetch`). Then the edits
run over this in-memory copy; a read of a published role that was not fetched is a
bug in an edit's ``fetch`` and is refused (:class:`NotFetchedError`), never downloaded
in the middle of an edit. A role that failed to verify keeps its error, raised where
the edit reads it, as the repository would have raised it.

Example:
    >>> published = Published.fetch(repo, edits)  # doctest: +SKIP
    >>> plan = Plan(published, keystore, now)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from tuf.api.metadata import Metadata, Targets

from trustctl.errors import TrustctlError
from trustctl.layout import RELEASES, owner_bin_for, owner_bins, parent_candidates, releases_bins

if TYPE_CHECKING:
    from trustctl.edits.plan import Edit
    from trustctl.tufview import TrustedRepository

__all__ = ["NotFetchedError", "Published"]


class NotFetchedError(RuntimeError):
    """An edit read a published role its ``fetch`` did not ask for (a bug in trustctl)."""


class Published:
    """The verified, published state the edits of one attempt read (see module docstring)."""

    def __init__(self, repo: TrustedRepository) -> None:
        self.repo = repo
        self.gun = repo.gun
        self.root_bytes = repo.root_bytes
        self._versions = {
            name[: -len(".json")]: meta.version for name, meta in repo.snapshot.meta.items()
        }
        self._roles: dict[str, Metadata[Targets] | None | TrustctlError] = {}
        self._bytes: dict[str, bytes] = {}
        self._walks: dict[str, list[tuple[str, str]] | TrustctlError] = {}
        self._sealed = False

    @classmethod
    def fetch(cls, repo: TrustedRepository, edits: Iterable[Edit]) -> Published:
        """Fetch what ``edits`` read (network), then seal: nothing more is fetched."""
        published = cls(repo)
        published.load("targets")
        for edit in edits:
            edit.fetch(published)
        published._sealed = True
        return published

    # --- the fetch phase (reads the repository; may download) -----------------------

    def load(self, *roles: str) -> None:
        """Fetch ``roles`` and the roles that may delegate them."""
        assert not self._sealed, "the edits already run: nothing more is fetched"
        for role in roles:
            for name in [*parent_candidates(role), role] if role != "targets" else [role]:
                if name in self._roles or self.version_of(name) == 0:
                    continue
                try:
                    md = self.repo.role(name)
                except TrustctlError as e:
                    self._roles[name] = e
                    continue
                self._roles[name] = md
                if md is not None:
                    self._bytes[name] = self.repo.role_bytes(name)

    def load_many(self, roles: Sequence[str]) -> None:
        """Fetch many roles, downloaded in parallel first (hash bins)."""
        wanted = [r for r in roles if r not in self._roles and self.version_of(r) > 0]
        if len(wanted) > 1:
            self.repo.prefetch(wanted)
        self.load(*wanted)

    def load_tag(self, tag: str, role: str | None) -> None:
        """What signing or revoking ``tag`` reads: the roles a lookup of it visits, the
        owner's and the signers' bin for it, and ``role`` when one is named."""
        self.load(RELEASES)
        if role:
            self.load(role)
        try:
            walk = self.repo.roles_for(tag)
        except TrustctlError as e:
            self._walks[tag] = e
        else:
            self._walks[tag] = walk
            self.load(*(name for name, _parent in walk))
        targets = self._roles.get("targets")
        if isinstance(targets, Metadata):
            owner_bin = owner_bin_for(targets.signed, tag)
            if owner_bin is not None:
                self.load(owner_bin)
        releases = self._roles.get(RELEASES)
        signer_bins = releases_bins(releases.signed if isinstance(releases, Metadata) else None)
        if signer_bins is not None:
            self.load(signer_bins.bin_for(tag))

    def load_owner_bins(self) -> None:
        """Every published owner bin (an administrative step)."""
        targets = self._roles.get("targets")
        bins = owner_bins(targets.signed) if isinstance(targets, Metadata) else None
        if bins is not None:
            self.load_many(bins.names())

    def load_signer_bins(self) -> None:
        """``targets/releases`` and every published signer bin (an administrative step)."""
        self.load(RELEASES)
        releases = self._roles.get(RELEASES)
        bins = releases_bins(releases.signed if isinstance(releases, Metadata) else None)
        if bins is not None:
            self.load_many(bins.names())

    # --- the edit phase (in memory) ---------------------------------------------------

    def version_of(self, role: str) -> int:
        """The role's version in the trusted snapshot (0 when it is not published)."""
        return self._versions.get(role, 0)

    def role(self, role: str) -> Metadata[Targets] | None:
        """The verified envelope of a published role (None when it is not published).

        Raises:
            TrustctlError: the role did not verify.
            NotFetchedError: the role was not fetched first.
        """
        if role not in self._roles:
            if self.version_of(role) == 0:
                return None
            raise NotFetchedError(f"{role} of {self.gun} was read by an edit but not fetched")
        found = self._roles[role]
        if isinstance(found, TrustctlError):
            raise found
        return found

    def role_bytes(self, role: str) -> bytes:
        """The verified bytes of a published role.

        Raises:
            KeyError: it is not published.
        """
        if self.role(role) is None:
            raise KeyError(role)
        return self._bytes[role]

    @property
    def targets(self) -> Metadata[Targets]:
        md = self.role("targets")
        assert md is not None  # the snapshot lists targets, or refresh failed
        return md

    def roles_for(self, tag: str) -> list[tuple[str, str]]:
        """Every published role a lookup of ``tag`` may visit, as (role, parent).

        Raises:
            TrustctlError: a role on the way failed verification.
            NotFetchedError: ``tag`` was not fetched first.
        """
        walk = self._walks.get(tag)
        if walk is None:
            raise NotFetchedError(f"the roles of {self.gun}:{tag} were read but not fetched")
        if isinstance(walk, TrustctlError):
            raise walk
        return walk
