"""A write counter the server's worker processes share, and the hint it makes safe.

Every read of a current file (``timestamp.json`` most of all) asks the database which
version is current: one cheap query, but on the hottest path there is. A server's
workers share a :class:`Generation` that grows after every committed write (the store
calls :meth:`Generation.bump` after each commit), so a worker may reuse its last
answer for a role while no write has happened since, for at most ``ttl`` seconds
(:class:`CurrentHints`). Within one server a write is therefore seen at once by every
worker; another server on the same database (a replica) sees it within ``ttl``, as a
cache that honours the ``Cache-Control: max-age`` this server sends anyway would.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable

__all__ = ["MISSING", "CurrentHints", "Generation", "SharedGeneration"]

#: What :meth:`CurrentHints.get` answers when it has no usable hint.
MISSING = object()


class Generation:
    """A number that grows after every committed write (this process only)."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def bump(self) -> None:
        with self._lock:
            self._value += 1

    def value(self) -> int:
        return self._value


class SharedGeneration(Generation):
    """A :class:`Generation` in anonymous shared memory: made before the server forks
    its workers, it is one number for all of them.

    A bump is a read and a write, not atomic across processes: two at once may count
    as one. That is harmless: each bump follows its own commit, so a reader that sees
    a new number asks the database after every commit that came before it.
    """

    _CELL = struct.Struct("q")

    def __init__(self) -> None:
        super().__init__()
        self._mem = mmap.mmap(-1, self._CELL.size)

    def bump(self) -> None:
        with self._lock:
            self._CELL.pack_into(self._mem, 0, self._CELL.unpack_from(self._mem, 0)[0] + 1)

    def value(self) -> int:
        value: int = self._CELL.unpack_from(self._mem, 0)[0]
        return value


class CurrentHints:
    """The last answer to "which version of (gun, role) is current", reused while the
    generation is unchanged and for at most ``ttl`` seconds; never a source of trust
    (the file itself comes by its checksum)."""

    def __init__(
        self,
        generation: Generation,
        ttl: float,
        monotonic: Callable[[], float] = time.monotonic,
        size: int = 4096,
    ) -> None:
        self.generation = generation
        self.ttl = ttl
        self._monotonic = monotonic
        self._size = size
        self._hints: dict[tuple[str, str], tuple[int, float, tuple[int, str] | None]] = {}

    def get(self, gun: str, role: str) -> object:
        """The remembered digest (or None: nothing stored), or :data:`MISSING`."""
        hint = self._hints.get((gun, role))
        if hint is None:
            return MISSING
        generation, at, digest = hint
        if generation != self.generation.value() or self._monotonic() - at > self.ttl:
            return MISSING
        return digest

    def start(self) -> tuple[int, float]:
        """Call before asking the database; pass the result to :meth:`put`."""
        return self.generation.value(), self._monotonic()

    def put(
        self, gun: str, role: str, started: tuple[int, float], digest: tuple[int, str] | None
    ) -> None:
        if len(self._hints) >= self._size:
            self._hints.clear()  # bounded; refilled by the next reads
        self._hints[(gun, role)] = (started[0], started[1], digest)
