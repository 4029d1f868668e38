"""``bundle create``: an offline bundle of repositories' trust data for the deploy gate."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx
from trustctl.context import TrustContext
from trustctl.errors import PassphraseError, UsageError
from trustctl.reference import parse_gun

__all__ = ["register"]

_DURATION = re.compile(r"^(\d+)([dh])$")


@click.group("bundle", cls=TrustctlGroup)
def bundle_group() -> None:
    """Offline bundles for the deploy gate (clusters with no line to the trust server)."""


def _budget(text: str) -> timedelta:
    m = _DURATION.fullmatch(text)
    if m is None:
        raise UsageError(f"--budget {text!r}: give days or hours, e.g. 7d or 36h")
    n = int(m.group(1))
    return timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n)


@bundle_group.command("create", cls=TrustctlCommand)
@click.option(
    "--gun", "guns", multiple=True, required=True, help="A repository to include (repeat)."
)
@click.option(
    "--key",
    "key_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The bundle signing key: an encrypted Ed25519 PEM (passphrase in "
    "TRUSTCTL_BUNDLE_PASSPHRASE).",
)
@click.option(
    "--sequence", required=True, type=click.IntRange(1), help="Above every earlier bundle's."
)
@click.option("--budget", default="7d", show_default=True, help="Offline budget (at most 90d).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@pass_ctx
def create_cmd(
    ctx: TrustContext,
    guns: tuple[str, ...],
    key_path: Path,
    sequence: int,
    budget: str,
    output: Path,
) -> None:
    """Write the byte-exact trust data of each GUN and a signed manifest to a tar.gz."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from trustctl.atomicfile import write_atomic
    from trustctl.gate.bundle import create_bundle
    from trustctl.gate.collect import collect

    passphrase = ctx.environ.get("TRUSTCTL_BUNDLE_PASSPHRASE")
    if not passphrase:
        raise PassphraseError("the bundle key's passphrase is not set",
                              hint="set TRUSTCTL_BUNDLE_PASSPHRASE")  # fmt: skip
    try:
        key = load_pem_private_key(key_path.read_bytes(), passphrase.encode())
    except (ValueError, TypeError) as e:
        raise UsageError(f"cannot load the bundle key {key_path}: {e}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError(f"{key_path} is not an Ed25519 private key")
    repositories = {}
    for text in guns:
        gun = parse_gun(text)

        def get_file(name: str, gun: str = gun) -> bytes | None:
            return ctx.client.get_file(gun, name)

        repositories[gun] = collect(get_file)
    data = create_bundle(repositories, key=key, sequence=sequence, budget=_budget(budget))
    write_atomic(output, data)
    ctx.printer.message(f"wrote {output}: {len(repositories)} repositories, sequence {sequence}")


def register(group: click.Group) -> None:
    group.add_command(bundle_group)
