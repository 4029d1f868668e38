"""Applying staged changes to working copies of a repository's metadata.

A :class:`Plan` holds, for one publish attempt, editable copies of root, targets and
the delegated roles, made from the *verified* metadata of a
:class:`~trustctl.tufview.TrustedRepository`, and records what changed. Each change
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

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from securesystemslib.signer import Key
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    Role,
    Root,
    SuccinctRoles,
    TargetFile,
    Targets,
)

from trustctl.errors import (
    MissingKeyError,
    SignersHoldTagError,
    ThresholdError,
    TrustctlError,
    UntrustedSignatureError,
    UsageError,
)
from trustctl.layout import (
    RELEASES,
    RELEASES_BINS_PREFIX,
    BinSet,
    check_signer_name,
    delegates,
    named_owner_bins,
    owner_bin_for,
    owner_bins,
    parent_candidates,
    releases_bins,
    signer_roles,
    succinct_to_named,
    tag_policy,
)

if TYPE_CHECKING:
    from trustctl.keys import KeyStore
    from trustctl.tufview import TrustedRepository

__all__ = [
    "APPLY",
    "EXPIRY_DAYS",
    "RELEASES",
    "Plan",
    "check_signer_name",
    "signer_roles",
]

EXPIRY_DAYS = {"root": 365, "targets": 365, "delegation": 365}


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
                    # a role dropped from the delegations earlier may still be published
                    self.base_version.setdefault(role, self.repo.version_of(role))
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
        raise UsageError(f"{role} is not delegated in {self.repo.gun}")

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
        missing = [n for n in names if self.repo.version_of(n) == 0]
        if missing and not self.holds(self.keyids_for(names[0])):
            raise MissingKeyError(
                f"adding the first signer to {self.repo.gun} creates its {len(missing)} empty hash bins, "
                "which needs the owner's bins key",
                hint="run this where `trustctl init` ran, or import the bins key (`trustctl key import`)",
            )
        for name in missing:
            self.mark(name)
        self.warnings.append(
            f"the owner's hash bins of {self.repo.gun} are now delegated by name next to the signers"
            + (f" ({len(missing)} empty bins created)" if missing else "")
        )


# --- applying changes ------------------------------------------------------------------


def _signer_keyids(targets: Targets) -> list[str]:
    return [k for ids in signer_roles(targets).values() for k in ids]


def _choose_role(plan: Plan, tag: str) -> str:
    """Where this user signs ``tag``: a signer's role (a signer bin, or flat
    ``targets/releases``) when they hold a signer key, else the owner's (an owner bin,
    or flat ``targets``)."""
    targets = plan.working("targets")
    roles = targets.delegations.roles if targets.delegations is not None else None
    releases = roles.get(RELEASES) if roles else None
    gun = plan.repo.gun
    if (
        releases is not None
        and releases.is_delegated_path(tag)
        and plan.holds([*releases.keyids, *_signer_keyids(targets)])
    ):
        signer_bins = releases_bins(plan.working(RELEASES))
        if signer_bins is not None:
            if plan.holds(signer_bins.keyids):
                return signer_bins.bin_for(tag)
        elif plan.holds(releases.keyids):
            return RELEASES
    owner = owner_bins(targets)
    if owner is not None:
        name = owner_bin_for(targets, tag)
        if name is not None and plan.holds(owner.keyids):
            return name
        if plan.holds(plan.root.roles["targets"].keyids):
            raise MissingKeyError(
                f"you hold the targets key of {gun} but not its bins key, which signs tags",
                hint="import the bins key made by `trustctl init` (`trustctl key import`), or pass "
                "--role targets to sign into targets itself",
            )
    elif plan.holds(plan.root.roles["targets"].keyids):
        return "targets"
    if releases is not None and not releases.is_delegated_path(tag):
        raise MissingKeyError(
            f"{tag} is not one of the signers' tags of {gun} (they hold {' '.join(releases.paths or [])}), "
            "and you do not hold the owner's key that signs the other tags, so you cannot sign it",
            hint=f"sign it where the bins key is, or ask the owner to change the signers' tags "
            f"(`trustctl signer paths {gun} PATTERN...`)",
        )
    if releases is not None:
        raise MissingKeyError(
            f"you hold neither the owner's keys of {gun} nor a signer key of {RELEASES}, so you cannot sign {tag}",
            hint=f"ask the owner to run `trustctl signer add NAME --key YOUR.pub {gun}` (create the key with "
            "`trustctl key generate NAME`)",
        )
    which = "bins key (which signs its tags)" if owner is not None else "targets key"
    raise MissingKeyError(
        f"you do not hold the {which} of {gun}, so you cannot sign {tag}",
        hint="sign on the machine that ran `trustctl init`, import the key with `trustctl key import`, or ask "
        "the owner to add you as a signer",
    )


def _resolve_role(plan: Plan, role: str, tag: str) -> str:
    """``--role``: ``targets/releases`` means its bin for ``tag`` when it has bins."""
    if role == RELEASES and plan.releases() is not None:
        signer_bins = releases_bins(plan.working(RELEASES))
        if signer_bins is not None:
            return signer_bins.bin_for(tag)
    return role


def _apply_add_target(plan: Plan, d: dict[str, Any]) -> list[str]:
    role = _resolve_role(plan, d["role"], d["tag"]) if d.get("role") else None
    role = role or _choose_role(plan, d["tag"])
    target = TargetFile(
        length=int(d["length"]),
        hashes={"sha256": str(d["sha256"])},
        path=d["tag"],
        # a tag carried from elsewhere (trustctl migrate) keeps its own custom data
        unrecognized_fields={
            "custom": d["custom"] if "custom" in d else {"mediaType": d["media_type"]}
        },
    )
    _check_signers_hold(plan, role, d["tag"], target)
    targets = plan.working(role)
    if targets.targets.get(d["tag"]) == target:
        return []  # already signed so
    targets.targets[d["tag"]] = target
    plan.mark(role)
    return [role]


def _is_signers_role(role: str) -> bool:
    return role == RELEASES or role.startswith(f"{RELEASES}/")


def _signer_threshold_text(plan: Plan) -> str:
    releases = plan.working("targets").get_delegated_role(RELEASES)
    bins = releases_bins(plan.working(RELEASES))
    role: Role | BinSet = bins if bins is not None else releases
    return f"{role.threshold} of {len(role.keyids)} signer keys"


def _signers_entry(plan: Plan, tag: str) -> TargetFile | None:
    """The signers' published entry for ``tag`` (None: none, or unreadable)."""
    try:
        releases = plan.repo.role(RELEASES, "targets")
        bins = releases_bins(releases.signed if releases is not None else None)
        where = bins.bin_for(tag) if bins is not None else RELEASES
        md = plan.repo.role(where)
    except (TrustctlError, KeyError):
        return None
    return md.signed.targets.get(tag) if md is not None else None


def _check_signers_hold(plan: Plan, role: str, tag: str, target: TargetFile) -> None:
    """Refuse to sign one of the signers' tags with a single owner key.

    With the signers listed first and terminating (see :mod:`trustctl.layout`), an
    owner bin's entry for such a tag is never looked at: signing it there is refused
    as useless. Where the owner's role is looked up first (``targets`` itself, or the
    owner's bins of a repository laid out by an older trustctl), signing a tag the
    signers already signed would override them: refused too.

    Raises:
        SignersHoldTagError: either case.
    """
    policy = tag_policy(plan.working("targets"))
    if policy is None or _is_signers_role(role) or not policy.holds(tag):
        return
    gun = plan.repo.gun
    paths = " ".join(policy.signer_paths) or "(none)"
    who = f"{RELEASES} (tags {paths}; {_signer_threshold_text(plan)})"
    key = "targets key" if role == "targets" else "bins key"
    hint = (
        f"have the signers sign it (`trustctl sign {gun}:{tag}` with their keys); the owner "
        f"chooses which tags the signers hold with `trustctl signer paths {gun} PATTERN...`"
    )
    if role != "targets" and policy.signers_first and policy.terminating:
        raise SignersHoldTagError(
            f"{tag} is one of the signers' tags of {gun}: TUF clients look it up only in {who}, "
            f"so the {key} cannot sign it (an entry in {role} would never be seen)",
            hint=hint,
            tag=tag,
            role=role,
        )
    theirs = _signers_entry(plan, tag)
    if theirs is not None and theirs != target:
        raise SignersHoldTagError(
            f"{tag} is signed by the signers of {gun} in {who} as "
            f"sha256:{theirs.hashes.get('sha256', '?')}; signing it with the {key} into {role} "
            "would override their signature",
            hint=hint,
            tag=tag,
            role=role,
        )


def _delegated_roles(plan: Plan) -> dict[str, DelegatedRole]:
    d = plan.working("targets").delegations
    return dict(d.roles) if d is not None and d.roles else {}


def _apply_remove_target(plan: Plan, d: dict[str, Any]) -> list[str]:
    tag = d["tag"]
    if d.get("role"):
        candidates = [_resolve_role(plan, d["role"], tag)]
    else:
        # the roles a lookup of the tag visits: one bin per bin set, never all bins
        candidates = [name for name, _parent in plan.repo.roles_for(tag)]
    removed, blocked = [], []
    for role in candidates:
        if role != "targets" and plan.repo.version_of(role) == 0 and role not in plan.roles:
            continue
        try:
            keyids = plan.keyids_for(role)
        except (UsageError, ValueError):
            continue
        if tag not in plan.working(role).targets:
            continue
        if not plan.holds(keyids):
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


def _apply_add_signer(plan: Plan, d: dict[str, Any]) -> list[str]:
    name = check_signer_name(d["name"])
    binned = _binned(plan)
    roles = plan.delegations()
    targets = plan.working("targets")
    paths = _signer_paths(d["paths"]) if d.get("paths") else None
    if RELEASES not in roles:
        # listed first; with bins also terminating, so the signers' tags are theirs alone
        # (see trustctl.layout); with bins it only delegates the signers' bins, and the
        # owner signs it
        _check_lost_tags(plan, paths or ["*"], force=bool(d.get("force")))
        existing = dict(roles)
        roles.clear()
        roles[RELEASES] = DelegatedRole(RELEASES, [], 1, binned, paths=paths or ["*"])
        roles.update(existing)
        if binned:
            for keyid in plan.root.roles["targets"].keyids:
                targets.add_key(plan.root.get_key(keyid), RELEASES)
    elif paths is not None:
        _set_signer_paths(plan, paths, force=bool(d.get("force")))
    role_name = f"targets/{name}"
    if role_name not in roles:
        # paths=[]: the role names a signer and matches no tag, so no single signer can
        # publish tags around the targets/releases threshold.
        roles[role_name] = DelegatedRole(role_name, [], 1, False, paths=[])
    owners = signer_roles(targets)
    signer_bins = _signer_bins(plan) if binned else None
    for doc in d["keys"]:
        key = _load_key(doc)
        for other, ids in owners.items():
            if other != name and key.keyid in ids:
                raise UsageError(f"key {key.keyid[:12]}… already belongs to signer {other}")
        if signer_bins is None:
            targets.add_key(key, RELEASES)
        else:
            plan.working(RELEASES).add_key(key)
        targets.add_key(key, role_name)
    threshold_role: Role = signer_bins if signer_bins is not None else roles[RELEASES]
    if d.get("threshold"):
        threshold_role.threshold = int(d["threshold"])
    _check_threshold(threshold_role)
    plan.force = plan.force or bool(d.get("force"))
    plan.mark("targets")
    if signer_bins is not None:
        plan.mark(RELEASES)
        return ["targets", RELEASES]
    return ["targets"]


def _apply_remove_signer(plan: Plan, d: dict[str, Any]) -> list[str]:
    name = d["name"]
    targets = plan.working("targets")
    role_name = f"targets/{name}"
    if targets.delegations is None or role_name not in (targets.delegations.roles or {}):
        raise UsageError(
            f"{plan.repo.gun} has no signer named {name!r}",
            hint=f"see `trustctl signer list {plan.repo.gun}`",
        )
    roles = plan.delegations()
    signer_bins = releases_bins(plan.working(RELEASES)) if RELEASES in roles else None
    releases_md = plan.working(RELEASES) if signer_bins is not None else None
    keep = set(d.get("except_keyids") or ())
    keyids = [k for k in (d.get("keyids") or list(roles[role_name].keyids)) if k not in keep]
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
    if d.get("threshold"):
        if threshold_role is None:
            raise UsageError("there is no signer threshold to set: no signers are left")
        threshold_role.threshold = int(d["threshold"])
    changed = ["targets"]
    if threshold_role is not None and not threshold_role.keyids:
        del roles[RELEASES]
        published = plan.repo.version_of(RELEASES) > 0
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
    plan.force = plan.force or bool(d.get("force"))
    plan.mark("targets")
    return changed


def _apply_set_threshold(plan: Plan, d: dict[str, Any]) -> list[str]:
    roles = plan.delegations()
    if RELEASES not in roles:
        raise UsageError(f"{plan.repo.gun} has no signers yet: add one with `trustctl signer add`")
    signer_bins = releases_bins(plan.working(RELEASES))
    if signer_bins is not None:
        succinct = _signer_bins(plan)
        succinct.threshold = int(d["threshold"])
        _check_threshold(succinct)
        plan.mark(RELEASES)
        return [RELEASES]
    roles[RELEASES].threshold = int(d["threshold"])
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
    repo = plan.repo
    new = DelegatedRole(RELEASES, [], 1, False, paths=list(paths))
    before = tag_policy(repo.targets.signed)
    owner = owner_bins(repo.targets.signed)
    hidden_before = before is not None and before.signers_first and before.terminating
    owner_names = [n for n in owner.names() if repo.version_of(n) > 0] if owner else []
    try:
        releases = repo.role(RELEASES, "targets") if before is not None else None
    except TrustctlError:
        releases = None
    signer_bins = releases_bins(releases.signed if releases is not None else None)
    signer_names = (
        [n for n in signer_bins.names() if repo.version_of(n) > 0]
        if signer_bins is not None
        else ([RELEASES] if releases is not None else [])
    )
    repo.prefetch([*owner_names, *signer_names])
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


def _tags_of(repo: TrustedRepository, role: str) -> list[str]:
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


def _apply_set_paths(plan: Plan, d: dict[str, Any]) -> list[str]:
    roles = plan.delegations()
    if RELEASES not in roles:
        raise UsageError(
            f"{plan.repo.gun} has no signers yet",
            hint="add one with `trustctl signer add NAME --key NAME.pub GUN --paths PATTERN`",
        )
    _set_signer_paths(plan, _signer_paths(d.get("paths") or []), force=bool(d.get("force")))
    plan.force = plan.force or bool(d.get("force"))
    plan.mark("targets")
    return ["targets"]


def _apply_witness(plan: Plan, d: dict[str, Any]) -> list[str]:
    role = d["role"]
    if role == Root.type:  # re-sign root as is: renews its expiry
        plan.root_dirty = True
        return [role]
    if role == RELEASES and plan.releases() is not None:
        signer_bins = releases_bins(plan.working(RELEASES))
        if signer_bins is not None:
            return _witness_bins(plan, signer_bins, if_published=bool(d.get("if_published")))
    if role != "targets":
        try:
            plan.parent(role)
        except UsageError:
            if d.get("if_published"):
                return []
            raise UsageError(f"{plan.repo.gun} has no role {role!r}") from None
    if d.get("if_published") and role != "targets" and plan.repo.version_of(role) == 0:
        return []
    plan.mark(role)
    return [role]


def _witness_bins(plan: Plan, signer_bins: BinSet, *, if_published: bool) -> list[str]:
    """Witness of a binned ``targets/releases``: re-sign every published signer bin
    with the signer keys held here (a key rotation), and ``targets/releases`` itself
    when the owner runs it. Reads every published bin: an administrative step."""
    marked = []
    owner, signer = plan.holds(plan.keyids_for(RELEASES)), plan.holds(signer_bins.keyids)
    if owner and (plan.repo.version_of(RELEASES) > 0 or not if_published):
        plan.mark(RELEASES)
        marked.append(RELEASES)
    if signer:
        for name in signer_bins.names():
            if plan.repo.version_of(name) > 0:
                plan.mark(name)
                marked.append(name)
    if not (owner or signer) and not if_published:
        raise MissingKeyError(
            f"you hold no key that signs {RELEASES} of {plan.repo.gun} or its bins",
            hint="see `trustctl key list`",
        )
    return marked


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
    key = _load_key(d["key"])
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


APPLY: dict[str, Callable[[Plan, dict[str, Any]], list[str]]] = {
    "add-target": _apply_add_target,
    "remove-target": _apply_remove_target,
    "add-signer": _apply_add_signer,
    "remove-signer": _apply_remove_signer,
    "set-threshold": _apply_set_threshold,
    "set-paths": _apply_set_paths,
    "witness": _apply_witness,
    "rotate-root": _apply_rotate_root,
    "rotate-top": _apply_rotate_top,
    "rotate-bins": _apply_rotate_bins,
}


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
