"""Signers: their delegations, keys, threshold and the tags they hold."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tuf.api.metadata import DelegatedRole, Delegations, Role, SuccinctRoles, Targets

from trustctl.edits.plan import Plan, load_key
from trustctl.errors import ThresholdError, TrustctlError, UsageError
from trustctl.layout import (
    RELEASES,
    RELEASES_BINS_PREFIX,
    check_signer_name,
    owner_bins,
    releases_bins,
    signer_roles,
    tag_policy,
)

if TYPE_CHECKING:
    from trustctl.edits.published import Published

__all__ = ["AddSigner", "RemoveSigner", "SetPaths", "SetThreshold"]


def _binned(plan: Plan) -> bool:
    """Whether signers get hash bins here: the owner's tags are in bins."""
    return owner_bins(plan.working("targets")) is not None


def _signer_bins(plan: Plan) -> SuccinctRoles:
    """The working ``targets/releases``' succinct bins (created when missing)."""
    releases = plan.working(RELEASES)
    d = releases.delegations
    if d is None or d.succinct_roles is None:
        owner = owner_bins(plan.working("targets"))
        assert owner is not None
        releases.delegations = Delegations(
            keys={},
            succinct_roles=SuccinctRoles([], 1, owner.bit_length, RELEASES_BINS_PREFIX),
        )
        d = releases.delegations
    assert d.succinct_roles is not None
    return d.succinct_roles


@dataclass(frozen=True)
class AddSigner:
    """Add signer ``name`` with ``keys`` (TUF key dicts with ``keyid``) to the signers
    of ``targets/releases``; ``paths`` (tag patterns) and ``threshold`` when given."""

    action: ClassVar[str] = "add-signer"
    name: str
    keys: tuple[Mapping[str, Any], ...]
    threshold: int | None = None
    paths: tuple[str, ...] | None = None
    force: bool = False

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> AddSigner:
        return cls(
            name=d["name"],
            keys=tuple(d["keys"]),
            threshold=int(d["threshold"]) if d.get("threshold") else None,
            paths=tuple(d["paths"]) if d.get("paths") else None,
            force=bool(d.get("force")),
        )

    def fetch(self, published: Published) -> None:
        published.load(RELEASES)
        if not self.force:  # the signers' tags may change: see _check_lost_tags
            _load_signed_tags(published)

    def apply(self, plan: Plan) -> list[str]:
        return _add_signer(plan, self)


def _add_signer(plan: Plan, d: AddSigner) -> list[str]:
    name = check_signer_name(d.name)
    binned = _binned(plan)
    roles = plan.delegations()
    targets = plan.working("targets")
    paths = _signer_paths(d.paths) if d.paths else None
    if RELEASES not in roles:
        # listed first; with bins also terminating, so the signers' tags are theirs alone
        # (see trustctl.layout); with bins it only delegates the signers' bins, and the
        # owner signs it
        _check_lost_tags(plan, paths or ["*"], force=d.force)
        existing = dict(roles)
        roles.clear()
        roles[RELEASES] = DelegatedRole(RELEASES, [], 1, binned, paths=paths or ["*"])
        roles.update(existing)
        if binned:
            for keyid in plan.root.roles["targets"].keyids:
                targets.add_key(plan.root.get_key(keyid), RELEASES)
    elif paths is not None:
        _set_signer_paths(plan, paths, force=d.force)
    role_name = f"targets/{name}"
    if role_name not in roles:
        # paths=[]: the role names a signer and matches no tag, so no single signer can
        # publish tags around the targets/releases threshold.
        roles[role_name] = DelegatedRole(role_name, [], 1, False, paths=[])
    owners = signer_roles(targets)
    signer_bins = _signer_bins(plan) if binned else None
    for doc in d.keys:
        key = load_key(doc)
        for other, ids in owners.items():
            if other != name and key.keyid in ids:
                raise UsageError(f"key {key.keyid[:12]}… already belongs to signer {other}")
        if signer_bins is None:
            targets.add_key(key, RELEASES)
        else:
            plan.working(RELEASES).add_key(key)
        targets.add_key(key, role_name)
    threshold_role: Role = signer_bins if signer_bins is not None else roles[RELEASES]
    if d.threshold:
        threshold_role.threshold = d.threshold
    _check_threshold(threshold_role)
    plan.force = plan.force or d.force
    plan.mark("targets")
    if signer_bins is not None:
        plan.mark(RELEASES)
        return ["targets", RELEASES]
    return ["targets"]


@dataclass(frozen=True)
class RemoveSigner:
    """Remove signer ``name``'s keys (``keyids``, or all but ``except_keyids``); the
    signer goes when no key is left; ``threshold`` when given."""

    action: ClassVar[str] = "remove-signer"
    name: str
    keyids: tuple[str, ...] | None = None
    except_keyids: tuple[str, ...] = ()
    threshold: int | None = None
    force: bool = False

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> RemoveSigner:
        return cls(
            name=d["name"],
            keyids=tuple(d["keyids"]) if d.get("keyids") else None,
            except_keyids=tuple(d.get("except_keyids") or ()),
            threshold=int(d["threshold"]) if d.get("threshold") else None,
            force=bool(d.get("force")),
        )

    def fetch(self, published: Published) -> None:
        published.load(RELEASES)

    def apply(self, plan: Plan) -> list[str]:
        return _remove_signer(plan, self)


def _remove_signer(plan: Plan, d: RemoveSigner) -> list[str]:
    name = d.name
    targets = plan.working("targets")
    role_name = f"targets/{name}"
    if targets.delegations is None or role_name not in (targets.delegations.roles or {}):
        raise UsageError(
            f"{plan.published.gun} has no signer named {name!r}",
            hint=f"see `trustctl signer list {plan.published.gun}`",
        )
    roles = plan.delegations()
    signer_bins = releases_bins(plan.working(RELEASES)) if RELEASES in roles else None
    releases_md = plan.working(RELEASES) if signer_bins is not None else None
    keep = set(d.except_keyids)
    keyids = [k for k in (d.keyids or list(roles[role_name].keyids)) if k not in keep]
    for keyid in keyids:
        if keyid not in roles[role_name].keyids:
            raise UsageError(f"key {keyid[:12]}… does not belong to signer {name}")
        roles[role_name].keyids.remove(keyid)
        still_used = any(
            keyid in ids for other, ids in signer_roles(targets).items() if other != name
        )
        if still_used:
            continue
        if releases_md is not None and signer_bins is not None:
            if keyid in signer_bins.keyids:
                releases_md.revoke_key(keyid)
        elif RELEASES in roles and keyid in roles[RELEASES].keyids:
            roles[RELEASES].keyids.remove(keyid)
    if not roles[role_name].keyids:
        del roles[role_name]
    releases = roles.get(RELEASES)
    threshold_role: Role | None = releases
    if releases_md is not None:
        threshold_role = _signer_bins(plan)
    if d.threshold:
        if threshold_role is None:
            raise UsageError("there is no signer threshold to set: no signers are left")
        threshold_role.threshold = d.threshold
    changed = ["targets"]
    if threshold_role is not None and not threshold_role.keyids:
        del roles[RELEASES]
        published = plan.published.version_of(RELEASES) > 0
        if published:
            plan.warnings.append(
                f"no signers are left: tags signed in {RELEASES} are no longer trusted; sign them again with "
                "the owner's key if they should stay"
            )
    elif threshold_role is not None:
        _check_threshold(threshold_role)
        if releases_md is not None:
            plan.mark(RELEASES)
            changed.append(RELEASES)
    _drop_unused_keys(targets)
    plan.force = plan.force or d.force
    plan.mark("targets")
    return changed


@dataclass(frozen=True)
class SetThreshold:
    """How many signer keys must sign a tag."""

    action: ClassVar[str] = "set-threshold"
    threshold: int

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> SetThreshold:
        return cls(threshold=int(d["threshold"]))

    def fetch(self, published: Published) -> None:
        published.load(RELEASES)

    def apply(self, plan: Plan) -> list[str]:
        return _set_threshold(plan, self.threshold)


def _set_threshold(plan: Plan, threshold: int) -> list[str]:
    roles = plan.delegations()
    if RELEASES not in roles:
        raise UsageError(
            f"{plan.published.gun} has no signers yet: add one with `trustctl signer add`"
        )
    signer_bins = releases_bins(plan.working(RELEASES))
    if signer_bins is not None:
        succinct = _signer_bins(plan)
        succinct.threshold = threshold
        _check_threshold(succinct)
        plan.mark(RELEASES)
        return [RELEASES]
    roles[RELEASES].threshold = threshold
    _check_threshold(roles[RELEASES])
    plan.mark("targets")
    return ["targets"]


def _signer_paths(patterns: Sequence[str]) -> list[str]:
    """Tag patterns for the signers (python-tuf's ``paths``: ``*`` and ``?`` match
    within a tag; tags have no ``/``).

    Raises:
        UsageError: no pattern, or an empty one.
    """
    out = sorted({p.strip() for p in patterns})
    if not out or any(not p for p in out):
        raise UsageError("give at least one tag pattern, e.g. 'v*' or '*'")
    return out


def _check_lost_tags(plan: Plan, paths: Sequence[str], *, force: bool) -> None:
    """Refuse (unless ``force``) a change of the signers' tags that leaves signed tags
    unverifiable: owner-bin tags the signers now hold (with bins the signers come
    first), and signers' tags outside their new paths. Reads every published owner
    and signers' bin: an administrative step.

    Raises:
        ThresholdError: such tags exist.
    """
    if force or not plan.holds(plan.root.roles["targets"].keyids):
        return  # without the targets key the change is refused when it is signed
    repo = plan.published
    new = DelegatedRole(RELEASES, [], 1, False, paths=list(paths))
    before = tag_policy(repo.targets.signed)
    owner = owner_bins(repo.targets.signed)
    hidden_before = before is not None and before.signers_first and before.terminating
    owner_names = [n for n in owner.names() if repo.version_of(n) > 0] if owner else []
    try:
        releases = repo.role(RELEASES) if before is not None else None
    except TrustctlError:
        releases = None
    signer_bins = releases_bins(releases.signed if releases is not None else None)
    signer_names = (
        [n for n in signer_bins.names() if repo.version_of(n) > 0]
        if signer_bins is not None
        else ([RELEASES] if releases is not None else [])
    )
    lost: set[str] = set()
    for name in owner_names:
        for tag in _tags_of(repo, name):
            if new.is_delegated_path(tag) and not (
                hidden_before and before is not None and before.holds(tag)
            ):
                lost.add(tag)
    for name in signer_names:
        for tag in _tags_of(repo, name):
            if not new.is_delegated_path(tag) and (before is None or before.holds(tag)):
                lost.add(tag)
    if lost:
        shown = ", ".join(sorted(lost)[:10]) + (" ..." if len(lost) > 10 else "")
        raise ThresholdError(
            f"with the signers holding the tags {' '.join(paths)} of {repo.gun}, {len(lost)} signed "
            f"tag(s) would stop verifying where they are signed now: {shown}",
            hint="choose patterns that leave them where they are signed, or pass --force and sign them "
            "again where they now belong",
        )


def _load_signed_tags(published: Published) -> None:
    """Fetch what :func:`_check_lost_tags` reads: every published owner and signers' bin."""
    published.load_owner_bins()
    published.load_signer_bins()


def _tags_of(repo: Published, role: str) -> list[str]:
    try:
        md = repo.role(role)
    except TrustctlError:
        return []
    return list(md.signed.targets) if md is not None else []


def _set_signer_paths(plan: Plan, paths: list[str], *, force: bool) -> None:
    """``targets/releases`` delegates ``paths``; with bins it is listed first and terminating."""
    roles = plan.delegations()
    binned = _binned(plan)
    old = roles[RELEASES]
    policy = tag_policy(plan.working("targets"))
    moved = binned and policy is not None and not (policy.signers_first and policy.terminating)
    if sorted(old.paths or []) != paths or moved:
        _check_lost_tags(plan, paths, force=force)
    existing = {name: role for name, role in roles.items() if name != RELEASES}
    roles.clear()
    roles[RELEASES] = DelegatedRole(RELEASES, list(old.keyids), old.threshold, binned, paths=paths)
    roles.update(existing)


@dataclass(frozen=True)
class SetPaths:
    """Which tags the signers hold (tag patterns)."""

    action: ClassVar[str] = "set-paths"
    paths: tuple[str, ...] = ()
    force: bool = False

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> SetPaths:
        return cls(paths=tuple(d.get("paths") or ()), force=bool(d.get("force")))

    def fetch(self, published: Published) -> None:
        published.load(RELEASES)
        if not self.force:
            _load_signed_tags(published)

    def apply(self, plan: Plan) -> list[str]:
        return _set_paths(plan, self)


def _set_paths(plan: Plan, d: SetPaths) -> list[str]:
    roles = plan.delegations()
    if RELEASES not in roles:
        raise UsageError(
            f"{plan.published.gun} has no signers yet",
            hint="add one with `trustctl signer add NAME --key NAME.pub GUN --paths PATTERN`",
        )
    _set_signer_paths(plan, _signer_paths(d.paths), force=d.force)
    plan.force = plan.force or d.force
    plan.mark("targets")
    return ["targets"]


def _check_threshold(role: Role) -> None:
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
