"""Helpers shared by the command modules (parsing, pinning, publishing, rendering)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from trustctl.changes import Change
from trustctl.errors import (
    InvalidReferenceError,
    NoPinnedRootError,
    TrustctlError,
    UnknownRepositoryError,
    UsageError,
)
from trustctl.reference import ImageRef, parse_gun, parse_reference

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.layout import TagPolicy
    from trustctl.notary.updater import TrustedNotary
    from trustctl.repo import PublishResult
    from trustctl.truststore import PinnedRoot
    from trustctl.verify import VerifiedTag

__all__ = [
    "ALGORITHMS",
    "KEY_ROLES",
    "Listed",
    "ensure_pinned",
    "gun_arg",
    "image_with_tag",
    "is_notary",
    "name_reference",
    "one_repository",
    "publish_data",
    "publish_lines",
    "read_references",
    "references",
    "tag_policy_lines",
    "verify_details",
]


# Option choices, as in trustctl.keys (kept here: reading a command's options must not
# load the crypto library; tests/trustctl/test_startup.py checks they agree).
ALGORITHMS = ("ecdsa", "ed25519", "rsa")
KEY_ROLES = ("root", "targets", "delegation")


def image_with_tag(text: str) -> ImageRef:
    """An image reference that must carry a tag.

    Raises:
        InvalidReferenceError: malformed, or no tag.
    """
    ref = parse_reference(text)
    if ref.tag is None:
        raise InvalidReferenceError(
            f"invalid image reference {text!r}: a tag is required (e.g. {ref.gun}:v1)"
        )
    return ref


@dataclass(frozen=True)
class Listed:
    """One reference of a many-reference command, with the manifest's size and media
    type when a ``--from-file`` line gives them (``REF@sha256:HEX SIZE MEDIA_TYPE``)."""

    ref: ImageRef
    size: int | None = None
    media_type: str | None = None


def read_references(
    texts: Sequence[str], from_file: TextIO | None = None, *, manifests: bool = False
) -> list[Listed]:
    """The image references of a many-reference command, each with a tag, in order,
    repeats dropped: ``texts`` from the command line, then ``from_file`` (one a line;
    blank lines and ``#`` comments skipped; with ``manifests``, a line may add the
    manifest's size and media type after a reference with a digest).

    Raises:
        UsageError: no reference at all, or the same tag with two digests.
        InvalidReferenceError: a malformed line or reference, or one without a tag (named).
    """
    items: list[tuple[str, int | None, str | None]] = [(t, None, None) for t in texts]
    if from_file is not None:
        name = getattr(from_file, "name", "-")
        for number, line in enumerate(from_file, 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            where = f"{name} line {number}"
            if len(fields) == 1:
                items.append((fields[0], None, None))
            elif manifests and len(fields) == 3 and fields[1].isdigit() and "@" in fields[0]:
                items.append((fields[0], int(fields[1]), fields[2]))
            else:
                form = (
                    "REFERENCE, or REFERENCE@sha256:HEX SIZE MEDIA_TYPE"
                    if manifests
                    else "REFERENCE"
                )
                raise InvalidReferenceError(f"{where}: expected {form}, one a line")
    if not items:
        raise UsageError("Missing argument 'IMAGE:TAG...' (or --from-file FILE)")
    out: list[Listed] = []
    seen: dict[tuple[str, str | None], ImageRef] = {}
    for text, size, media_type in items:
        ref = image_with_tag(text)
        earlier = seen.get((ref.gun, ref.tag))
        if earlier is None:
            seen[(ref.gun, ref.tag)] = ref
            out.append(Listed(ref, size, media_type))
        elif earlier.digest != ref.digest:
            raise UsageError(f"{earlier} and {ref} name the same tag with different digests")
    return out


def references(texts: Sequence[str], from_file: TextIO | None = None) -> list[ImageRef]:
    """:func:`read_references` without manifest details."""
    return [listed.ref for listed in read_references(texts, from_file)]


def one_repository(refs: Sequence[ImageRef], command: str) -> str:
    """The GUN of ``refs``, which must all be in one repository (one publish).

    Raises:
        UsageError: they are not.
    """
    guns = list(dict.fromkeys(ref.gun for ref in refs))
    if len(guns) > 1:
        raise UsageError(
            f"`trustctl {command}` takes tags of one repository at a time; got {', '.join(guns[:3])}"
            + (", …" if len(guns) > 3 else ""),
            hint=f"run `trustctl {command}` once per repository",
        )
    return guns[0]


def name_reference(error: TrustctlError, ref: ImageRef, count: int) -> TrustctlError:
    """``error`` naming the reference it is about (in its message when ``count`` > 1,
    always in its JSON detail)."""
    text = str(ref)
    error.detail.setdefault("reference", text)
    if count > 1 and f"{ref.gun}:{ref.tag}" not in error.message:
        error.message = f"{text}: {error.message}"
    return error


def gun_arg(text: str) -> str:
    """A GUN argument; an image reference with a tag is refused with a clear message."""
    return parse_gun(text)


def ensure_pinned(tctx: TrustContext, gun: str, *, tofu: bool) -> PinnedRoot:
    """The pinned root of ``gun``; with ``tofu``, pin the server's root v1 if none is.

    Raises:
        NoPinnedRootError: nothing pinned and no ``--tofu``.
        UnknownRepositoryError: ``--tofu`` but the server has no root for ``gun``.
    """
    pinned = tctx.trust.pinned(gun)
    if pinned is not None or not tofu:
        return tctx.trust.require_pinned(gun)
    data = tctx.client.get_file(gun, "1.root.json")
    if data is None:
        raise UnknownRepositoryError(f"the trust server has no trust data for {gun}")
    pinned = tctx.trust.pin(gun, data, source="tofu")
    keys = ", ".join(k[:16] + "…" for k in pinned.keyids)
    tctx.printer.warn(
        f"trusting on first use: pinned the root that the server sent for {gun} (root keys {keys}, "
        f"threshold {pinned.threshold}) without checking it out of band"
    )
    return pinned


def is_notary(tctx: TrustContext, gun: str, *, tofu: bool) -> bool:
    """Whether ``gun`` is read as a Notary-dialect repository: from the pin when there
    is one (a pinned TUF root answers at once, without loading the Notary support and
    its X.509 code; also after `trustctl migrate` moved the GUN to TUF 1.0), else from
    the root the server serves (a Notary root with ``--tofu`` is pinned, announced).

    Raises:
        NoPinnedRootError: a Notary repository, nothing pinned, no ``--tofu``.
    """
    if tctx.trust.pinned(gun) is not None:
        return False
    from trustctl.notary.pinning import NotaryPin
    from trustctl.notary.updater import is_notary_root
    from trustctl.notary.verify import notary_state

    state = notary_state(tctx.trust, gun)
    if state.pin() is not None:
        return True
    try:
        raw = tctx.client.get_file(gun, "root.json")
    except TrustctlError:
        if tofu:
            raise
        return False  # the TUF 1.0 path says what is missing (no pin, no server)
    if not is_notary_root(raw):
        return False
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
    return True


def open_notary_repository(tctx: TrustContext, gun: str, *, announce: bool) -> TrustedNotary:
    """Verify the Notary repository ``gun`` now, through the command's trust server
    and clock (the GUN's lock held by the caller); with ``announce``, delegated roles
    that do not count are warned about."""
    from trustctl.notary.updater import ServerFetch
    from trustctl.notary.verify import open_notary

    fetch = ServerFetch(tctx.server_transport, tctx.server, gun)
    trusted = open_notary(fetch, tctx.trust, gun, tctx.clock())
    for warning in trusted.failures.values() if announce else ():
        tctx.printer.warn(warning)
    return trusted


def report_publish(tctx: TrustContext, gun: str, result: PublishResult) -> None:
    """After a command published its own changes: the publish's warnings, and a note
    naming the changes staged earlier, which were not published."""
    for warning in result.warnings:
        tctx.printer.warn(warning)
    others = tctx.staged(gun).entries()
    if others:
        shown = "; ".join(c.describe() for c in others[:3]) + ("; …" if len(others) > 3 else "")
        tctx.printer.message(
            f"Note: {len(others)} change(s) staged earlier for {gun} were not published ({shown}): "
            f"see `trustctl status {gun}`, publish them with `trustctl publish {gun}`"
        )


def publish_data(result: PublishResult, changes: Sequence[Change]) -> dict[str, Any]:
    """The ``published``/``pending`` members of a JSON result."""
    return {
        "status": "pending" if result.pending else ("unchanged" if result.noop else "published"),
        "published": dict(result.published),
        "pending": [
            {
                "role": p.role,
                "version": p.version,
                "signatures": len(p.signed_keyids),
                "threshold": p.threshold,
                "signers": list(p.signers),
                "where": p.where,
            }
            for p in result.pending
        ],
        "attempts": result.attempts,
        "changes": [{"id": c.id, "action": c.action, "description": c.describe()} for c in changes],
    }


def publish_lines(gun: str, result: PublishResult) -> list[str]:
    """Human lines about what a publish did."""
    lines = []
    if result.published:
        roles = ", ".join(f"{role} v{version}" for role, version in result.published.items())
        lines.append(f"  published:    {roles}")
    for p in result.pending:
        lines.append(
            f"  waiting:      {p.role} v{p.version} has {len(p.signed_keyids)} of {p.threshold} required "
            f"signatures ({', '.join(p.signers)}); kept in {p.where}"
        )
    if result.attempts > 1:
        lines.append(f"  rebased:      {result.attempts - 1} time(s) on concurrent publishes")
    return lines


def verify_details(tctx: TrustContext, v: VerifiedTag) -> list[str]:
    """What ``verify -v`` adds on stderr: the trust anchor, the roles python-tuf
    verified and their expiry, and exactly which keys signed the tag's role."""
    from trustctl.verify import iso

    pinned = tctx.trust.pinned(v.gun)
    lines = []
    if pinned is not None:
        lines.append(
            f"  pinned root:  root v{pinned.version} ({pinned.source}, {pinned.pinned_at or 'unknown time'}); "
            "python-tuf followed every newer root from it"
        )
    lines.append(
        "  verified:     "
        + ", ".join(f"{role} (expires {iso(moment)})" for role, moment in v.expires.items())
    )
    r = v.report
    keys = ", ".join(r.signed_keyids) or "none"
    lines.append(
        f"  signed by key(s) {keys} in {r.role} ({len(r.signed_keyids)} of {r.threshold} required)"
    )
    return lines


def tag_policy_lines(policy: TagPolicy, binned: bool) -> list[str]:
    """Who may sign which tags, for ``inspect`` and ``signer list``."""
    paths = " ".join(policy.signer_paths) or "(none)"
    if not binned:
        text = (
            f"Tags: the signers sign {paths} into targets/releases; the owner's targets key "
            "(targets, looked up first) may sign any tag"
        )
        return [text]
    if policy.signers_first and policy.terminating:
        text = (
            f"Tags: {paths} are the signers' (targets/releases, looked up first, terminating: "
            "the bins key cannot sign or override them); other tags: the owner's bins key"
        )
        return [text]
    text = (
        f"Tags: the signers sign {paths}, but the owner's bins are looked up first, so the bins "
        "key can override the signers (laid out by an older trustctl)"
    )
    return [text, "      fix: `trustctl signer paths GUN PATTERN...` puts the signers first"]
