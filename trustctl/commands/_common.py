"""Helpers shared by the command modules (parsing, pinning, publishing, rendering)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trustctl.changes import Change, Changelist
from trustctl.errors import (
    InvalidReferenceError,
    NetworkError,
    TrustctlError,
    UnknownRepositoryError,
)
from trustctl.reference import ImageRef, parse_gun, parse_reference

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.repo import PublishResult
    from trustctl.trust import PinnedRoot
    from trustctl.verify import VerifiedTag

__all__ = [
    "ALGORITHMS",
    "KEY_ROLES",
    "ensure_pinned",
    "gun_arg",
    "image_with_tag",
    "publish_data",
    "publish_lines",
    "publish_staged",
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


def publish_staged(
    tctx: TrustContext, gun: str, *, replace_pending: bool = False, new: Change | None = None
) -> tuple[PublishResult, list[Change]]:
    """Publish every staged change of ``gun`` (lock held by the caller); unstage them on success.

    When the publish fails for a reason other than the network, the change this
    command just staged (``new``) is dropped again: retrying it would fail the same
    way. Earlier staged changes, and everything after a network failure, stay staged.
    """
    from trustctl.repo import PublishResult

    changelist = Changelist(tctx.trust.changes_dir(gun))
    changes = changelist.entries()
    if not changes:
        return PublishResult(), []
    try:
        result = tctx.publisher(gun).publish(changes, replace_pending=replace_pending)
    except TrustctlError as e:
        if new is not None and not isinstance(e, NetworkError):
            changelist.remove([new.id])
            changes = [c for c in changes if c.id != new.id]
        if changes:
            tctx.printer.message(
                f"{len(changes)} change(s) stay staged: see `trustctl status {gun}`."
            )
        raise
    changelist.remove(c.id for c in changes)
    for warning in result.warnings:
        tctx.printer.warn(warning)
    return result, changes


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
