"""Key rotations: root, the top-level roles, and the owner's hash bins."""

from __future__ import annotations

from typing import Any

from tuf.api.metadata import Root

from trustctl.edits.plan import Plan, load_key
from trustctl.edits.signers import _binned
from trustctl.errors import UsageError
from trustctl.layout import RELEASES, named_owner_bins, owner_bins


def _apply_rotate_root(plan: Plan, d: dict[str, Any]) -> list[str]:
    key = load_key(d["key"])
    role = plan.root.roles[Root.type]
    for keyid in list(role.keyids):
        plan.root.revoke_key(keyid, Root.type)
    plan.root.add_key(key, Root.type)
    role.threshold = 1
    plan.root_dirty = True
    return ["root"]


def _apply_rotate_top(plan: Plan, d: dict[str, Any]) -> list[str]:
    """Replace the keys of targets, snapshot or timestamp in root."""
    role_name, key = d["role"], load_key(d["key"])
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


def _apply_rotate_bins(plan: Plan, d: dict[str, Any]) -> list[str]:
    """A new owner bins key: every published owner bin is re-signed with it (reads
    and signs every bin: an administrative step)."""
    key = load_key(d["key"])
    targets = plan.working("targets")
    owner = owner_bins(targets)
    if owner is None or targets.delegations is None:
        raise UsageError(f"{plan.repo.gun} has no hash bins")
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
        if plan.repo.version_of(name) > 0:
            plan.mark(name)
            changed.append(name)
    return changed
