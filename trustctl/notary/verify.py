"""``verify``, ``pull`` and ``inspect`` for Notary-dialect repositories.

The answers have the shape of the TUF 1.0 ones (:class:`~trustctl.verify.VerifiedTag`,
:class:`~trustctl.verify.RepoReport`): same output, JSON and exit codes, and the same
registry comparison. Who signed a tag:

* ``targets``: the repository owner;
* ``targets/releases`` (Docker's role): the signers whose keys made valid signatures,
  named by Docker's ``targets/<name>`` roles that hold the same keys, else by the
  common name of the signer's certificate;
* ``targets/<name>`` (or deeper): ``<name>``.

Every function here takes its collaborators (a ``Fetch`` of the trust server's files,
the :class:`~trustctl.truststore.TrustStore`, the time), never the CLI's context, so
the CLI and the library (:class:`trustctl.api.Verifier`) answer alike:
:func:`open_notary` runs the client workflow, :func:`verify_notary_tag` and
:func:`inspect_notary` answer from what it verified.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from trustctl.errors import SignerPolicyError, TagNotSignedError
from trustctl.notary.model import common_name, entry_hex, signed_keyids
from trustctl.notary.pinning import NotaryState
from trustctl.notary.updater import RELEASES, Fetch, Meta, NotaryUpdater, TrustedNotary
from trustctl.reference import ImageRef
from trustctl.verify import (
    REGISTRY_SKIP,
    REGISTRY_TAG,
    RepoReport,
    RoleReport,
    TagReport,
    VerifiedTag,
    _check_registry,
    requested_digest_mismatch,
)

if TYPE_CHECKING:
    from trustctl.registry import RegistryClient
    from trustctl.truststore import TrustStore

__all__ = [
    "NOTARY",
    "TUF",
    "inspect_notary",
    "notary_state",
    "open_notary",
    "signers_of",
    "tag_report",
    "verify_notary_tag",
]

NOTARY, TUF = "notary", "tuf"


def notary_state(trust: TrustStore, gun: str) -> NotaryState:
    """The pin and verified state of the Notary repository ``gun`` in ``trust``."""
    return NotaryState(trust.gun_dir(gun) / "notary")


def open_notary(fetch: Fetch, trust: TrustStore, gun: str, now: datetime) -> TrustedNotary:
    """Verify ``gun``'s Notary trust data now, from the state kept in ``trust`` (the
    GUN's lock held by the caller), with ``fetch`` reading the trust server's files."""
    return NotaryUpdater(gun, fetch, notary_state(trust, gun), now).refresh()


def signers_of(trusted: TrustedNotary, role: str, keyids: set[str]) -> tuple[str, ...]:
    """Names of the signers whose keys ``keyids`` signed ``role``."""
    if role == "targets":
        return ()
    if role != RELEASES and not role.startswith(RELEASES + "/"):
        return (role.rsplit("/", 1)[1],)
    names = set()
    claimed: set[str] = set()
    for name, d in trusted.targets.delegations.items():
        if name == RELEASES or name.count("/") != 1:
            continue
        shared = keyids & set(d.keyids)
        if shared:
            names.add(name.split("/", 1)[1])
            claimed |= shared
    keys = trusted.role_keys(role).keys
    for keyid in sorted(keyids - claimed):
        cn = common_name(keys[keyid])
        if cn:
            names.add(cn)
    return tuple(sorted(names))


def tag_report(trusted: TrustedNotary, tag: str, role: str, meta: Meta) -> TagReport:
    """Facts about one signed tag."""
    keys = trusted.role_keys(role)
    signed = signed_keyids(trusted.roles[role].file, keys)
    custom = meta.get("custom")
    if not isinstance(custom, dict):
        custom = {}
    media_type = custom.get("mediaType") if isinstance(custom.get("mediaType"), str) else None
    return TagReport(
        tag,
        f"sha256:{entry_hex(meta)}",
        int(meta["length"]),
        media_type,
        role,
        signers_of(trusted, role, signed),
        tuple(sorted(signed)),
        keys.threshold,
        role == "targets",
    )


def verify_notary_tag(
    trusted: TrustedNotary,
    ref: ImageRef,
    *,
    registry: RegistryClient | None,
    registry_mode: str = REGISTRY_TAG,
    required_signers: Sequence[str] = (),
) -> VerifiedTag:
    """:func:`trustctl.verify.verify_tag` for a Notary-dialect repository, answered
    from ``trusted`` (what :func:`open_notary` verified).

    Raises:
        TagNotSignedError, SignerPolicyError, DigestMismatchError (also: the reference
        names another digest than the signed one), ManifestNotFoundError.
    """
    if ref.tag is None:
        raise ValueError("verify_notary_tag needs a tag")
    hit = trusted.lookup(ref.tag)
    if hit is None:
        raise TagNotSignedError(
            f"{ref.gun}:{ref.tag} is not signed",
            hint=f"signed tags: `trustctl inspect {ref.gun}`",
        )
    role, meta = hit
    report = tag_report(trusted, ref.tag, role, meta)
    if ref.digest is not None and ref.digest != report.digest:
        raise requested_digest_mismatch(ref, report.digest)
    for name in required_signers:
        if name not in report.signers:
            who = (
                "the repository owner's targets key"
                if role == "targets"
                else ", ".join(report.signers) or "unnamed keys"
            )
            raise SignerPolicyError(
                f"{ref.gun}:{ref.tag} is signed by {who}, not by {name}",
                hint=f"see who signed what with `trustctl inspect {ref.gun}`",
                required=name,
                signers=list(report.signers),
            )
    expires = trusted.expiries()
    registry_digest: str | None = None
    warnings: list[str] = []
    if registry is not None and registry_mode != REGISTRY_SKIP:
        registry_digest, warnings = _check_registry(registry, ref, report.digest, registry_mode)
    return VerifiedTag(
        ref.gun,
        ref.tag,
        report,
        min(expires.values()),
        expires,
        registry_mode if registry else REGISTRY_SKIP,
        registry_digest,
        tuple(warnings),
        ref.digest,
    )


def inspect_notary(trusted: TrustedNotary, tag: str | None = None) -> RepoReport:
    """:func:`trustctl.verify.inspect_repository` for a Notary-dialect repository,
    answered from ``trusted`` (what :func:`open_notary` verified)."""
    gun = trusted.gun
    report = RepoReport(gun)
    report.failures = dict(trusted.failures)
    found = trusted.all_targets() if tag is None else {}
    if tag is not None:
        hit = trusted.lookup(tag)
        if hit is not None:
            found[tag] = hit
    for name, (role, meta) in sorted(found.items()):
        report.tags.append(tag_report(trusted, name, role, meta))
    for name, d in trusted.targets.delegations.items():
        if name != RELEASES and name.count("/") == 1:
            report.signers[name.split("/", 1)[1]] = sorted(d.keyids)
    root = trusted.root
    versions = {
        "root": (root.file.version, root.file.expires),
        "targets": (trusted.targets.file.version, trusted.targets.file.expires),
        "snapshot": (trusted.snapshot.version, trusted.snapshot.expires),
        "timestamp": (trusted.timestamp.version, trusted.timestamp.expires),
    }
    for name in ("root", "targets", "snapshot", "timestamp"):
        base = root.roles[name]
        version, expires = versions[name]
        report.roles.append(
            RoleReport(name, version, expires, tuple(sorted(base.keyids)), base.threshold)
        )
    for name, info in trusted.roles.items():
        if name == "targets":
            continue
        deleg = trusted.delegations[name]
        report.roles.append(
            RoleReport(
                name,
                info.file.version,
                info.file.expires,
                tuple(sorted(deleg.keys)),
                deleg.threshold,
            )
        )
    releases = trusted.delegations.get(RELEASES)
    if releases is not None:
        report.signer_threshold = releases.threshold
        report.signer_keys = len(releases.keys)
    report.fresh_until = min(trusted.expiries().values())
    return report
