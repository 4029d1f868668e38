"""Key rotations: root, the top-level roles, and the owner's hash bins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from securesystemslib.signer import Key
from tuf.api.metadata import Root

from trustctl.edits.plan import Plan, load_key
from trustctl.edits.signers import _binned
from trustctl.errors import UsageError
from trustctl.layout import RELEASES, named_owner_bins, owner_bins

if TYPE_CHECKING:
    from trustctl.edits.published import Published

__all__ = ["RotateBins", "RotateRoot", "RotateTop"]


@dataclass(frozen=True)
class RotateRoot:
    """A new root key (the only one, threshold 1); root is signed by the old and the new."""

    action: ClassVar[str] = "rotate-root"
    key: Mapping[str, Any]

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> RotateRoot:
        return cls(key=d["key"])

    def fetch(self, published: Published) -> None:
        pass  # root only

    def apply(self, plan: Plan) -> list[str]:
        return _rotate_root(plan, load_key(self.key))


def _rotate_root(plan: Plan, key: Key) -> list[str]:
    role = plan.root.roles[Root.type]
    for keyid in list(role.keyids):
        plan.root.revoke_key(keyid, Root.type)
    plan.root.add_key(key, Root.type)
    role.threshold = 1
    plan.root_dirty = True
    return ["root"]


@dataclass(frozen=True)
class RotateTop:
    """Replace the keys of targets, snapshot or timestamp in root."""

    action: ClassVar[str] = "rotate-top"
    role: str
    key: Mapping[str, Any]

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> RotateTop:
        return cls(role=d["role"], key=d["key"])

    def fetch(self, published: Published) -> None:
        published.load(RELEASES)

    def apply(self, plan: Plan) -> list[str]:
        return _rotate_top(plan, self.role, load_key(self.key))


def _rotate_top(plan: Plan, role_name: str, key: Key) -> list[str]:
    role = plan.root.roles[role_name]
    old = list(role.keyids)
    for keyid in old:
        plan.root.revoke_key(keyid, role_name)
    plan.root.add_key(key, role_name)
    role.threshold = 1
    plan.root_dirty = True
    if role_name != "targets":
        return ["root"]
    plan.mark("targets")  # re-signed with the new key in the same upload
    changed = ["root", "targets"]
    targets = plan.working("targets")
    roles = targets.delegations.roles if targets.delegations is not None else None
    releases = (roles or {}).get(RELEASES)
    if _binned(plan) and releases is not None and set(releases.keyids) & set(old):
        # the owner signs a binned targets/releases with the targets key: follow it
        for keyid in [k for k in releases.keyids if k in old]:
            targets.revoke_key(keyid, RELEASES)
        targets.add_key(key, RELEASES)
        plan.mark(RELEASES)
        changed.append(RELEASES)
    return changed


@dataclass(frozen=True)
class RotateBins:
    """A new owner bins key: every published owner bin is re-signed with it (reads
    and signs every bin: an administrative step)."""

    action: ClassVar[str] = "rotate-bins"
    key: Mapping[str, Any]

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> RotateBins:
        return cls(key=d["key"])

    def fetch(self, published: Published) -> None:
        published.load_owner_bins()

    def apply(self, plan: Plan) -> list[str]:
        return _rotate_bins(plan, load_key(self.key))


def _rotate_bins(plan: Plan, key: Key) -> list[str]:
    targets = plan.working("targets")
    owner = owner_bins(targets)
    if owner is None or targets.delegations is None:
        raise UsageError(f"{plan.published.gun} has no hash bins")
    succinct = targets.delegations.succinct_roles
    if succinct is not None:
        for keyid in list(succinct.keyids):
            targets.revoke_key(keyid)
        targets.add_key(key)
        succinct.threshold = 1
    else:
        for role in named_owner_bins(targets):
            for keyid in list(role.keyids):
                targets.revoke_key(keyid, role.name)
            targets.add_key(key, role.name)
            role.threshold = 1
    plan.mark("targets")
    changed = ["targets"]
    for name in owner.names():
        if plan.published.version_of(name) > 0:
            plan.mark(name)
            changed.append(name)
    return changed
