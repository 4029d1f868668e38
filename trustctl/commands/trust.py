"""``trust pin|show|export|unpin``: choose the root a repository is verified from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx
from trustctl.commands._common import gun_arg
from trustctl.errors import UnknownRepositoryError, UntrustedSignatureError, UsageError
from trustctl.output import table
from trustctl.trust import PinnedRoot, parse_root

if TYPE_CHECKING:
    from trustctl.context import TrustContext

__all__ = ["register"]


@click.group("trust", cls=TrustctlGroup)
def trust_group() -> None:
    """Pinned roots: the trust anchors verification starts from (no TOFU by default)."""


def _pinned_data(p: PinnedRoot) -> dict[str, object]:
    return {
        "gun": p.gun,
        "root_version": p.version,
        "root_keyids": list(p.keyids),
        "threshold": p.threshold,
        "source": p.source,
        "pinned_at": p.pinned_at,
    }


@trust_group.command("pin", cls=TrustctlCommand)
@click.argument("gun")
@click.argument(
    "root_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--keyid", metavar="KEYID", help="Pin the server's root v1 if this full root key id signed it."
)
@click.option(
    "--tofu", is_flag=True, help="Pin whatever root v1 the server sends (trust on first use)."
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Notary repositories: trust root certificates issued by this CA bundle.",
)
@pass_ctx
def trust_pin(
    tctx: TrustContext,
    gun: str,
    root_file: Path | None,
    keyid: str | None,
    tofu: bool,
    ca_bundle: Path | None,
) -> None:
    """Pin GUN's root: from ROOT_FILE (from the owner), by --keyid, or --tofu.

    For a Notary (Docker Content Trust) repository, --keyid takes a root
    certificate id, --ca-bundle a CA that issued the root certificate.
    """
    gun = gun_arg(gun)
    given = [root_file is not None, keyid is not None, tofu, ca_bundle is not None]
    if given.count(True) != 1:
        raise UsageError("give exactly one of ROOT_FILE, --keyid KEYID, --ca-bundle FILE or --tofu")
    with tctx.trust.lock(gun):
        from trustctl.notary.pin import pin_notary

        notary = pin_notary(
            tctx, gun, root_file=root_file, keyid=keyid, tofu=tofu, ca_bundle=ca_bundle
        )
        if notary is not None:
            tctx.printer.result("trust pin", notary.data, notary.lines)
            return
        if root_file is not None:
            pinned = tctx.trust.pin(gun, root_file.read_bytes(), source=f"file {root_file}")
        else:
            data = tctx.client.get_file(gun, "1.root.json")
            if data is None:
                raise UnknownRepositoryError(f"the trust server has no trust data for {gun}")
            if keyid is not None:
                if len(keyid) != 64:
                    raise UsageError("--keyid needs the full 64-hex-digit root key id")
                md = parse_root(data, what=f"the server's root of {gun}")
                check = md.signed.get_verification_result("root", md.signed_bytes, md.signatures)
                if keyid.lower() not in check.signed:
                    raise UntrustedSignatureError(
                        f"the server's root v1 of {gun} is not signed by root key {keyid[:16]}…; it may not be "
                        "the repository you expect, or this may be an attack",
                        hint="check the key id with the repository owner",
                    )
                pinned = tctx.trust.pin(gun, data, source=f"keyid {keyid}")
            else:
                pinned = tctx.trust.pin(gun, data, source="tofu")
                tctx.printer.warn(
                    f"trusting on first use: pinned the server's root of {gun} without checking it "
                    "out of band"
                )
    keys = ", ".join(pinned.keyids)
    tctx.printer.result(
        "trust pin",
        _pinned_data(pinned),
        [
            f"OK: pinned root v{pinned.version} of {gun}",
            f"  root keys:    {keys} (threshold {pinned.threshold})",
        ],
    )


@trust_group.command("show", cls=TrustctlCommand)
@click.argument("gun", required=False)
@pass_ctx
def trust_show(tctx: TrustContext, gun: str | None) -> None:
    """Show the pinned root of GUN, or list every pinned GUN."""
    from trustctl.notary.pin import notary_pinned_guns, pinned_notary

    guns = [gun_arg(gun)] if gun else sorted({*tctx.trust.list_pinned(), *notary_pinned_guns(tctx)})
    pins = [
        tctx.trust.pinned(g) or pinned_notary(tctx, g) or tctx.trust.require_pinned(g) for g in guns
    ]
    rows = [
        [p.gun, str(p.version), ", ".join(k[:16] + "…" for k in p.keyids), p.source, p.pinned_at]
        for p in pins
    ]
    lines = (
        table(["GUN", "ROOT", "ROOT KEYS", "SOURCE", "PINNED AT"], rows)
        if rows
        else ["(nothing pinned)"]
    )
    tctx.printer.result("trust show", {"pins": [_pinned_data(p) for p in pins]}, lines)


@trust_group.command("export", cls=TrustctlCommand)
@click.argument("gun")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file."
)
@pass_ctx
def trust_export(tctx: TrustContext, gun: str, output: Path | None) -> None:
    """Print GUN's pinned root metadata (hand it to deployers for `trust pin`)."""
    from trustctl.notary.pin import pinned_notary

    gun = gun_arg(gun)
    notary = None if tctx.trust.pinned(gun) is not None else pinned_notary(tctx, gun)
    pinned = notary if notary is not None and notary.data else tctx.trust.require_pinned(gun)
    if output is not None:
        output.write_bytes(pinned.data)
        tctx.printer.result(
            "trust export",
            {**_pinned_data(pinned), "output": str(output)},
            [f"OK: wrote root v{pinned.version} of {pinned.gun} to {output}"],
        )
        return
    tctx.printer.result(
        "trust export",
        {**_pinned_data(pinned), "root": pinned.data.decode()},
        [pinned.data.decode()],
    )


@trust_group.command("unpin", cls=TrustctlCommand)
@click.argument("gun")
@pass_ctx
def trust_unpin(tctx: TrustContext, gun: str) -> None:
    """Forget GUN's pinned root and cached trust data."""
    gun = gun_arg(gun)
    with tctx.trust.lock(gun):
        from trustctl.notary.verify import notary_state

        existed = tctx.trust.unpin(gun)
        existed = notary_state(tctx, gun).unpin() or existed
    tctx.printer.result(
        "trust unpin",
        {"gun": gun, "was_pinned": existed},
        [f"OK: unpinned {gun}" if existed else f"OK: {gun} was not pinned"],
    )


def register(group: click.Group) -> None:
    group.add_command(trust_group)
