"""The top-level roles python-tuf trusts (root, timestamp, snapshot), as trustctl reads them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote

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

from notary_signer.canonical import canonical_json, holds_float
from trustctl import __version__
from trustctl.errors import TrustctlError
from trustctl.trustedstate import TufState
from trustctl.tufview.downloads import FILE_RE, LabelStore, RecordingFetcher, store_key
from trustctl.tufview.errors import map_tuf_error

__all__ = ["TopLevel"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


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


class TopLevel:
    """python-tuf's ``Updater`` from the pinned root, and the root, timestamp and snapshot
    it trusts after ``refresh()``, each re-read from the very bytes python-tuf was handed.
    The first layer of :class:`~trustctl.tufview.TrustedRepository` (see its arguments).
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
        state: TufState | None = None,
    ) -> None:
        if state is not None:
            state.check(pinned_root)  # before python-tuf reads (or writes) anything
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
        self._trusted_state = state
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
        state = self._state
        if self._trusted_state is not None:  # python-tuf's answer must not be older
            assert state.root and state.timestamp_md and state.snapshot_md
            self._trusted_state.verified(
                self._pinned,
                state.root.signed.version,
                state.timestamp_md.signed.version,
                state.snapshot_md.signed.version,
            )
        self._refreshed = True
        self._store.set_marker(self.state_marker)

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
            key = store_key(name)
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

    def _fail(self, e: BaseException) -> TrustctlError:
        return map_tuf_error(e, self.gun, self._server)

    def _fetch_file(self, name: str, limit: int) -> bytes:
        url = f"{self._metadata_url}{name}"
        try:
            data = self._fetcher.inner.download_bytes(url, limit)
        except (tuf_exc.DownloadError, tuf_exc.RepositoryError) as e:
            raise self._fail(e) from e
        self._state.raw[name] = data
        key = store_key(name)
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
            if (m := FILE_RE.match(n)) and m.group(2) == "root" and m.group(1)
        ]
        last = (
            max(probed) - 1
            if probed
            else max(
                [current.signed.version]
                + [
                    int(m.group(1))
                    for n in self._fetcher.seen
                    if (m := FILE_RE.match(n)) and m.group(2) == "root" and m.group(1)
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

    def signed_payload(self, role: str, md: Metadata[Any]) -> bytes:
        """The canonical bytes of a loaded role's ``signed`` part (computed once)."""
        payload = self._state.payloads.get(id(md))
        if payload is None:
            payload = self._state.payloads[id(md)] = _signed_bytes(md)
        return payload

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


def _signed_bytes(md: Metadata[Any]) -> bytes:
    """``md.signed_bytes``, through the C JSON encoder (:func:`canonical_json`, several
    times faster on hundreds of hash bins); a document holding a float has no canonical
    form and goes to python-tuf's own encoder, which refuses it."""
    value = md.signed.to_dict()
    if holds_float(value):
        return md.signed_bytes
    return canonical_json(value)
