"""``signer add|remove|list``: delegate tag signing to team members (k of n)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx
from trustctl.commands._common import (
    gun_arg,
    publish_data,
    publish_lines,
    report_publish,
    tag_policy_lines,
)
from trustctl.layout import check_signer_name, owner_bins, signer_roles, tag_policy
from trustctl.output import table

if TYPE_CHECKING:
    from trustctl.changes import Change
    from trustctl.context import TrustContext
    from trustctl.library import Publication

__all__ = ["register"]


@click.group("signer", cls=TrustctlGroup)
def signer_group() -> None:
    """Signers: team members who may sign tags into targets/releases."""


def _staged(
    tctx: TrustContext,
    gun: str,
    command: str,
    head: str,
    data: Mapping[str, object],
    change: Change,
) -> None:
    """Stage ``change`` (``--no-publish``) and say so."""
    from trustctl.library import stage

    stage(tctx.staged(gun), [change])
    tctx.printer.result(command, {**data, "status": "staged"}, [f"Staged: {head}"])


def _published(
    tctx: TrustContext,
    gun: str,
    command: str,
    head: str,
    data: Mapping[str, object],
    done: Publication,
) -> None:
    """Print what a signer command published."""
    tctx.printer.result(
        command,
        {**data, **publish_data(done.result, done.changes)},
        [f"OK: {head}", *publish_lines(gun, done.result)],
    )


@signer_group.command("add", cls=TrustctlCommand)
@click.argument("name")
@click.argument("gun")
@click.option(
    "--key",
    "key_files",
    multiple=True,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The signer's public key (PEM from `trustctl key generate`). Repeatable.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    help="Signer keys needed for a tag to count (k of n).",
)
@click.option(
    "--paths",
    "paths",
    multiple=True,
    metavar="PATTERN",
    help="The tags the signers hold (e.g. 'v*'; default '*': every tag). Repeatable.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Even if signed tags would stop verifying (raising the threshold, taking tags over).",
)
@click.option("--no-publish", is_flag=True, help="Only stage the change.")
@pass_ctx
def signer_add(
    tctx: TrustContext,
    name: str,
    gun: str,
    key_files: tuple[Path, ...],
    threshold: int | None,
    paths: tuple[str, ...],
    force: bool,
    no_publish: bool,
) -> None:
    """Let NAME sign tags of GUN with the given public key(s).

    Adding keys to an existing signer adds them to that signer. The signers hold
    the tags matching --paths (default every tag): those count only with the
    signers' threshold, and the owner's single bins key can neither sign nor
    override them.
    """
    name = check_signer_name(name)
    gun = gun_arg(gun)
    from trustctl.keys import load_public_key_file
    from trustctl.library import add_signer, add_signer_change

    keys = [load_public_key_file(path) for path in key_files]
    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        extra = f", threshold {threshold}" if threshold else ""
        extra += f", holding the tags {' '.join(paths)}" if paths else ""
        data = {"gun": gun, "name": name, "keyids": [k.keyid for k in keys], "threshold": threshold}
        head = f"added signer {name} to {gun}{extra}"
        if no_publish:
            change = add_signer_change(name, keys, threshold=threshold, paths=paths, force=force)
            _staged(tctx, gun, "signer add", head, data, change)
            return
        added = add_signer(
            tctx.publisher(gun), name, keys, threshold=threshold, paths=paths, force=force
        )
        report_publish(tctx, gun, added.result)
    _published(tctx, gun, "signer add", head, data, added)


@signer_group.command("remove", cls=TrustctlCommand)
@click.argument("name")
@click.argument("gun")
@click.option(
    "--key",
    "keyids",
    multiple=True,
    metavar="KEYID",
    help="Remove only this key of the signer. Repeatable.",
)
@click.option(
    "--threshold", type=click.IntRange(min=1), help="New threshold for the remaining signer keys."
)
@click.option("--force", is_flag=True, help="Even if signed tags would stop verifying.")
@click.option("--no-publish", is_flag=True, help="Only stage the change.")
@pass_ctx
def signer_remove(
    tctx: TrustContext,
    name: str,
    gun: str,
    keyids: tuple[str, ...],
    threshold: int | None,
    force: bool,
    no_publish: bool,
) -> None:
    """Stop counting NAME's signatures on GUN's tags."""
    gun = gun_arg(gun)
    from trustctl.library import remove_signer, remove_signer_change

    data = {"gun": gun, "name": name, "keyids": list(keyids), "threshold": threshold}
    what = (
        f"key(s) {', '.join(k[:12] + '…' for k in keyids)} of signer {name}"
        if keyids
        else f"signer {name}"
    )
    head = f"removed {what} from {gun}"
    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        if no_publish:
            change = remove_signer_change(name, keyids=keyids, threshold=threshold, force=force)
            _staged(tctx, gun, "signer remove", head, data, change)
            return
        removed = remove_signer(
            tctx.publisher(gun), name, keyids=keyids, threshold=threshold, force=force
        )
        report_publish(tctx, gun, removed.result)
    _published(tctx, gun, "signer remove", head, data, removed)


@signer_group.command("paths", cls=TrustctlCommand)
@click.argument("gun")
@click.argument("patterns", nargs=-1, required=True, metavar="PATTERN...")
@click.option("--force", is_flag=True, help="Even if signed tags would stop verifying.")
@click.option("--no-publish", is_flag=True, help="Only stage the change.")
@pass_ctx
def signer_paths(
    tctx: TrustContext, gun: str, patterns: tuple[str, ...], force: bool, no_publish: bool
) -> None:
    """Choose which tags of GUN the signers hold (PATTERN: e.g. 'v*', '*').

    A TUF client looks the signers' tags up in targets/releases first and only there
    (a terminating delegation), so only the signers' threshold can sign them; other
    tags stay the owner's bins key's. Refused, unless --force, when signed tags would
    stop verifying (reads every published bin).
    """
    gun = gun_arg(gun)
    from trustctl.library import set_signer_paths, set_signer_paths_change

    data = {"gun": gun, "paths": sorted(set(patterns))}
    head = f"the signers of {gun} hold the tags {' '.join(sorted(set(patterns)))}"
    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        if no_publish:
            change = set_signer_paths_change(patterns, force=force)
            _staged(tctx, gun, "signer paths", head, data, change)
            return
        done = set_signer_paths(tctx.publisher(gun), patterns, force=force)
        report_publish(tctx, gun, done.result)
    _published(tctx, gun, "signer paths", head, data, done)


@signer_group.command("list", cls=TrustctlCommand)
@click.argument("gun")
@pass_ctx
def signer_list(tctx: TrustContext, gun: str) -> None:
    """List GUN's signers, their key ids and the threshold (from verified metadata)."""
    gun = gun_arg(gun)
    from trustctl.verify import signer_threshold

    with tctx.trust.lock(gun):
        repo = tctx.open_trusted(gun)
        repo.refresh()
        targets = repo.targets.signed
        policy = signer_threshold(repo)
        tags = tag_policy(targets)
    owners = signer_roles(targets)
    threshold, count = policy if policy is not None else (None, 0)
    data = {
        "gun": gun,
        "threshold": threshold,
        "tag_policy": tags.to_dict() if tags is not None else None,
        "keys": count,
        "signers": [{"name": n, "keyids": ids} for n, ids in sorted(owners.items())],
    }
    if not owners:
        lines = [f"{gun} has no signers: tags are signed with the owner's key"]
    else:
        lines = [f"{gun}: a tag counts when {threshold} of {count} signer keys sign it"]
        lines += table(
            ["NAME", "KEY IDS"], [[n, ", ".join(ids)] for n, ids in sorted(owners.items())]
        )
        if tags is not None:
            lines += tag_policy_lines(tags, owner_bins(targets) is not None)
    tctx.printer.result("signer list", data, lines)


def register(group: click.Group) -> None:
    group.add_command(signer_group)
