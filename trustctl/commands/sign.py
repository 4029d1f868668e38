"""``sign``, ``verify``, ``pull``: the release engineer's and the deployer's commands."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import click

from trustctl.changes import Changelist
from trustctl.cli import TrustctlCommand, pass_ctx
from trustctl.commands._common import (
    ensure_pinned,
    image_with_tag,
    publish_data,
    publish_lines,
    publish_staged,
    verify_details,
)
from trustctl.errors import UsageError
from trustctl.reference import ImageRef, is_digest

# The library modules are imported inside the commands: `sign` never loads the verify
# report code, `verify` never loads the key store, and only `pull --copy-to` loads skopeo.
if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.registry import ManifestDescriptor
    from trustctl.verify import VerifiedTag

REGISTRY_TAG, REGISTRY_DIGEST, REGISTRY_SKIP = "tag", "digest", "skip"  # as in trustctl.verify

__all__ = ["register"]

# RFC 6838 section 4.2: type "/" subtype, restricted-name characters, 127 at most each
_MEDIA_TYPE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)


def _descriptor(
    tctx: TrustContext, ref: ImageRef, digest: str | None, size: int | None, media_type: str | None
) -> ManifestDescriptor:
    if media_type is not None and not _MEDIA_TYPE.fullmatch(media_type):
        raise UsageError(
            f"--media-type {media_type[:80]!r} is not a media type",
            hint="e.g. application/vnd.oci.image.manifest.v1+json",
        )
    if digest is not None and not is_digest(digest):
        raise UsageError(f"--digest {digest!r} is not sha256:<64 lowercase hex digits>")
    if digest is not None and ref.digest is not None and digest != ref.digest:
        raise UsageError(f"--digest {digest} differs from the reference's digest {ref.digest}")
    digest = digest or ref.digest
    if digest is None:
        if size is not None or media_type is not None:
            raise UsageError("--size and --media-type go with --digest")
        return tctx.registry.resolve(ref)
    if size is not None and media_type is not None:
        from trustctl.registry import ManifestDescriptor

        return ManifestDescriptor(digest, size, media_type)
    found = tctx.registry.resolve(ImageRef(ref.registry, ref.repository, None, digest))
    if size is not None and size != found.size:
        raise UsageError(
            f"--size {size} differs from the registry's {found.size} bytes for {digest}"
        )
    return found


@click.command("sign", cls=TrustctlCommand)
@click.argument("image")
@click.option(
    "--digest", metavar="sha256:HEX", help="Manifest digest, when the pipeline already knows it."
)
@click.option("--size", type=click.IntRange(min=1), help="Manifest size in bytes (with --digest).")
@click.option("--media-type", metavar="TYPE", help="Manifest media type (with --digest).")
@click.option(
    "--role",
    metavar="ROLE",
    help="Sign into this role (default: targets/releases for signers, else targets).",
)
@click.option(
    "--no-publish",
    is_flag=True,
    help="Only stage the change (publish later with `trustctl publish`).",
)
@click.option(
    "--replace-pending", is_flag=True, help="Discard other content waiting for signatures."
)
@pass_ctx
def sign_cmd(
    tctx: TrustContext,
    image: str,
    digest: str | None,
    size: int | None,
    media_type: str | None,
    role: str | None,
    no_publish: bool,
    replace_pending: bool,
) -> None:
    """Sign IMAGE:TAG (after push): bind the tag to its manifest digest and publish.

    The digest, size and media type come from the registry unless --digest is given.
    Other staged changes of the repository are published too.
    """
    ref = image_with_tag(image)
    if not no_publish and tctx.environ.get("TRUSTCTL_KEY_PREFETCH", "1") != "0":
        # decrypt the signing key on the other core while the registry and the trust
        # server are asked (PBKDF2 with 600,000 rounds takes ~100 ms by design)
        keyid = tctx.keystore.likely_signing_key(ref.gun)
        if keyid is not None:
            tctx.keystore.prefetch(keyid)
    desc = _descriptor(tctx, ref, digest, size, media_type)
    gun = ref.gun
    data = {
        "image": f"{gun}:{ref.tag}",
        "gun": gun,
        "tag": ref.tag,
        "digest": desc.digest,
        "length": desc.size,
        "media_type": desc.media_type,
    }
    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        change = Changelist(tctx.trust.changes_dir(gun)).add(
            "add-target",
            tag=ref.tag,
            sha256=desc.hex,
            length=desc.size,
            media_type=desc.media_type,
            role=role,
        )
        if no_publish:
            tctx.printer.result(
                "sign",
                {**data, "status": "staged"},
                [f"Staged: {gun}:{ref.tag} {desc.digest} (publish with `trustctl publish {gun}`)"],
            )
            return
        result, changes = publish_staged(tctx, gun, replace_pending=replace_pending, new=change)
    lines = publish_lines(gun, result)
    if result.pending:
        head = f"Pending: {gun}:{ref.tag} {desc.digest} is signed by you but needs more signatures to count"
        lines.append(f"  next:         another signer runs `trustctl sign {gun}:{ref.tag}`")
    elif result.noop:
        head = f"OK: {gun}:{ref.tag} {desc.digest} was already signed"
    else:
        head = f"OK: signed {gun}:{ref.tag} {desc.digest}"
    tctx.printer.result("sign", {**data, **publish_data(result, changes)}, [head, *lines])


def _verify(
    tctx: TrustContext, ref: ImageRef, *, signers: tuple[str, ...], mode: str, tofu: bool
) -> VerifiedTag:
    from trustctl.verify import verify_tag

    with tctx.trust.lock(ref.gun):
        from trustctl.notary.verify import NOTARY, dialect_of

        if dialect_of(tctx, ref.gun, tofu=tofu) == NOTARY:
            from trustctl.notary.verify import verify_notary_tag

            return verify_notary_tag(
                tctx,
                ref,
                registry=tctx.registry if mode != REGISTRY_SKIP else None,
                registry_mode=mode,
                required_signers=signers,
            )
        ensure_pinned(tctx, ref.gun, tofu=tofu)
        repo = tctx.open_trusted(ref.gun)
        try:
            pending = tctx.pending_store()
        except Exception:  # noqa: BLE001 - the pending store only improves a message
            pending = None
        return verify_tag(
            repo,
            ref,
            registry=tctx.registry if mode != REGISTRY_SKIP else None,
            registry_mode=mode,
            required_signers=signers,
            pending=pending,
        )


def _verified_lines(v: VerifiedTag) -> list[str]:
    from trustctl.verify import iso

    report = v.report
    lines = [
        f"OK: {v.gun}:{v.tag} {v.digest}",
        f"  signed by:    {report.signed_by_text()}",
        f"  manifest:     {report.length} bytes, {report.media_type or 'unknown media type'}",
        f"  fresh until:  {iso(v.fresh_until)} (signed trust data expires then unless renewed)",
    ]
    if v.registry_mode == REGISTRY_TAG:
        lines.append("  registry:     serves the signed digest for this tag")
    elif v.registry_mode == REGISTRY_DIGEST:
        lines.append("  registry:     still serves the signed digest")
    else:
        lines.append("  registry:     not checked (--no-registry-check)")
    lines.append(f"  deploy:       {v.pinned_reference}")
    return lines


@click.command("verify", cls=TrustctlCommand)
@click.argument("image")
@click.option(
    "--signer", "signers", multiple=True, metavar="NAME", help="Require this signer. Repeatable."
)
@click.option(
    "--no-registry-check", is_flag=True, help="Do not compare with the digest the registry serves."
)
@click.option(
    "--tofu", is_flag=True, help="If no root is pinned, trust the server's root (announced)."
)
@pass_ctx
def verify_cmd(
    tctx: TrustContext, image: str, signers: tuple[str, ...], no_registry_check: bool, tofu: bool
) -> None:
    """Verify IMAGE:TAG before deploy: signed digest, signers, freshness, registry.

    Exits 0 only when the tag is signed (by every --signer), the trust data is
    fresh, and the registry serves the signed digest for the tag.
    """
    ref = image_with_tag(image)
    mode = REGISTRY_SKIP if no_registry_check else REGISTRY_TAG
    v = _verify(tctx, ref, signers=signers, mode=mode, tofu=tofu)
    for line in verify_details(tctx, v) if tctx.printer.verbosity else ():
        tctx.printer.detail(line)
    tctx.printer.result("verify", v.to_dict(), _verified_lines(v))


@click.command("pull", cls=TrustctlCommand)
@click.argument("image")
@click.option(
    "--signer", "signers", multiple=True, metavar="NAME", help="Require this signer. Repeatable."
)
@click.option(
    "--copy-to", metavar="DEST", help="Copy the verified image with skopeo, e.g. oci:/tmp/app:v1."
)
@click.option(
    "--tofu", is_flag=True, help="If no root is pinned, trust the server's root (announced)."
)
@pass_ctx
def pull_cmd(
    tctx: TrustContext, image: str, signers: tuple[str, ...], copy_to: str | None, tofu: bool
) -> None:
    """Print the verified, pinned reference IMAGE@sha256:... for IMAGE:TAG.

    Use it with `docker pull` or `skopeo copy`; --copy-to copies it with skopeo.
    The signed digest is printed even when the registry's tag moved (with a warning).
    """
    ref = image_with_tag(image)
    v = _verify(tctx, ref, signers=signers, mode=REGISTRY_DIGEST, tofu=tofu)
    for warning in v.warnings:
        tctx.printer.warn(warning)
    if copy_to:
        from trustctl.copy import skopeo_copy
        from trustctl.credentials import CredentialStore
        from trustctl.registry import api_host

        creds = CredentialStore(environ=tctx.environ, env_prefix="TRUSTCTL_REGISTRY").lookup(
            api_host(ref.registry)
        )
        skopeo_copy(
            v.pinned_reference,
            copy_to,
            plain_http=tctx.registry.is_plain_http(ref.registry),
            registry_ca=tctx.settings.registry_ca,
            credentials=creds,
            registry_host=api_host(ref.registry),
        )
        tctx.printer.message(f"Copied {v.pinned_reference} to {copy_to}")
    for line in _verified_lines(v)[1:]:
        tctx.printer.detail(line)
    tctx.printer.result("pull", {**v.to_dict(), "copied_to": copy_to}, [v.pinned_reference])


def register(group: click.Group) -> None:
    for command in (sign_cmd, verify_cmd, pull_cmd):
        group.add_command(command)
