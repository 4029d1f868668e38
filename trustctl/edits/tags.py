"""Signing and revoking tags: which role a tag goes into, and what the signers hold."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tuf.api.metadata import Role, TargetFile, Targets

from trustctl.edits.plan import Plan
from trustctl.errors import MissingKeyError, SignersHoldTagError, TrustctlError, UsageError
from trustctl.layout import (
    RELEASES,
    BinSet,
    owner_bin_for,
    owner_bins,
    releases_bins,
    signer_roles,
    tag_policy,
)

if TYPE_CHECKING:
    from trustctl.edits.published import Published

__all__ = ["AddTarget", "RemoveTarget"]


def _signer_keyids(targets: Targets) -> list[str]:
    return [k for ids in signer_roles(targets).values() for k in ids]


def _choose_role(plan: Plan, tag: str) -> str:
    """Where this user signs ``tag``: a signer's role (a signer bin, or flat
    ``targets/releases``) when they hold a signer key, else the owner's (an owner bin,
    or flat ``targets``)."""
    targets = plan.working("targets")
    roles = targets.delegations.roles if targets.delegations is not None else None
    releases = roles.get(RELEASES) if roles else None
    gun = plan.published.gun
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


@dataclass(frozen=True)
class AddTarget:
    """Sign ``tag`` as this artifact, into ``role`` (None: the role this user signs
    tags into, see :func:`_choose_role`)."""

    action: ClassVar[str] = "add-target"
    tag: str
    sha256: str
    length: int
    media_type: str | None = None
    role: str | None = None
    custom: Any = None  # a tag carried from elsewhere (trustctl migrate) keeps its own

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> AddTarget:
        carried = "custom" in d
        return cls(
            tag=d["tag"],
            sha256=str(d["sha256"]),
            length=int(d["length"]),
            media_type=d.get("media_type") if carried else d["media_type"],
            role=d.get("role") or None,
            custom=d["custom"] if carried else None,
        )

    def fetch(self, published: Published) -> None:
        published.load_tag(self.tag, self.role)

    def apply(self, plan: Plan) -> list[str]:
        role = _resolve_role(plan, self.role, self.tag) if self.role else None
        role = role or _choose_role(plan, self.tag)
        target = TargetFile(
            length=self.length,
            hashes={"sha256": self.sha256},
            path=self.tag,
            unrecognized_fields={
                "custom": self.custom if self.custom is not None else {"mediaType": self.media_type}
            },
        )
        _check_signers_hold(plan, role, self.tag, target)
        targets = plan.working(role)
        if targets.targets.get(self.tag) == target:
            return []  # already signed so
        targets.targets[self.tag] = target
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
        releases = plan.published.role(RELEASES)
        bins = releases_bins(releases.signed if releases is not None else None)
        where = bins.bin_for(tag) if bins is not None else RELEASES
        md = plan.published.role(where)
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
    gun = plan.published.gun
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


@dataclass(frozen=True)
class RemoveTarget:
    """Revoke ``tag`` from ``role`` (None: from every role a lookup of it visits and
    this user can sign)."""

    action: ClassVar[str] = "remove-target"
    tag: str
    role: str | None = None

    @classmethod
    def from_data(cls, d: Mapping[str, Any]) -> RemoveTarget:
        return cls(tag=d["tag"], role=d.get("role") or None)

    def fetch(self, published: Published) -> None:
        published.load_tag(self.tag, self.role)

    def apply(self, plan: Plan) -> list[str]:
        return _remove_target(plan, self.tag, self.role)


def _remove_target(plan: Plan, tag: str, role_asked: str | None) -> list[str]:
    if role_asked:
        candidates = [_resolve_role(plan, role_asked, tag)]
    else:
        # the roles a lookup of the tag visits: one bin per bin set, never all bins
        candidates = [name for name, _parent in plan.published.roles_for(tag)]
    removed, blocked = [], []
    for role in candidates:
        if role != "targets" and plan.published.version_of(role) == 0 and role not in plan.roles:
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
        plan.warnings.append(f"{tag} is not signed in {plan.published.gun}; nothing to revoke")
    return removed
