"""``verify``, ``pull`` and ``inspect`` for Notary-dialect repositories.

The answers have the shape of the TUF 1.0 ones (:class:`~trustctl.verify.VerifiedTag`,
:class:`~trustctl.verify.RepoReport`): same output, JSON and exit codes, and the same
registry comparison. Who signed a tag:

* ``targets``: the repository owner;
* ``targets/releases`` (Docker's role): the signers whose keys made valid signatures,
  named by Docker's ``targets/<name>`` roles that hold the same keys, else by the
  common name of the signer's certificate;
* ``targets/<name>`` (or deeper): ``<name>``.

:func:`open_notary` runs the client workflow with the trust server's transport and
the command's clock; :func:`dialect_of` tells which dialect a GUN is verified in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from trustctl.errors import (
    NoPinnedRootError,
    SignerPolicyError,
    TagNotSignedError,
    TrustctlError,
)
from trustctl.notary.model import common_name, entry_hex, signed_keyids
from trustctl.notary.pinning import NotaryPin, NotaryState
from trustctl.notary.updater import (
    RELEASES,
    Meta,
    NotaryUpdater,
    ServerFetch,
    TrustedNotary,
    is_notary_root,
)
from trustctl.reference import ImageRef
from trustctl.verify import (
    REGISTRY_SKIP,
    REGISTRY_TAG,
    RepoReport,
    RoleReport,
    TagReport,
    VerifiedTag,
    _check_registry,
)

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.registry import RegistryClient

__all__ = [
    "NOTARY",
    "TUF",
    "dialect_of",
    "inspect_notary",
    "notary_state",
    "open_notary",
    "signers_of",
    "tag_report",
    "verify_notary_tag",
]

NOTARY, TUF = "notary", "tuf"


def notary_state(tctx: TrustContext, gun: str) -> NotaryState:
    return NotaryState(tctx.trust.gun_dir(gun) / "notary")


def dialect_of(tctx: TrustContext, gun: str, *, tofu: bool) -> str:
    """``"notary"`` or ``"tuf"``: from the pin when there is one, else from the root
    the server serves (a Notary root with ``--tofu`` is pinned, announced).

    Raises:
        NoPinnedRootError: a Notary repository, nothing pinned, no ``--tofu``.
    """
    if tctx.trust.pinned(gun) is not None:
        return TUF  # also after `trustctl migrate` moved this GUN to TUF 1.0
    state = notary_state(tctx, gun)
    if state.pin() is not None:
        return NOTARY
    try:
        raw = tctx.client.get_file(gun, "root.json")
    except TrustctlError:
        if tofu:
            raise
        return TUF  # the TUF 1.0 path says what is missing (no pin, no server)
    if not is_notary_root(raw):
        return TUF
    if not tofu:
        raise NoPinnedRootError(
            f"{gun} is a Notary (Docker Content Trust) repository and no root certificate is pinned for it",
            hint=f"pin the root certificate id the owner gives you (`trustctl trust pin {gun} --keyid CERT_ID`, "
            "shown by `docker trust inspect` as the Root key), a CA with --ca-bundle FILE, or pass --tofu",
        )
    state.set_pin(NotaryPin.tofu())
    tctx.printer.warn(
        f"trusting on first use: {gun} is a Notary repository; its root certificates are trusted as "
        "the server sends them, without checking them out of band"
    )
    return NOTARY


def open_notary(tctx: TrustContext, gun: str) -> TrustedNotary:
    """Verify ``gun``'s Notary trust data now (the GUN's lock held by the caller)."""
    fetch = ServerFetch(tctx.server_transport, tctx.server, gun)
    return NotaryUpdater(gun, fetch, notary_state(tctx, gun), tctx.clock()).refresh()


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
    tctx: TrustContext,
    ref: ImageRef,
    *,
    registry: RegistryClient | None,
    registry_mode: str = REGISTRY_TAG,
    required_signers: Sequence[str] = (),
) -> VerifiedTag:
    """:func:`trustctl.verify.verify_tag` for a Notary-dialect repository.

    Raises:
        TagNotSignedError, SignerPolicyError, DigestMismatchError, ManifestNotFoundError,
        and the verification errors of :class:`NotaryUpdater`.
    """
    assert ref.tag is not None
    trusted = open_notary(tctx, ref.gun)
    for warning in trusted.failures.values():
        tctx.printer.warn(warning)
    hit = trusted.lookup(ref.tag)
    if hit is None:
        raise TagNotSignedError(
            f"{ref.gun}:{ref.tag} is not signed",
            hint=f"signed tags: `trustctl inspect {ref.gun}`",
        )
    role, meta = hit
    report = tag_report(trusted, ref.tag, role, meta)
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
    )


def inspect_notary(tctx: TrustContext, gun: str, tag: str | None = None) -> RepoReport:
    """:func:`trustctl.verify.inspect_repository` for a Notary-dialect repository."""
    trusted = open_notary(tctx, gun)
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
