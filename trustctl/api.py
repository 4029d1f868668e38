"""The library API: a TUF client that verifies tags from a long-running process.

An admission controller or a deploy daemon verifies many tags, over hours. A
:class:`Verifier` is a TUF client (python-tuf's ngclient decides; see
:mod:`trustctl.tufview`) that keeps the verified state of each repository in memory
and, on every call, does what the TUF client workflow does first:

1. asks the trust server for root N+1 (a 404 on the fast path): a new root, e.g. one
   that revokes the targets key, is never missed;
2. fetches the current ``timestamp.json`` (over a kept-alive HTTPS connection), so
   new signatures, revocations and a frozen server are noticed;
3. if there is no new root, the timestamp bytes are exactly the ones it verified, no
   other process on the same trust dir moved the repository on, and nothing it
   trusts has expired by its clock, answers from the state in memory (python-tuf's
   ``Updater`` of the last refresh, which loads any further role it needs);
4. otherwise refreshes: a new ``Updater`` from the trusted state on disk runs the
   whole client workflow (root rotations, rollback, freeze and mix-and-match
   checks), exactly as a fresh ``trustctl verify`` would. :meth:`Verifier.refresh`
   does this on demand.

Calls for one repository run one at a time; a call that arrives while another asks
the trust server waits for that check and shares its outcome (the state, or the
error) instead of asking again, so a burst of calls for one repository fetches each
metadata file once. As with any single flight, the shared answer may have left the
server up to one check's duration before the waiting call arrived; a call that
arrives after a check has ended makes its own.

A repository pinned as a Notary-dialect one (``trustctl trust pin GUN --keyid ID``,
or a Notary root.json; :mod:`trustctl.notary.pinning`) is answered the same way by
Notary's client workflow (:class:`~trustctl.notary.updater.NotaryUpdater`, the one
``trustctl verify`` runs): each call fetches ``timestamp.json``; the same bytes, the
same pin, no other process moved the repository on and nothing expired (the root
certificates included) answer from memory; anything else runs the whole workflow,
whose versions are ratcheted on disk (``<trust dir>/tuf/<gun>/notary/state.json``), so
an older copy is refused as a rollback after a restart too. Its clock is the
Verifier's.

Every answer is checked against the clock once more: an expired role in it fails the
call (a freeze attack). The answer is the CLI's own :class:`~trustctl.verify.VerifiedTag`
(digest, who signed, expiry, and ``target``: the entry python-tuf verified), made by
the same :func:`~trustctl.verify.verify_tag`. So a long-lived ``Verifier`` answers
what a fresh process would, for the same repository state and clock.

Where metadata is served and kept is a :class:`Layout` (default: the trust server's
``/v2/<gun>/_trust/tuf/`` and ``<trust dir>/tuf/<gun>/``), so a mirror or another
repository layout needs no patching.

Why one module of this size: the :class:`Verifier`'s single flight, its in-memory
state per repository and its "still current?" check are one piece of locking for
both dialects; split, the lock and the states it guards would live apart.

Example:
    >>> verifier = Verifier("https://notary:4443", trust_dir=Path("/etc/trust"), tls_ca="ca.pem")  # doctest: +SKIP
    >>> verifier.verify("registry:5000/app:v1").pinned_reference  # doctest: +SKIP
    'registry:5000/app@sha256:...'
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tuf.api import exceptions as tuf_exc
from tuf.ngclient import UpdaterConfig

from trustctl.connect import server_transport, server_url
from trustctl.errors import InvalidReferenceError, TrustctlError, UsageError
from trustctl.fetcher import TransportFetcher
from trustctl.reference import ImageRef, parse_reference
from trustctl.retry import DEFAULT_BUDGET, RetryPolicy
from trustctl.truststore import TrustStore
from trustctl.tufview import TrustedRepository, map_tuf_error
from trustctl.verify import (
    REGISTRY_DIGEST,
    REGISTRY_SKIP,
    REGISTRY_TAG,
    SignedBy,
    TrustedVersions,
    VerifiedTag,
    verify_tag,
)

if TYPE_CHECKING:
    from tuf.ngclient import FetcherInterface

    from trustctl.notary.pinning import NotaryState
    from trustctl.notary.updater import TrustedNotary
    from trustctl.registry import RegistryClient
    from trustctl.transport import Transport

__all__ = ["Layout", "TrustedVersions", "Verifier", "VerifierStats"]

_CONFIG = UpdaterConfig()


def trust_server_metadata_url(server: str, gun: str) -> str:
    """The trust server's metadata URL of ``gun`` (``{server}/v2/<gun>/_trust/tuf/``)."""
    return f"{server.rstrip('/')}/v2/{gun}/_trust/tuf/"


@dataclass(frozen=True)
class Layout:
    """Where a repository's metadata is served and kept.

    Attributes:
        metadata_url: ``(server, gun) -> URL`` of the directory holding ``root.json``,
            ``N.root.json``, ``timestamp.json``, ``N.snapshot.json``... (default: the
            trust server's ``/v2/<gun>/_trust/tuf/``).
        metadata_dir: ``(trust dir, gun) -> directory`` python-tuf keeps its trusted
            metadata in (default ``<trust dir>/tuf/<gun>/metadata``).
        label_dir: ``(trust dir, gun) -> directory`` for trustctl's copy of the
            metadata bytes (default ``<trust dir>/tuf/<gun>/verified``).

    The pinned root stays where ``trustctl trust pin`` puts it
    (``<trust dir>/tuf/<gun>/pinned_root.json``).
    """

    metadata_url: Callable[[str, str], str] = trust_server_metadata_url
    metadata_dir: Callable[[Path, str], Path] = lambda trust_dir, gun: (
        trust_dir / "tuf" / gun / "metadata"
    )
    label_dir: Callable[[Path, str], Path] = lambda trust_dir, gun: (
        trust_dir / "tuf" / gun / "verified"
    )


@dataclass
class VerifierStats:
    """How calls were answered: from the state in memory, or by a refresh."""

    reused: int = 0
    refreshed: int = 0
    #: Calls that shared the check of a call running when they arrived.
    shared: int = 0


@dataclass
class _State:
    """One repository's refreshed state: the base view and what it rests on."""

    repo: TrustedRepository
    timestamp: bytes
    marker: bytes
    root_version: int
    versions: TrustedVersions
    signed_by: SignedBy = field(default_factory=dict)


@dataclass
class _NotaryState:
    """One Notary-dialect repository's refreshed state and what it rests on."""

    trusted: TrustedNotary
    timestamp: bytes
    marker: bytes | None  # state.json as the refresh left it
    pin: bytes  # pin.json it was verified from
    versions: TrustedVersions
    certificates_until: datetime  # the first root certificate to expire


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class _Repository:
    gun: str
    fetcher: FetcherInterface
    metadata_url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: _State | _NotaryState | None = None
    #: The tick at which the last check of the trust server that succeeded ended.
    checked: int = -1
    #: The tick at which the last check that failed ended, and its error.
    failed: tuple[int, TrustctlError] | None = None


class Verifier:
    """A TUF client that verifies tags, keeping verified state between calls.

    Thread-safe: calls for one repository run one at a time (and hold its lock in
    the trust dir, like the CLI), calls for different repositories in parallel.

    Args:
        server: the trust server's base URL (``https://...``; plain HTTP on loopback only).
        trust_dir: the trust dir holding the pinned roots (``trustctl trust pin``) and
            the metadata cache.
        tls_ca: CA bundle for the trust server (default: the system store).
        registry: checks that the registry still serves the signed digest; without
            one, calls skip the registry (the CLI's ``--no-registry-check``).
        transport: the network to the trust server (default: HTTPS with ``tls_ca``
            and ``TRUSTCTL_SERVER_*`` credentials, connections kept alive).
        clock: the time every expiry in an answer is checked against (default: now,
            UTC). python-tuf's own expiry checks read the process clock (there is no
            public way to hand it another), so a clock earlier than the real time
            cannot make expired metadata acceptable; run the process under
            ``faketime`` for that (the conformance runner does).
        timeout: seconds for connecting and for each read.
        retry_budget: seconds one request to the trust server may spend on retries
            (:mod:`trustctl.retry`; default trustctl's 30 s, 0: no retries). A caller
            with a deadline of its own (an admission webhook) passes a smaller one.
        layout: where metadata is served and kept (:class:`Layout`).

    Raises:
        ConfigError: a malformed server URL, plain HTTP off loopback, a missing CA file.
    """

    def __init__(
        self,
        server: str,
        *,
        trust_dir: Path,
        tls_ca: str | None = None,
        registry: RegistryClient | None = None,
        transport: Transport | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 30.0,
        retry_budget: float = DEFAULT_BUDGET,
        layout: Layout | None = None,
    ) -> None:
        self._trust_dir = Path(trust_dir)
        # validated now, not at the first call
        self._server = server_url(server, config_file=self._trust_dir / "config.json")
        self._transport = server_transport(
            tls_ca=tls_ca,
            timeout=timeout,
            retry=RetryPolicy(budget=retry_budget) if retry_budget > 0 else None,
            environ=os.environ,
            inner=transport,
        )
        self._trust = TrustStore(self._trust_dir)
        self._registry = registry
        self._clock = clock or (lambda: datetime.now(UTC))
        self._layout = layout or Layout()
        self._repos: dict[str, _Repository] = {}
        self._lock = threading.Lock()
        self._ticks = itertools.count()  # orders arrivals and checks (next() is atomic)
        self.stats = VerifierStats()

    def verify(
        self,
        image: str | ImageRef,
        *,
        signers: Sequence[str] = (),
        registry_mode: str | None = None,
    ) -> VerifiedTag:
        """Verify ``image`` (``GUN:TAG``), as ``trustctl verify`` does.

        Args:
            image: the image reference, with a tag.
            signers: signer names that must have signed the tag (``--signer``).
            registry_mode: ``"tag"`` (the tag must resolve to the signed digest),
                ``"digest"`` (the signed digest must still be served) or ``"skip"``;
                default ``"tag"`` with a registry client, ``"skip"`` without.

        Raises:
            InvalidReferenceError: malformed, or no tag.
            NoPinnedRootError: no root is pinned for the repository.
            StateCorruptError: the repository was verified before and its trusted state
                on disk is missing or unreadable (checked on every refresh from disk).
            TagNotSignedError / SignerPolicyError: not signed (by every signer).
            StaleMetadataError / RollbackError / UntrustedSignatureError /
                TamperedMetadataError: the trust data failed verification.
            UnmatchableTargetError: the signed entry has no sha256 hash.
            DigestMismatchError / ManifestNotFoundError: the registry disagrees.
            NetworkError: the trust server (or registry) cannot be reached.
        """
        ref = image if isinstance(image, ImageRef) else parse_reference(image)
        if ref.tag is None:
            raise InvalidReferenceError(
                f"invalid image reference {image!s}: a tag is required (e.g. {ref.gun}:v1)"
            )
        mode = registry_mode or (REGISTRY_TAG if self._registry is not None else REGISTRY_SKIP)
        if mode not in (REGISTRY_TAG, REGISTRY_DIGEST, REGISTRY_SKIP):
            raise ValueError(f"registry_mode {mode!r}: use 'tag', 'digest' or 'skip'")
        if mode != REGISTRY_SKIP and self._registry is None:
            raise ValueError(
                f"registry_mode {mode!r} needs a registry client (Verifier(registry=...))"
            )
        repo = self._repository(ref.gun)
        arrived = next(self._ticks)
        registry = self._registry if mode != REGISTRY_SKIP else None
        with repo.lock, self._trust.lock(ref.gun):
            state = self._current(repo, arrived)
            if isinstance(state, _NotaryState):
                from trustctl.notary.verify import verify_notary_tag

                result = verify_notary_tag(
                    state.trusted,
                    ref,
                    registry=registry,
                    registry_mode=mode,
                    required_signers=signers,
                )
            else:
                result = verify_tag(
                    state.repo.fork(),
                    ref,
                    registry=registry,
                    registry_mode=mode,
                    required_signers=signers,
                    signed_by=state.signed_by,
                )
            self._check_fresh(result.expires, ref.gun)  # the roles this answer rests on
            return replace(result, versions=state.versions)

    def refresh(self, gun: str) -> None:
        """Run the whole TUF client workflow for ``gun`` now and keep the new state
        (what a call does by itself when anything changed).

        Raises:
            NoPinnedRootError: no root is pinned for the repository.
            TrustctlError: the trust data failed verification (see :meth:`verify`).
        """
        repo = self._repository(gun)
        with repo.lock, self._trust.lock(gun):
            repo.state = None
            repo.state = self._refresh(repo)
            repo.checked, repo.failed = next(self._ticks), None
            self.stats.refreshed += 1

    def view(self, gun: str) -> TrustedRepository:
        """The current verified state of ``gun`` after the checks every call makes
        (a fresh view: :meth:`TrustedRepository.lookup` asks python-tuf). Hold no
        view across calls; check ``expiries()`` of what it answered against the clock.

        Raises:
            UsageError: ``gun`` is pinned as a Notary-dialect repository (a TUF 1.0
                view of it does not exist; :meth:`verify` answers for it).
        """
        repo = self._repository(gun)
        arrived = next(self._ticks)
        with repo.lock, self._trust.lock(gun):
            state = self._current(repo, arrived)
            if isinstance(state, _NotaryState):
                raise UsageError(
                    f"{gun} is pinned as a Notary (Docker Content Trust) repository: "
                    "it has no TUF 1.0 view",
                    hint="ask Verifier.verify for its tags",
                )
            return state.repo.fork()

    def trusted_versions(self, gun: str) -> TrustedVersions | None:
        """The versions of the verified state of ``gun`` held in memory and the digest
        of the pin it rests on (None: none yet, or ``gun`` was re-pinned since), without
        asking the trust server or waiting for a call in progress (the pin is read from
        the trust dir). A cache of answers keyed by them misses as soon as any call has
        seen the repository move on (a new timestamp, a new root) and as soon as the
        repository is pinned again, even to a root with the same version."""
        with self._lock:
            repo = self._repos.get(gun)
        state = repo.state if repo is not None else None
        if state is None or self._pin_digest(gun) != state.versions.pinned:
            return None
        return state.versions

    def check_fresh(self, view: TrustedRepository) -> None:
        """Refuse an answer of ``view`` resting on a role expired by the clock.

        Raises:
            StaleMetadataError: a role has expired (a possible freeze attack).
        """
        self._check_fresh(view.expiries(), view.gun)

    def forget(self, gun: str | None = None) -> None:
        """Drop the state kept in memory (of ``gun``, or of every repository)."""
        with self._lock:
            if gun is None:
                dropped = list(self._repos.values())
            else:
                dropped = [self._repos[gun]] if gun in self._repos else []
        for repo in dropped:
            with repo.lock:
                repo.state = None

    # --- internals ---------------------------------------------------------------

    def _repository(self, gun: str) -> _Repository:
        with self._lock:
            repo = self._repos.get(gun)
            if repo is None:
                fetcher = TransportFetcher(self._transport, scope=f"repository:{gun}:pull")
                url = self._layout.metadata_url(self._server, gun)
                url = url if url.endswith("/") else f"{url}/"
                repo = self._repos[gun] = _Repository(gun, fetcher, url)
            return repo

    def _current(self, repo: _Repository, arrived: int) -> _State | _NotaryState:
        """The state to answer a call that arrived at tick ``arrived`` (repo lock held)."""
        state = repo.state
        failed = repo.failed
        if failed is not None and failed[0] > arrived:
            self.stats.shared += 1
            # a check that ended after this call arrived failed: the same error, with a
            # traceback of its own (a re-raised exception would keep growing the old one)
            raise failed[1].with_traceback(None)
        if state is not None and repo.checked > arrived and self._locally_current(repo, state):
            self.stats.shared += 1
            return state
        try:
            answers: dict[str, bytes | int] = {}
            if state is not None and self._still_current(repo, state, answers):
                self.stats.reused += 1
            else:
                repo.state = None
                state = repo.state = self._refresh(repo, answers)
                self.stats.refreshed += 1
        except TrustctlError as e:
            repo.failed = (next(self._ticks), e)
            raise
        repo.checked, repo.failed = next(self._ticks), None
        return state

    def _notary(self, gun: str) -> NotaryState:
        from trustctl.notary.verify import notary_state

        return notary_state(self._trust, gun)

    def _pin_digest(self, gun: str) -> str | None:
        """SHA-256 of the pin of ``gun`` as stored (a TUF root wins, as in the CLI)."""
        data = self._trust.pinned_bytes(gun)
        if data is None:
            data = self._notary(gun).pin_bytes()
        return None if data is None else _digest(data)

    def _refresh(
        self, repo: _Repository, answers: dict[str, bytes | int] | None = None
    ) -> _State | _NotaryState:
        """The full client workflow, from the trusted state on disk (python-tuf, or
        Notary's workflow for a repository pinned as a Notary one)."""
        gun = repo.gun
        if self._trust.pinned_bytes(gun) is None:
            notary = self._notary(gun)
            pin = notary.pin_bytes()
            if pin is not None:
                return self._refresh_notary(repo, notary, pin, answers or {})
        pinned = self._trust.require_pinned(gun)
        cache_dir = self._layout.metadata_dir(self._trust_dir, gun)
        cache_dir.mkdir(parents=True, exist_ok=True)
        trusted = TrustedRepository(
            gun=gun,
            cache_dir=cache_dir,
            metadata_url=repo.metadata_url,
            fetcher=repo.fetcher,
            pinned_root=pinned.data,
            server=self._server,
            label_dir=self._layout.label_dir(self._trust_dir, gun),
            preload=answers,  # what the checks just fetched: asked once per call
            state=self._trust.state(gun, cache_dir),
        )
        trusted.refresh()
        self._check_fresh(trusted.expiries(), gun)
        versions = TrustedVersions(
            root=trusted.root.signed.version,
            timestamp=trusted.timestamp.version,
            snapshot=trusted.snapshot.version,
            targets=trusted.version_of("targets"),
            pinned=_digest(pinned.data),
        )
        return _State(
            trusted,
            trusted.timestamp_bytes,
            trusted.state_marker,
            versions.root,
            versions,
        )

    def _refresh_notary(
        self, repo: _Repository, notary: NotaryState, pin: bytes, answers: dict[str, bytes | int]
    ) -> _NotaryState:
        """Notary's client workflow (:func:`trustctl.notary.verify.open_notary`), by the
        Verifier's transport and clock; what the checks just fetched is not asked again."""
        from trustctl.notary.model import root_certificates
        from trustctl.notary.updater import PreloadedFetch
        from trustctl.notary.verify import open_notary

        gun = repo.gun
        preload = {k: v if isinstance(v, bytes) else None for k, v in answers.items()}
        fetch = PreloadedFetch(self._notary_fetch(repo), preload)
        now = self._clock()
        trusted = open_notary(fetch, self._trust, gun, now)
        self._check_fresh(trusted.expiries(), gun)
        certificates, _ = root_certificates(trusted.root, gun, now)
        versions = TrustedVersions(
            root=trusted.root.file.version,
            timestamp=trusted.timestamp.version,
            snapshot=trusted.snapshot.version,
            targets=trusted.targets.file.version,
            pinned=_digest(pin),
        )
        return _NotaryState(
            trusted,
            fetch.kept.get("timestamp.json") or b"",
            notary.marker(),
            pin,
            versions,
            min(c.leaf.not_valid_after_utc for c in certificates.values()),
        )

    def _notary_fetch(self, repo: _Repository) -> Callable[[str, int], bytes | None]:
        from trustctl.notary.updater import ServerFetch

        return ServerFetch(self._transport, self._server, repo.gun, base=repo.metadata_url)

    def _check_fresh(self, expires: Mapping[str, datetime], gun: str) -> None:
        """Refuse expired roles by our clock.

        Raises:
            StaleMetadataError: a role has expired (a possible freeze attack).
        """
        now = self._clock()
        expired = sorted(role for role, moment in expires.items() if moment <= now)
        if expired:
            e = tuf_exc.ExpiredMetadataError(f"{', '.join(expired)} expired")
            raise map_tuf_error(e, gun, self._server)

    def _still_current(
        self, repo: _Repository, state: _State | _NotaryState, answers: dict[str, bytes | int]
    ) -> bool:
        """Whether ``state`` may answer: no root N+1 on the server, the server's
        timestamp is the one verified, the pinned root is the same, no other process
        refreshed the trust dir to another state, and nothing verified has expired.
        ``answers`` gets what the server said, for the refresh that may follow.

        A Notary repository's new root comes with a new snapshot, and so a new
        timestamp: its timestamp alone is asked."""
        if isinstance(state, _NotaryState):
            from trustctl.notary.updater import MAX_TIMESTAMP_BYTES

            served = self._notary_fetch(repo)("timestamp.json", MAX_TIMESTAMP_BYTES)
            answers["timestamp.json"] = served if served is not None else 404
            return served == state.timestamp and self._locally_current(repo, state)
        next_root = f"{state.root_version + 1}.root.json"
        try:
            answers[next_root] = repo.fetcher.download_bytes(
                f"{repo.metadata_url}{next_root}", _CONFIG.root_max_length
            )
            return False  # a new root: python-tuf must judge it
        except tuf_exc.DownloadHTTPError as e:
            if e.status_code not in (403, 404):
                raise map_tuf_error(e, repo.gun, self._server) from e
            answers[next_root] = e.status_code
        except tuf_exc.DownloadError as e:
            raise map_tuf_error(e, repo.gun, self._server) from e
        try:
            served = answers["timestamp.json"] = repo.fetcher.download_bytes(
                f"{repo.metadata_url}timestamp.json", _CONFIG.timestamp_max_length
            )
        except tuf_exc.DownloadError as e:
            raise map_tuf_error(e, repo.gun, self._server) from e
        if served != state.timestamp:
            return False
        return self._locally_current(repo, state)

    def _locally_current(self, repo: _Repository, state: _State | _NotaryState) -> bool:
        """The checks of :meth:`_still_current` that ask no server: the same pinned
        root, no other process moved the trust dir on, nothing verified has expired."""
        if isinstance(state, _NotaryState):
            if self._trust.pinned_bytes(repo.gun) is not None:
                return False  # pinned as a TUF 1.0 repository meanwhile
            notary = self._notary(repo.gun)
            if notary.pin_bytes() != state.pin or notary.marker() != state.marker:
                return False  # re-pinned, or another process moved the trust dir on
            now = self._clock()
            expiries = state.trusted.expiries().values()
            return state.certificates_until > now and all(m > now for m in expiries)
        if self._trust.pinned_bytes(repo.gun) != state.repo.pinned_root:
            return False  # unpinned or re-pinned meanwhile
        if state.repo.stored_marker() != state.marker:
            return False  # another process moved the trust dir on: python-tuf must judge
        now = self._clock()
        return all(moment > now for moment in state.repo.expiries().values())
