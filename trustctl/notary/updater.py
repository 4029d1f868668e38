"""Notary's client workflow (reference section 3, "Client-side verification").

:class:`NotaryUpdater` answers with a :class:`TrustedNotary`: the verified root,
timestamp, snapshot, targets and every delegated role that verified. Steps:

1. **Root.** Start from the newest root verified before (or, the first time, the
   server's ``root.json``); every root must carry valid x509 leaf certificates named
   for the GUN, satisfy the trust pin, be signed by a threshold of its own pinned
   certificates and (after the first) of the previous root's. A newer root is reached
   by walking ``N.root.json`` one version at a time; the newest must not be expired.
2. **Timestamp** (``timestamp.json``, at most 1 MiB), signed by the root's timestamp
   keys, not older than the cached version, not expired.
3. **Snapshot** by hash (``snapshot.<sha256>.json``, bounded by the length the
   timestamp signed), its hashes checked, signed, not older, not expired; its
   ``root`` entry must match the trusted root.
4. **Targets** and delegated roles by hash (``<role>.<sha256>.json``), parents first;
   a delegated role counts only with a threshold of the keys its parent lists, and
   its paths are cut to its parent's (prefixes). A delegated role that is expired or
   under-signed is left out (and reported), as Notary does; anything else that fails
   fails the whole update.

Versions of every role are ratcheted in :class:`~trustctl.notary.pinning.NotaryState`,
so an older copy served later is refused as a rollback. Nothing here reads a clock
or the network by itself: ``fetch`` and ``now`` are passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from trustctl.client import error_for_response, transport_failure
from trustctl.errors import (
    NoPinnedRootError,
    RollbackError,
    StaleMetadataError,
    TamperedMetadataError,
    UnknownRepositoryError,
    UntrustedSignatureError,
)
from trustctl.notary.model import (
    Delegation,
    RoleKeys,
    Root,
    Signed,
    Snapshot,
    Targets,
    Timestamp,
    check_hashes,
    check_threshold,
    delegations_of,
    entry_hex,
    parse_root,
    parse_snapshot,
    parse_targets,
    parse_timestamp,
    path_allowed,
    root_certificates,
    signed_type,
    stale,
)
from trustctl.notary.pinning import NotaryPin, NotaryState
from trustctl.transport import Transport, TransportError

__all__ = [
    "RELEASES",
    "Fetch",
    "NotaryUpdater",
    "PreloadedFetch",
    "ServerFetch",
    "TrustedNotary",
    "file_name",
]

logger = logging.getLogger(__name__)

Fetch = Callable[[str, int], "bytes | None"]
"""``fetch(filename, max_bytes)``: the file's bytes, or None when the server has none."""

RELEASES = "targets/releases"
MAX_TIMESTAMP_BYTES = 1024 * 1024
MAX_ROOT_BYTES = 10 * 1024 * 1024
MAX_ROLES = 1000
MAX_ROOT_WALK = 1000


class ServerFetch:
    """``Fetch`` over trustctl's transport: ``{server}/v2/<gun>/_trust/tuf/<file>``
    (or ``<base><file>``)."""

    def __init__(
        self, transport: Transport, server: str, gun: str, *, base: str | None = None
    ) -> None:
        self._transport = transport
        self._server = server
        self._gun = gun
        self._base = base or f"{server}/v2/{gun}/_trust/tuf/"
        self.requests: list[str] = []

    def __call__(self, filename: str, max_bytes: int) -> bytes | None:
        url = self._base + quote(filename, safe="/")
        self.requests.append(filename)
        try:
            resp = self._transport.request(
                "GET", url, scope=f"repository:{self._gun}:pull", max_bytes=max_bytes
            )
        except TransportError as e:
            raise transport_failure(self._server, e) from e
        if resp.status == 404:
            return None
        if resp.status >= 300:
            raise error_for_response(resp, self._gun, f"send {filename}", self._server)
        if resp.truncated:
            raise TamperedMetadataError(
                f"the trust server sent more than the {max_bytes} bytes allowed for {filename} of "
                f"{self._gun}: it may have been tampered with, or this is an endless-data attack",
                hint="do not deploy from it",
            )
        return resp.data


class PreloadedFetch:
    """A ``Fetch`` that answers each file of ``preload`` once from it (what a check of
    the server just fetched: None for a file the server does not have) and asks
    ``inner`` for the rest; ``kept`` holds every answer it gave."""

    def __init__(self, inner: Fetch, preload: Mapping[str, bytes | None] | None = None) -> None:
        self._inner = inner
        self._preload = dict(preload or {})
        self.kept: dict[str, bytes | None] = {}

    def __call__(self, filename: str, max_bytes: int) -> bytes | None:
        if filename in self._preload:
            data = self._preload.pop(filename)
        else:
            data = self._inner(filename, max_bytes)
        self.kept[filename] = data
        return data


Meta = dict[str, Any]  # a ``{length, hashes, custom}`` entry as on the wire


def file_name(role: str, entry: Meta) -> str:
    """The file Notary's client fetches for ``role`` by the entry signed above it:
    ``<role>.<sha256 hex>.json`` (``<role>.json`` when the entry has no SHA-256)."""
    sha = entry_hex(entry)
    return f"{role}.{sha}.json" if sha else f"{role}.json"


@dataclass
class TrustedNotary:
    """What one update verified."""

    gun: str
    root: Root
    timestamp: Signed
    snapshot: Signed
    snapshot_meta: dict[str, Meta]
    roles: dict[str, Targets] = field(default_factory=dict)
    delegations: dict[str, Delegation] = field(default_factory=dict)  # paths cut to the parent's
    failures: dict[str, str] = field(default_factory=dict)
    unverified: dict[str, Targets] = field(default_factory=dict)  # parsed, never trusted
    root_rotations: int = 0

    @property
    def targets(self) -> Targets:
        return self.roles["targets"]

    def role_keys(self, role: str) -> RoleKeys:
        if role == "targets":
            return RoleKeys.of_root(self.root, "targets")
        return self.delegations[role].role_keys

    def expiries(self) -> dict[str, datetime]:
        out = {
            "root": self.root.file.expires,
            "timestamp": self.timestamp.expires,
            "snapshot": self.snapshot.expires,
        }
        for name, info in self.roles.items():
            out[name] = info.file.expires
        return out

    def walk(
        self, path: str, role_path: str, skip: tuple[str, ...] = ()
    ) -> Iterator[tuple[str, Targets]]:
        """Notary's ``WalkTargets``: the verified roles a lookup of ``path`` under
        ``role_path`` visits, breadth first, each within its delegated paths."""
        queue: list[tuple[str, tuple[str, ...]]] = [("targets", ("",))]
        seen = 0
        while queue and seen <= MAX_ROLES:
            name, paths = queue.pop(0)
            seen += 1
            info = self.roles.get(name)
            if info is None:
                continue
            children = [(d.name, d.paths) for d in delegations_of(info, paths)]
            if role_path.startswith(name + "/"):
                queue.extend(children)
                continue
            under = not role_path or name == role_path or name.startswith(role_path + "/")
            if path_allowed(path, paths) and under and name not in skip:
                yield name, info
                queue.extend(children)

    def lookup(self, tag: str) -> tuple[str, Meta] | None:
        """Where ``tag`` is signed, ``targets/releases`` first, then ``targets`` (the
        order ``docker pull`` used; each with the roles below it, as Notary walks)."""
        for role_path, skip in ((RELEASES, ("targets",)), ("targets", (RELEASES,))):
            for name, info in self.walk(tag, role_path, skip):
                meta = info.targets.get(tag)
                if meta is not None:
                    return name, meta
        return None

    def all_targets(self) -> dict[str, tuple[str, Meta]]:
        """Every signed tag, each from the role :meth:`lookup` would answer with."""
        names = sorted({t for info in self.roles.values() for t in info.targets})
        found = {}
        for tag in names:
            hit = self.lookup(tag)
            if hit is not None:
                found[tag] = hit
        return found


class NotaryUpdater:
    """Run Notary's client workflow for one GUN (see module docstring).

    Args:
        gun: the repository.
        fetch: downloads a metadata file by name.
        state: the pin and the cached verified state.
        now: the current time (a clock is injected by the caller).
    """

    def __init__(self, gun: str, fetch: Fetch, state: NotaryState, now: datetime) -> None:
        self.gun = gun
        self._fetch = fetch
        self._state = state
        self._now = now

    def refresh(self) -> TrustedNotary:
        pin = self._state.pin()
        if pin is None:
            raise NoPinnedRootError(
                f"no root certificate is pinned for the Notary repository {self.gun}",
                hint=f"`trustctl trust pin {self.gun} --keyid CERT_ID` (the root certificate id the "
                "owner gives you), `--ca-bundle FILE`, or --tofu to trust what the server sends",
            )
        self._state.check(self.gun)  # a damaged state is never read as none
        cached = self._state.versions()
        root, root_raw, rotations = self._update_root(pin)
        ts = self._timestamp(root, cached)
        snapshot = self._snapshot(root, ts, root_raw, cached)
        trusted = TrustedNotary(
            self.gun, root, ts.file, snapshot.file, snapshot.meta, root_rotations=rotations
        )
        targets = self._download("targets", snapshot.meta)
        self._check(targets.file, RoleKeys.of_root(root, "targets"), cached)
        trusted.roles["targets"] = targets
        self._delegations(trusted, cached)
        versions = {
            "root": root.file.version,
            "timestamp": ts.file.version,
            "snapshot": snapshot.file.version,
            **{name: info.file.version for name, info in trusted.roles.items()},
        }
        self._state.save(root_raw, versions)
        return trusted

    # --- root ------------------------------------------------------------------------

    def _update_root(self, pin: NotaryPin) -> tuple[Root, bytes, int]:
        trusted_raw = self._state.trusted_root()
        if trusted_raw is None:
            raw = self._fetch("root.json", MAX_ROOT_BYTES)
            if raw is None:
                raise UnknownRepositoryError(f"the trust server has no trust data for {self.gun}")
            return self._check_root(None, raw, pin, final=True), raw, 0
        # verified before: its certificates may have expired since (Notary reads it so too)
        trusted = self._check_root(None, trusted_raw, pin, final=False, certificate_period=False)
        raw = self._fetch("root.json", MAX_ROOT_BYTES)
        if raw is None:
            raise UnknownRepositoryError(
                f"the trust server has no trust data for {self.gun} any more (it was verified before): "
                "the repository was deleted, or the server is withholding it",
                hint="do not deploy from it; ask the repository owner",
            )
        newest_version = parse_root(raw).file.version
        current = trusted.file.version
        if newest_version < current:
            raise RollbackError(
                f"the trust server sent root v{newest_version} for {self.gun}, older than the v"
                f"{current} this client has already verified: a possible rollback attack",
                hint="do not deploy; if the repository was re-created on purpose, pin it again",
            )
        if newest_version == current:  # still the newest: it must be valid now
            return self._check_root(None, trusted_raw, pin, final=True), trusted_raw, 0
        prev = trusted
        for version in range(current + 1, min(newest_version, current + MAX_ROOT_WALK)):
            step = self._fetch(f"{version}.root.json", MAX_ROOT_BYTES)
            if step is None:
                raise TamperedMetadataError(
                    f"the trust server has no root v{version} of {self.gun} between v{current} and "
                    f"v{newest_version}: root rotations cannot be followed",
                    hint="do not deploy from it",
                )
            prev = self._check_root(prev, step, pin, final=False, version=version)
        newest = self._check_root(prev, raw, pin, final=True, version=newest_version)
        return newest, raw, newest_version - current

    def _check_root(
        self,
        prev: Root | None,
        raw: bytes,
        pin: NotaryPin,
        *,
        final: bool,
        version: int | None = None,
        certificate_period: bool = True,
    ) -> Root:
        """Notary's ``ValidateRoot`` plus the version and expiry checks (certificates
        within their validity period unless ``certificate_period`` is False)."""
        now = self._now if certificate_period else None
        root = parse_root(raw)
        v = root.file.version
        if version is not None and v != version:
            raise TamperedMetadataError(
                f"{version}.root.json of {self.gun} holds root v{v}", hint="do not deploy from it"
            )
        certs, refused = root_certificates(root, self.gun, now)
        if not certs:
            why = "; ".join(refused) or "the root role has no keys"
            error = StaleMetadataError if "expired" in why else UntrustedSignatureError
            raise error(
                f"root v{v} of {self.gun} has no valid root certificate for {self.gun} ({why}): it may be "
                "forged, or its certificates expired",
                hint="do not deploy from it; ask the repository owner",
            )
        if prev is not None:
            old, _ = root_certificates(prev, self.gun, None)
            old_role = RoleKeys(
                "the previous root",
                {k: c.key for k, c in old.items()},
                prev.roles["root"].threshold,
            )
            try:
                check_threshold(root.file, old_role)
            except UntrustedSignatureError as e:
                raise UntrustedSignatureError(
                    f"root v{v} of {self.gun} is not signed by the previous root's certificates: it may be "
                    "forged (this may be an attack)",
                    hint="do not deploy from it; ask the repository owner",
                ) from e
        pinned = {k: c for k, c in certs.items() if pin.accepts(c, self._now)}
        if not pinned:
            raise UntrustedSignatureError(
                f"no root certificate of {self.gun} (root v{v}: {', '.join(k[:16] + '…' for k in certs)}) "
                f"matches the pin ({pin.describe()}): it may be forged (an attack), or the owner rotated "
                "the root key",
                hint="do not deploy; check the certificate id with the repository owner and pin again "
                f"with `trustctl trust pin {self.gun} --keyid CERT_ID`",
            )
        check_threshold(
            root.file,
            RoleKeys("root", {k: c.key for k, c in pinned.items()}, root.roles["root"].threshold),
        )
        if final and root.file.expires <= self._now:
            raise stale("root", root.file.expires)
        return root

    # --- timestamp, snapshot, targets ---------------------------------------------------

    def _check(self, signed: Signed, keys: RoleKeys, cached: dict[str, int]) -> None:
        """Signatures (threshold), version (no rollback) and expiry, in Notary's order."""
        check_threshold(signed, keys)
        seen = cached.get(signed.role, 0)
        if signed.version < seen:
            raise RollbackError(
                f"the trust server sent {signed.role} v{signed.version} for {self.gun}, older than the v{seen} "
                "this client has already verified: a possible rollback attack",
                hint="do not deploy; if the repository was re-created on purpose, pin it again "
                f"(`trustctl trust pin {self.gun} ...`)",
            )
        if signed.expires <= self._now:
            raise stale(signed.role, signed.expires)

    def _timestamp(self, root: Root, cached: dict[str, int]) -> Timestamp:
        raw = self._fetch("timestamp.json", MAX_TIMESTAMP_BYTES)
        if raw is None:
            raise UnknownRepositoryError(f"the trust server has no timestamp for {self.gun}")
        ts = parse_timestamp(raw)
        self._check(ts.file, RoleKeys.of_root(root, "timestamp"), cached)
        return ts

    def _snapshot(
        self, root: Root, ts: Timestamp, root_raw: bytes, cached: dict[str, int]
    ) -> Snapshot:
        raw = self._by_hash("snapshot", {"snapshot": ts.snapshot_meta})
        snapshot = parse_snapshot(raw)
        self._check(snapshot.file, RoleKeys.of_root(root, "snapshot"), cached)
        if "targets" not in snapshot.meta:
            raise TamperedMetadataError(
                f"the snapshot of {self.gun} names no targets", hint="do not deploy from it"
            )
        if "root" in snapshot.meta:
            check_hashes(root_raw, snapshot.meta["root"], f"the trusted root of {self.gun}")
        return snapshot

    def _by_hash(self, role: str, meta: dict[str, Meta]) -> bytes:
        """``role``'s bytes by the hash ``meta`` signed (length and hashes checked)."""
        entry = meta.get(role)
        if entry is None:
            raise TamperedMetadataError(
                f"the signed metadata of {self.gun} does not list {role}",
                hint="do not deploy from it",
            )
        name = file_name(role, entry)
        raw = self._fetch(name, max(int(entry.get("length") or 0), 1))
        if raw is None:
            raise TamperedMetadataError(
                f"the trust server has no {role} with the hash the signed metadata names ({name}): "
                "its data is inconsistent, or it is withholding files",
                hint="do not deploy from it",
            )
        check_hashes(raw, entry, f"the {role} metadata of {self.gun}")
        return raw

    def _download(self, role: str, meta: dict[str, Meta]) -> Targets:
        return parse_targets(role, self._by_hash(role, meta))

    def _delegations(self, trusted: TrustedNotary, cached: dict[str, int]) -> None:
        """Delegated roles, parents first (pre-order, as Notary downloads them)."""
        queue = delegations_of(trusted.targets, ("",))
        loaded = 0
        while queue and loaded < MAX_ROLES:
            d = queue.pop(0)
            if d.name in trusted.roles or d.name not in trusted.snapshot_meta:
                continue  # not published yet: no targets of its own
            trusted.delegations[d.name] = d
            loaded += 1
            info = self._download(d.name, trusted.snapshot_meta)
            try:
                self._check(info.file, d.role_keys, cached)
            except (UntrustedSignatureError, StaleMetadataError) as e:
                trusted.failures[d.name] = e.message
                trusted.unverified[d.name] = info
                logger.info("%s of %s does not count: %s", d.name, self.gun, e.message)
                continue
            trusted.roles[d.name] = info
            queue[:0] = delegations_of(info, d.paths)


def is_notary_root(raw: bytes | None) -> bool:
    """Whether root metadata is in Notary's dialect (``"_type": "Root"``)."""
    return signed_type(raw) == "Root"
