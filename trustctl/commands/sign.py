"""``sign``, ``verify``, ``pull``: the release engineer's and the deployer's commands.

Each takes many references (arguments, or ``--from-file``): ``sign`` resolves them
all, then publishes once; ``verify`` and ``pull`` refresh each repository once, then
answer for every tag (one line each; with ``--json`` one object each in ``tags``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TextIO

import click

from trustctl.cli import TrustctlCommand, pass_ctx
from trustctl.commands._common import (
    Listed,
    ensure_pinned,
    is_notary,
    name_reference,
    one_repository,
    open_notary_repository,
    publish_data,
    publish_lines,
    read_references,
    references,
    report_publish,
    verify_details,
)
from trustctl.errors import BatchError, TrustctlError, UsageError
from trustctl.output import one_line
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


def _resolve_all(
    tctx: TrustContext,
    wanted: list[Listed],
    digest: str | None,
    size: int | None,
    media_type: str | None,
) -> list[ManifestDescriptor]:
    """Every reference's manifest descriptor: given in full, or asked of the registry
    a few references at a time.

    Raises:
        the first failing reference's error (in command-line order), naming it.
    """
    if len(wanted) == 1 and wanted[0].size is None:
        return [_descriptor(tctx, wanted[0].ref, digest, size, media_type)]

    def one(item: Listed) -> ManifestDescriptor | TrustctlError:
        try:
            return _descriptor(tctx, item.ref, None, item.size, item.media_type)
        except TrustctlError as e:
            return e

    asks = sum(item.size is None for item in wanted)
    if asks > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(RESOLVE_WORKERS, asks)) as pool:
            found = list(pool.map(one, wanted))
    else:
        found = [one(item) for item in wanted]
    for item, answer in zip(wanted, found, strict=True):
        if isinstance(answer, TrustctlError):
            raise name_reference(answer, item.ref, len(wanted))
    return found  # type: ignore[return-value]


@click.command("sign", cls=TrustctlCommand)
@click.argument("images", nargs=-1, metavar="IMAGE:TAG...")
@click.option(
    "--from-file",
    type=click.File("r"),
    metavar="FILE",
    help="Also sign the references in FILE, one a line ('-': standard input); a line "
    "may be REF@sha256:HEX SIZE MEDIA_TYPE (then the registry is not asked).",
)
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
    help="Only stage the changes (publish later with `trustctl publish`).",
)
@click.option(
    "--replace-pending", is_flag=True, help="Discard other content waiting for signatures."
)
@pass_ctx
def sign_cmd(
    tctx: TrustContext,
    images: tuple[str, ...],
    from_file: TextIO | None,
    digest: str | None,
    size: int | None,
    media_type: str | None,
    role: str | None,
    no_publish: bool,
    replace_pending: bool,
) -> None:
    """Sign IMAGE:TAG (after push): bind each tag to its manifest digest and publish.

    Many tags of one repository are signed in one publish: every digest is resolved
    first, and if any reference fails nothing is published. The digest, size and
    media type come from the registry unless given (IMAGE:TAG@sha256:..., --digest).
    Changes staged earlier (--no-publish) are not published: see `trustctl publish`.
    """
    wanted = read_references(images, from_file, manifests=True)
    refs = [item.ref for item in wanted]
    gun = one_repository(refs, "sign")
    if len(refs) > 1 and (digest or size or media_type):
        raise UsageError(
            "--digest, --size and --media-type go with one reference",
            hint="give each digest in its reference instead: IMAGE:TAG@sha256:HEX",
        )
    if not no_publish and tctx.environ.get("TRUSTCTL_KEY_PREFETCH", "1") != "0":
        # decrypt the signing key on the other core while the registry and the trust
        # server are asked (PBKDF2 with 600,000 rounds takes ~100 ms by design)
        keyid = tctx.keystore.likely_signing_key(gun)
        if keyid is not None:
            tctx.keystore.prefetch(keyid)
    from trustctl.library import TagToSign, sign_changes, sign_tags, stage

    descs = _resolve_all(tctx, wanted, digest, size, media_type)
    entries = [
        {
            "image": f"{gun}:{ref.tag}",
            "gun": gun,
            "tag": ref.tag,
            "digest": desc.digest,
            "length": desc.size,
            "media_type": desc.media_type,
        }
        for ref, desc in zip(refs, descs, strict=True)
    ]
    to_sign = [
        TagToSign(str(ref.tag), desc.digest, desc.size, desc.media_type)
        for ref, desc in zip(refs, descs, strict=True)
    ]
    with tctx.trust.lock(gun):
        tctx.trust.require_pinned(gun)
        if no_publish:
            stage(tctx.staged(gun), sign_changes(to_sign, role=role))
            tags = [{**e, "status": "staged"} for e in entries]
            lines = [f"Staged: {e['image']} {e['digest']}" for e in entries]
            lines.append(f"  publish with: trustctl publish {gun}")
            tctx.printer.result("sign", _document(tags, {"status": "staged"}), lines)
            return
        signed = sign_tags(tctx.publisher(gun), to_sign, role=role, replace_pending=replace_pending)
        report_publish(tctx, gun, signed.result)
    result, changes = signed.result, signed.changes
    pending_roles = {p.role for p in result.pending}
    tags, lines = [], []
    for entry, status in zip(entries, signed.status, strict=True):
        tags.append({**entry, "status": status})
        lines.append(_sign_line(entry, status))
    if len(refs) == 1 and tags[0]["status"] == "pending":
        lines.append(f"  next:         another signer runs `trustctl sign {entries[0]['image']}`")
    elif pending_roles:
        lines.append("  next:         another signer runs `trustctl sign` on the pending tags")
    lines += publish_lines(gun, result)
    tctx.printer.result("sign", _document(tags, publish_data(result, changes)), lines)


RESOLVE_WORKERS = 4  # registry requests in flight at once (the transport keeps 4 connections)


def _sign_line(entry: dict[str, Any], status: str) -> str:
    what = f"{entry['image']} {entry['digest']}"
    if status == "pending":
        return f"Pending: {what} is signed by you but needs more signatures to count"
    if status == "unchanged":
        return f"OK: {what} was already signed"
    return f"OK: signed {what}"


def _document(tags: list[dict[str, Any]], shared: dict[str, Any]) -> dict[str, Any]:
    """A batch result: ``tags`` (one object per reference) and the shared members; with
    one reference, that reference's members at the top level too (as before batches)."""
    top = tags[0] if len(tags) == 1 else {}
    return {**top, **shared, "tags": tags}


def _verify_all(
    tctx: TrustContext, refs: list[ImageRef], *, signers: tuple[str, ...], mode: str, tofu: bool
) -> list[VerifiedTag | TrustctlError]:
    """Each reference's answer, or the error that says why it does not hold. Each
    repository is refreshed once (the TUF client workflow), then every tag is looked up.

    Raises:
        TrustctlError: only what makes every answer impossible with one reference.
    """
    from trustctl.library import verify_tags
    from trustctl.tufview import prefetch_bins

    answers: dict[int, VerifiedTag | TrustctlError] = {}
    by_gun: dict[str, list[int]] = {}
    for i, ref in enumerate(refs):
        by_gun.setdefault(ref.gun, []).append(i)
    registry = tctx.registry if mode != REGISTRY_SKIP else None
    for gun, indexes in by_gun.items():
        with tctx.trust.lock(gun):
            try:
                if is_notary(tctx, gun, tofu=tofu):
                    from trustctl.notary.verify import verify_notary_tag

                    trusted = open_notary_repository(tctx, gun, announce=True)
                    for i in indexes:
                        try:
                            answers[i] = _as_requested(
                                refs[i],
                                verify_notary_tag(
                                    trusted,
                                    refs[i],
                                    registry=registry,
                                    registry_mode=mode,
                                    required_signers=signers,
                                ),
                            )
                        except TrustctlError as e:
                            answers[i] = e
                    continue
                ensure_pinned(tctx, gun, tofu=tofu)
                repo = tctx.open_trusted(gun)
                repo.refresh()
                prefetch_bins(repo, [str(refs[i].tag) for i in indexes])
            except TrustctlError as e:
                if len(refs) == 1:
                    raise
                for i in indexes:
                    answers[i] = e
                continue
            try:
                pending = tctx.pending_store()
            except Exception:  # noqa: BLE001 - the pending store only improves a message
                pending = None
            found = verify_tags(
                repo,
                [refs[i] for i in indexes],
                registry=registry,
                registry_mode=mode,
                signers=signers,
                pending=pending,
            )
            answers.update(zip(indexes, found, strict=True))
    return [answers[i] for i in range(len(refs))]


def _as_requested(ref: ImageRef, v: VerifiedTag) -> VerifiedTag:
    """``v``, for a reference that may name a digest (which must be the signed one).

    Raises:
        DigestMismatchError: it names another digest.
    """
    if ref.digest is None:
        return v
    if ref.digest != v.digest:
        from trustctl.verify import requested_digest_mismatch

        raise requested_digest_mismatch(ref, v.digest)
    return replace(v, requested_digest=ref.digest)


def _tag_object(ref: ImageRef, answer: VerifiedTag | TrustctlError) -> dict[str, Any]:
    """One reference in a verify or pull document."""
    if isinstance(answer, TrustctlError):
        return {
            "ok": False,
            "image": str(ref),
            "gun": ref.gun,
            "tag": ref.tag,
            "error": answer.to_dict(),
        }
    return {"ok": True, **answer.to_dict()}


def _report(
    tctx: TrustContext,
    command: str,
    refs: list[ImageRef],
    answers: list[VerifiedTag | TrustctlError],
    lines: list[str],
    extra: dict[str, Any] | None = None,
) -> None:
    """Print a verify or pull result; raise when any reference does not hold."""
    tags = [{**_tag_object(r, a), **(extra or {})} for r, a in zip(refs, answers, strict=True)]
    failures = [(r, a) for r, a in zip(refs, answers, strict=True) if isinstance(a, TrustctlError)]
    if not failures:
        top = tags[0] if len(tags) == 1 else {}
        tctx.printer.result(command, {**top, "tags": tags}, lines)
        return
    if len(refs) == 1:
        error = failures[0][1]
    else:
        if lines:  # the tags that hold, then each failure, then the summary
            tctx.printer.result_lines(lines)
        for _, e in failures:
            tctx.printer.message(f"Error: {one_line(e.message)}")
        names = [str(r) for r, _ in failures]
        error = BatchError(
            f"{len(failures)} of {len(refs)} tags do not verify: {', '.join(names[:5])}"
            + (", …" if len(names) > 5 else ""),
            failures=[e for _, e in failures],
            failed=names,
        )
    error.document = {"tags": tags}
    raise error


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


_SIGNER = click.option(
    "--signer", "signers", multiple=True, metavar="NAME", help="Require this signer. Repeatable."
)
_TOFU = click.option(
    "--tofu", is_flag=True, help="If no root is pinned, trust the server's root (announced)."
)
_FROM_FILE = click.option(
    "--from-file",
    type=click.File("r"),
    metavar="FILE",
    help="Also the references in FILE, one a line ('-': standard input).",
)


@click.command("verify", cls=TrustctlCommand)
@click.argument("images", nargs=-1, metavar="IMAGE:TAG...")
@_FROM_FILE
@_SIGNER
@click.option(
    "--no-registry-check", is_flag=True, help="Do not compare with the digest the registry serves."
)
@_TOFU
@pass_ctx
def verify_cmd(
    tctx: TrustContext,
    images: tuple[str, ...],
    from_file: TextIO | None,
    signers: tuple[str, ...],
    no_registry_check: bool,
    tofu: bool,
) -> None:
    """Verify IMAGE:TAG before deploy: signed digest, signers, freshness, registry.

    Exits 0 only when every tag is signed (by every --signer), the trust data is
    fresh, and the registry serves the signed digest for the tag. A digest in the
    reference (IMAGE:TAG@sha256:...) must be the signed one. Many tags: one line each.
    """
    refs = references(images, from_file)
    mode = REGISTRY_SKIP if no_registry_check else REGISTRY_TAG
    answers = _verify_all(tctx, refs, signers=signers, mode=mode, tofu=tofu)
    verified = [a for a in answers if not isinstance(a, TrustctlError)]
    if len(refs) == 1:
        lines = _verified_lines(verified[0]) if verified else []
        for line in (
            verify_details(tctx, verified[0]) if verified and tctx.printer.verbosity else ()
        ):
            tctx.printer.detail(line)
    else:
        lines = [f"OK: {v.gun}:{v.tag} {v.digest}" for v in verified]
        if tctx.printer.verbosity:
            lines = [line for v in verified for line in _verified_lines(v)]
    _report(tctx, "verify", refs, answers, lines)


@click.command("pull", cls=TrustctlCommand)
@click.argument("images", nargs=-1, metavar="IMAGE:TAG...")
@_FROM_FILE
@_SIGNER
@click.option(
    "--copy-to", metavar="DEST", help="Copy the verified image with skopeo, e.g. oci:/tmp/app:v1."
)
@_TOFU
@pass_ctx
def pull_cmd(
    tctx: TrustContext,
    images: tuple[str, ...],
    from_file: TextIO | None,
    signers: tuple[str, ...],
    copy_to: str | None,
    tofu: bool,
) -> None:
    """Print the verified, pinned reference IMAGE@sha256:... for each IMAGE:TAG.

    Use it with `docker pull` or `skopeo copy`; --copy-to copies it with skopeo (one
    reference). The signed digest is printed even when the registry's tag moved (with
    a warning). Exits 0 only when every tag verifies.
    """
    refs = references(images, from_file)
    if copy_to and len(refs) > 1:
        raise UsageError("--copy-to goes with one reference")
    answers = _verify_all(tctx, refs, signers=signers, mode=REGISTRY_DIGEST, tofu=tofu)
    verified = [a for a in answers if not isinstance(a, TrustctlError)]
    for v in verified:
        for warning in v.warnings:
            tctx.printer.warn(warning)
    if copy_to and verified:
        _copy(tctx, refs[0], verified[0], copy_to)
    for v in verified:
        for line in _verified_lines(v)[1:]:
            tctx.printer.detail(line)
    lines = [v.pinned_reference for v in verified]
    _report(tctx, "pull", refs, answers, lines, {"copied_to": copy_to})


def _copy(tctx: TrustContext, ref: ImageRef, v: VerifiedTag, copy_to: str) -> None:
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


def register(group: click.Group) -> None:
    for command in (sign_cmd, verify_cmd, pull_cmd):
        group.add_command(command)
