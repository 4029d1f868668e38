"""Bounded in-process caches of the server: hints and immutable files, never a
source of trust (every entry is either checked again or keyed by content)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from notary_server.storage import StoredFile

__all__ = ["Bounded", "FileCache"]

K = TypeVar("K")
V = TypeVar("V")


class Bounded(Generic[K, V]):
    """A thread-safe map that keeps the ``size`` entries stored most recently."""

    def __init__(self, size: int) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def forget(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)


class FileCache:
    """Stored files by (gun, role, sha256), bounded in bytes. Correct across replicas:
    a file's bytes never change, and "which file is current" is asked of the database
    (a cheap query of version and checksum), or reused until the next write
    (notary_server/generation.py)."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: OrderedDict[tuple[str, str, str], StoredFile] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, gun: str, role: str, sha256: str) -> StoredFile | None:
        with self._lock:
            found = self._items.get((gun, role, sha256))
            if found is not None:
                self._items.move_to_end((gun, role, sha256))
            return found

    def put(self, f: StoredFile) -> None:
        if len(f.data) > self._max // 8:
            return
        with self._lock:
            key = (f.gun, f.role, f.sha256)
            if key not in self._items:
                self._items[key] = f
                self._bytes += len(f.data)
            while self._bytes > self._max:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old.data)
