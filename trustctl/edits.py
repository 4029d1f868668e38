"""Applying staged changes to working copies of a repository's metadata.

A :class:`Plan` holds, for one publish attempt, editable copies of root, targets and
the delegated roles, made from the *verified* metadata of a
:class:`~trustctl.trusted.TrustedRepository`, and records what changed. Each change
action (:mod:`trustctl.changes`) has an ``apply`` function in :data:`APPLY`; they
are idempotent, so a publish can re-apply them on top of a newer server state (the
rebase after a version conflict).

Conventions (Docker's, see docs/cli.md "How trust works"): tags signed by team
members go into ``targets/releases`` (paths ``*``, every signer's keys, threshold K);
each signer also has a ``targets/<name>`` delegation with **no paths**, which only
names whose key is whose.

Example:
    >>> plan = Plan(repo, keystore, now)  # doctest: +SKIP
    >>> APPLY["add-target"](plan, {"tag": "v1", "sha256": "..", "length": 528, "media_type": "..", "role": None})  # doctest: +SKIP
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from securesystemslib.signer import Key
from tuf.api.metadata import DelegatedRole, Delegations, Metadata, Root, TargetFile, Targets

from trustctl.errors import MissingKeyError, UntrustedSignatureError, UsageError
from trustctl.keys import KeyStore
from trustctl.trusted import TrustedRepository

__all__ = [
    "APPLY",
    "EXPIRY_DAYS",
    "RELEASES",
    "Plan",
    "check_signer_name",
    "signer_roles",
]

RELEASES = "targets/releases"
EXPIRY_DAYS = {"root": 365, "targets": 365, "delegation": 365}
SIGNER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def check_signer_name(name: str) -> str:
    """A signer name: ``[a-z0-9][a-z0-9_-]*``, not ``releases``.

    Raises:
        UsageError: invalid or reserved.
    """
    if not SIGNER_NAME_RE.match(name) or name == "releases":
        raise UsageError(
            f"invalid signer name {name!r}: use lowercase letters, digits, '_' and '-' ('releases' is reserved)"
        )
    return name


def signer_roles(targets: Targets) -> dict[str, list[str]]:
    """Signer name -> key ids, from the ``targets/<name>`` delegations."""
    roles = targets.delegations.roles if targets.delegations is not None else None
    out: dict[str, list[str]] = {}
    for role_name, role in (roles or {}).items():
        if role_name.startswith("targets/") and role_name != RELEASES and role_name.count("/") == 1:
            out[role_name.split("/", 1)[1]] = list(role.keyids)
    return out


class Plan:
    """Working copies of one attempt's metadata, and what changed."""

    def __init__(self, repo: TrustedRepository, keystore: KeyStore, now: datetime) -> None:
        self.repo = repo
        self.keystore = keystore
        self.now = now
        self.prev_root = Metadata[Root].from_bytes(repo.root_bytes).signed
        self.root_md = Metadata[Root].from_bytes(repo.root_bytes)
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
                md = Metadata[Targets].from_bytes(self.repo.role_bytes("targets"))
                self.base_version[role] = md.signed.version
            else:
                try:
                    current = self.repo.role(role)
                except UntrustedSignatureError:
                    # Its signatures no longer meet the threshold (keys removed, threshold
                    # raised): never re-sign content nobody can vouch for; start it over.
                    self.warnings.append(
                        f"{role} v{self.repo.version_of(role)} no longer verifies; starting it over "
                        "empty: sign again the tags it carried that are still in use"
                    )
                    current = None
                    self.base_version[role] = self.repo.version_of(role)
                if current is not None:
                    md = Metadata[Targets].from_bytes(self.repo.role_bytes(role))
                    self.base_version[role] = md.signed.version
                else:
                    md = Metadata(Targets(version=1, expires=self.now))
                    self.base_version.setdefault(role, 0)
            self.roles[role] = md
        return self.roles[role].signed

    def mark(self, role: str) -> None:
        self.working(role)
        if role not in self.dirty:
            self.dirty.append(role)

    def holds(self, keyids: Sequence[str]) -> bool:
        return bool(self.keystore.held(keyids))

    def delegations(self) -> dict[str, DelegatedRole]:
        t = self.working("targets")
        if t.delegations is None:
            t.delegations = Delegations(keys={}, roles={})
        if t.delegations.roles is None:
            raise UsageError(
                "this repository uses hash-bin delegations, which trustctl cannot edit"
            )
        return t.delegations.roles


# --- applying changes ------------------------------------------------------------------


def _choose_role(plan: Plan, tag: str) -> str:
    roles = plan.working("targets").delegations
    releases = roles.roles.get(RELEASES) if roles is not None and roles.roles else None
    if releases is not None and plan.holds(releases.keyids):
        return RELEASES
    if plan.holds(plan.root.roles["targets"].keyids):
        return "targets"
    gun = plan.repo.gun
    if releases is not None:
        raise MissingKeyError(
            f"you hold neither the targets key of {gun} nor a signer key of {RELEASES}, so you cannot sign {tag}",
            hint=f"ask the owner to run `trustctl signer add NAME --key YOUR.pub {gun}` (create the key with "
            "`trustctl key generate NAME`)",
        )
    raise MissingKeyError(
        f"you do not hold the targets key of {gun}, so you cannot sign {tag}",
        hint="sign on the machine that ran `trustctl init`, import the key with `trustctl key import`, or ask "
        "the owner to add you as a signer",
    )


def _apply_add_target(plan: Plan, d: dict[str, Any]) -> list[str]:
    role = d.get("role") or _choose_role(plan, d["tag"])
    target = TargetFile(
        length=int(d["length"]),
        hashes={"sha256": str(d["sha256"])},
        path=d["tag"],
        unrecognized_fields={"custom": {"mediaType": d["media_type"]}},
    )
    targets = plan.working(role)
    if targets.targets.get(d["tag"]) != target:
        targets.targets[d["tag"]] = target
        plan.mark(role)
    return [role]


def _delegated_roles(plan: Plan) -> dict[str, DelegatedRole]:
    d = plan.working("targets").delegations
    return dict(d.roles) if d is not None and d.roles else {}


def _apply_remove_target(plan: Plan, d: dict[str, Any]) -> list[str]:
    tag = d["tag"]
    delegated = _delegated_roles(plan)
    candidates = [d["role"]] if d.get("role") else ["targets", *delegated]
    removed, blocked = [], []
    for role in candidates:
        if role != "targets" and role not in delegated:
            continue
        parent_keyids = (
            plan.root.roles["targets"].keyids if role == "targets" else delegated[role].keyids
        )
        if role != "targets" and plan.repo.version_of(role) == 0 and role not in plan.roles:
            continue
        if tag not in plan.working(role).targets:
            continue
        if not plan.holds(parent_keyids):
            blocked.append(role)
            continue
        del plan.working(role).targets[tag]
        plan.mark(role)
        removed.append(role)
    if not removed and blocked:
        raise MissingKeyError(
            f"{tag} is signed in {', '.join(blocked)}, and you hold no key that can sign there",
            hint="ask a signer of that role, or the repository owner, to revoke it",
        )
    if not removed:
        plan.warnings.append(f"{tag} is not signed in {plan.repo.gun}; nothing to revoke")
    return removed


def _load_key(doc: dict[str, Any]) -> Key:
    body = dict(doc)
    keyid = body.pop("keyid")
    return Key.from_dict(keyid, body)


def _apply_add_signer(plan: Plan, d: dict[str, Any]) -> list[str]:
    name = check_signer_name(d["name"])
    roles = plan.delegations()
    targets = plan.working("targets")
    if RELEASES not in roles:
        existing = dict(roles)
        roles.clear()
        roles[RELEASES] = DelegatedRole(RELEASES, [], 1, False, paths=["*"])
        roles.update(existing)
    role_name = f"targets/{name}"
    if role_name not in roles:
        # paths=[]: the role names a signer and matches no tag, so no single signer can
        # publish tags around the targets/releases threshold.
        roles[role_name] = DelegatedRole(role_name, [], 1, False, paths=[])
    owners = signer_roles(targets)
    for doc in d["keys"]:
        key = _load_key(doc)
        for other, ids in owners.items():
            if other != name and key.keyid in ids:
                raise UsageError(f"key {key.keyid[:12]}… already belongs to signer {other}")
        targets.add_key(key, RELEASES)
        targets.add_key(key, role_name)
    if d.get("threshold"):
        roles[RELEASES].threshold = int(d["threshold"])
    _check_threshold(roles[RELEASES])
    plan.force = plan.force or bool(d.get("force"))
    plan.mark("targets")
    return ["targets"]


def _apply_remove_signer(plan: Plan, d: dict[str, Any]) -> list[str]:
    name = d["name"]
    roles = plan.delegations()
    targets = plan.working("targets")
    role_name = f"targets/{name}"
    if role_name not in roles:
        raise UsageError(
            f"{plan.repo.gun} has no signer named {name!r}",
            hint=f"see `trustctl signer list {plan.repo.gun}`",
        )
    keep = set(d.get("except_keyids") or ())
    keyids = [k for k in (d.get("keyids") or list(roles[role_name].keyids)) if k not in keep]
    for keyid in keyids:
        if keyid not in roles[role_name].keyids:
            raise UsageError(f"key {keyid[:12]}… does not belong to signer {name}")
        roles[role_name].keyids.remove(keyid)
        still_used = any(
            keyid in ids for other, ids in signer_roles(targets).items() if other != name
        )
        if not still_used and RELEASES in roles and keyid in roles[RELEASES].keyids:
            roles[RELEASES].keyids.remove(keyid)
    if not roles[role_name].keyids:
        del roles[role_name]
    releases = roles.get(RELEASES)
    if d.get("threshold"):
        if releases is None:
            raise UsageError("there is no signer threshold to set: no signers are left")
        releases.threshold = int(d["threshold"])
    if releases is not None and not releases.keyids:
        del roles[RELEASES]
        if plan.repo.version_of(RELEASES) > 0:
            plan.warnings.append(
                f"no signers are left: tags signed in {RELEASES} are no longer trusted; sign them again with "
                "the targets key if they should stay"
            )
    elif releases is not None:
        _check_threshold(releases)
    _drop_unused_keys(targets)
    plan.force = plan.force or bool(d.get("force"))
    plan.mark("targets")
    return ["targets"]


def _apply_set_threshold(plan: Plan, d: dict[str, Any]) -> list[str]:
    roles = plan.delegations()
    if RELEASES not in roles:
        raise UsageError(f"{plan.repo.gun} has no signers yet: add one with `trustctl signer add`")
    roles[RELEASES].threshold = int(d["threshold"])
    _check_threshold(roles[RELEASES])
    plan.mark("targets")
    return ["targets"]


def _apply_witness(plan: Plan, d: dict[str, Any]) -> list[str]:
    role = d["role"]
    if role == Root.type:  # re-sign root as is: renews its expiry
        plan.root_dirty = True
        return [role]
    if role != "targets" and role not in _delegated_roles(plan):
        if d.get("if_published"):
            return []
        raise UsageError(f"{plan.repo.gun} has no role {role!r}")
    if d.get("if_published") and role != "targets" and plan.repo.version_of(role) == 0:
        return []
    plan.mark(role)
    return [role]


def _apply_rotate_root(plan: Plan, d: dict[str, Any]) -> list[str]:
    key = _load_key(d["key"])
    role = plan.root.roles[Root.type]
    for keyid in list(role.keyids):
        plan.root.revoke_key(keyid, Root.type)
    plan.root.add_key(key, Root.type)
    role.threshold = 1
    plan.root_dirty = True
    return ["root"]


def _apply_rotate_top(plan: Plan, d: dict[str, Any]) -> list[str]:
    """Replace the keys of targets, snapshot or timestamp in root."""
    role_name, key = d["role"], _load_key(d["key"])
    role = plan.root.roles[role_name]
    for keyid in list(role.keyids):
        plan.root.revoke_key(keyid, role_name)
    plan.root.add_key(key, role_name)
    role.threshold = 1
    plan.root_dirty = True
    if role_name == "targets":
        plan.mark("targets")  # re-signed with the new key in the same upload
        return ["root", "targets"]
    return ["root"]


APPLY: dict[str, Callable[[Plan, dict[str, Any]], list[str]]] = {
    "add-target": _apply_add_target,
    "remove-target": _apply_remove_target,
    "add-signer": _apply_add_signer,
    "remove-signer": _apply_remove_signer,
    "set-threshold": _apply_set_threshold,
    "witness": _apply_witness,
    "rotate-root": _apply_rotate_root,
    "rotate-top": _apply_rotate_top,
}


def _check_threshold(role: DelegatedRole) -> None:
    if role.threshold < 1 or role.threshold > len(role.keyids):
        raise UsageError(
            f"a threshold of {role.threshold} cannot be met by the {len(role.keyids)} signer key(s) of {RELEASES}",
            hint="pass --threshold N with N between 1 and the number of signer keys",
        )


def _drop_unused_keys(targets: Targets) -> None:
    d = targets.delegations
    if d is None or d.roles is None:
        return
    used = {k for role in d.roles.values() for k in role.keyids}
    for keyid in list(d.keys):
        if keyid not in used:
            del d.keys[keyid]
