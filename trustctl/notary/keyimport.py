"""``trustctl key import`` of a Notary or Docker trust directory (or one key file)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustctl.errors import UsageError
from trustctl.notary.keyfiles import key_files_in, read_notary_keys

if TYPE_CHECKING:
    from trustctl.context import TrustContext
    from trustctl.keys import KeyInfo

__all__ = ["ImportResult", "import_notary_keys"]


@dataclass(frozen=True)
class ImportResult:
    data: dict[str, Any]
    lines: list[str]
    keys: list[KeyInfo]


def _prompt(tctx: TrustContext):  # type: ignore[no-untyped-def]
    if not tctx.keystore.passphrases.interactive:
        return None
    import click

    return lambda text: str(click.prompt(text, hide_input=True, err=True))


def import_notary_keys(
    tctx: TrustContext, path: Path, *, only_gun: str | None = None
) -> ImportResult:
    """Import every Notary key under ``path`` (a trust directory or one key file).

    Raises:
        UsageError, PassphraseError, WrongPassphraseError: nothing was written.
    """
    files = key_files_in(path) if path.is_dir() else [path]
    if not files:
        raise UsageError(
            f"no key files in {path}",
            hint="Notary keeps them in ~/.notary/private, docker trust in ~/.docker/trust/private",
        )
    keys, skipped = read_notary_keys(
        files,
        tctx.environ,
        prompt=_prompt(tctx),
        passphrase=tctx.environ.get("TRUSTCTL_IMPORT_PASSPHRASE") or None,
    )
    if only_gun is not None:
        keys = [k for k in keys if k.gun in (None, only_gun)]
    for role in sorted({k.role for k in keys}):  # ask for every passphrase before writing
        tctx.keystore.passphrases.get(role, purpose=f"imported {role} keys", new=True)
    infos = []
    lines = []
    data_keys = []
    for key in keys:
        info, stored = tctx.keystore.add_private(
            key.private,  # type: ignore[arg-type]
            role=key.role,
            gun=key.gun,
            name=key.name,
        )
        infos.append(info)
        what = f"{key.role} key" + (f" of signer {key.name}" if key.name else "")
        state = "imported" if stored else "already held"
        lines.append(
            f"OK: {state} {what} {info.keyid} (Notary role {key.notary_role}, {key.path.name})"
        )
        data_keys.append(
            {
                "keyid": info.keyid,
                "role": info.role,
                "gun": info.gun,
                "name": info.name,
                "notary_role": key.notary_role,
                "source": str(key.path),
                "imported": stored,
            }
        )
    for s in skipped:
        lines.append(f"Skipped: {s.path.name} (Notary role {s.notary_role}): {s.reason}")
    data = {
        "keys": data_keys,
        "skipped": [
            {"source": str(s.path), "notary_role": s.notary_role, "reason": s.reason}
            for s in skipped
        ],
    }
    return ImportResult(data, lines or ["(no keys to import)"], infos)
