"""A verified view of one repository's trust data, through python-tuf's ngclient.

:class:`TrustedRepository` runs the TUF client workflow with ``ngclient.Updater``
bootstrapped from the pinned root: root rotations (each new root signed by the
previous one), then timestamp, snapshot and targets, with the rollback, freeze and
mix-and-match checks python-tuf maintains. Delegated roles are loaded on demand,
the same way ``Updater.get_targetinfo`` walks them (pre-order, depth first,
stopping at terminating delegations). A delegated role that the snapshot does not
list yet (e.g. ``targets/releases`` before any signer signed) counts as empty.

The view also hands out the verified metadata envelopes (with their signatures),
which :mod:`trustctl.verify` needs to tell who signed a tag and :mod:`trustctl.repo`
needs to edit on top of.

Every python-tuf failure leaves this module as a :class:`~trustctl.errors.TrustctlError`
(see :func:`map_tuf_error`) that says plainly when it may be an attack.

Note:
    ngclient has no public call that loads one delegated role; this module uses
    ``Updater._load_targets`` (tuf 7.x), in this one place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar, cast
from urllib.parse import quote

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.serialization import DeserializationError
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from trustctl import __version__
from trustctl.client import transport_failure
from trustctl.errors import (
    AuthenticationError,
    RollbackError,
    ServerUnavailableError,
    StaleMetadataError,
    TamperedMetadataError,
    TrustctlError,
    TrustError,
    UnknownRepositoryError,
    UntrustedSignatureError,
)
from trustctl.fetcher import ServerHTTPError
from trustctl.transport import TransportError

__all__ = ["MAX_DELEGATIONS", "FoundTarget", "TrustedRepository", "map_tuf_error"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_DELEGATIONS = 32


@dataclass(frozen=True)
class FoundTarget:
    """A target found in a verified role: which role carries it and who delegated."""

    path: str
    target: TargetFile
    role: str
    parent: str


def map_tuf_error(e: BaseException, gun: str, server: str) -> TrustctlError:
    """Translate a python-tuf exception into the error a user sees."""
    if isinstance(e, TrustctlError):
        return e
    if isinstance(e, tuf_exc.ExpiredMetadataError):
        return StaleMetadataError(
            f"the trust data for {gun} is stale ({e}): the trust server stopped renewing it, or someone is "
            "replaying old metadata to hide newer changes (a possible freeze attack)",
            hint="do not deploy from it; check that the trust server and its signer are running",
        )
    if isinstance(e, tuf_exc.BadVersionNumberError):
        return RollbackError(
            f"the trust server sent older metadata for {gun} than this client has already seen ({e}): "
            "a possible rollback attack",
            hint="do not deploy; if the repository was deleted and re-created on purpose, re-pin its root "
            f"with `trustctl trust pin {gun} ROOT_FILE`",
        )
    if isinstance(e, tuf_exc.UnsignedMetadataError):
        return UntrustedSignatureError(
            f"trust metadata for {gun} is not signed by enough trusted keys ({e}); it may be forged, or a "
            "key change left it unsigned",
            hint="do not deploy from it; ask the repository owner",
        )
    if isinstance(e, tuf_exc.DownloadLengthMismatchError):
        return TamperedMetadataError(
            f"the trust server sent more data for {gun} than the signed metadata allows ({e}): it may have "
            "been tampered with, or this is an endless-data attack",
            hint="do not deploy from it",
        )
    if isinstance(e, tuf_exc.LengthOrHashMismatchError):
        return TamperedMetadataError(
            f"trust metadata for {gun} does not match what the signed snapshot promised ({e}); "
            "it may have been tampered with (a possible mix-and-match attack)",
            hint="do not deploy from it",
        )
    if isinstance(e, ServerHTTPError | tuf_exc.DownloadHTTPError):
        status = e.status_code
        if status == 404:
            return UnknownRepositoryError(
                f"the trust server has no trust data for {gun}",
                hint=f"check the repository name and --server; the owner creates it with `trustctl init {gun}`",
            )
        if status in (401, 403):
            return AuthenticationError(
                f"the trust server refused to send trust data for {gun} (HTTP {status})",
                hint="set TRUSTCTL_SERVER_USERNAME and TRUSTCTL_SERVER_PASSWORD",
            )
        if status >= 500:
            return ServerUnavailableError(
                f"the trust server failed to send trust data for {gun} (HTTP {status})"
            )
        return TrustError(f"the trust server answered HTTP {status} for {gun}")
    if isinstance(e, tuf_exc.SlowRetrievalError):
        return ServerUnavailableError(f"the trust server is too slow sending trust data for {gun}")
    if isinstance(e, tuf_exc.DownloadError):
        cause = e.__cause__ or e.__context__
        if isinstance(cause, TransportError):
            return transport_failure(server, cause)
        return ServerUnavailableError(f"downloading trust data for {gun} failed: {e}")
    if isinstance(e, tuf_exc.RepositoryError | DeserializationError):
        return TamperedMetadataError(
            f"trust metadata for {gun} failed verification ({e}); this may be an attack",
            hint="do not deploy from it",
        )
    raise e


class TrustedRepository:
    """Verified trust data of one GUN (see module docstring).

    Args:
        gun: the repository.
        cache_dir: python-tuf's metadata cache (``<trust dir>/tuf/<gun>/metadata``).
        metadata_url: ``{server}/v2/<gun>/_trust/tuf/``.
        fetcher: downloads (carries TLS trust and credentials).
        pinned_root: the trust anchor's bytes.
        server: the server's base URL, for messages.
    """

    def __init__(
        self,
        *,
        gun: str,
        cache_dir: Path,
        metadata_url: str,
        fetcher: FetcherInterface,
        pinned_root: bytes,
        server: str = "",
    ) -> None:
        self.gun = gun
        self._dir = cache_dir
        self._server = server
        config = UpdaterConfig(app_user_agent=f"trustctl/{__version__}")
        self._updater = self._guard(
            lambda: Updater(
                str(cache_dir), metadata_url, fetcher=fetcher, config=config, bootstrap=pinned_root
            )
        )
        self._refreshed = False
        self._envelopes: dict[str, Metadata[Targets]] = {}
        self._parents: dict[str, str] = {"targets": "root"}

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError, DeserializationError) as e:
            raise map_tuf_error(e, self.gun, self._server) from e

    # --- top level -----------------------------------------------------------------

    def refresh(self) -> None:
        """Run the top-level client workflow (root, timestamp, snapshot, targets) once."""
        if not self._refreshed:
            self._guard(self._updater.refresh)
            self._refreshed = True

    def _read(self, name: str) -> bytes:
        self.refresh()
        return (self._dir / f"{quote(name, safe='')}.json").read_bytes()

    @property
    def root_bytes(self) -> bytes:
        self.refresh()
        return (self._dir / "root.json").read_bytes()  # symlink to root_history/<trusted>.root.json

    @property
    def root(self) -> Metadata[Root]:
        return Metadata[Root].from_bytes(self.root_bytes)

    @property
    def timestamp(self) -> Timestamp:
        return cast(Timestamp, Metadata.from_bytes(self._read("timestamp")).signed)

    @property
    def snapshot(self) -> Snapshot:
        return cast(Snapshot, Metadata.from_bytes(self._read("snapshot")).signed)

    @property
    def targets(self) -> Metadata[Targets]:
        if "targets" not in self._envelopes:
            self._envelopes["targets"] = Metadata[Targets].from_bytes(self._read("targets"))
        return self._envelopes["targets"]

    def role_bytes(self, role: str) -> bytes:
        """The verified bytes of a loaded targets-type role."""
        if role == "targets":
            return self._read("targets")
        self.role(role)
        return self._read(role)

    # --- delegated roles -------------------------------------------------------------

    def version_of(self, role: str) -> int:
        """The role's version in the trusted snapshot (0 when it does not exist yet)."""
        meta = self.snapshot.meta.get(f"{role}.json")
        return meta.version if meta is not None else 0

    def parent_of(self, role: str) -> str | None:
        return self._parents.get(role)

    def delegator(self, role: str) -> Targets | Root:
        """The verified metadata that delegates to ``role``."""
        parent = self._parents.get(role) or self._find_parent(role)
        if parent is None:
            raise KeyError(role)
        self._parents[role] = parent
        if parent == "root":
            return self.root.signed
        md = self.role(parent)
        assert md is not None
        return md.signed

    def role(self, role: str, parent: str | None = None) -> Metadata[Targets] | None:
        """The verified envelope of a delegated targets role, or None if not published yet.

        Raises:
            TrustctlError: the role fails verification (mapped python-tuf error).
        """
        if role == "targets":
            return self.targets
        if role in self._envelopes:
            return self._envelopes[role]
        parent = parent or self._parents.get(role) or self._find_parent(role)
        if parent is None:
            return None
        self._parents[role] = parent
        if self.version_of(role) == 0:
            return None
        self._guard(lambda: self._updater._load_targets(role, parent))
        md = Metadata[Targets].from_bytes(self._read(role))
        self._envelopes[role] = md
        return md

    def _find_parent(self, role: str) -> str | None:
        """Which loaded role delegates to ``role`` (targets first)."""
        for name, md in [("targets", self.targets), *self._envelopes.items()]:
            delegations = md.signed.delegations
            if delegations is not None and delegations.roles and role in delegations.roles:
                return name
        return None

    def lookup(self, path: str) -> FoundTarget | None:
        """Find ``path`` the way ngclient does: pre-order, depth first, terminating stops.

        Raises:
            TrustctlError: a role on the way fails verification.
        """
        to_visit = [("targets", "root")]
        visited: set[str] = set()
        while to_visit and len(visited) <= MAX_DELEGATIONS:
            name, parent = to_visit.pop()
            if name in visited:
                continue
            md = self.role(name, parent)
            visited.add(name)
            if md is None:
                continue
            target = md.signed.targets.get(path)
            if target is not None:
                return FoundTarget(path, target, name, parent)
            delegations = md.signed.delegations
            if delegations is None:
                continue
            children = []
            for child, terminating in delegations.get_roles_for_target(path):
                children.append((child, name))
                if terminating:
                    to_visit = []
                    break
            to_visit.extend(reversed(children))
        return None

    def all_targets(self) -> tuple[list[FoundTarget], dict[str, TrustctlError]]:
        """Every target in every published role, plus the roles that failed to verify.

        A path listed by several roles is reported once, from the role a lookup
        would trust (``lookup`` order).
        """
        failures: dict[str, TrustctlError] = {}
        paths: set[str] = set()
        queue = [("targets", "root")]
        seen: set[str] = set()
        while queue and len(seen) <= MAX_DELEGATIONS:
            name, parent = queue.pop(0)
            if name in seen:
                continue
            seen.add(name)
            try:
                md = self.role(name, parent)
            except TrustctlError as e:
                failures[name] = e
                continue
            if md is None:
                continue
            paths.update(md.signed.targets)
            delegations = md.signed.delegations
            if delegations is not None and delegations.roles:
                queue.extend((child, name) for child in delegations.roles)
        found = []
        for path in sorted(paths):
            try:
                hit = self.lookup(path)
            except TrustctlError:
                continue
            if hit is not None:
                found.append(hit)
        return found, failures

    def expiries(self) -> dict[str, datetime]:
        """Expiry of every verified role loaded so far (root, timestamp, snapshot, targets...)."""
        out = {
            "root": self.root.signed.expires,
            "timestamp": self.timestamp.expires,
            "snapshot": self.snapshot.expires,
        }
        for name, md in self._envelopes.items():
            out[name] = md.signed.expires
        out.setdefault("targets", self.targets.signed.expires)
        return out

    @property
    def cache_dir(self) -> Path:
        return self._dir
