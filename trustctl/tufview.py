"""A verified view of one repository's trust data: python-tuf decides, trustctl labels.

:class:`TrustedRepository` runs the TUF client workflow with python-tuf's public
``ngclient.Updater``, bootstrapped from the pinned root: ``refresh()`` (root
rotations, each signed by the previous root; timestamp, snapshot and targets with
the rollback, freeze and mix-and-match checks) and ``get_targetinfo(path)``, which
walks the delegations and returns the one target entry a TUF client trusts for a
path, or refuses. That answer is the trust decision; nothing here overrides it.

What python-tuf does not say, trustctl needs: *who* signed the entry (the role it
came from, under which delegator, which keys signed), the k-of-n state of a role,
every tag of a repository (``inspect``), and the verified envelopes to edit on
top of (``sign``). This module derives those *labels* from the very bytes python-tuf
was given: the fetcher records every metadata file python-tuf downloads, and keeps a
copy in a small store of its own (python-tuf's cache files are its own business and
are never read here). A label is only made from bytes that check out against the
trusted snapshot (version, length, hashes) and carry the delegator's signatures,
and every role is verified per (role, delegator): a role that verifies through one
delegator says nothing about another delegator of the same name. A label walk that
finds a different entry than python-tuf is refused (it may be an attack).

Every python-tuf failure leaves this module as a :class:`~trustctl.errors.TrustctlError`
(see :func:`map_tuf_error`) that says plainly when it may be an attack.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote, unquote

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
    VerificationResult,
)
from tuf.api.serialization import DeserializationError
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from notary_signer.canonical import canonical_json
from trustctl import __version__
from trustctl.client import transport_failure
from trustctl.errors import (
    AuthenticationError,
    RollbackError,
    ServerUnavailableError,
    StaleMetadataError,
    TagNotSignedError,
    TamperedMetadataError,
    TrustctlError,
    TrustError,
    UnknownRepositoryError,
    UntrustedSignatureError,
)
from trustctl.fetcher import ServerHTTPError
from trustctl.layout import delegates, parent_candidates
from trustctl.transport import TransportError

__all__ = [
    "MAX_DELEGATIONS",
    "FoundTarget",
    "LabelStore",
    "RecordingFetcher",
    "TrustedRepository",
    "UnpublishedRoleError",
    "map_tuf_error",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_DELEGATIONS = UpdaterConfig().max_delegations
MAX_PREFETCH_BYTES = 32 * 1024 * 1024
_FILE_RE = re.compile(r"^(?:(\d+)\.)?(.+)\.json$")


@dataclass(frozen=True)
class FoundTarget:
    """The target entry python-tuf trusts for ``path``, labelled: the role that
    carries it and the delegator it was verified through."""

    path: str
    target: TargetFile
    role: str
    parent: str


class UnpublishedRoleError(TagNotSignedError):
    """A lookup reaches a delegated role the snapshot does not list: TUF clients
    refuse to look past it (python-tuf: "delegated but not part of snapshot"), so
    nothing that role or a later one lists counts as signed."""

    def __init__(self, message: str, *, role: str, **detail: Any) -> None:
        super().__init__(message, role=role, **detail)
        self.role = role


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


class RecordingFetcher(FetcherInterface):
    """A fetcher that keeps what it downloaded, for labels (see module docstring).

    ``seen`` maps each metadata file name under ``base_url`` (``timestamp.json``,
    ``3.snapshot.json``, ``2.root.json``) to the bytes the server sent; ``missing``
    holds the names answered 403/404 (how python-tuf learns it has the newest root).
    ``preload`` holds answers the server gave moments ago for this same question
    (bytes, or an HTTP status such as 404): each is served once instead of asking
    again; python-tuf verifies them like any download.
    """

    def __init__(self, inner: FetcherInterface, base_url: str) -> None:
        self.inner = inner
        self.base_url = base_url
        self.seen: dict[str, bytes] = {}
        self.unkept: list[str] = []  # names seen since the last take_unkept()
        self.missing: set[str] = set()
        self.preload: dict[str, bytes | int] = {}

    def take_unkept(self) -> list[str]:
        names, self.unkept = self.unkept, []
        return names

    def name_of(self, url: str) -> str | None:
        return url[len(self.base_url) :] if url.startswith(self.base_url) else None

    def _fetch(self, url: str) -> Iterator[bytes]:
        name = self.name_of(url)
        answer = self.preload.pop(name, None) if name is not None else None
        try:
            if isinstance(answer, int):
                raise tuf_exc.DownloadHTTPError(f"GET {url}: HTTP {answer}", answer)
            data = answer if answer is not None else b"".join(self.inner.fetch(url))
        except tuf_exc.DownloadHTTPError as e:
            if name is not None and e.status_code in (403, 404):
                self.missing.add(name)
            raise
        if name is not None:
            self.seen[name] = data
            self.unkept.append(name)
        return iter((data,))


class LabelStore:
    """trustctl's own copy of metadata bytes python-tuf was handed (one file per
    role, and one per root version), plus a marker of the last refreshed state.

    Nothing in it is trusted as stored: a label is made only from bytes that verify
    again (see :class:`TrustedRepository`). It saves downloading again what python-tuf
    read from its own cache.
    """

    def __init__(self, directory: Path) -> None:
        self.dir = directory

    def _path(self, key: str) -> Path:
        return self.dir / f"{quote(key, safe='')}.json"

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except OSError:
            return None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            if path.read_bytes() == data:
                return
        except OSError:
            pass
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def marker(self) -> bytes | None:
        try:
            return (self.dir / "state").read_bytes()
        except OSError:
            return None

    def set_marker(self, value: bytes) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".state.{os.getpid()}.tmp"
        tmp.write_bytes(value)
        os.replace(tmp, self.dir / "state")


def _store_key(name: str) -> str | None:
    """Store key of a downloaded file name: ``root.N`` for roots, else the role."""
    m = _FILE_RE.match(name)
    if m is None:
        return None
    version, role = m.group(1), unquote(m.group(2))
    if role == "root":
        return f"root.{version}" if version is not None else None
    return role


@dataclass
class _Shared:
    """What every view of one refreshed state shares (see :meth:`TrustedRepository.fork`)."""

    root: Metadata[Root] | None = None
    root_bytes: bytes = b""
    timestamp_md: Metadata[Timestamp] | None = None
    timestamp_bytes: bytes = b""
    snapshot_md: Metadata[Snapshot] | None = None
    verified: dict[tuple[str, str], Metadata[Targets] | None] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    payloads: dict[int, bytes] = field(default_factory=dict)
    failures: dict[tuple[str, str], TrustctlError] = field(default_factory=dict)
    checks: dict[tuple[str, str], VerificationResult] = field(default_factory=dict)


class TrustedRepository:
    """Verified trust data of one GUN (see module docstring).

    Args:
        gun: the repository.
        cache_dir: python-tuf's metadata directory (``<trust dir>/tuf/<gun>/metadata``).
        metadata_url: where the metadata files are (``{server}/v2/<gun>/_trust/tuf/``).
        fetcher: downloads (carries TLS trust and credentials).
        pinned_root: the trust anchor's bytes.
        server: the server's base URL, for messages.
        label_dir: trustctl's own copy of the bytes python-tuf was given
            (default: ``verified`` next to ``cache_dir``).
        preload: answers the server just gave (file name -> bytes or HTTP status),
            served once instead of asking again (see :class:`RecordingFetcher`).
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
        label_dir: Path | None = None,
        preload: dict[str, bytes | int] | None = None,
    ) -> None:
        self.gun = gun
        self._dir = cache_dir
        self._server = server
        self._metadata_url = metadata_url if metadata_url.endswith("/") else f"{metadata_url}/"
        self._fetcher = RecordingFetcher(fetcher, self._metadata_url)
        self._fetcher.preload.update(preload or {})
        # one store per pinned root: a re-pin (python-tuf starts over) starts it over too
        anchor = hashlib.sha256(pinned_root).hexdigest()[:16]
        self._store = LabelStore((label_dir or cache_dir.parent / "verified") / anchor)
        self._pinned = pinned_root
        config = UpdaterConfig(app_user_agent=f"trustctl/{__version__}")
        self._config = config
        self._updater = self._guard(
            lambda: Updater(
                str(cache_dir),
                self._metadata_url,
                fetcher=self._fetcher,
                config=config,
                bootstrap=pinned_root,
            )
        )
        self._refreshed = False
        self._state = _Shared()
        self._parents: dict[str, str] = {"targets": "root"}
        self._used: dict[str, Metadata[Targets]] = {}  # roles this view used, in order
        self._cut_cache: dict[tuple[str, str], bool] = {}
        self._decisions: dict[str, TargetFile | None] = {}

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (tuf_exc.RepositoryError, tuf_exc.DownloadError, DeserializationError) as e:
            raise map_tuf_error(e, self.gun, self._server) from e

    # --- python-tuf: the decision --------------------------------------------------

    def refresh(self) -> None:
        """Run the top-level client workflow (root, timestamp, snapshot, targets) once."""
        if self._refreshed:
            return
        kept_timestamp = self._store.get("timestamp")  # python-tuf's previous one, as seen
        try:
            self._guard(self._updater.refresh)
        except BaseException:
            self._drop_downloads()
            raise
        self._keep_downloads()
        self._load_top_level(kept_timestamp)
        self._refreshed = True
        self._store.set_marker(self.state_marker)

    def decide(self, path: str) -> TargetFile | None:
        """python-tuf's answer for ``path``: the target entry a TUF client trusts, or None.

        Raises:
            UnpublishedRoleError: the lookup reaches a delegated role missing from the
                snapshot (python-tuf refuses to look past it).
            TrustctlError: python-tuf refused the repository on the way.
        """
        self.refresh()
        if path in self._decisions:
            return self._decisions[path]
        accepted = False
        try:
            target = self._updater.get_targetinfo(path)
            accepted = True
        except tuf_exc.RepositoryError as e:
            unpublished = self._unpublished_on_walk(path)
            if unpublished is not None:
                raise UnpublishedRoleError(
                    f"{self.gun}:{path} cannot be verified: a TUF client looking for it reaches "
                    f"{unpublished}, which is delegated but not published (not in the snapshot), "
                    "and refuses to look further",
                    role=unpublished,
                    hint="nothing that role would list counts until it is published",
                ) from e
            raise map_tuf_error(e, self.gun, self._server) from e
        except (tuf_exc.DownloadError, DeserializationError) as e:
            raise map_tuf_error(e, self.gun, self._server) from e
        finally:
            if accepted:
                self._keep_downloads()
            else:
                self._drop_downloads()
        self._decisions[path] = target
        return target

    def download_target(self, target: TargetFile, directory: Path, base_url: str) -> Path:
        """Download an artifact python-tuf trusts into ``directory`` (if not there yet),
        checked against the entry's length and hashes (``Updater.download_target``)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / quote(target.path, safe="")
        if self._updater.find_cached_target(target, str(path)) is None:
            self._guard(
                lambda: self._updater.download_target(target, str(path), target_base_url=base_url)
            )
        return path

    def _drop_downloads(self) -> None:
        """Forget what python-tuf downloaded and refused: the label store keeps only
        bytes of a refresh or lookup python-tuf accepted, so a refused attack leaves
        nothing of itself in the trust directory."""
        for name in self._fetcher.take_unkept():
            self._fetcher.seen.pop(name, None)

    def _keep_downloads(self) -> None:
        """Copy what python-tuf downloaded into the label store."""
        for name in self._fetcher.take_unkept():
            data = self._fetcher.seen[name]
            key = _store_key(name)
            if key == "timestamp":
                continue  # kept once python-tuf's choice is known (_load_top_level)
            if key is not None and self._state.raw.get(name) != data:
                self._state.raw[name] = data
                try:
                    self._store.put(key, data)
                except OSError as e:  # only a cache: labels fetch what they miss
                    logger.debug("cannot keep %s: %s", name, e)

    @property
    def state_marker(self) -> bytes:
        """Identifies the refreshed state (root version and timestamp bytes); another
        process that refreshes the same trust dir to another state changes it."""
        digest = hashlib.sha256(self._state.timestamp_bytes).hexdigest()
        return f"{self.root.signed.version} {digest}".encode()

    def stored_marker(self) -> bytes | None:
        return self._store.marker()

    @property
    def pinned_root(self) -> bytes:
        return self._pinned

    # --- labels: the top-level roles python-tuf trusts -------------------------------

    def _fail(self, e: BaseException) -> TrustctlError:
        return map_tuf_error(e, self.gun, self._server)

    def _fetch_file(self, name: str, limit: int) -> bytes:
        url = f"{self._metadata_url}{name}"
        try:
            data = self._fetcher.inner.download_bytes(url, limit)
        except (tuf_exc.DownloadError, tuf_exc.RepositoryError) as e:
            raise self._fail(e) from e
        self._state.raw[name] = data
        key = _store_key(name)
        if key is not None:
            try:
                self._store.put(key, data)
            except OSError as e:
                logger.debug("cannot keep %s: %s", name, e)
        return data

    def _candidates(self, name: str, key: str) -> Iterator[bytes]:
        """Bytes that may be ``name``: downloaded now, kept earlier (by trustctl or by
        python-tuf in its own cache), downloaded again."""
        for data in (self._fetcher.seen.get(name), self._state.raw.get(name), self._store.get(key)):
            if data is not None:
                yield data
        local = self._local_copy(key)
        if local is not None:
            yield local

    def _local_copy(self, role: str) -> bytes | None:
        """python-tuf's cached copy of ``role``: a candidate like any other (checked
        against the snapshot and the signatures before it is used)."""
        try:
            return (self._dir / f"{quote(role, '')}.json").read_bytes()
        except OSError:
            return None

    def _load_top_level(self, kept_timestamp: bytes | None) -> None:
        """The root, timestamp and snapshot python-tuf trusts after ``refresh``.

        python-tuf always downloads the timestamp, and keeps the one it had when the
        new one has the same version (``kept_timestamp``, trustctl's copy of it).
        """
        state = self._state
        root_md, root_bytes = self._trusted_root()
        state.root, state.root_bytes = root_md, root_bytes
        root = root_md.signed
        downloaded = self._fetcher.seen.get("timestamp.json")
        candidates = [d for d in (downloaded, kept_timestamp) if d is not None]
        if not candidates:  # refresh always downloads it; stay safe all the same
            candidates = [self._fetch_file("timestamp.json", self._config.timestamp_max_length)]
        parsed = []
        for data in candidates:
            try:
                ts = Metadata[Timestamp].from_bytes(data)
                root.verify_delegate(Timestamp.type, ts.signed_bytes, ts.signatures)
                parsed.append((ts, data))
            except (tuf_exc.RepositoryError, DeserializationError) as e:
                if data is downloaded:
                    raise self._fail(e) from e
        ts, ts_bytes = parsed[0]
        if len(parsed) > 1 and parsed[1][0].signed.version == ts.signed.version:
            ts, ts_bytes = parsed[1]  # same version: python-tuf keeps the one it had
        state.timestamp_md, state.timestamp_bytes = ts, ts_bytes
        try:
            self._store.put("timestamp", ts_bytes)
        except OSError as e:
            logger.debug("cannot keep the timestamp: %s", e)
        meta = ts.signed.snapshot_meta
        name = f"{meta.version}.snapshot.json" if root.consistent_snapshot else "snapshot.json"
        limit = meta.length or self._config.snapshot_max_length
        state.snapshot_md = self._checked(
            name,
            "snapshot",
            meta,
            limit,
            lambda md: root.verify_delegate("snapshot", md.signed_bytes, md.signatures),
        )

    def _checked(
        self,
        name: str,
        role: str,
        meta: MetaFile,
        limit: int,
        verify: Callable[[Metadata[Any]], None],
    ) -> Metadata[Any]:
        """The first candidate bytes of ``name`` that match ``meta`` and verify."""
        last: BaseException | None = None
        tried: set[bytes] = set()
        for data in [*self._candidates(name, role), None]:
            if data is None:
                data = self._fetch_file(name, limit)
            if data in tried:
                continue
            tried.add(data)
            try:
                meta.verify_length_and_hashes(data)
                md = Metadata.from_bytes(data)
                if md.signed.type != ("targets" if role not in ("snapshot",) else "snapshot"):
                    raise tuf_exc.RepositoryError(f"{name} is {md.signed.type} metadata")
                if md.signed.version != meta.version:
                    raise tuf_exc.BadVersionNumberError(
                        f"expected {role} v{meta.version}, got v{md.signed.version}"
                    )
                verify(md)
                self._state.raw[name] = data
                return md
            except (tuf_exc.RepositoryError, DeserializationError) as e:
                last = e
        assert last is not None
        raise self._fail(last) from last

    def _trusted_root(self) -> tuple[Metadata[Root], bytes]:
        """The root python-tuf ended with: the version before the one it was told does
        not exist, reached from the pinned root, each new root signed by the previous."""
        current_bytes = self._pinned
        try:
            current = Metadata[Root].from_bytes(current_bytes)
        except DeserializationError as e:
            raise self._fail(e) from e
        probed = [
            int(m.group(1))
            for n in self._fetcher.missing
            if (m := _FILE_RE.match(n)) and m.group(2) == "root" and m.group(1)
        ]
        last = (
            max(probed) - 1
            if probed
            else max(
                [current.signed.version]
                + [
                    int(m.group(1))
                    for n in self._fetcher.seen
                    if (m := _FILE_RE.match(n)) and m.group(2) == "root" and m.group(1)
                ]
            )
        )
        for version in range(current.signed.version + 1, last + 1):
            name = f"{version}.root.json"
            data = next(
                (d for d in self._candidates(name, f"root.{version}")), None
            ) or self._fetch_file(name, self._config.root_max_length)
            try:
                new = Metadata[Root].from_bytes(data)
                current.signed.verify_delegate(Root.type, new.signed_bytes, new.signatures)
                new.signed.verify_delegate(Root.type, new.signed_bytes, new.signatures)
                if new.signed.version != version:
                    raise tuf_exc.BadVersionNumberError(f"expected root v{version}")
            except (tuf_exc.RepositoryError, DeserializationError) as e:
                raise self._fail(e) from e
            current, current_bytes = new, data
            self._state.raw[name] = data
        return current, current_bytes

    @property
    def root_bytes(self) -> bytes:
        self.refresh()
        return self._state.root_bytes

    @property
    def root(self) -> Metadata[Root]:
        """The trusted root (callers must not modify it)."""
        self.refresh()
        assert self._state.root is not None
        return self._state.root

    @property
    def timestamp(self) -> Timestamp:
        self.refresh()
        assert self._state.timestamp_md is not None
        return self._state.timestamp_md.signed

    @property
    def timestamp_bytes(self) -> bytes:
        self.refresh()
        return self._state.timestamp_bytes

    @property
    def snapshot(self) -> Snapshot:
        self.refresh()
        assert self._state.snapshot_md is not None
        return cast(Snapshot, self._state.snapshot_md.signed)

    @property
    def targets(self) -> Metadata[Targets]:
        md = self.role("targets", "root")
        assert md is not None  # the snapshot lists targets, or refresh failed
        return md

    def role_bytes(self, role: str) -> bytes:
        """The verified bytes of a published targets-type role."""
        md = self.role(role)
        if md is None:
            raise KeyError(role)
        meta = self.snapshot.meta[f"{role}.json"]
        return self._state.raw[self._file_name(role, meta.version)]

    def signed_payload(self, role: str, md: Metadata[Any]) -> bytes:
        """The canonical bytes of a loaded role's ``signed`` part (computed once)."""
        payload = self._state.payloads.get(id(md))
        if payload is None:
            payload = self._state.payloads[id(md)] = _signed_bytes(md)
        return payload

    def fork(self) -> TrustedRepository:
        """Another view of this refreshed state, for one more question (a warm process).

        It shares python-tuf's ``Updater`` and every label verified so far (per role
        and delegator), so nothing is read or verified twice; but it reports as loaded
        (``expiries``, ``loaded_roles``) only the roles it used itself, exactly like a
        fresh :class:`TrustedRepository` would.
        """
        self.refresh()
        view = object.__new__(TrustedRepository)
        view.__dict__.update(self.__dict__)
        view._parents = {"targets": "root"}
        view._used = {}
        view._cut_cache = {}
        return view

    # --- labels: delegated roles, per (role, delegator) ------------------------------

    def _file_name(self, role: str, version: int) -> str:
        assert self._state.root is not None
        quoted = quote(role, safe="")
        return (
            f"{version}.{quoted}.json"
            if self._state.root.signed.consistent_snapshot
            else f"{quoted}.json"
        )

    def version_of(self, role: str) -> int:
        """The role's version in the trusted snapshot (0 when it does not exist yet)."""
        meta = self.snapshot.meta.get(f"{role}.json")
        return meta.version if meta is not None else 0

    def parent_of(self, role: str) -> str | None:
        return self._parents.get(role)

    def delegator(self, role: str) -> Targets | Root:
        """The verified metadata that delegates to ``role`` (in this view)."""
        parent = self._parents.get(role) or self._find_parent(role)
        if parent is None:
            raise KeyError(role)
        self._parents.setdefault(role, parent)
        if parent == "root":
            return self.root.signed
        md = self.role(parent)
        assert md is not None
        return md.signed

    def role(self, role: str, parent: str | None = None) -> Metadata[Targets] | None:
        """The envelope of targets-type ``role`` as verified through ``parent`` (found
        by name when not given), or None if the snapshot does not list it.

        Raises:
            TrustctlError: the role does not verify through that delegator.
        """
        if role == "targets":
            parent = "root"
        self.refresh()
        parent = parent or self._parents.get(role) or self._find_parent(role)
        if parent is None:
            return None
        key = (role, parent)
        shared = self._state
        if key in shared.failures:
            raise shared.failures[key]
        if key not in shared.verified:
            try:
                shared.verified[key] = self._verify_role(role, parent)
            except TrustctlError as e:
                shared.failures[key] = e
                raise
        md = shared.verified[key]
        if md is not None:
            self._parents.setdefault(role, parent)
            if self._parents[role] == parent:
                self._used.setdefault(role, md)
        return md

    def _verify_role(self, role: str, parent: str) -> Metadata[Targets] | None:
        meta = self.snapshot.meta.get(f"{role}.json")
        if meta is None:
            return None
        if parent == "root":
            delegator: Targets | Root = self.root.signed
        else:
            parent_md = self.role(parent)
            if parent_md is None:
                return None
            delegator = parent_md.signed
            if not delegates(delegator, role):
                raise TamperedMetadataError(f"{parent} does not delegate to {role}")
        limit = meta.length or self._config.targets_max_length

        def verify(md: Metadata[Any]) -> None:
            check = delegator.get_verification_result(
                role, self.signed_payload(role, md), md.signatures
            )
            if not check:
                raise tuf_exc.UnsignedMetadataError(
                    f"{role} was signed by {len(check.signed)}/{check.threshold} keys"
                )
            self._state.checks[(role, parent)] = check

        return cast(
            Metadata[Targets],
            self._checked(self._file_name(role, meta.version), role, meta, limit, verify),
        )

    def signatures(self, role: str, parent: str) -> VerificationResult:
        """Which of ``parent``'s keys for ``role`` signed it (the role as verified
        through ``parent``), and the threshold.

        Raises:
            TrustctlError: the role does not verify through ``parent``.
        """
        md = self.role(role, parent)
        if md is None:
            raise KeyError(role)
        check = self._state.checks.get((role, parent))
        if check is None:  # verified before this was kept (not expected)
            parent_md = None if parent == "root" else self.role(parent)
            delegator = self.root.signed if parent_md is None else parent_md.signed
            check = delegator.get_verification_result(
                role, self.signed_payload(role, md), md.signatures
            )
            self._state.checks[(role, parent)] = check
        return check

    def _find_parent(self, role: str) -> str | None:
        """Which role delegates to ``role``: a role this view used (targets first),
        else the role its name points at (``a/b`` for ``a/b/c``)."""
        for name, md in [("targets", self.targets), *self._used.items()]:
            if delegates(md.signed, role):
                return name
        for candidate in parent_candidates(role):
            if candidate in ("targets", role) or candidate in self._used:
                continue
            loaded = self.role(candidate)
            if loaded is not None and delegates(loaded.signed, role):
                return candidate
        return None

    def _walk(
        self, path: str, *, published_only: bool = True
    ) -> Iterator[tuple[str, str, Metadata[Targets] | None]]:
        """The roles a lookup of ``path`` visits, as (role, delegator, metadata), in
        python-tuf's order (pre-order, depth first; a terminating delegation stops it).

        Raises:
            TrustctlError: a role on the way does not verify.
        """
        to_visit = [("targets", "root")]
        visited: set[str] = set()
        while to_visit and len(visited) <= MAX_DELEGATIONS:
            name, parent = to_visit.pop()
            if name in visited:
                continue
            md = self.role(name, parent)
            if md is None:
                if not published_only:
                    yield name, parent, None
                visited.add(name)
                continue
            yield name, parent, md
            visited.add(name)
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

    def _unpublished_on_walk(self, path: str) -> str | None:
        try:
            for name, _parent, md in self._walk(path, published_only=False):
                if md is None:
                    return name
                if path in md.signed.targets:
                    return None
        except TrustctlError:
            return None
        return None

    def _label(self, path: str, target: TargetFile) -> FoundTarget:
        """Where python-tuf's entry for ``path`` came from (role and delegator).

        Raises:
            TamperedMetadataError: the labels disagree with python-tuf.
        """
        for name, parent, md in self._walk(path):
            assert md is not None
            entry = md.signed.targets.get(path)
            if entry is None:
                continue
            if entry != target:
                break
            return FoundTarget(path, target, name, parent)
        raise TamperedMetadataError(
            f"the trust data for {self.gun} changed while {path} was verified (python-tuf and the "
            "signature labels saw different metadata); this may be an attack",
            hint="run the command again; if it persists, do not deploy from it",
        )

    def lookup(self, path: str) -> FoundTarget | None:
        """python-tuf's entry for ``path`` (:meth:`decide`), labelled with its role.

        Raises:
            UnpublishedRoleError: python-tuf refuses at a delegated, unpublished role.
            TrustctlError: python-tuf refused the repository on the way.
        """
        target = self.decide(path)
        return None if target is None else self._label(path, target)

    def roles_for(self, path: str) -> list[tuple[str, str]]:
        """Every published role a lookup of ``path`` may visit, as (role, parent), in
        lookup order, without stopping where ``path`` is found (``revoke`` needs all).

        Raises:
            TrustctlError: a role on the way fails verification.
        """
        return [(name, parent) for name, parent, _ in self._walk(path)]

    def all_targets(self) -> tuple[list[FoundTarget], dict[str, TrustctlError]]:
        """Every target a TUF client trusts, from every published role, plus the roles
        that failed to verify.

        Candidate paths come from every published role (hash bins included: this is
        what ``inspect`` costs); python-tuf decides each path (a path listed by several
        roles is reported once, with the entry python-tuf trusts).
        """
        failures: dict[str, TrustctlError] = {}
        where: dict[str, list[tuple[str, str]]] = {}
        self.prefetch([m[: -len(".json")] for m in self.snapshot.meta if m != "targets.json"])
        queue = [("targets", "root")]
        seen: set[tuple[str, str]] = set()
        while queue:
            name, parent = queue.pop(0)
            if (name, parent) in seen:
                continue
            seen.add((name, parent))
            try:
                md = self.role(name, parent)
            except TrustctlError as e:
                failures.setdefault(name, e)
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
            try:
                target = self.decide(path)
                if target is None:
                    continue
                hits = where[path]
                name, parent = hits[0]
                md = self._state.verified.get((name, parent))
                if (
                    len(hits) == 1
                    and md is not None
                    and md.signed.targets.get(path) == target
                    and self._plainly_reached(name, path, failures)
                ):
                    found.append(FoundTarget(path, target, name, parent))
                    continue
                found.append(self._label(path, target))
            except TrustctlError as e:
                logger.debug("%s: %s", path, e)
                continue
        return found, failures

    def _used_md(self, name: str) -> Metadata[Targets] | None:
        return self.targets if name == "targets" else self._used.get(name)

    def _plainly_reached(self, role: str, path: str, failures: dict[str, TrustctlError]) -> bool:
        """True when a lookup of ``path`` surely ends in ``role`` (its only holder):
        every delegation from ``targets`` down admits the path, and no role listed
        before one on the way is terminating or leads to hash bins (which end a
        lookup). Otherwise the caller runs the label walk: this only saves time."""
        child = role
        while child != "targets":
            parent = self._parents.get(child)
            if parent is None or parent == "root":
                return False
            md = self._used_md(parent)
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
            md = self._used_md(parent)
            assert md is not None
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
        md = self._used.get(role)
        if md is None or md.signed.delegations is None:
            return md is None  # not verified in this view: assume it may
        d = md.signed.delegations
        if d.succinct_roles is not None or depth > MAX_DELEGATIONS:
            return True
        return any(
            r.terminating or self._ends_lookups(name, depth + 1)
            for name, r in (d.roles or {}).items()
        )

    def prefetch(self, roles: list[str], workers: int = 8) -> None:
        """Download many published roles in parallel (``inspect``: hundreds of bins).

        Only a speed-up: the files are handed to python-tuf and to the labels as
        unverified downloads, checked like any other when a role is loaded.
        """
        self.refresh()
        snapshot = self.snapshot
        wanted = []
        for role in roles:
            meta = snapshot.meta.get(f"{role}.json")
            if meta is None:
                continue
            name = self._file_name(role, meta.version)
            if name in self._state.raw or name in self._fetcher.seen:
                continue
            stored = self._store.get(role) or self._local_copy(role)
            if stored is not None:
                try:
                    meta.verify_length_and_hashes(stored)
                    if meta.hashes:
                        continue  # python-tuf reads its own copy; labels take this one
                except tuf_exc.LengthOrHashMismatchError:
                    pass
            wanted.append((name, meta.length))
        if len(wanted) < 2:
            return
        base = self._metadata_url
        inner = self._fetcher.inner

        def get(item: tuple[str, int | None]) -> tuple[str, bytes | None]:
            name, length = item
            try:
                return name, inner.download_bytes(f"{base}{name}", length or MAX_PREFETCH_BYTES)
            except Exception as e:  # noqa: BLE001 - the verified load downloads it again
                logger.debug("prefetching %s failed: %s", name, e)
                return name, None

        with ThreadPoolExecutor(max_workers=workers) as pool:
            for name, data in pool.map(get, wanted):
                if data is None:
                    continue
                self._state.raw[name] = data  # a candidate, verified when used
                if self.root.signed.consistent_snapshot:  # N.role.json: python-tuf may take it
                    self._fetcher.preload[name] = data

    def loaded_roles(self) -> list[tuple[str, Metadata[Targets]]]:
        """The delegated roles this view used, in the order they were loaded."""
        return [(name, md) for name, md in self._used.items() if name != "targets"]

    def loaded(self, role: str) -> Metadata[Targets] | None:
        return self.targets if role == "targets" else self._used.get(role)

    def expiries(self) -> dict[str, datetime]:
        """Expiry of every trusted role this view used (root, timestamp, snapshot, targets...)."""
        out = {
            "root": self.root.signed.expires,
            "timestamp": self.timestamp.expires,
            "snapshot": self.snapshot.expires,
        }
        for name, md in self._used.items():
            out[name] = md.signed.expires
        out.setdefault("targets", self.targets.signed.expires)
        return out

    @property
    def cache_dir(self) -> Path:
        return self._dir


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


def _signed_bytes(md: Metadata[Any]) -> bytes:
    """``md.signed_bytes``, through the C JSON encoder (:func:`canonical_json`, several
    times faster on hundreds of hash bins); a document holding a float has no canonical
    form and goes to python-tuf's own encoder, which refuses it."""
    value = md.signed.to_dict()
    if _holds_float(value):
        return md.signed_bytes
    return canonical_json(value)


def _holds_float(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return True
    return False
