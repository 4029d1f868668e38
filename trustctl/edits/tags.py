"""Signing and revoking tags: which role a tag goes into, and what the signers hold."""

from __future__ import annotations

from typing import Any

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
