"""The library API: verify tags from a long-running process, in about a millisecond.

An admission controller or a deploy daemon verifies many tags, over hours. Running
the whole TUF client workflow for each (what ``trustctl verify`` does, one process
per call) re-reads, re-parses and re-verifies every metadata file each time. A
:class:`Verifier` keeps the verified trust state of each repository in memory and,
on every call,

1. fetches the current ``timestamp.json`` from the trust server (over a kept-alive
   HTTPS connection), so new signatures, revocations and a frozen server are noticed;
2. if those bytes are exactly the ones it already verified, nothing it trusts has
   expired (by its clock: root, timestamp, snapshot, targets and every delegated
   role loaded so far) and the on-disk cache still holds that timestamp (no other
   process moved the repository on), answers from the verified state in memory: the
   snapshot, targets and hash bins verified before, plus any bin this tag needs,
   verified against that same snapshot;
3. otherwise runs the full client workflow from the previously trusted state on disk
   (python-tuf's ngclient, via :class:`~trustctl.trusted.TrustedRepository`: root
   rotations, rollback, freeze and mix-and-match checks) and keeps the new state.

Every answer is then checked against the clock once more: an expired role in it
fails the call (a freeze attack), as in ``trustctl verify``. The answer is the CLI's
own :class:`~trustctl.verify.VerifiedTag` (digest, who signed, expiry), made by the
same :func:`~trustctl.verify.verify_tag`.

Example:
    >>> verifier = Verifier("https://notary:4443", trust_dir=Path("/etc/trust"), tls_ca="ca.pem")  # doctest: +SKIP
    >>> verifier.verify("registry:5000/app:v1").pinned_reference  # doctest: +SKIP
    'registry:5000/app@sha256:...'
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tuf.api import exceptions as tuf_exc
from tuf.ngclient import UpdaterConfig

from trustctl.context import Overrides, Settings, TrustContext
from trustctl.errors import InvalidReferenceError
from trustctl.fetcher import TransportFetcher
from trustctl.reference import ImageRef, parse_reference
from trustctl.trusted import TrustedRepository, map_tuf_error
from trustctl.verify import REGISTRY_DIGEST, REGISTRY_SKIP, REGISTRY_TAG, VerifiedTag, verify_tag

if TYPE_CHECKING:
    from trustctl.registry import RegistryClient
    from trustctl.transport import Transport

__all__ = ["Verifier", "VerifierStats"]

TIMESTAMP_MAX_BYTES = UpdaterConfig().timestamp_max_length
SignedBy = dict[str, tuple[tuple[str, ...], tuple[str, ...], int, bool]]


@dataclass
class VerifierStats:
    """How calls were answered: from the state in memory, or by the full workflow."""

    reused: int = 0
    refreshed: int = 0


@dataclass
class _State:
    """One repository's verified state: the base view and the timestamp it rests on."""

    repo: TrustedRepository
    timestamp: bytes
    signed_by: SignedBy = field(default_factory=dict)


@dataclass
class _Repository:
    gun: str
    fetcher: TransportFetcher
    timestamp_url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    state: _State | None = None


class Verifier:
    """Verifies tags against the trust server, keeping verified state between calls.

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
        clock: the time expiry is checked against (default: now, UTC).
        timeout: seconds for connecting and for each read.

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
    ) -> None:
        settings = Settings(
            server=server, trust_dir=Path(trust_dir), tls_ca=tls_ca, timeout=timeout
        )
        self._ctx = TrustContext(settings, overrides=Overrides(server_transport=transport))
        self._server = self._ctx.server  # validated now, not at the first call
        self._transport = self._ctx.server_transport
        self._registry = registry
        self._clock = clock or (lambda: datetime.now(UTC))
        self._repos: dict[str, _Repository] = {}
        self._lock = threading.Lock()
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
            TagNotSignedError / SignerPolicyError: not signed (by every signer).
            StaleMetadataError / RollbackError / UntrustedSignatureError /
                TamperedMetadataError: the trust data failed verification.
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
        with repo.lock, self._ctx.trust.lock(ref.gun):
            return self._verify(repo, ref, signers, mode)

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
                url = f"{self._ctx.client.metadata_url(gun)}timestamp.json"
                repo = self._repos[gun] = _Repository(gun, fetcher, url)
            return repo

    def _verify(
        self, repo: _Repository, ref: ImageRef, signers: Sequence[str], mode: str
    ) -> VerifiedTag:
        state = repo.state
        if state is not None and self._still_current(repo, state):
            self.stats.reused += 1
        else:
            repo.state = None
            state = repo.state = self._refresh(ref.gun)
            self.stats.refreshed += 1
        result = verify_tag(
            state.repo.fork(),
            ref,
            registry=self._registry if mode != REGISTRY_SKIP else None,
            registry_mode=mode,
            required_signers=signers,
            signed_by=state.signed_by,
        )
        self._check_fresh(result.expires, ref.gun)  # the roles this answer rests on
        return result

    def _refresh(self, gun: str) -> _State:
        """The full client workflow, from the trusted state on disk (python-tuf)."""
        trusted = self._ctx.open_trusted(gun)
        trusted.refresh()
        self._check_fresh(trusted.expiries(), gun)
        # python-tuf keeps the timestamp it trusts on disk, as it verified it
        return _State(trusted, (trusted.cache_dir / "timestamp.json").read_bytes())

    def _check_fresh(self, expires: Mapping[str, datetime], gun: str) -> None:
        """Refuse expired roles by our clock (python-tuf's own checks use the real time).

        Raises:
            StaleMetadataError: a role has expired (a possible freeze attack).
        """
        now = self._clock()
        expired = sorted(role for role, moment in expires.items() if moment <= now)
        if expired:
            e = tuf_exc.ExpiredMetadataError(f"{', '.join(expired)} expired")
            raise map_tuf_error(e, gun, self._server)

    def _still_current(self, repo: _Repository, state: _State) -> bool:
        """Whether ``state`` may answer: the server's timestamp is the one verified,
        the cache on disk still rests on it, and nothing verified has expired."""
        try:
            served = repo.fetcher.download_bytes(repo.timestamp_url, TIMESTAMP_MAX_BYTES)
        except tuf_exc.DownloadError as e:
            raise map_tuf_error(e, repo.gun, self._server) from e
        if served != state.timestamp:
            return False
        try:
            on_disk = (state.repo.cache_dir / "timestamp.json").read_bytes()
        except OSError:
            return False  # unpinned or re-pinned meanwhile: the cache was dropped
        if on_disk != state.timestamp:
            return False  # another process saw a newer state: python-tuf must judge
        now = self._clock()
        return all(moment > now for moment in state.repo.expiries().values())
