"""Fill a trust repository with many tags quickly, for scale tests and measurements.

Signing 100,000 tags one ``trustctl sign`` at a time would take hours; this writes
them straight into the owner's hash bins (or into ``targets`` for the flat layout)
with python-tuf, signed with the owner's keys from the trust dir, and uploads them
in a few large publishes through trustctl's own :class:`~trustctl.client.ServerClient`.
The result is exactly what ``trustctl sign`` would have produced, tag for tag.

Example:
    >>> fill(trust_dir, env, client, gun, 10_000)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tuf.api.metadata import Metadata, Root, TargetFile, Targets

from trustctl.client import ServerClient
from trustctl.keys import KeyStore, PassphraseSource
from trustctl.layout import owner_bins

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
MAX_PARTS = 1000  # the server takes up to 1,024 files per upload
MAX_BODY = 48 * 1024 * 1024  # and 64 MiB per request


def tag_name(i: int) -> str:
    return f"t{i:07d}"


def target(tag: str) -> TargetFile:
    """A plausible signed manifest for ``tag``: its digest is the hash of the tag name."""
    return TargetFile(
        length=1000 + len(tag),
        hashes={"sha256": hashlib.sha256(tag.encode()).hexdigest()},
        path=tag,
        unrecognized_fields={"custom": {"mediaType": MEDIA_TYPE}},
    )


def _current(client: ServerClient, gun: str, role: str) -> Metadata[Targets] | None:
    data = client.get_file(gun, f"{role}.json")
    return Metadata[Targets].from_bytes(data) if data is not None else None


def fill(
    trust_dir: Path,
    env: Mapping[str, str],
    client: ServerClient,
    gun: str,
    count: int,
    *,
    start: int = 0,
    name: Callable[[int], str] = tag_name,
    make: Callable[[str], TargetFile] = target,
) -> dict[str, int]:
    """Add tags ``name(start) .. name(start+count-1)`` (signed as ``make(tag)``) to
    ``gun`` as its owner; returns {role: tags}.

    The repository must have been made by ``trustctl init`` with this trust dir, and
    nothing else may publish meanwhile.
    """
    keystore = KeyStore(trust_dir / "private", PassphraseSource(env))
    root_bytes = client.get_file(gun, "root.json")
    top = _current(client, gun, "targets")
    if root_bytes is None or top is None:
        raise RuntimeError(f"{gun} has no trust data yet: run `trustctl init` first")
    root = Metadata[Root].from_bytes(root_bytes)
    bins = owner_bins(top.signed)
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
    tags = [name(i) for i in range(start, start + count)]
    if bins is None:  # flat: every tag in targets
        signer = keystore.signer(root.signed.roles["targets"].keyids[0])
        top.signed.targets.update({t: make(t) for t in tags})
        top.signed.version += 1
        top.signed.expires = expires
        top.sign(signer)
        _upload(client, gun, [("targets", top.to_bytes())])
        return {"targets": len(top.signed.targets)}
    signer = keystore.signer(bins.keyids[0])
    by_bin: dict[str, list[str]] = {}
    for t in tags:
        by_bin.setdefault(bins.bin_for(t), []).append(t)
    files, sizes = [], {}
    for role, members in sorted(by_bin.items()):
        md = _current(client, gun, role)
        if md is None:
            md = Metadata(Targets(version=1))
        else:
            md.signed.version += 1
        md.signed.targets.update({t: make(t) for t in members})
        md.signed.expires = expires
        md.sign(signer)
        files.append((role, md.to_bytes()))
        sizes[role] = len(md.signed.targets)
    _upload(client, gun, files)
    return sizes


def _upload(client: ServerClient, gun: str, files: Iterable[tuple[str, bytes]]) -> None:
    batch: list[tuple[str, bytes]] = []
    size = 0
    for name, data in files:
        if batch and (len(batch) >= MAX_PARTS or size + len(data) > MAX_BODY):
            client.publish(gun, dict(batch))
            batch, size = [], 0
        batch.append((name, data))
        size += len(data)
    if batch:
        client.publish(gun, dict(batch))
