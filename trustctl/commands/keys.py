"""``key generate|list|import|export|rotate|remove``: the local key store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from trustctl.cli import TrustctlCommand, TrustctlGroup, pass_ctx
from trustctl.commands._common import (
    ALGORITHMS,
    KEY_ROLES,
    gun_arg,
    publish_data,
    publish_lines,
)
from trustctl.errors import UsageError
from trustctl.layout import check_signer_name
from trustctl.output import table

if TYPE_CHECKING:
    from trustctl.admin import Rotation
    from trustctl.context import TrustContext
    from trustctl.keys import KeyInfo
    from trustctl.keyuse import RepoKeys
    from trustctl.repo import PublishResult

__all__ = ["register"]


@click.group("key", cls=TrustctlGroup)
def key_group() -> None:
    """Keys: generate, list, import, export, rotate."""


@key_group.command("generate", cls=TrustctlCommand)
@click.argument("name")
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="ecdsa", show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Where to write NAME.pub.",
)
@pass_ctx
def key_generate(tctx: TrustContext, name: str, algorithm: str, directory: Path) -> None:
    """Create a signer key pair for team member NAME; writes NAME.pub for the owner.

    The private key stays encrypted in the trust dir (TRUSTCTL_DELEGATION_PASSPHRASE).
    """
    check_signer_name(name)
    pub_path = directory / f"{name}.pub"
    if pub_path.exists():
        raise UsageError(f"{pub_path} already exists; choose another NAME or --dir")
    info = tctx.keystore.generate("delegation", name=name, algorithm=algorithm)
    directory.mkdir(parents=True, exist_ok=True)
    from trustctl.keys import public_key_to_pem

    pub_path.write_bytes(public_key_to_pem(info.public))
    data = {
        "name": name,
        "keyid": info.keyid,
        "algorithm": info.algorithm,
        "public_key_file": str(pub_path),
    }
    tctx.printer.result(
        "key generate",
        data,
        [
            f"OK: generated signer key {info.keyid} for {name}",
            (
                f"  public key:   {pub_path} (give it to the repository owner: "
                f"`trustctl signer add {name} --key {pub_path.name} GUN`)"
            ),
        ],
    )


@key_group.command("list", cls=TrustctlCommand)
@pass_ctx
def key_list(tctx: TrustContext) -> None:
    """List the local keys, marking which ones their repositories still use.

    STATUS: current (listed by the repository's newest verified metadata), retired
    (rotated out), unknown (its repository is not pinned here or cannot be reached).
    Asks the trust server; no passphrase is needed.
    """
    from trustctl.keyuse import key_status

    keys = tctx.keystore.all_keys()
    repos = _known_repos(tctx, keys)
    status = {k.keyid: key_status(k, repos) for k in keys}
    rows = [
        [k.role, k.gun or "-", k.name or "-", k.keyid, k.algorithm, status[k.keyid]] for k in keys
    ]
    lines = (
        table(["ROLE", "GUN", "NAME", "KEY ID", "ALGORITHM", "STATUS"], rows)
        if rows
        else ["(no keys)"]
    )
    data = {
        "keys": [
            {
                "keyid": k.keyid,
                "role": k.role,
                "gun": k.gun,
                "name": k.name,
                "algorithm": k.algorithm,
                "path": str(k.path),
                "status": status[k.keyid],
            }
            for k in keys
        ]
    }
    tctx.printer.result("key list", data, lines)


def _known_repos(tctx: TrustContext, keys: list[KeyInfo]) -> dict[str, RepoKeys]:
    """The keys listed by the newest verified metadata of each pinned repository the
    local keys may belong to (refreshed from the trust server; one that cannot be
    reached is left out, so its keys show as unknown)."""
    from trustctl.errors import TrustctlError
    from trustctl.keyuse import RepoKeys

    pinned = tctx.trust.list_pinned()
    if any(k.gun is None for k in keys):
        guns = pinned  # a signer key may be used by any repository
    else:
        guns = [g for g in pinned if g in {k.gun for k in keys}]
    out: dict[str, RepoKeys] = {}
    if not tctx.settings.server:
        return out
    for gun in guns:
        try:
            with tctx.trust.lock(gun):
                repo = tctx.open_trusted(gun)
                repo.refresh()
                out[gun] = RepoKeys.of(repo.root.signed, repo.targets.signed)
        except TrustctlError as e:
            tctx.printer.warn(f"cannot tell which keys {gun} uses: {e.message}")
    return out


@key_group.command("import", cls=TrustctlCommand)
@click.argument("file", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--role", type=click.Choice(KEY_ROLES), help="Default: the file's role header, else delegation."
)
@click.option("--gun", help="Repository the key belongs to (root and targets keys).")
@click.option("--name", help="Signer name (delegation keys).")
@pass_ctx
def key_import(
    tctx: TrustContext, file: Path, role: str | None, gun: str | None, name: str | None
) -> None:
    """Import private key(s) from a PEM FILE (encrypted or not), or from a Notary or
    Docker trust directory (~/.notary, ~/.docker/trust) or one of its key files.

    An encrypted file is opened with TRUSTCTL_IMPORT_PASSPHRASE (else the role's
    passphrase; Notary's files with NOTARY_*_PASSPHRASE or
    DOCKER_CONTENT_TRUST_*_PASSPHRASE); the key is stored encrypted with the role's
    passphrase. Notary keys keep their roles.
    """
    if gun:
        gun = gun_arg(gun)
    from trustctl.notary.keyfiles import is_notary_key_file

    if file.is_dir() or is_notary_key_file(file.read_bytes()):
        from trustctl.notary.keyimport import import_notary_keys

        result = import_notary_keys(tctx, file, only_gun=gun)
        tctx.printer.result("key import", result.data, result.lines)
        return

    def input_passphrase() -> str | None:
        value = tctx.environ.get("TRUSTCTL_IMPORT_PASSPHRASE")
        if value:
            return value
        if tctx.keystore.passphrases.interactive:
            return str(click.prompt(f"Passphrase of {file.name}", hide_input=True, err=True))
        return None

    infos = tctx.keystore.import_pem(
        file.read_bytes(), role=role, gun=gun, name=name, input_passphrase=input_passphrase
    )
    data = {
        "keys": [{"keyid": k.keyid, "role": k.role, "gun": k.gun, "name": k.name} for k in infos]
    }
    tctx.printer.result("key import", data, [f"OK: imported {k.role} key {k.keyid}" for k in infos])


@key_group.command("export", cls=TrustctlCommand)
@click.argument("keyids", nargs=-1, required=True)
@click.option(
    "--public", is_flag=True, help="Export public keys (PEM) instead of encrypted private keys."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (mode 0600).",
)
@pass_ctx
def key_export(
    tctx: TrustContext, keyids: tuple[str, ...], public: bool, output: Path | None
) -> None:
    """Export keys (by id or id prefix): encrypted private PEM, or --public."""
    from trustctl.keys import public_key_to_pem

    infos = [tctx.keystore.find(k) for k in keyids]
    blobs = [
        public_key_to_pem(i.public) if public else tctx.keystore.export(i.keyid) for i in infos
    ]
    text = b"".join(blobs)
    data: dict[str, object] = {"keyids": [i.keyid for i in infos], "public": public}
    if output is not None:
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644 if public else 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(text)
        data["output"] = str(output)
        tctx.printer.result("key export", data, [f"OK: wrote {len(infos)} key(s) to {output}"])
        return
    data["pem"] = text.decode()
    tctx.printer.result("key export", data, [text.decode().rstrip("\n")])


@key_group.command("remove", cls=TrustctlCommand)
@click.argument("keyid")
@click.option(
    "--yes", is_flag=True, required=True, help="Confirm: the private key is deleted for good."
)
@pass_ctx
def key_remove(tctx: TrustContext, keyid: str, yes: bool) -> None:
    """Delete a private key from the local key store (export it first!)."""
    info = tctx.keystore.find(keyid)
    tctx.keystore.remove(info.keyid)
    tctx.printer.result("key remove", {"keyid": info.keyid}, [f"OK: removed key {info.keyid}"])


@key_group.command("rotate", cls=TrustctlCommand)
@click.argument("gun")
@click.argument("role")
@click.option(
    "--key",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rotate to this public key (a signer's new key, or a key already in your store).",
)
@click.option("--algorithm", type=click.Choice(ALGORITHMS), default="ecdsa", show_default=True)
@pass_ctx
def key_rotate(
    tctx: TrustContext, gun: str, role: str, key_file: Path | None, algorithm: str
) -> None:
    """Rotate ROLE's key of GUN: root, targets, snapshot, timestamp, or a signer name.

    Publishes at once (staged changes are left alone). A new root is signed by the
    old and the new root keys, so deployers follow it without any change.
    """
    gun = gun_arg(gun)
    from trustctl.keys import load_public_key_file
    from trustctl.library import rotate_key

    new_public = load_public_key_file(key_file) if key_file else None
    with tctx.trust.lock(gun):
        rotated = rotate_key(tctx.publisher(gun), role, new_public=new_public, algorithm=algorithm)
    rotation, result = rotated.rotation, rotated.result
    for warning in result.warnings:
        tctx.printer.warn(warning)
    steps = [*rotation.next_steps, *_after_rotation(tctx, gun, rotation, result)]
    data = {
        "gun": gun,
        "role": rotation.role,
        "new_keyid": rotation.new_keyid,
        "old_keyids": list(rotation.old_keyids),
        "complete": not rotation.next_steps,
        "next_steps": steps,
        **publish_data(result, []),
    }
    head = f"OK: rotated the {rotation.role} key of {gun}"
    if rotation.next_steps:
        head = f"OK: added the new {rotation.role} key of {gun}; the old one stays until the signer re-signed"
    tctx.printer.result(
        "key rotate",
        data,
        [
            head,
            f"  new key:      {rotation.new_keyid}",
            f"  old key(s):   {', '.join(rotation.old_keyids) or '-'}",
            *publish_lines(gun, result),
            *(f"  next:         {step}" for step in steps),
        ],
    )


def _after_rotation(
    tctx: TrustContext, gun: str, rotation: Rotation, result: PublishResult
) -> list[str]:
    """What the owner does after a rotation: back the new key up, hand it over, retire
    the old one (steps that need nobody else; see ``Rotation.next_steps`` for those)."""
    new, role = rotation.new_keyid, rotation.role
    held_old = [k for k in rotation.old_keyids if tctx.keystore.get(k) is not None]
    remove = " ".join(f"`trustctl key remove {k[:12]} --yes`" for k in held_old)
    retire = (
        [
            f"the old key no longer signs for {gun}: delete it once no other repository uses it: {remove}"
        ]
        if remove
        else []
    )
    if role in ("timestamp", "snapshot"):
        return [
            f"nothing else: the trust server signs {role} of {gun} with the new key from now on"
        ]
    if role == "root":
        version = result.published.get("root")
        return [
            f"back up the new root key offline: `trustctl key export {new[:12]} -o root-key.pem`",
            *retire,
            "deployers follow the new root by themselves; give new deployers the current root: "
            f"`trustctl trust export {gun}`" + (f" (root v{version})" if version else ""),
        ]
    if role == "targets":
        return [
            f"back up the new targets key: `trustctl key export {new[:12]} -o targets-key.pem`",
            *retire,
        ]
    if role == "bins":
        return [
            (
                f"give CI the new bins key: `trustctl key export {new[:12]} -o bins-key.pem`, then "
                "`trustctl key import bins-key.pem` on the CI machine (the old bins key signs "
                "nothing now)"
            ),
            *retire,
        ]
    if rotation.next_steps:
        return []
    return retire


def register(group: click.Group) -> None:
    group.add_command(key_group)
