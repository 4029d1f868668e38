"""Admission decisions: each image is verified by :class:`trustctl.api.Verifier`.

The gate adds no trust rule of its own: the policy picks the trust server, the
repository (GUN) and the signers for an image, and the Verifier's answer (or its
error) is the verdict. Around it the gate adds what a webhook needs:

* a deadline: every request is answered before ``timeoutSeconds - 2 s``, whatever
  the trust server does (a verification still running then is a deny), and the
  Verifier gets a budget within it (:class:`Budget`: its retries and reads end well
  before, so a failing trust server is named as the cause rather than a timeout);
* shared work: concurrent requests for the same image share one verification;
* the admission rules: DELETE, UPDATEs of objects being deleted and UPDATEs that
  change no image reference pass; every new or changed reference is verified.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from trustctl.errors import InvalidReferenceError, TrustctlError
from trustctl.gate.cache import VerdictCache
from trustctl.gate.images import ImageSite, UnknownKind, find_images, is_terminating
from trustctl.gate.metrics import Metrics
from trustctl.gate.policy import Policy, PolicyError, Rule, Server, load_policy
from trustctl.gate.review import AdmissionRequest, Verdict
from trustctl.notary.pinning import NotaryPin
from trustctl.reference import ImageRef, parse_reference

__all__ = ["Budget", "Gate", "ImageResult", "PolicyFile"]

logger = logging.getLogger(__name__)

MARGIN = 2.0  # seconds kept back from the API server's timeout
MIN_BUDGET = 0.5
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class Budget:
    """What one verification may spend on the trust server, from the webhook's
    ``timeoutSeconds``: the gate answers within ``deadline``; the Verifier's retries
    of one request stop after half of it, and each connect or read after a quarter
    (at most 5 s). trustctl's own 30 s retry budget would outlive any webhook."""

    timeout_seconds: float = DEFAULT_TIMEOUT

    @property
    def deadline(self) -> float:
        return max(self.timeout_seconds - MARGIN, MIN_BUDGET)

    @property
    def retry(self) -> float:
        return self.deadline / 2

    @property
    def read_timeout(self) -> float:
        return min(5.0, self.deadline / 4)


class VerifierLike(Protocol):
    def verify(
        self, image: str | ImageRef, *, signers: Any = ..., registry_mode: str | None = ...
    ) -> Any: ...

    def trusted_versions(self, gun: str) -> Hashable | None: ...


class PolicyFile:
    """The policy on disk, reloaded when the file changes (an invalid new version is
    logged and the previous one stays in force)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self.generation = 0
        self.last_error: str | None = None
        self.policy = self._load()  # raises PolicyError at startup

    def _load(self) -> Policy:
        st = self.path.stat()
        text = self.path.read_text(encoding="utf-8")
        policy = load_policy(
            text, source=str(self.path), generation=self.generation + 1, base=self.path.parent
        )
        self.generation += 1
        self._stamp = (st.st_mtime_ns, st.st_size)
        return policy

    def current(self) -> Policy:
        try:
            st = self.path.stat()
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp is None or stamp == self._stamp:
            return self.policy
        with self._lock:
            if stamp != self._stamp:
                try:
                    self.policy = self._load()
                    self.last_error = None
                    logger.info("policy reloaded: generation %d", self.generation)
                except (PolicyError, OSError, UnicodeDecodeError) as e:
                    self._stamp = stamp  # do not re-read a bad file on every request
                    self.last_error = str(e)
                    logger.error("policy reload refused, the previous policy stays: %s", e)
        return self.policy


@dataclass(frozen=True)
class ImageResult:
    """One image's verdict."""

    image: str
    ok: bool
    code: str
    message: str
    gun: str = ""
    rule: Rule | None = None
    pinned: str | None = None

    def describe(self) -> str:
        repo = f" (repository {self.gun})" if self.gun else ""
        return f"image {self.image}{repo}: {self.code}: {self.message}"


@dataclass
class _Flight:
    future: Future[Any]
    started: float = field(default_factory=time.monotonic)


class Gate:
    """Decides AdmissionReview requests under a policy.

    Args:
        policy: the policy (a :class:`PolicyFile`, or a callable returning a Policy).
        verifier_for: builds the :class:`~trustctl.api.Verifier` for a trust server,
            within the gate's :class:`Budget` (its retry budget and read timeout).
        timeout_seconds: the webhook configurations' ``timeoutSeconds``: the deadline
            of a request that names none (``?timeout=``) and the Verifier's budget.
        workers: verifications running at once (the rest queue, within the deadline).
        state_check: called with the GUN before each verification; raises a
            TrustctlError when the persisted trusted state cannot be relied on
            (:class:`~trustctl.gate.state.StateGuard`).
        cache: the verdict cache (default: 1 s for verified images, 2 s for
            definitive denials; see :mod:`trustctl.gate.cache`).
        pin: ``pin(gun, root, source)`` makes sure a rule's root (a TUF 1.0 root.json,
            or a Notary pin) is the one pinned for ``gun``
            (:class:`~trustctl.gate.state.RootPins`).
    """

    def __init__(
        self,
        policy: PolicyFile | Callable[[], Policy],
        verifier_for: Callable[[Server, Budget], VerifierLike],
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT,
        workers: int = 32,
        metrics: Metrics | None = None,
        state_check: Callable[[str], None] | None = None,
        cache: VerdictCache[ImageResult] | None = None,
        pin: Callable[[str, bytes | NotaryPin, str], None] | None = None,
    ) -> None:
        self._policy = policy.current if isinstance(policy, PolicyFile) else policy
        self._verifier_for = verifier_for
        self.budget = Budget(timeout_seconds)
        self._verifiers: dict[str, VerifierLike] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gate-verify")
        self._flights: dict[tuple[Any, ...], _Flight] = {}
        self._lock = threading.Lock()
        self._verifiers_lock = threading.Lock()
        self.metrics = metrics or Metrics()
        self._state_check = state_check
        self._pin = pin
        #: Offline mode: a warning to add to allowed answers (the bundle nears its end).
        self.freshness_warning: Callable[[], str | None] | None = None
        self.cache: VerdictCache[ImageResult] = cache if cache is not None else VerdictCache()

    # --- requests -----------------------------------------------------------------

    def validate(
        self, req: AdmissionRequest, timeout: float | None = None, *, received: float | None = None
    ) -> Verdict:
        """The validating webhook: deny unless every new image verifies (or warns).
        ``received``: ``time.monotonic()`` at the request's arrival (default: now);
        the deadline and the latency metric run from it."""
        start = time.monotonic() if received is None else received
        verdict = self._validate(req, self._deadline(start, timeout))
        if verdict.allowed and self.freshness_warning is not None:
            note = self.freshness_warning()
            if note:
                verdict.warnings.append(note)
        self.metrics.decided("validate", verdict, time.monotonic() - start)
        return verdict

    def mutate(
        self, req: AdmissionRequest, timeout: float | None = None, *, received: float | None = None
    ) -> Verdict:
        """The mutating webhook: pin each verified ``name:tag`` to ``name:tag@digest``.
        It never denies: the validating webhook decides, after every mutator."""
        start = time.monotonic() if received is None else received
        verdict = self._mutate(req, self._deadline(start, timeout))
        self.metrics.decided("mutate", verdict, time.monotonic() - start)
        return verdict

    def _deadline(self, start: float, timeout: float | None) -> float:
        if timeout is None:
            return start + self.budget.deadline
        return start + Budget(timeout).deadline

    def _sites(self, req: AdmissionRequest) -> tuple[str, list[ImageSite]] | Verdict:
        """The image sites to check, or the verdict when there is nothing to check."""
        if req.operation in ("DELETE", "CONNECT"):
            return Verdict(True, reason="no-images")
        if req.object is None:
            return Verdict(False, "the request carries no object to check", reason="bad-request")
        if req.operation == "UPDATE" and (
            is_terminating(req.old_object) or is_terminating(req.object)
        ):
            return Verdict(True, reason="terminating")
        try:
            sites = find_images(req.object, req.group, req.kind)
            old = (
                {s.image for s in find_images(req.old_object, req.group, req.kind)}
                if req.operation == "UPDATE" and req.old_object is not None
                else set()
            )
        except UnknownKind as e:
            return Verdict(
                False, f"{e}; the gate refuses what it cannot check", reason="unknown-kind"
            )
        fresh = [s for s in sites if s.image not in old]
        if not fresh:
            return Verdict(True, reason="unchanged" if sites else "no-images")
        return ("check", fresh)

    def _validate(self, req: AdmissionRequest, deadline: float) -> Verdict:
        sites = self._sites(req)
        if isinstance(sites, Verdict):
            return sites
        results = self._check_all([s.image for s in sites[1]], deadline)
        denied: list[ImageResult] = []
        warned: list[ImageResult] = []
        for r in results.values():
            if r.ok:
                continue
            (warned if r.rule is not None and r.rule.mode == "warn" else denied).append(r)
        if denied:
            msg = "; ".join(r.describe() for r in denied)
            return Verdict(
                False,
                f"{msg} (the gate admits only images whose signature it verified; "
                "a failed verification may be an attack)",
                reason=denied[0].code,
                audit={"decision": "deny", "images": ", ".join(r.image for r in denied)},
            )
        verdict = Verdict(True, reason="verified")
        if warned:
            verdict.reason = "warned"
            verdict.warnings = [f"unverified image (warn mode): {r.describe()}" for r in warned]
            verdict.audit = {
                "decision": "warn",
                "warned": "; ".join(r.describe() for r in warned),
            }
        return verdict

    def _mutate(self, req: AdmissionRequest, deadline: float) -> Verdict:
        sites = self._sites(req)
        if isinstance(sites, Verdict):
            return Verdict(True, reason=sites.reason if sites.allowed else "left-to-validation")
        results = self._check_all([s.image for s in sites[1]], deadline)
        patch = []
        for site in sites[1]:
            r = results[site.image]
            pin = r.ok and r.rule is not None and r.rule.mode != "verify-only"
            if pin and r.pinned and r.pinned != site.image:
                patch.append({"op": "replace", "path": site.path, "value": r.pinned})
        return Verdict(True, reason="pinned" if patch else "unchanged", patch=patch or None)

    # --- images -------------------------------------------------------------------

    def _check_all(self, images: list[str], deadline: float) -> dict[str, ImageResult]:
        policy = self._policy()
        pending: dict[str, _Rebound | ImageResult] = {}
        for image in dict.fromkeys(images):
            pending[image] = self._start(image, policy)
        out: dict[str, ImageResult] = {}
        for image, job in pending.items():
            if isinstance(job, ImageResult):
                out[image] = job
                continue
            try:
                out[image] = job.result(timeout=max(deadline - time.monotonic(), 0))
            except FutureTimeout:
                out[image] = ImageResult(
                    image,
                    False,
                    "TIMEOUT",
                    "the trust server did not answer in time; the gate fails closed",
                    gun=job.gun,
                )
        return out

    def _start(self, image: str, policy: Policy) -> _Rebound | ImageResult:
        try:
            ref = parse_reference(image)
        except InvalidReferenceError as e:
            return ImageResult(image or "<none>", False, e.code, str(e))
        rule = policy.rule_for(ref)
        if rule is None:
            if policy.unmatched == "allow":
                return ImageResult(
                    image, True, "UNMATCHED", "no rule matches; the policy allows it"
                )
            return ImageResult(
                image,
                False,
                "NO_RULE",
                "no policy rule matches this image and the policy denies unmatched images",
            )
        gun = rule.gun_for(ref)
        if ref.tag is None and ref.digest is not None:
            return ImageResult(
                image,
                False,
                "NEEDS_TAG",
                "a digest alone cannot be matched to a signature: deploy name:tag "
                "(the gate pins it) or name:tag@sha256:...",
                gun,
                rule,
            )
        tag = ref.tag or "latest"
        target = f"{gun}:{tag}" + (f"@{ref.digest}" if ref.digest else "")
        server = policy.servers[rule.server]
        # the trusted versions as the Verifier holds them now: a verdict resting on an
        # older state of the repository is never answered (read before verifying, so
        # an entry is never keyed by a state newer than the one it rests on)
        key = (policy.generation, rule.server, target, rule.signers, self._versions(server, gun))
        hit = self.cache.lookup(key)
        if hit is not None:
            cached, renew = hit
            if renew:  # verify again in the background; this request does not wait
                self._flight(key, server, target, rule, ref, tag, image)
            return _rebind(cached, image)
        flight = self._flight(key, server, target, rule, ref, tag, image)
        return _Rebound(flight.future, image, gun)

    def _versions(self, server: Server, gun: str) -> Hashable | None:
        try:
            return self._verifier(server).trusted_versions(gun)
        except TrustctlError:
            return None  # no Verifier (bad configuration): the verification says why

    def _flight(
        self,
        key: tuple[Any, ...],
        server: Server,
        target: str,
        rule: Rule,
        ref: ImageRef,
        tag: str,
        image: str,
    ) -> _Flight:
        """The verification of ``key`` in flight, started now if there is none.

        Flights are keyed without the trusted versions: a request that reads the
        versions a verification in flight has just moved the state to joins it, as
        one that read the older ones does (one check of the trust server, not two).
        """
        started = False
        fkey = key[:-1]
        with self._lock:
            flight = self._flights.get(fkey)
            if flight is None:
                fut = self._pool.submit(self._verify, server, target, rule, ref, tag, image, key)
                flight = self._flights[fkey] = _Flight(fut)
                started = True
        if started:
            # outside the lock: a verification already finished runs the callback here
            flight.future.add_done_callback(lambda _f: self._land(fkey))
        return flight

    def _land(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            self._flights.pop(key, None)

    def _verifier(self, server: Server) -> VerifierLike:
        # its own lock: building a Verifier must not hold up requests registering work
        with self._verifiers_lock:
            v = self._verifiers.get(server.name)
            if v is None:
                v = self._verifiers[server.name] = self._verifier_for(server, self.budget)
            return v

    def _verify(
        self,
        server: Server,
        target: str,
        rule: Rule,
        ref: ImageRef,
        tag: str,
        image: str,
        key: tuple[Any, ...],
    ) -> ImageResult:
        gun = rule.gun_for(ref)
        try:
            if rule.root is not None and self._pin is not None:
                self._pin(gun, rule.root, rule.root_source)
            if self._state_check is not None:
                self._state_check(gun)
            verified = self._verifier(server).verify(target, signers=rule.signers)
        except TrustctlError as e:
            result = ImageResult(image, False, e.code, str(e), gun, rule)
            self.cache.put_negative(key, result, e.code)
            return result
        except Exception as e:
            logger.exception("verification of %s failed unexpectedly", target)
            return ImageResult(
                image, False, "INTERNAL", f"verification failed: {type(e).__name__}", gun, rule
            )
        pinned = f"{ref.registry}/{ref.repository}:{tag}@{verified.digest}"
        self.metrics.expiries(gun, verified.expires)
        result = ImageResult(image, True, "VERIFIED", "signed", gun, rule, pinned)
        # keyed by the state the answer rests on (the key's own versions were read
        # before verifying: none yet for a cold repository, or an older state)
        versions = getattr(verified, "versions", None)
        if versions is not None:
            key = (*key[:-1], versions)
        self.cache.put_positive(key, result, verified.fresh_until)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Rebound:
    """A shared verification's future, answering for this request's own image text."""

    def __init__(self, future: Future[ImageResult], image: str, gun: str) -> None:
        self._future = future
        self._image = image
        self.gun = gun

    def result(self, timeout: float | None = None) -> ImageResult:
        return _rebind(self._future.result(timeout=timeout), self._image)


def _rebind(r: ImageResult, image: str) -> ImageResult:
    """A shared verdict, told for this request's own image text."""
    if r.image == image:
        return r
    return ImageResult(image, r.ok, r.code, r.message, r.gun, r.rule, r.pinned)
