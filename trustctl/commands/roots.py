"""``trust pin|show|export|unpin``: choose the root a repository is verified from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx
from trustctl.commands._common import gun_arg
from trustctl.errors import UnknownRepositoryError, UntrustedSignatureError, UsageError
from trustctl.output import table
from trustctl.rootchain import MAX_ROOT_ROTATIONS, parse_root, parse_root_chain, verify_root_chain
from trustctl.truststore import PinnedRoot

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
    "--keyid",
    metavar="KEYID",
    help="Pin the server's current root if this full root key id is one of its root keys "
    "and signed it (the chain from root v1 is checked).",
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
            roots = parse_root_chain(root_file.read_bytes(), what=str(root_file))
            source = f"file {root_file}"
            if len(roots) > 1:
                chain = verify_root_chain(roots, what=str(root_file))
                source += (
                    f" (root chain v{chain[0].signed.version}-v{chain[-1].signed.version} verified)"
                )
            pinned = tctx.trust.pin(gun, roots[-1], source=source)
        elif keyid is not None:
            pinned = _pin_by_keyid(tctx, gun, keyid)
        else:
            data = tctx.client.get_file(gun, "1.root.json")
            if data is None:
                raise UnknownRepositoryError(f"the trust server has no trust data for {gun}")
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


def _server_chain(tctx: TrustContext, gun: str, *, upto: int | None = None) -> list[bytes]:
    """Root v1, v2, ... as the server has them (to ``upto``, else to the newest).

    Raises:
        UnknownRepositoryError: the server has no root v1 for ``gun``.
        UntrustedSignatureError: the server lacks a version below ``upto``.
    """
    roots: list[bytes] = []
    while upto is None or len(roots) < upto:
        if len(roots) > MAX_ROOT_ROTATIONS:
            raise UntrustedSignatureError(
                f"the trust server sends more than {MAX_ROOT_ROTATIONS} root versions of {gun}; "
                "this may be an endless-data attack"
            )
        data = tctx.client.get_file(gun, f"{len(roots) + 1}.root.json")
        if data is None:
            if not roots:
                raise UnknownRepositoryError(f"the trust server has no trust data for {gun}")
            if upto is not None:
                raise UntrustedSignatureError(
                    f"the trust server has no root v{len(roots) + 1} of {gun}, below the trusted "
                    f"root v{upto}; this may be an attack"
                )
            break
        roots.append(data)
    return roots


def _pin_by_keyid(tctx: TrustContext, gun: str, keyid: str) -> PinnedRoot:
    """Pin the server's current root when ``keyid`` is one of its root keys and signed it.

    The chain from root v1 is walked with the TUF client's rules (each root signed by
    a threshold of the previous root's keys and of its own); the key id, given out of
    band, is the trust anchor: the newest root must list it as a root key, carry its
    valid signature and meet its own threshold.
    """
    keyid = keyid.lower()
    if len(keyid) != 64 or any(c not in "0123456789abcdef" for c in keyid):
        raise UsageError("--keyid needs the full 64-hex-digit root key id")
    roots = _server_chain(tctx, gun)
    chain = verify_root_chain(roots, what=f"the server's root chain of {gun}")
    current = chain[-1]
    version = current.signed.version
    check = current.signed.get_verification_result("root", current.signed_bytes, current.signatures)
    if keyid not in current.signed.roles["root"].keyids:
        older = [md.signed.version for md in chain if keyid in md.signed.roles["root"].keyids]
        if older:
            raise UntrustedSignatureError(
                f"root key {keyid[:16]}… was a root key of {gun} up to root v{older[-1]}, but the "
                f"current root v{version} no longer lists it, so it cannot vouch for the repository now",
                hint=f"ask the owner for a key id of the current root (`trustctl trust export {gun} --json`"
                " shows root_keyids), or pin the root file they give you",
            )
        raise UntrustedSignatureError(
            f"the server's current root v{version} of {gun} is not signed by root key {keyid[:16]}… "
            "(it is not one of its root keys); it may not be the repository you expect, or this may "
            "be an attack",
            hint="check the key id with the repository owner",
        )
    if keyid not in check.signed:
        raise UntrustedSignatureError(
            f"the server's current root v{version} of {gun} is not signed by root key {keyid[:16]}…; "
            "this may be an attack",
            hint="do not pin it; ask the repository owner",
        )
    data = roots[-1]
    source = f"keyid {keyid}" + (f" (root chain v1-v{version} verified)" if version > 1 else "")
    return tctx.trust.pin(gun, data, source=source)


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
@click.option(
    "--chain",
    is_flag=True,
    help="Every root version from v1 to the current one (a JSON array, oldest first).",
)
@click.option(
    "--pinned", is_flag=True, help="The root pinned on this machine, as pinned (no server needed)."
)
@pass_ctx
def trust_export(
    tctx: TrustContext, gun: str, output: Path | None, chain: bool, pinned: bool
) -> None:
    """Print GUN's current root metadata (hand it to deployers for `trust pin`).

    The current root is the newest one python-tuf verified from the pinned root,
    refreshed from the trust server first. --chain adds every older version, each
    checked against the next; --pinned exports the pinned root itself.
    """
    from trustctl.notary.pin import pinned_notary

    gun = gun_arg(gun)
    if chain and pinned:
        raise UsageError("give at most one of --chain and --pinned")
    notary = None if tctx.trust.pinned(gun) is not None else pinned_notary(tctx, gun)
    if notary is not None and notary.data:  # a Notary root: exported as pinned
        _export_notary(tctx, notary, output)
        return
    anchor = tctx.trust.require_pinned(gun)
    if pinned:
        data, md = anchor.data, parse_root(anchor.data, what=f"the pinned root of {gun}")
        roots = [data]
    else:
        with tctx.trust.lock(gun):
            repo = tctx.open_trusted(gun)
            repo.refresh()
            data, md = repo.root_bytes, repo.root
        roots = [data]
        if chain:
            roots = _server_chain(tctx, gun, upto=md.signed.version)
            checked = verify_root_chain(roots, what=f"the server's root chain of {gun}")
            if checked[-1].signed != md.signed:
                raise UntrustedSignatureError(
                    f"the trust server's root v{md.signed.version} of {gun} differs from the one "
                    "verified from the pinned root; this may be an attack"
                )
    role = md.signed.roles["root"]
    info = {
        "gun": gun,
        "root_version": md.signed.version,
        "root_keyids": list(role.keyids),
        "threshold": role.threshold,
        "source": anchor.source,
        "pinned_at": anchor.pinned_at,
        "pinned_version": anchor.version,
    }
    text = (b"[\n" + b",\n".join(r.strip() for r in roots) + b"\n]\n") if chain else data
    what = f"root v1-v{md.signed.version} (chain)" if chain else f"root v{md.signed.version}"
    if output is not None:
        output.write_bytes(text)
        tctx.printer.result(
            "trust export",
            {**info, "output": str(output)},
            [f"OK: wrote {what} of {gun} to {output}"],
        )
        return
    member = {"chain": [r.decode() for r in roots]} if chain else {"root": data.decode()}
    tctx.printer.result("trust export", {**info, **member}, [text.decode().rstrip("\n")])


def _export_notary(tctx: TrustContext, pinned: PinnedRoot, output: Path | None) -> None:
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
        existed = notary_state(tctx.trust, gun).unpin() or existed
    tctx.printer.result(
        "trust unpin",
        {"gun": gun, "was_pinned": existed},
        [f"OK: unpinned {gun}" if existed else f"OK: {gun} was not pinned"],
    )


def register(group: click.Group) -> None:
    group.add_command(trust_group)
