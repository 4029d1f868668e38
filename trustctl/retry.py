"""Riding through a trust server, signer or database restart: bounded, jittered retries.

A restart of the signing service or of the database makes the trust server answer
``503`` for a few seconds; a restarted replica behind a load balancer refuses
connections or makes the proxy answer ``502``/``504``. trustctl waits and tries
again, inside a total time budget per operation (``--retry-budget``,
``TRUSTCTL_RETRY_BUDGET``; default 30 s, 0 turns retries off), with jittered
exponential backoff, never sooner than the server's ``Retry-After`` asks.

What is retried, by :class:`RetryingTransport`:

* idempotent requests (GET, HEAD, PUT, DELETE) that got a retriable answer (502,
  503, 504) or no answer at all (connection refused, reset, timed out);
* a POST only when the server certainly stored nothing: it answered ``503`` with
  ``STORAGE_UNAVAILABLE`` or ``SIGNER_UNAVAILABLE``, or the connection was refused
  before the request was sent.

A POST whose answer was lost after it was sent (a reset, a proxy's 502 or 504) may or
may not have been stored: the transport hands that back, and the publisher
(:mod:`trustctl.repo`) reconciles before it tries again, by reading the repository
and checking whether its upload is already there.

Every retry is logged at INFO (shown with ``-v``): what failed, why, and when the
next try comes.

Example:
    >>> policy = RetryPolicy(budget=0)
    >>> policy.start().wait("HTTP 503")  # no budget: no retry
    False
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from trustctl.transport import (
    DEFAULT_MAX_BYTES,
    MultipartFile,
    Response,
    Transport,
    TransportError,
)

__all__ = [
    "DEFAULT_BUDGET",
    "REFUSED_CODES",
    "RETRIABLE_STATUS",
    "Backoff",
    "RetryPolicy",
    "RetryingTransport",
    "error_code",
    "retry_after",
]

logger = logging.getLogger(__name__)

DEFAULT_BUDGET = 30.0
#: Server error codes that promise nothing was stored: a refused write is safe to resend.
REFUSED_CODES = frozenset({"STORAGE_UNAVAILABLE", "SIGNER_UNAVAILABLE"})
RETRIABLE_STATUS = frozenset({502, 503, 504})
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry. Clock, sleep and randomness are injected.

    Args:
        budget: seconds one operation may spend, first try included; 0: no retries.
        first_delay: the first backoff (seconds); it doubles with each retry...
        max_delay: ...up to this; each delay is drawn between half of it and all of it.
    """

    budget: float = DEFAULT_BUDGET
    first_delay: float = 0.25
    max_delay: float = 4.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random

    def start(self) -> Backoff:
        """A fresh budget for one operation (start it before the first try)."""
        return Backoff(self, self.clock())


@dataclass
class Backoff:
    """The retries of one operation: :meth:`wait` before each one."""

    policy: RetryPolicy
    started: float
    retries: int = 0
    _slept: float = field(default=0.0, repr=False)

    @property
    def spent(self) -> float:
        """Seconds since the operation started (at least the time slept, for fake clocks)."""
        return max(self.policy.clock() - self.started, self._slept)

    def wait(self, reason: str, retry_after: float | None = None) -> bool:
        """Sleep before the next try, saying why; False when the budget allows none.

        ``retry_after`` (the server's ``Retry-After``) is the least delay; when it is
        longer than the budget left, the operation gives up instead.
        """
        policy = self.policy
        spent = self.spent
        left = policy.budget - spent
        step = min(policy.max_delay, policy.first_delay * 2**self.retries)
        delay = step / 2 + policy.random() * step / 2
        if retry_after is not None:
            delay = max(delay, retry_after)
        if left <= 0 or delay > left:
            return False
        self.retries += 1
        logger.info(
            "%s; retry %d in %.1f s (%.1f s of the %g s retry budget spent)",
            reason,
            self.retries,
            delay,
            spent,
            policy.budget,
        )
        policy.sleep(delay)
        self._slept += delay
        return True

    def gave_up(self) -> str:
        """The note appended to the final error: tries and time spent."""
        tries = self.retries + 1
        return f"gave up after {tries} tr{'y' if tries == 1 else 'ies'} in {self.spent:.1f} s"


def error_code(resp: Response) -> str | None:
    """The first error code of a trust-server error envelope, if the body is one."""
    try:
        code = resp.json()["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return code if isinstance(code, str) else None


def retry_after(
    resp: Response, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date), if any."""
    value = (resp.header("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now()).total_seconds())


def _why(resp: Response) -> str:
    code = error_code(resp)
    return f"HTTP {resp.status} {code}" if code else f"HTTP {resp.status}"


class RetryingTransport:
    """A :class:`~trustctl.transport.Transport` that retries what is safe to retry
    (see the module docstring) inside ``policy``'s budget.

    The last answer or error is handed back when the budget is spent: a
    :class:`Response` with ``gave_up`` set, or a :class:`TransportError` whose reason
    ends with the tries and seconds spent.
    """

    def __init__(self, inner: Transport, policy: RetryPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        files: Sequence[MultipartFile] | None = None,
        scope: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Response:
        backoff = self.policy.start()
        idempotent = method in IDEMPOTENT
        what = f"{method} {urlsplit(url).path}"
        while True:
            try:
                resp = self.inner.request(
                    method,
                    url,
                    headers=headers,
                    body=body,
                    files=files,
                    scope=scope,
                    max_bytes=max_bytes,
                )
            except TransportError as e:
                safe = e.retriable and (idempotent or not e.sent)
                if safe and backoff.wait(f"{what}: {e.reason}"):
                    continue
                if backoff.retries:
                    raise TransportError(
                        e.url, f"{e.reason} ({backoff.gave_up()})", tls=e.tls, sent=e.sent
                    ) from e
                raise
            if resp.status not in RETRIABLE_STATUS:
                return resp
            if not idempotent and not (resp.status == 503 and error_code(resp) in REFUSED_CODES):
                return resp  # the request may have been carried out: the caller reconciles
            if backoff.wait(f"{what}: {_why(resp)}", retry_after(resp)):
                continue
            return replace(resp, gave_up=backoff.gave_up()) if backoff.policy.budget > 0 else resp
