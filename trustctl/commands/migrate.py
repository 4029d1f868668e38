"""``migrate``: upgrade a Notary (Docker Content Trust) repository to TUF 1.0."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from trustctl.cli import TrustctlCommand, pass_ctx
from trustctl.commands._common import gun_arg

if TYPE_CHECKING:
    from trustctl.context import TrustContext

__all__ = ["register"]


@click.command("migrate", cls=TrustctlCommand)
@click.argument("source_gun")
@click.argument("dest_gun", required=False)
@click.option(
    "--from",
    "source_server",
    metavar="URL",
    help="The Notary server holding SOURCE_GUN (default: --server).",
)
@click.option(
    "--from-tls-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA bundle for the Notary server (default: --tls-ca).",
)
@click.option(
    "--notary-trust-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="The owner's Notary or Docker trust directory (default: ~/.docker/trust, else ~/.notary).",
)
@click.option(
    "--new-keys",
    is_flag=True,
    help="Make new root and targets keys instead of importing the owner's.",
)
@click.option(
    "--dry-run", is_flag=True, help="Verify the source and print the plan; change nothing."
)
@click.option(
    "--tofu",
    is_flag=True,
    help="If no root certificate of SOURCE_GUN is pinned, trust the server's.",
)
@pass_ctx
def migrate_cmd(
    tctx: TrustContext,
    source_gun: str,
    dest_gun: str | None,
    source_server: str | None,
    from_tls_ca: str | None,
    notary_trust_dir: Path | None,
    new_keys: bool,
    dry_run: bool,
    tofu: bool,
) -> None:
    """Upgrade the Notary repository SOURCE_GUN to a TUF 1.0 repository DEST_GUN
    (default: the same name) on --server, with its signed tags, signers and keys.

    The source is verified first; nothing that did not verify is carried, and what
    is left out is listed with the reason. Safe to run again after a failure.
    """
    from trustctl.notary.migrate import Source, migrate

    source_gun = gun_arg(source_gun)
    dest_gun = gun_arg(dest_gun) if dest_gun else source_gun
    source = Source(
        (source_server or tctx.server).rstrip("/"), _source_transport(tctx, from_tls_ca)
    )
    result = migrate(
        tctx,
        source_gun,
        dest_gun,
        source,
        notary_dir=notary_trust_dir.expanduser() if notary_trust_dir else None,
        new_keys=new_keys,
        dry_run=dry_run,
        tofu=tofu,
    )
    plan = result.plan
    lines = plan.lines()
    if dry_run:
        lines.insert(0, "Dry run: nothing was changed.")
        tctx.printer.result("migrate", result.to_dict(), lines)
        return
    carried = len(plan.tags)
    head = f"OK: {dest_gun} on {tctx.server} is a TUF 1.0 repository with {carried} tag(s) from {source_gun}"
    done = [f"  done before:  {', '.join(result.already)}"] if result.already else []
    published = ", ".join(f"{role} v{v}" for role, v in result.published.items()) or "nothing new"
    lines = [
        head,
        *lines,
        *done,
        f"  published:    {published}",
        f"  root key:     {result.root_keyid}",
        f"  targets key:  {result.targets_keyid}",
        (
            f"  deployers:    `trustctl trust pin {dest_gun} --keyid {result.root_keyid}` "
            f"(or `trustctl trust export {dest_gun}` gives the root file to pin)"
        ),
    ]
    if plan.skipped:
        lines.append(f"  not carried:  {len(plan.skipped)} item(s), listed above as skipped")
    tctx.printer.result("migrate", result.to_dict(), lines)


def _source_transport(tctx: TrustContext, ca: str | None):  # type: ignore[no-untyped-def]
    if ca is None:
        return tctx.server_transport
    from trustctl.credentials import CredentialStore
    from trustctl.transport import HttpTransport

    creds = CredentialStore(environ=tctx.environ, env_prefix="TRUSTCTL_SERVER")
    return HttpTransport(ca_file=ca, credentials=creds.lookup, timeout=tctx.settings.timeout)


def register(group: click.Group) -> None:
    group.add_command(migrate_cmd)
