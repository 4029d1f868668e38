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

import copy
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast
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
from trustctl.layout import delegates, parent_candidates
from trustctl.transport import TransportError

__all__ = ["MAX_DELEGATIONS", "FoundTarget", "TrustedRepository", "map_tuf_error"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_DELEGATIONS = 32
MAX_PREFETCH_BYTES = 32 * 1024 * 1024


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
            why = e.summary() if isinstance(e, ServerHTTPError) else f"HTTP {status}"
            return ServerUnavailableError(
                f"the trust server failed to send trust data for {gun} ({why})",
                hint="try again later; --retry-budget SECONDS (TRUSTCTL_RETRY_BUDGET) waits longer",
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
        self._fetcher = fetcher
        self._metadata_url = metadata_url
        config = UpdaterConfig(app_user_agent=f"trustctl/{__version__}")
        self._updater = self._guard(
            lambda: Updater(
                str(cache_dir), metadata_url, fetcher=fetcher, config=config, bootstrap=pinned_root
            )
        )
        self._refreshed = False
        self._envelopes: dict[str, Metadata[Targets]] = {}
        self._shared: dict[str, Metadata[Targets]] | None = None  # see fork()
        self._parents: dict[str, str] = {"targets": "root"}
        self._cut_cache: dict[tuple[str, str], bool] = {}
        self._payloads: dict[str, bytes] = {}
        self._observe_payloads()
        self._timestamp: Timestamp | None = None
        self._root: Metadata[Root] | None = None
        self._snapshot: Snapshot | None = None

    def _observe_payloads(self) -> None:
        """Keep the canonical bytes python-tuf verified each role's signatures over.

        Telling *who* signed a role needs those bytes again; canonical JSON is pure
        Python and costs about 50 ms per MB, so a listing of 100,000 tags would pay
        for it once more per hash bin. This only observes what ngclient computed
        (``TrustedMetadataSet._load_data``, tuf 7.x); without it nothing changes.
        """
        trusted_set = getattr(self._updater, "_trusted_set", None)
        load = getattr(trusted_set, "_load_data", None)
        if load is None:
            return
        payloads = self._payloads

        def observed(role: Any, data: bytes, delegator: Any = None, role_name: Any = None) -> Any:
            result = load(role, data, delegator, role_name)
            payloads[role_name or role.type] = result[1]
            return result

        trusted_set._load_data = observed  # type: ignore[union-attr]

    def signed_payload(self, role: str, md: Metadata[Targets]) -> bytes:
        """The canonical bytes of a loaded role's ``signed`` part (computed at most once)."""
        payload = self._payloads.get(role)
        if payload is None:
            payload = self._payloads[role] = md.signed_bytes
        return payload

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
        """The trusted root (parsed once; callers must not modify it)."""
        if self._root is None:
            self._root = Metadata[Root].from_bytes(self.root_bytes)
        return self._root

    @property
    def timestamp(self) -> Timestamp:
        if self._timestamp is None:
            self._timestamp = cast(Timestamp, Metadata.from_bytes(self._read("timestamp")).signed)
        return self._timestamp

    @property
    def snapshot(self) -> Snapshot:
        """The trusted snapshot (parsed once: it lists every hash bin)."""
        if self._snapshot is None:
            self._snapshot = cast(Snapshot, Metadata.from_bytes(self._read("snapshot")).signed)
        return self._snapshot

    @property
    def targets(self) -> Metadata[Targets]:
        if "targets" not in self._envelopes:
            shared = self._shared.get("targets") if self._shared is not None else None
            self._envelopes["targets"] = shared or Metadata[Targets].from_bytes(
                self._read("targets")
            )
        return self._envelopes["targets"]

    def role_bytes(self, role: str) -> bytes:
        """The verified bytes of a loaded targets-type role."""
        if role == "targets":
            return self._read("targets")
        self.role(role)
        return self._read(role)

    def fork(self) -> TrustedRepository:
        """Another view of this verified state, for one more question (a warm process).

        The view shares python-tuf's trusted set and every role verified so far (roles
        it verifies are shared back), so nothing is read, parsed or verified twice; but
        it reports as loaded (``expiries``, ``loaded_roles``) only the roles it used
        itself, exactly like a fresh :class:`TrustedRepository` would.
        """
        self.refresh()
        _ = (self.root, self.timestamp, self.snapshot, self.targets)  # parsed once, shared
        view = copy.copy(self)
        view._shared = self._envelopes if self._shared is None else self._shared
        view._envelopes = {}
        view._parents = {"targets": "root"}
        view._cut_cache = {}
        return view

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
        if self._shared is not None and role in self._shared:
            if parent is not None:
                self._parents[role] = parent
            self._envelopes[role] = self._shared[role]
            return self._envelopes[role]
        parent = parent or self._parents.get(role) or self._find_parent(role)
        if parent is None:
            return None
        self._parents[role] = parent
        meta = self.snapshot.meta.get(f"{role}.json")
        if meta is None:
            return None
        cached = self._dir / f"{quote(role, safe='')}.json"
        if meta.hashes and cached.exists() and not _cached(cached, meta.hashes):
            # python-tuf would verify the stale copy (a canonical JSON pass) only to
            # download the new one anyway
            cached.unlink(missing_ok=True)
        self._guard(lambda: self._updater._load_targets(role, parent))
        md = Metadata[Targets].from_bytes(self._read(role))
        self._envelopes[role] = md
        if self._shared is not None:
            self._shared[role] = md
        return md

    def _find_parent(self, role: str) -> str | None:
        """Which role delegates to ``role``: a loaded one (targets first), else the
        role its name points at (``a/b`` for ``a/b/c``), loaded on demand."""
        for name, md in [("targets", self.targets), *self._envelopes.items()]:
            if delegates(md.signed, role):
                return name
        for candidate in parent_candidates(role):
            if candidate in ("targets", role) or candidate in self._envelopes:
                continue
            loaded = self.role(candidate)
            if loaded is not None and delegates(loaded.signed, role):
                return candidate
        return None

    def _walk(self, path: str) -> Iterator[tuple[str, str, Any]]:
        """The published roles a lookup of ``path`` visits, as (role, parent, metadata):
        ngclient's order (pre-order, depth first; a terminating delegation stops it).

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
            yield name, parent, md
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

    def lookup(self, path: str) -> FoundTarget | None:
        """Find ``path`` the way ngclient does: pre-order, depth first, terminating stops.

        Raises:
            TrustctlError: a role on the way fails verification.
        """
        for name, parent, md in self._walk(path):
            target = md.signed.targets.get(path)
            if target is not None:
                return FoundTarget(path, target, name, parent)
        return None

    def roles_for(self, path: str) -> list[tuple[str, str]]:
        """Every published role a lookup of ``path`` may visit, as (role, parent), in
        lookup order, without stopping where ``path`` is found (``revoke`` needs all).

        Raises:
            TrustctlError: a role on the way fails verification.
        """
        return [(name, parent) for name, parent, _ in self._walk(path)]

    def all_targets(self) -> tuple[list[FoundTarget], dict[str, TrustctlError]]:
        """Every target in every published role, plus the roles that failed to verify.

        A path listed by several roles is reported once, from the role a lookup
        would trust (``lookup`` order). This reads every published role, hash bins
        included: it is what ``inspect`` costs; ``lookup`` reads one bin.
        """
        failures: dict[str, TrustctlError] = {}
        where: dict[str, list[tuple[str, str]]] = {}
        self.prefetch([m[: -len(".json")] for m in self.snapshot.meta if m != "targets.json"])
        queue = [("targets", "root")]
        seen: set[str] = set()
        while queue:
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
            for path in md.signed.targets:
                where.setdefault(path, []).append((name, parent))
            delegations = md.signed.delegations
            if delegations is not None and delegations.roles:
                queue.extend((child, name) for child in delegations.roles)
            elif delegations is not None and delegations.succinct_roles is not None:
                # only the bins that exist: a bin is created with its first tag
                queue.extend(
                    (child, name)
                    for child in delegations.succinct_roles.get_roles()
                    if self.version_of(child) > 0
                )
        found = []
        for path in sorted(where):
            hits = where[path]
            try:
                if len(hits) == 1 and self._plainly_reached(hits[0][0], path, failures):
                    name, parent = hits[0]
                    md = self.targets if name == "targets" else self._envelopes[name]
                    found.append(FoundTarget(path, md.signed.targets[path], name, parent))
                    continue
                hit = self.lookup(path)
            except TrustctlError:
                continue
            if hit is not None:
                found.append(hit)
        return found, failures

    def _plainly_reached(self, role: str, path: str, failures: dict[str, TrustctlError]) -> bool:
        """True when a lookup of ``path`` surely ends in ``role`` (its only holder):
        every delegation from ``targets`` down admits the path, and no role listed
        before one on the way is terminating or leads to hash bins (which end a
        lookup). Otherwise the caller runs the real lookup: this only saves time."""
        child = role
        while child != "targets":
            parent = self._parents.get(child)
            if parent is None or parent == "root":
                return False
            md = self.targets if parent == "targets" else self._envelopes.get(parent)
            if md is None:
                return False
            d = md.signed.delegations
            if d is None:
                return False
            if d.roles is not None:
                delegated = d.roles.get(child)
                if delegated is None or not delegated.is_delegated_path(path):
                    return False
                if self._may_cut(parent, child, failures):
                    return False
            elif d.succinct_roles is None or d.succinct_roles.get_role_for_target(path) != child:
                return False
            child = parent
        return True

    def _may_cut(self, parent: str, child: str, failures: dict[str, TrustctlError]) -> bool:
        key = (parent, child)
        if key not in self._cut_cache:
            md = self.targets if parent == "targets" else self._envelopes[parent]
            d = md.signed.delegations
            assert d is not None and d.roles is not None
            cut = False
            for name, delegated in d.roles.items():
                if name == child:
                    break
                if delegated.terminating or name in failures or self._ends_lookups(name, 0):
                    cut = True
                    break
            self._cut_cache[key] = cut
        return self._cut_cache[key]

    def _ends_lookups(self, role: str, depth: int) -> bool:
        """Whether a lookup entering ``role`` may stop inside it (terminating or bins)."""
        md = self._envelopes.get(role)
        if md is None or md.signed.delegations is None:
            return False
        d = md.signed.delegations
        if d.succinct_roles is not None or depth > MAX_DELEGATIONS:
            return True
        return any(
            r.terminating or self._ends_lookups(name, depth + 1)
            for name, r in (d.roles or {}).items()
        )

    def prefetch(self, roles: list[str], workers: int = 8) -> None:
        """Download many published roles in parallel into the metadata cache.

        Only a speed-up for ``inspect`` (hundreds of hash bins): the files are stored
        as *untrusted* cache, which python-tuf checks against the signed snapshot's
        version, length and hash, and re-downloads, when a role is loaded. Failures
        are ignored here for the same reason.
        """
        self.refresh()
        snapshot = self.snapshot
        wanted = []
        for role in roles:
            meta = snapshot.meta.get(f"{role}.json")
            path = self._dir / f"{quote(role, safe='')}.json"
            if meta is None or role in self._envelopes or _cached(path, meta.hashes):
                continue
            wanted.append((role, meta.version, meta.length, path))
        if len(wanted) < 2:
            return

        def get(item: tuple[str, int, int | None, Path]) -> None:
            role, version, length, path = item
            url = f"{self._metadata_url}{version}.{quote(role, safe='')}.json"
            try:
                data = self._fetcher.download_bytes(url, length or MAX_PREFETCH_BYTES)
                tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
            except Exception as e:  # noqa: BLE001 - the verified load downloads it again
                logger.debug("prefetching %s failed: %s", role, e)

        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(get, wanted))

    def loaded_roles(self) -> list[tuple[str, Metadata[Targets]]]:
        """The delegated roles verified so far, in the order they were loaded."""
        return [(name, md) for name, md in self._envelopes.items() if name != "targets"]

    def loaded(self, role: str) -> Metadata[Targets] | None:
        return self.targets if role == "targets" else self._envelopes.get(role)

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


def _cached(path: Path, hashes: dict[str, str] | None) -> bool:
    """Whether ``path`` already holds the bytes the snapshot names (by SHA-256)."""
    expected = (hashes or {}).get("sha256")
    try:
        return expected is not None and hashlib.sha256(path.read_bytes()).hexdigest() == expected
    except OSError:
        return False


PREFETCH_BIN_WORKERS = 4  # the transport keeps 4 connections per host


def prefetch_bins(repo: TrustedRepository, tags: list[str]) -> None:
    """Download, a few at a time, the hash bins that looking up (or editing) many
    ``tags`` will read: the owner's bin and the signers' bin of each tag. Only a
    speed-up (see :meth:`TrustedRepository.prefetch`); nothing for fewer than 2 tags."""
    from trustctl.layout import RELEASES, owner_bins, releases_bins

    if len(tags) < 2:
        return
    bin_sets = [owner_bins(repo.targets.signed)]
    if repo.version_of(RELEASES):
        try:
            releases = repo.role(RELEASES)
        except TrustctlError:
            releases = None  # the lookup reports it
        bin_sets.append(releases_bins(releases.signed) if releases is not None else None)
    names = {bins.bin_for(tag) for bins in bin_sets if bins is not None for tag in tags}
    if len(names) > 1:
        repo.prefetch(sorted(names), workers=PREFETCH_BIN_WORKERS)
