"""``pending IMAGE[:TAG]``: what waits for more signatures (for co-signers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import click

from trustctl.cli import TrustctlCommand, pass_ctx
from trustctl.commands._common import ensure_pinned
from trustctl.output import table
from trustctl.reference import parse_reference

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.pending import PendingRole
    from trustctl.tufview import TrustedRepository

__all__ = ["register"]

ASKERS = 8  # pending files asked for at once (one request per signers' bin)


class _Fetched:
    """A pending store answering from bytes fetched beforehand (in parallel)."""

    def __init__(self, where: str, data: dict[str, bytes | None]) -> None:
        self.where = where
        self._data = data

    def get(self, gun: str, role: str) -> bytes | None:
        return self._data.get(role)

    def put(self, gun: str, role: str, data: bytes) -> None:  # pragma: no cover - read only
        raise NotImplementedError

    def delete(self, gun: str, role: str) -> None:  # pragma: no cover - read only
        raise NotImplementedError


def _signer_roles_to_ask(repo: TrustedRepository, tag: str | None) -> list[str]:
    from trustctl.layout import RELEASES, releases_bins
    from trustctl.verify import signer_role_for

    if tag is not None:
        role = signer_role_for(repo, tag)
        return [role] if role is not None else []
    delegations = repo.targets.signed.delegations
    if delegations is None or RELEASES not in (delegations.roles or {}):
        return []
    releases = repo.role(RELEASES, "targets")
    bins = releases_bins(releases.signed if releases is not None else None)
    return bins.names() if bins is not None else [RELEASES]


@click.command("pending", cls=TrustctlCommand)
@click.argument("image")
@click.option(
    "--tofu", is_flag=True, help="If no root is pinned, trust the server's root (announced)."
)
@pass_ctx
def pending_cmd(tctx: TrustContext, image: str, tofu: bool) -> None:
    """List the tags of IMAGE (or IMAGE:TAG) waiting for more signers' signatures.

    Co-signers check what waits, then sign it with `trustctl sign IMAGE:TAG` (which
    compares the waiting content with what the registry says, and adds a signature
    only when they agree). Without a tag, one request per signers' hash bin.
    """
    from trustctl.layout import signer_roles
    from trustctl.pending import read_pending

    ref = parse_reference(image)
    gun = ref.gun
    store = tctx.pending_store()
    with tctx.trust.lock(gun):
        ensure_pinned(tctx, gun, tofu=tofu)
        repo = tctx.open_trusted(gun)
        repo.refresh()
        roles = _signer_roles_to_ask(repo, ref.tag)
        with ThreadPoolExecutor(max_workers=ASKERS) as pool:
            fetched = dict(zip(roles, pool.map(lambda r: store.get(gun, r), roles), strict=True))
        answered = _Fetched(store.where, fetched)
        waiting: list[PendingRole] = []
        for role in roles:
            if fetched.get(role) is not None:
                found = read_pending(answered, repo, role)
                if found is not None:
                    waiting.append(found)
        names = signer_roles(repo.targets.signed)
    entries: list[dict[str, Any]] = []
    for p in waiting:
        who = sorted(n for n, ids in names.items() if set(ids) & p.signed_keyids)
        common = {
            "role": p.role,
            "version": p.md.signed.version,
            "signatures": len(p.signed_keyids),
            "threshold": p.threshold,
            "signers": who,
        }
        for tag, target in sorted(p.added.items()):
            if ref.tag is None or tag == ref.tag:
                digest = target.hashes.get("sha256")
                entries.append(
                    {
                        "tag": tag,
                        "action": "sign",
                        "digest": f"sha256:{digest}" if digest else None,
                        **common,
                    }
                )
        for tag in p.removed:
            if ref.tag is None or tag == ref.tag:
                entries.append({"tag": tag, "action": "revoke", "digest": None, **common})
    if not entries:
        what = f"{gun}:{ref.tag}" if ref.tag else gun
        lines = [f"Nothing of {what} waits for signatures"]
    else:
        rows = [
            [
                e["tag"],
                e["action"],
                e["digest"] or "-",
                f"{e['signatures']} of {e['threshold']}",
                ", ".join(e["signers"]) or "unnamed keys",
                e["role"],
            ]
            for e in entries
        ]
        lines = [f"{gun}: {len(entries)} change(s) wait for signatures (kept in {store.where})", ""]
        lines += table(["TAG", "ACTION", "DIGEST", "SIGNED", "SIGNED BY", "ROLE"], rows)
        tags = sorted({e["tag"] for e in entries if e["action"] == "sign"})
        if tags:
            lines += ["", f"To co-sign, check the digest, then: `trustctl sign {gun}:{tags[0]}`"]
    tctx.printer.result("pending", {"gun": gun, "pending": entries}, lines)


def register(group: click.Group) -> None:
    group.add_command(pending_cmd)
