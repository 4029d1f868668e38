"""The gate's verdict cache: bounded, keyed so that a policy change misses it.

Keys carry the policy generation, the trust server, the repository and reference
(``gun:tag[@digest]``) and the required signers, so a changed policy is never
answered from an older verdict. A positive entry lives at most ``ttl`` seconds and
never past the earliest expiry of the metadata it rests on (``fresh_until``); a
negative entry only for a definitive verdict (the trust data says no) and at most
:data:`NEGATIVE_MAX` seconds; errors of transport, time or state are never cached.

Renewal ahead of time: the first hit in the second half of an entry's life is told to
renew it (:meth:`VerdictCache.lookup`), so the gate verifies again in the background
while that hit, and the ones after it, are answered at once; a steady stream of
requests for one image never waits for the trust server. An entry is never answered
past its own time: if the renewal has not landed by then, requests wait for it (and
fail closed at their deadline).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

__all__ = ["DEFINITIVE", "NEGATIVE_MAX", "VerdictCache"]

NEGATIVE_MAX = 10.0
#: Codes that are the trust data's answer, not a failure to get one.
DEFINITIVE = frozenset(
    {"NOT_SIGNED", "SIGNER_POLICY", "DIGEST_MISMATCH", "NEEDS_TAG", "NO_RULE", "INVALID_REFERENCE"}
)

V = TypeVar("V")


class VerdictCache(Generic[V]):
    """An LRU of at most ``size`` entries, each with its own deadline."""

    def __init__(
        self,
        *,
        ttl: float = 1.0,
        negative_ttl: float = 2.0,
        size: int = 100_000,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = min(negative_ttl, NEGATIVE_MAX)
        self.size = size
        self._clock = clock or (lambda: datetime.now(UTC))
        #: key -> [until, value, renew_at] (renew_at: the first hit from then renews)
        self._entries: OrderedDict[Hashable, list[Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.renewals = 0

    def get(self, key: Hashable) -> V | None:
        hit = self.lookup(key)
        return None if hit is None else hit[0]

    def lookup(self, key: Hashable) -> tuple[V, bool] | None:
        """The live entry for ``key`` and whether the caller should renew it now
        (true once per entry, for the first hit in the second half of its life)."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            renew = entry[2] is not None and entry[2] <= now
            if renew:
                entry[2] = None
                self.renewals += 1
            return entry[1], renew

    def put_positive(self, key: Hashable, value: V, fresh_until: datetime) -> None:
        if self.ttl > 0:
            self._put(key, value, min(self._clock() + timedelta(seconds=self.ttl), fresh_until))

    def put_negative(self, key: Hashable, value: V, code: str) -> None:
        if code in DEFINITIVE and self.negative_ttl > 0:
            self._put(key, value, self._clock() + timedelta(seconds=self.negative_ttl))

    def _put(self, key: Hashable, value: V, until: datetime) -> None:
        now = self._clock()
        if until <= now:
            return
        entries = self._entries
        with self._lock:
            entries[key] = [until, value, now + (until - now) / 2]
            entries.move_to_end(key)
            while len(entries) > self.size:
                entries.popitem(last=False)
            # the least recently used entries go once their time is up (lookups drop
            # only the entries they ask for): a stream of distinct references keeps
            # only the entries still alive, not up to ``size`` dead ones
            for _ in range(2):
                oldest = next(iter(entries.values()), None)
                if oldest is None or oldest[0] > now:
                    break
                entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
