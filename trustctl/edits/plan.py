"""Working copies of a repository's metadata for one publish attempt, and what an edit is.

A :class:`Plan` holds, for one publish attempt, editable copies of root, targets and
the delegated roles, made from the *verified* metadata the attempt fetched first
(:class:`~trustctl.edits.published.Published`), and records what changed. Each staged
change (:mod:`trustctl.changes`) becomes one :class:`Edit` (:func:`trustctl.edits.edit_for`):
``fetch`` asks for what it reads, then ``apply`` changes the plan without any network
access. Edits are idempotent, so a publish can re-apply them on top of a newer server
state (the rebase after a version conflict).

Conventions (Docker's, see docs/cli.md "How trust works"): tags signed by team
members go into ``targets/releases`` (paths ``*``, every signer's keys, threshold K);
each signer also has a ``targets/<name>`` delegation with **no paths**, which only
names whose key is whose.

Example:
    >>> edit = AddTarget(tag="v1", sha256="..", length=528, media_type="..")  # doctest: +SKIP
    >>> plan = Plan(Published.fetch(repo, [edit]), keystore, now)  # doctest: +SKIP
    >>> edit.apply(plan)  # doctest: +SKIP
    ['bins-0a']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from securesystemslib.signer import Key
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Root, Targets

from trustctl.errors import MissingKeyError, UntrustedSignatureError, UsageError
from trustctl.layout import RELEASES, delegates, parent_candidates, succinct_to_named

if TYPE_CHECKING:
    from trustctl.edits.published import Published
    from trustctl.keys import KeyStore
    from trustctl.tufview import TrustedRepository

__all__ = ["EXPIRY_DAYS", "Edit", "Plan", "load_key"]

EXPIRY_DAYS = {"root": 365, "targets": 365, "delegation": 365}


class Edit(Protocol):
    """One staged change, typed: what it reads, and how it changes a plan."""

    def fetch(self, published: Published) -> None:
        """Ask ``published`` for every role :meth:`apply` may read (network allowed)."""

    def apply(self, plan: Plan) -> list[str]:
        """Change ``plan`` (no network access); the roles it changed."""
        ...


class Plan:
    """Working copies of one attempt's metadata, and what changed.

    Edits read the published state through :attr:`published` only; :attr:`repo` (the
    verified repository) is for signing and publishing, after the edits.
    """

    def __init__(self, published: Published, keystore: KeyStore, now: datetime) -> None:
        self.published = published
        self.repo: TrustedRepository = published.repo
        self.keystore = keystore
        self.now = now
        self.prev_root = Metadata[Root].from_bytes(published.root_bytes).signed
        self.root_md = Metadata[Root].from_bytes(published.root_bytes)
        self.root_dirty = False
        self.roles: dict[str, Metadata[Targets]] = {}
        self.base_version: dict[str, int] = {}
        self.dirty: list[str] = []
        self.force = False
        self.warnings: list[str] = []
        self.placed: dict[str, list[str]] = {}

    @property
    def root(self) -> Root:
        return self.root_md.signed

    def working(self, role: str) -> Targets:
        if role not in self.roles:
            if role == "targets":
                md = Metadata[Targets].from_bytes(self.published.role_bytes("targets"))
                self.base_version[role] = md.signed.version
            else:
                try:
                    current = self.published.role(role)
                except UntrustedSignatureError:
                    # Its signatures no longer meet the threshold (keys removed, threshold
                    # raised): never re-sign content nobody can vouch for; start it over.
                    self.warnings.append(
                        f"{role} v{self.published.version_of(role)} no longer verifies; starting it over "
                        "empty: sign again the tags it carried that are still in use"
                    )
                    current = None
                    self.base_version[role] = self.published.version_of(role)
                if current is not None:
                    md = Metadata[Targets].from_bytes(self.published.role_bytes(role))
                    self.base_version[role] = md.signed.version
                else:
                    md = Metadata(Targets(version=1, expires=self.now))
                    # a role dropped from the delegations earlier may still be published
                    self.base_version.setdefault(role, self.published.version_of(role))
            self.roles[role] = md
        return self.roles[role].signed

    def parent(self, role: str) -> str:
        """The role that delegates ``role`` *as edited in this plan* (root for targets).

        Raises:
            UsageError: nothing delegates ``role``.
        """
        if role == "targets":
            return Root.type
        for candidate in parent_candidates(role):
            if candidate != role and delegates(self.working(candidate), role):
                return candidate
        raise UsageError(f"{role} is not delegated in {self.published.gun}")

    def delegator(self, role: str) -> Root | Targets:
        parent = self.parent(role)
        return self.root if parent == Root.type else self.working(parent)

    def keyids_for(self, role: str) -> list[str]:
        """The keys that may sign ``role`` (from its delegator in this plan)."""
        return list(self.delegator(role).get_delegated_role(role).keyids)

    def releases(self) -> Targets | None:
        """The working ``targets/releases``, or None when ``targets`` does not delegate it."""
        d = self.working("targets").delegations
        if d is None or d.roles is None or RELEASES not in d.roles:
            return None
        return self.working(RELEASES)

    def mark(self, role: str) -> None:
        self.working(role)
        if role not in self.dirty:
            self.dirty.append(role)

    def holds(self, keyids: Sequence[str]) -> bool:
        return bool(self.keystore.held(keyids))

    def delegations(self) -> dict[str, DelegatedRole]:
        """``targets``' named delegations (owner bins are made named first, if any)."""
        t = self.working("targets")
        if t.delegations is None:
            t.delegations = Delegations(keys={}, roles={})
        if t.delegations.roles is None:
            if (
                t.delegations.succinct_roles is None
                or t.delegations.succinct_roles.name_prefix != "bins"
            ):
                raise UsageError(
                    "this repository's hash-bin delegations were not made by trustctl, which cannot edit them"
                )
            self._name_owner_bins()
        assert t.delegations.roles is not None
        return t.delegations.roles

    def _name_owner_bins(self) -> None:
        """Succinct owner bins -> named roles, so signers can be delegated next to them.

        Every bin a TUF client may visit before ``targets/releases`` must be in the
        snapshot, so the bins that do not exist yet are created empty (signed with
        the owner's bins key, which must be here).
        """
        targets = self.working("targets")
        names = succinct_to_named(targets)
        missing = [n for n in names if self.published.version_of(n) == 0]
        if missing and not self.holds(self.keyids_for(names[0])):
            raise MissingKeyError(
                f"adding the first signer to {self.published.gun} creates its {len(missing)} empty hash bins, "
                "which needs the owner's bins key",
                hint="run this where `trustctl init` ran, or import the bins key (`trustctl key import`)",
            )
        for name in missing:
            self.mark(name)
        self.warnings.append(
            f"the owner's hash bins of {self.published.gun} are now delegated by name next to the signers"
            + (f" ({len(missing)} empty bins created)" if missing else "")
        )


def load_key(doc: Mapping[str, Any]) -> Key:
    body = dict(doc)
    keyid = body.pop("keyid")
    return Key.from_dict(keyid, body)
