"""Repository administration: ``init``, ``status``, ``reset``, ``publish``, ``delete``,
``inspect``, ``revoke``, ``witness``."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

import click

from trustctl.cli import TrustctlCommand, pass_ctx
from trustctl.commands._common import (
    ALGORITHMS,
    ensure_pinned,
    gun_arg,
    is_notary,
    one_repository,
    open_notary_repository,
    publish_data,
    publish_lines,
    references,
    report_publish,
    tag_policy_lines,
)
from trustctl.errors import TagNotSignedError, TrustctlError, UsageError
from trustctl.layout import DEFAULT_HASH_BINS, RELEASES, bit_length_for, is_bin_role
from trustctl.output import table
from trustctl.reference import parse_reference

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.verify import RoleReport

__all__ = ["register"]


@click.command("init", cls=TrustctlCommand)
@click.argument("gun")
@click.option(
    "--root-key",
    metavar="KEYID",
    help="Reuse this root key (key id or a prefix of at least 6 hex digits).",
)
@click.option(
    "--algorithm",
    type=click.Choice(ALGORITHMS),
    default="ecdsa",
    show_default=True,
    help="For new keys.",
)
@click.option(
    "--hash-bins",
    "hash_bins",
    type=int,
    default=DEFAULT_HASH_BINS,
    show_default=True,
    metavar="N",
    help="Keep tags in N hash bins (a power of two), so a tag costs the same at any size; "
    "0: the flat layout (all tags in targets).",
)
@pass_ctx
def init_cmd(
    tctx: TrustContext, gun: str, root_key: str | None, algorithm: str, hash_bins: int
) -> None:
    """Create the trust repository GUN (REGISTRY/REPOSITORY) on the trust server.

    Creates root, targets and (with hash bins) bins keys, lists the server-held
    snapshot and timestamp keys in root v1, publishes, and pins root v1 locally.
    """
    from trustctl.admin import initialize

    gun = gun_arg(gun)
    bit_length_for(hash_bins)  # a usage error before any key is made
    with tctx.trust.lock(gun):
        r = initialize(
            gun,
            client=tctx.client,
            keystore=tctx.keystore,
            trust=tctx.trust,
            root_keyid=root_key,
            algorithm=algorithm,
            clock=tctx.clock,
            hash_bins=hash_bins,
        )
    data = {
        "gun": gun,
        "root_keyid": r.root_keyid,
        "targets_keyid": r.targets_keyid,
        "snapshot_keyid": r.snapshot_keyid,
        "timestamp_keyid": r.timestamp_keyid,
        "root_version": 1,
        "bins_keyid": r.bins_keyid,
        "hash_bins": r.hash_bins,
    }
    bins_line = (
        f"  bins key:     {r.bins_keyid} (signs tags into {r.hash_bins} hash bins; CI needs only this key)"
        if r.bins_keyid
        else "  layout:       flat (every tag in targets)"
    )
    tctx.printer.result(
        "init",
        data,
        [
            f"OK: initialized {gun}",
            f"  root key:     {r.root_keyid} (keep it offline; back it up with `trustctl key export`)",
            f"  targets key:  {r.targets_keyid}",
            bins_line,
            f"  server keys:  snapshot {r.snapshot_keyid[:16]}…, timestamp {r.timestamp_keyid[:16]}…",
            f"  pinned:       root v1; give deployers `trustctl trust export {gun}` output to pin",
        ],
    )


@click.command("status", cls=TrustctlCommand)
@click.argument("gun")
@pass_ctx
def status_cmd(tctx: TrustContext, gun: str) -> None:
    """List the changes staged for GUN (works offline)."""
    gun = gun_arg(gun)
    changes = tctx.staged(gun).entries()
    rows = [[str(i), c.action, c.describe(), c.created] for i, c in enumerate(changes, 1)]
    lines = [f"{len(changes)} staged change(s) for {gun}"] + (
        table(["#", "ACTION", "CHANGE", "STAGED AT"], rows) if rows else []
    )
    data = {
        "gun": gun,
        "changes": [
            {"number": i, **c.to_dict(), "description": c.describe()}
            for i, c in enumerate(changes, 1)
        ],
    }
    tctx.printer.result("status", data, lines)


@click.command("reset", cls=TrustctlCommand)
@click.argument("gun")
@click.option(
    "-n",
    "--number",
    "numbers",
    type=int,
    multiple=True,
    help="Drop change #N (see status). Repeatable.",
)
@click.option("--all", "drop_all", is_flag=True, help="Drop every staged change.")
@pass_ctx
def reset_cmd(tctx: TrustContext, gun: str, numbers: tuple[int, ...], drop_all: bool) -> None:
    """Drop staged changes of GUN."""
    gun = gun_arg(gun)
    if not numbers and not drop_all:
        raise UsageError("say which changes to drop: --number N (see `trustctl status`) or --all")
    with tctx.trust.lock(gun):
        dropped = tctx.staged(gun).reset(None if drop_all else numbers)
    tctx.printer.result(
        "reset",
        {"gun": gun, "dropped": [c.to_dict() for c in dropped]},
        [f"OK: dropped {len(dropped)} staged change(s) of {gun}"],
    )


@click.command("publish", cls=TrustctlCommand)
@click.argument("gun")
@click.option(
    "--replace-pending", is_flag=True, help="Discard other content waiting for signatures."
)
@pass_ctx
def publish_cmd(tctx: TrustContext, gun: str, replace_pending: bool) -> None:
    """Publish GUN's staged changes (rebasing on concurrent publishes)."""
    gun = gun_arg(gun)
    from trustctl.library import publish_staged

    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        staged = tctx.staged(gun)
        try:
            published = publish_staged(tctx.publisher(gun), staged, replace_pending=replace_pending)
        except TrustctlError:
            left = len(staged.entries())
            tctx.printer.message(f"{left} change(s) stay staged: see `trustctl status {gun}`.")
            raise
    result, changes = published.result, published.changes
    for warning in result.warnings:
        tctx.printer.warn(warning)
    head = (
        f"OK: nothing staged for {gun}"
        if not changes
        else f"OK: published {len(changes)} change(s) of {gun}"
    )
    if result.pending:
        head = f"Pending: {gun} has changes waiting for more signatures"
    named = [f"  change:       {c.describe()}" for c in changes]
    tctx.printer.result(
        "publish",
        {"gun": gun, **publish_data(result, changes)},
        [head, *named, *publish_lines(gun, result)],
    )


@click.command("revoke", cls=TrustctlCommand)
@click.argument("images", nargs=-1, metavar="IMAGE:TAG...")
@click.option(
    "--from-file",
    type=click.File("r"),
    metavar="FILE",
    help="Also revoke the references in FILE, one a line ('-': standard input).",
)
@click.option("--no-publish", is_flag=True, help="Only stage the changes.")
@pass_ctx
def revoke_cmd(
    tctx: TrustContext, images: tuple[str, ...], from_file: TextIO | None, no_publish: bool
) -> None:
    """Remove each IMAGE:TAG's signature from every role you can sign (one publish)."""
    refs = references(images, from_file)
    gun = one_repository(refs, "revoke")
    from trustctl.library import revoke_changes, revoke_tags, stage

    tags = [str(ref.tag) for ref in refs]
    entries = [{"image": f"{gun}:{tag}", "gun": gun, "tag": tag} for tag in tags]
    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        if no_publish:
            stage(tctx.staged(gun), revoke_changes(tags))
            staged = [{**e, "status": "staged"} for e in entries]
            top = staged[0] if len(staged) == 1 else {}
            tctx.printer.result(
                "revoke",
                {**top, "gun": gun, "status": "staged", "tags": staged},
                [f"Staged: revoke {e['image']}" for e in entries],
            )
            return
        revoked = revoke_tags(tctx.publisher(gun), tags)
        report_publish(tctx, gun, revoked.result)
    result = revoked.result
    done = [{**e, "status": status} for e, status in zip(entries, revoked.status, strict=True)]
    lines = [_revoke_line(t) for t in done]
    top = done[0] if len(done) == 1 else {}
    tctx.printer.result(
        "revoke",
        {**top, "gun": gun, **publish_data(result, revoked.changes), "tags": done},
        [*lines, *publish_lines(gun, result)],
    )


def _revoke_line(tag: dict[str, str]) -> str:
    if tag["status"] == "published":
        return f"OK: revoked {tag['image']}"
    if tag["status"] == "pending":
        return f"Pending: the revocation of {tag['image']} needs more signatures to count"
    return f"OK: {tag['image']} was not signed"


@click.command("witness", cls=TrustctlCommand)
@click.argument("gun")
@click.option("--role", default=RELEASES, show_default=True, help="Role to re-sign.")
@pass_ctx
def witness_cmd(tctx: TrustContext, gun: str, role: str) -> None:
    """Re-sign a role of GUN without changing it (adds your signature, renews expiry)."""
    gun = gun_arg(gun)
    from trustctl.library import witness_role

    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        done = witness_role(tctx.publisher(gun), role)
        report_publish(tctx, gun, done.result)
    tctx.printer.result(
        "witness",
        {"gun": gun, "role": role, **publish_data(done.result, done.changes)},
        [f"OK: re-signed {role} of {gun}", *publish_lines(gun, done.result)],
    )


@click.command("delete", cls=TrustctlCommand)
@click.argument("gun")
@click.option(
    "--remote", is_flag=True, help="Also delete the trust data on the server (admin access)."
)
@pass_ctx
def delete_cmd(tctx: TrustContext, gun: str, remote: bool) -> None:
    """Forget GUN locally (pinned root, cache, staged changes); keys are kept.

    With --remote, the server's trust data for GUN is deleted too: every deployer
    will fail to verify its tags until it is re-created and re-pinned.
    """
    gun = gun_arg(gun)
    with tctx.trust.lock(gun):
        if remote:
            tctx.client.delete(gun)
        had_pin = tctx.trust.unpin(gun)
        dropped = tctx.staged(gun).reset(None)
    data = {"gun": gun, "remote": remote, "unpinned": had_pin, "dropped_changes": len(dropped)}
    where = "locally and on the trust server" if remote else "locally (the server keeps its data)"
    tctx.printer.result("delete", data, [f"OK: deleted {gun} {where}"])


@click.command("inspect", cls=TrustctlCommand)
@click.argument("image")
@click.option(
    "--tofu", is_flag=True, help="If no root is pinned, trust the server's root (announced)."
)
@pass_ctx
def inspect_cmd(tctx: TrustContext, image: str, tofu: bool) -> None:
    """Show IMAGE's signed tags (or one IMAGE:TAG), signers, roles and expiry."""
    ref = parse_reference(image)
    policy = None
    with tctx.trust.lock(ref.gun):
        if is_notary(tctx, ref.gun, tofu=tofu):
            from trustctl.notary.verify import inspect_notary

            report = inspect_notary(open_notary_repository(tctx, ref.gun, announce=False), ref.tag)
        else:
            ensure_pinned(tctx, ref.gun, tofu=tofu)
            repo = tctx.open_trusted(ref.gun)
            try:
                pending = tctx.pending_store()
            except Exception:  # noqa: BLE001 - informational only
                pending = None
            from trustctl.verify import inspect_repository

            report = inspect_repository(repo, tag=ref.tag, pending=pending)
            from trustctl.layout import tag_policy

            policy = tag_policy(repo.targets.signed)
    waits = report.pending is not None and (
        ref.tag in report.pending.added or ref.tag in report.pending.removed
    )
    if ref.tag and not report.tags and not waits:
        raise TagNotSignedError(
            f"{ref.gun}:{ref.tag} is not signed", hint=f"see `trustctl inspect {ref.gun}`"
        )
    from trustctl.verify import iso

    fresh = iso(report.fresh_until) if report.fresh_until else "?"
    lines = [f"{ref.gun}: {len(report.tags)} signed tag(s), trust data fresh until {fresh}", ""]
    rows = [[t.tag, t.digest, str(t.length), t.signed_by_text()] for t in report.tags]
    lines += table(["TAG", "DIGEST", "SIZE", "SIGNED BY"], rows) if rows else ["(no signed tags)"]
    if report.signers:
        need = (
            f"{report.signer_threshold} of {report.signer_keys} keys"
            if report.signer_threshold
            else "?"
        )
        lines += ["", f"Signers (a tag counts with {need}):"]
        lines += table(
            ["NAME", "KEY IDS"],
            [
                [n, ", ".join(k[:16] + "…" for k in ids)]
                for n, ids in sorted(report.signers.items())
            ],
        )
    if policy is not None:
        lines += ["", *tag_policy_lines(policy, report.hash_bins > 0)]
    layout = f"{report.hash_bins} hash bins" if report.hash_bins else "flat"
    lines += ["", f"Roles ({layout}):"]
    lines += table(["ROLE", "VERSION", "EXPIRES", "THRESHOLD", "KEY IDS"], _role_rows(report.roles))
    if report.pending is not None:
        p = report.pending
        lines += [
            "",
            (
                f"Waiting for signatures: {p.role} v{p.md.signed.version} {p.changes_text()} "
                f"({len(p.signed_keyids)} of {p.threshold})"
            ),
        ]
    for role, message in report.failures.items():
        lines += ["", f"NOT VERIFIED: {role}: {message}"]
    for tag, message in report.unmatchable.items():
        lines += ["", f"NO DIGEST: {tag}: {message}"]
    data = report.to_dict()
    if not report.signers or policy is not None:
        data["tag_policy"] = policy.to_dict() if policy is not None else None
    tctx.printer.result("inspect", data, lines)


def _role_rows(roles: list[RoleReport]) -> list[list[str]]:
    """Table rows; each set of hash bins is one row (``bins-00…ff (256 bins)``)."""
    from trustctl.verify import iso

    def keys(r: RoleReport) -> str:
        return ", ".join(k[:16] + "…" for k in r.keyids)

    rows: list[list[str]] = []
    groups: dict[str, list[RoleReport]] = {}
    for r in roles:
        prefix = r.role.rsplit("-", 1)[0] if is_bin_role(r.role) else None
        if prefix is None:
            rows.append([r.role, str(r.version), iso(r.expires), str(r.threshold), keys(r)])
        elif prefix not in groups:
            groups[prefix] = [r]
            rows.append([prefix])  # filled in below
        else:
            groups[prefix].append(r)
    for row in rows:
        if len(row) == 1:
            members = groups[row[0]]
            low, high = min(m.version for m in members), max(m.version for m in members)
            first, last = members[0].role, members[-1].role.rsplit("-", 1)[1]
            name = first if len(members) == 1 else f"{first}…{last} ({len(members)} bins)"
            expires = iso(min(m.expires for m in members))
            versions = str(low) if low == high else f"{low}-{high}"
            row[:] = [name, versions, expires, str(members[0].threshold), keys(members[0])]
    return rows


def register(group: click.Group) -> None:
    for command in (
        init_cmd,
        status_cmd,
        reset_cmd,
        publish_cmd,
        revoke_cmd,
        witness_cmd,
        delete_cmd,
        inspect_cmd,
    ):
        group.add_command(command)
