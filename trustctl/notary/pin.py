"""``trustctl trust pin`` for Notary-dialect repositories.

A Notary repository is recognised from the root its server serves (or the root file
given); it is pinned by root certificate id (``--keyid``), by a CA bundle
(``--ca-bundle``), by the certificate ids of a root file from the owner, or by an
explicit ``--tofu``. The pin is tried at once: a full verification runs, and a pin
the repository does not satisfy is not kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustctl.errors import TrustctlError, UsageError
from trustctl.notary.model import parse_root
from trustctl.notary.pinning import NotaryPin
from trustctl.notary.updater import ServerFetch, is_notary_root
from trustctl.notary.verify import notary_state, open_notary

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.truststore import PinnedRoot

__all__ = ["PinResult", "notary_pinned_guns", "pin_notary", "pinned_notary"]


@dataclass(frozen=True)
class PinResult:
    data: dict[str, Any]
    lines: list[str]


def pin_notary(
    tctx: TrustContext,
    gun: str,
    *,
    root_file: Path | None,
    keyid: str | None,
    tofu: bool,
    ca_bundle: Path | None,
) -> PinResult | None:
    """Pin ``gun`` when it is a Notary repository; None for a TUF 1.0 one.

    Raises:
        UsageError: --ca-bundle for a TUF 1.0 repository, a malformed id or bundle.
        TrustctlError: the repository does not verify with the pin (nothing kept).
    """
    if root_file is not None:
        data = root_file.read_bytes()
        if not is_notary_root(data):
            return None
        pin = NotaryPin.by_cert_ids(parse_root(data).roles["root"].keyids)
    else:
        if not is_notary_root(tctx.client.get_file(gun, "root.json")):
            if ca_bundle is not None:
                raise UsageError(
                    f"{gun} is not a Notary repository: --ca-bundle pins Notary root certificates only"
                )
            return None
        if keyid is not None:
            pin = NotaryPin.by_cert_ids([keyid])
        elif ca_bundle is not None:
            pin = NotaryPin.by_ca(ca_bundle.read_bytes(), str(ca_bundle))
        else:
            pin = NotaryPin.tofu()
    state = notary_state(tctx.trust, gun)
    previous = state.pin()
    tctx.trust.unpin(gun)  # one dialect per repository
    state.set_pin(pin)
    try:
        fetch = ServerFetch(tctx.server_transport, tctx.server, gun)
        trusted = open_notary(fetch, tctx.trust, gun, tctx.clock())
    except TrustctlError:
        if previous is not None:
            state.set_pin(previous)
        else:
            state.unpin()
        raise
    if tofu:
        tctx.printer.warn(
            f"trusting on first use: pinned the root certificates the server sent for {gun} "
            "without checking them out of band"
        )
    root = trusted.root
    certs = sorted(root.roles["root"].keyids)
    doc: dict[str, Any] = {
        "gun": gun,
        "dialect": "notary",
        "root_version": root.file.version,
        "root_keyids": certs,
        "threshold": root.roles["root"].threshold,
        "source": pin.source,
        "pinned_at": pin.pinned_at,
    }
    return PinResult(
        doc,
        [
            f"OK: pinned the Notary repository {gun} ({pin.describe()}); root v{root.file.version} verified",
            f"  root certificates: {', '.join(certs)} (threshold {root.roles['root'].threshold})",
        ],
    )


def pinned_notary(tctx: TrustContext, gun: str) -> PinnedRoot | None:
    """The Notary pin of ``gun`` in ``trust show``'s terms (None when there is none):
    the newest verified root's certificates, or the pinned ids before any verification."""
    from trustctl.truststore import PinnedRoot

    state = notary_state(tctx.trust, gun)
    pin = state.pin()
    if pin is None:
        return None
    raw = state.trusted_root()
    version, keyids, threshold = 0, pin.cert_ids, 1
    if raw is not None:
        root = parse_root(raw)
        version, keyids = root.file.version, tuple(root.roles["root"].keyids)
        threshold = root.roles["root"].threshold
    return PinnedRoot(
        gun,
        raw or b"",
        version,
        tuple(keyids),
        threshold,
        f"notary: {pin.describe()}",
        pin.pinned_at,
    )


def notary_pinned_guns(tctx: TrustContext) -> list[str]:
    root = tctx.trust.root
    if not root.is_dir():
        return []
    return sorted(str(p.parent.parent.relative_to(root)) for p in root.rglob("notary/pin.json"))
