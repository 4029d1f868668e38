"""Verify before deploy: is this tag signed, by whom, until when, and still served?

:func:`verify_tag` takes a :class:`~trustctl.tufview.TrustedRepository` (python-tuf's
client workflow from the pinned root) and answers with a :class:`VerifiedTag`, or
raises a :class:`~trustctl.errors.TrustError` saying exactly what failed:

* the tag is not in any trusted role (and, if known, that it is still waiting for
  signatures: "1 of 2");
* a required signer (``--signer``) did not sign the metadata that carries the tag;
* the registry now serves a different digest for the tag than the signed one
  (both digests named), or no longer serves the signed digest at all.

Who signed: a tag in ``targets`` is signed by the repository owner's targets key; a
tag in ``targets/releases`` is signed by the signers whose keys contributed a valid
signature to that role's metadata (key ids mapped to names through the
``targets/<name>`` delegations).

:func:`inspect_repository` lists every signed tag with the same facts.

Example:
    >>> result = verify_tag(repo, parse_reference("127.0.0.1:5000/app:v1"), registry=registry)  # doctest: +SKIP
    >>> result.digest  # doctest: +SKIP
    'sha256:...'

Why one module of this size: the one-tag answer, its JSON shape and the
registry cross-check are read together by everyone who checks what `verify`
promises (docs/cli.md); the many-tag commands reuse them without a layer between.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustctl.errors import (
    DigestMismatchError,
    ManifestNotFoundError,
    NetworkError,
    PendingUnsupportedError,
    SignerPolicyError,
    TagNotSignedError,
    TrustctlError,
    UnmatchableTargetError,
)
from trustctl.layout import RELEASES, is_bin_role, owner_bins, releases_bins, signer_roles
from trustctl.reference import ImageRef

if TYPE_CHECKING:  # imported where used: `verify` needs none of them on its way to OK
    from tuf.api.metadata import TargetFile, Targets

    from trustctl.pending import PendingRole, PendingStore
    from trustctl.registry import RegistryClient
    from trustctl.tufview import FoundTarget, TrustedRepository

__all__ = [
    "REGISTRY_DIGEST",
    "REGISTRY_SKIP",
    "REGISTRY_TAG",
    "RepoReport",
    "TagReport",
    "VerifiedTag",
    "inspect_repository",
    "iso",
    "requested_digest_mismatch",
    "verify_tag",
]

logger = logging.getLogger(__name__)

REGISTRY_TAG = "tag"  # the tag must resolve to the signed digest (verify)
REGISTRY_DIGEST = "digest"  # the signed digest must still be served (pull)
REGISTRY_SKIP = "skip"


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class TagReport:
    """One signed tag."""

    tag: str
    digest: str
    length: int
    media_type: str | None
    role: str
    signers: tuple[str, ...]
    signed_keyids: tuple[str, ...]
    threshold: int
    by_owner: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "digest": self.digest,
            "length": self.length,
            "media_type": self.media_type,
            "role": self.role,
            "signers": list(self.signers),
            "signed_by_keyids": list(self.signed_keyids),
            "threshold": self.threshold,
        }

    def signed_by_text(self) -> str:
        if self.role == "targets":
            return "repository owner (targets key)"
        if self.by_owner:
            return f"repository owner (bins key, {self.role})"
        names = ", ".join(self.signers) or "unnamed keys"
        return f"{names} ({self.role}, {len(self.signed_keyids)} of {self.threshold} required)"


@dataclass(frozen=True)
class TrustedVersions:
    """The versions of the top-level roles a repository's verified state rests on, and
    the pin it was verified from."""

    root: int
    timestamp: int
    snapshot: int
    targets: int
    #: SHA-256 (hex) of the pin as stored: the pinned root.json of a TUF 1.0 repository,
    #: the Notary pin (certificate ids or CA) of a Notary one. A root re-pinned with
    #: the same version number changes it.
    pinned: str = ""


@dataclass(frozen=True)
class VerifiedTag:
    """The answer of :func:`verify_tag`."""

    gun: str
    tag: str
    report: TagReport
    fresh_until: datetime
    expires: Mapping[str, datetime]
    registry_mode: str
    registry_digest: str | None = None
    warnings: tuple[str, ...] = ()
    requested_digest: str | None = None  # the digest the reference named (it equals digest)
    target: TargetFile | None = None  # the entry python-tuf verified for the tag
    #: The state the answer rests on (set by :class:`trustctl.api.Verifier`).
    versions: TrustedVersions | None = None

    @property
    def digest(self) -> str:
        return self.report.digest

    @property
    def pinned_reference(self) -> str:
        return f"{self.gun}@{self.digest}"

    def to_dict(self) -> dict[str, Any]:
        d = self.report.to_dict()
        d.update(
            {
                "image": f"{self.gun}:{self.tag}"
                + (f"@{self.requested_digest}" if self.requested_digest else ""),
                "gun": self.gun,
                "requested_digest": self.requested_digest,
                "pinned_reference": self.pinned_reference,
                "fresh_until": iso(self.fresh_until),
                "expires": {role: iso(moment) for role, moment in sorted(self.expires.items())},
                "registry": {
                    "checked": self.registry_mode != REGISTRY_SKIP,
                    "mode": self.registry_mode,
                    "digest": self.registry_digest,
                    "match": None
                    if self.registry_mode == REGISTRY_SKIP
                    else self.registry_digest == self.digest,
                },
                "warnings": list(self.warnings),
            }
        )
        return d


SignedBy = dict[tuple[str, str], tuple[tuple[str, ...], tuple[str, ...], int, bool]]


def _report(
    repo: TrustedRepository, found: FoundTarget, signed_by: SignedBy | None = None
) -> TagReport:
    """Facts about one signed tag; ``signed_by`` caches who signed each role, per
    role *and* delegator (so listing many tags checks each role's signatures once).

    Raises:
        UnmatchableTargetError: the entry has no sha256 hash (valid TUF, but it
            cannot be matched with a manifest digest).
    """
    target = found.target
    sha256 = target.hashes.get("sha256")
    if not sha256:
        algorithms = ", ".join(sorted(target.hashes)) or "none"
        raise UnmatchableTargetError(
            f"{found.path} is signed in {found.role}, but its entry has no sha256 hash (hashes: "
            f"{algorithms}), so it cannot be matched with a manifest digest",
            hint="ask the repository owner to sign it again with trustctl (which records the sha256 digest)",
            role=found.role,
            hashes=sorted(target.hashes),
        )
    custom = target.custom if isinstance(target.custom, dict) else {}
    media_type = custom.get("mediaType") if isinstance(custom.get("mediaType"), str) else None
    cache = signed_by if signed_by is not None else {}
    key = (found.role, found.parent)
    if key not in cache:
        cache[key] = _who_signed(repo, found)
    names, keyids, threshold, by_owner = cache[key]
    return TagReport(
        found.path,
        f"sha256:{sha256}",
        target.length,
        media_type,
        found.role,
        names,
        keyids,
        threshold,
        by_owner,
    )


def _who_signed(
    repo: TrustedRepository, found: FoundTarget
) -> tuple[tuple[str, ...], tuple[str, ...], int, bool]:
    """(signer names, key ids that signed, threshold, signed by the owner) of the
    role carrying ``found``, as verified through ``found.parent``."""
    check = repo.signatures(found.role, found.parent)
    if found.parent == "root":
        return (), tuple(sorted(check.signed)), check.threshold, True
    by_owner = found.parent == "targets" and is_bin_role(found.role)
    owners = {} if by_owner else signer_roles(repo.targets.signed)
    signed = set(check.signed)
    names = tuple(sorted(name for name, ids in owners.items() if signed & set(ids)))
    return names, tuple(sorted(signed)), check.threshold, by_owner


def signer_threshold(repo: TrustedRepository) -> tuple[int, int] | None:
    """(threshold, number of keys) of the signers, or None without signers."""
    delegations = repo.targets.signed.delegations
    releases_role = (delegations.roles or {}).get(RELEASES) if delegations is not None else None
    if releases_role is None:
        return None
    releases = repo.role(RELEASES, "targets")
    bins = releases_bins(releases.signed if releases is not None else None)
    if bins is not None:
        return bins.threshold, len(bins.keyids)
    return releases_role.threshold, len(releases_role.keyids)


def signer_role_for(repo: TrustedRepository, tag: str) -> str | None:
    """The role signers sign ``tag`` into: flat ``targets/releases`` or its bin; None
    without signers."""
    delegations = repo.targets.signed.delegations
    if delegations is None or not delegations.roles or RELEASES not in delegations.roles:
        return None
    try:
        releases = repo.role(RELEASES, "targets")
    except TrustctlError:
        return RELEASES
    bins = releases_bins(releases.signed if releases is not None else None)
    return bins.bin_for(tag) if bins is not None else RELEASES


def _pending_note(
    repo: TrustedRepository, pending: PendingStore | None, tag: str
) -> tuple[str, dict[str, Any]]:
    if pending is None:
        return "", {}
    from trustctl.pending import read_pending

    try:
        role = signer_role_for(repo, tag)
        if role is None:
            return "", {}
        waiting = read_pending(pending, repo, role)
    except (PendingUnsupportedError, NetworkError, TrustctlError) as e:
        logger.debug("no pending signatures available: %s", e)
        return "", {}
    if waiting is None or tag not in waiting.added:
        return "", {}
    owners = signer_roles(repo.targets.signed)
    names = sorted(n for n, ids in owners.items() if set(ids) & waiting.signed_keyids)
    text = (
        f"; it is waiting for signatures in {role}: signed by {len(waiting.signed_keyids)} of "
        f"{waiting.threshold} required ({', '.join(names) or 'unnamed keys'})"
    )
    return text, {
        "pending": {
            "signatures": len(waiting.signed_keyids),
            "threshold": waiting.threshold,
            "signers": names,
        }
    }


def requested_digest_mismatch(ref: ImageRef, signed: str) -> DigestMismatchError:
    """The error for a reference whose digest (``TAG@sha256:...``) is not the signed one."""
    return DigestMismatchError(
        f"{ref.gun}:{ref.tag} is signed as {signed}, not as {ref.digest} (the digest in the "
        "reference): deploying that reference would deploy content nobody signed for this tag",
        hint=f"deploy the signed reference {ref.gun}@{signed}, or sign the other image if it is meant to be",
        signed_digest=signed,
        requested_digest=ref.digest,
    )


def verify_tag(
    repo: TrustedRepository,
    ref: ImageRef,
    *,
    registry: RegistryClient | None,
    registry_mode: str = REGISTRY_TAG,
    required_signers: Sequence[str] = (),
    pending: PendingStore | None = None,
    signed_by: SignedBy | None = None,
) -> VerifiedTag:
    """Verify ``ref``'s tag against the trusted metadata (and the registry).

    ``signed_by`` caches who signed each role, as in :func:`inspect_repository`; a
    caller may keep it between calls on the same verified state (:mod:`trustctl.api`).

    Raises:
        TagNotSignedError: no trusted role carries the tag.
        SignerPolicyError: a required signer did not sign it.
        DigestMismatchError: the reference names another digest than the signed one, or
            the registry disagrees (ManifestNotFoundError: it lost the manifest).
        TrustctlError: verification (stale, rollback, forged...), network errors.
    """
    if ref.tag is None:
        raise ValueError("verify_tag needs a tag")
    from trustctl.tufview import UnpublishedRoleError

    repo.refresh()
    stop = ""
    try:
        found = repo.lookup(ref.tag)  # python-tuf decides; the walk only labels
    except UnpublishedRoleError as e:
        found = None  # python-tuf refuses to look past it: nothing there counts
        stop = f" (a TUF client looking for it stops at {e.role}: delegated, not published yet)"
    if found is None:
        note, detail = _pending_note(repo, pending, ref.tag)
        raise TagNotSignedError(
            f"{ref.gun}:{ref.tag} is not signed{stop}{note}",
            hint="a tag counts once enough signers have signed it (`trustctl sign`)"
            if note
            else f"sign it with `trustctl sign {ref.gun}:{ref.tag}`; signed tags: `trustctl inspect {ref.gun}`",
            **detail,
        )
    report = _report(repo, found, signed_by)
    if ref.digest is not None and ref.digest != report.digest:
        raise requested_digest_mismatch(ref, report.digest)
    for name in required_signers:
        if name not in report.signers:
            who = (
                "the repository owner's targets key"
                if report.role == "targets"
                else "the repository owner's bins key"
                if report.by_owner
                else (", ".join(report.signers) or "unnamed keys")
            )
            raise SignerPolicyError(
                f"{ref.gun}:{ref.tag} is signed by {who}, not by {name}",
                hint=f"see who may sign with `trustctl signer list {ref.gun}`",
                required=name,
                signers=list(report.signers),
            )
    expires = repo.expiries()
    fresh_until = min(expires.values())
    warnings: list[str] = []
    registry_digest = None
    if registry is not None and registry_mode != REGISTRY_SKIP:
        registry_digest, warnings = _check_registry(registry, ref, report.digest, registry_mode)
    return VerifiedTag(
        ref.gun,
        ref.tag,
        report,
        fresh_until,
        expires,
        registry_mode if registry else REGISTRY_SKIP,
        registry_digest,
        tuple(warnings),
        ref.digest,
        found.target,
    )


def _check_registry(
    registry: RegistryClient, ref: ImageRef, signed: str, mode: str
) -> tuple[str | None, list[str]]:
    tag_ref = ImageRef(ref.registry, ref.repository, ref.tag)
    if mode == REGISTRY_TAG:
        try:
            served = registry.resolve(tag_ref).digest
        except ManifestNotFoundError as e:
            raise DigestMismatchError(
                f"{ref.gun}:{ref.tag} is signed as {signed}, but the registry no longer has that tag",
                hint=f"deploy by digest: `trustctl pull {ref.gun}:{ref.tag}` prints the signed reference",
                signed_digest=signed,
                registry_digest=None,
            ) from e
        if served != signed:
            raise DigestMismatchError(
                f"{ref.gun}:{ref.tag} is signed as {signed}, but the registry now serves {served}: the tag was "
                "moved after signing, or someone is serving other content",
                hint="deploy the signed digest (`trustctl pull` prints it), or sign the new image if it is meant to be",
                signed_digest=signed,
                registry_digest=served,
            )
        return served, []
    if not registry.has_manifest(tag_ref, signed):
        raise ManifestNotFoundError(
            f"the registry no longer serves the signed manifest {signed} of {ref.gun}:{ref.tag}",
            hint="the image was deleted or garbage-collected; push and sign it again",
        )
    warnings = []
    tag_digest: str | None
    try:
        tag_digest = registry.resolve(tag_ref).digest
    except ManifestNotFoundError:
        tag_digest = None
    if tag_digest != signed:
        warnings.append(
            f"the registry's tag {ref.tag} now points at {tag_digest or 'nothing'}, not the signed {signed}; "
            "use the pinned reference"
        )
    return signed, warnings


@dataclass(frozen=True)
class RoleReport:
    role: str
    version: int
    expires: datetime
    keyids: tuple[str, ...]
    threshold: int


@dataclass
class RepoReport:
    """What :func:`inspect_repository` found."""

    gun: str
    tags: list[TagReport] = field(default_factory=list)
    signers: dict[str, list[str]] = field(default_factory=dict)
    roles: list[RoleReport] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    unmatchable: dict[str, str] = field(default_factory=dict)
    pending: PendingRole | None = None
    fresh_until: datetime | None = None
    hash_bins: int = 0
    signer_threshold: int | None = None
    signer_keys: int = 0

    def to_dict(self) -> dict[str, Any]:
        pending = None
        if self.pending is not None:
            p = self.pending
            pending = {
                "role": p.role,
                "version": p.md.signed.version,
                "signatures": len(p.signed_keyids),
                "threshold": p.threshold,
                "adds": sorted(p.added),
                "removes": list(p.removed),
            }
        return {
            "gun": self.gun,
            "tags": [t.to_dict() for t in self.tags],
            "signers": [{"name": n, "keyids": ids} for n, ids in sorted(self.signers.items())],
            "roles": [
                {
                    "role": r.role,
                    "version": r.version,
                    "expires": iso(r.expires),
                    "keyids": list(r.keyids),
                    "threshold": r.threshold,
                }
                for r in self.roles
            ],
            "unverified_roles": self.failures,
            "unmatchable_tags": self.unmatchable,
            "pending": pending,
            "fresh_until": iso(self.fresh_until) if self.fresh_until else None,
            "hash_bins": self.hash_bins,
        }


def inspect_repository(
    repo: TrustedRepository, *, tag: str | None = None, pending: PendingStore | None = None
) -> RepoReport:
    """Every signed tag (or just ``tag``), the signers, the roles and their expiry.

    Without ``tag`` this reads every published role, every hash bin included (the
    cost grows with the number of tags); with ``tag`` it reads what ``verify`` reads.
    """
    repo.refresh()
    report = RepoReport(repo.gun)
    failures: dict[str, TrustctlError] = {}
    if tag is None:
        found, failures = repo.all_targets()
    else:
        from trustctl.tufview import UnpublishedRoleError

        try:
            hit = repo.lookup(tag)
        except UnpublishedRoleError:
            hit = None  # python-tuf refuses past an unpublished role: not signed (yet)
        found = [hit] if hit is not None else []
    report.failures = {role: e.message for role, e in failures.items()}
    signed_by: SignedBy = {}
    for hit in found:
        try:
            report.tags.append(_report(repo, hit, signed_by))
        except UnmatchableTargetError as e:
            report.unmatchable[hit.path] = e.message
    targets: Targets = repo.targets.signed
    report.signers = signer_roles(targets)
    root = repo.root.signed
    versions = {
        "root": root.version,
        "timestamp": repo.timestamp.version,
        "snapshot": repo.snapshot.version,
        "targets": targets.version,
    }
    for name in ("root", "targets", "snapshot", "timestamp"):
        r = root.roles[name]
        expires = {
            "root": root.expires,
            "targets": targets.expires,
            "snapshot": repo.snapshot.expires,
            "timestamp": repo.timestamp.expires,
        }[name]
        report.roles.append(RoleReport(name, versions[name], expires, tuple(r.keyids), r.threshold))
    delegations = targets.delegations
    releases_role = (delegations.roles or {}).get(RELEASES) if delegations is not None else None
    if releases_role is not None and RELEASES not in failures:
        try:
            repo.role(RELEASES, "targets")
        except TrustctlError as e:
            report.failures[RELEASES] = e.message
    for name in (delegations.roles or {}) if delegations is not None else {}:
        if is_bin_role(name) or name in report.failures:
            continue
        try:
            repo.role(name, "targets")  # listed even when no tag was looked up there
        except TrustctlError as e:
            report.failures[name] = e.message
    for name, md in repo.loaded_roles():
        delegated = repo.delegator(name).get_delegated_role(name)
        report.roles.append(
            RoleReport(
                name,
                md.signed.version,
                md.signed.expires,
                tuple(delegated.keyids),
                delegated.threshold,
            )
        )
    owner = owner_bins(targets)
    report.hash_bins = owner.count if owner is not None else 0
    if releases_role is not None:
        releases = repo.loaded(RELEASES)
        signer_bins = releases_bins(releases.signed if releases is not None else None)
        threshold_role = signer_bins if signer_bins is not None else releases_role
        report.signer_threshold = threshold_role.threshold
        report.signer_keys = len(threshold_role.keyids)
    report.fresh_until = min(repo.expiries().values())
    if pending is not None and releases_role is not None:
        from trustctl.pending import read_pending

        try:
            # without a tag only a flat targets/releases is asked (one request, not one per bin)
            waiting = signer_role_for(repo, tag) if tag is not None else RELEASES
            if waiting is not None:
                report.pending = read_pending(pending, repo, waiting)
        except TrustctlError as e:
            logger.debug("no pending signatures available: %s", e)
    return report
