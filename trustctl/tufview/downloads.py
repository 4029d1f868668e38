"""What python-tuf downloaded: the recording fetcher and trustctl's own copy of those
bytes (the label store). Nothing here is trusted as stored: labels verify again.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote

from tuf.api import exceptions as tuf_exc
from tuf.ngclient import FetcherInterface

__all__ = ["FILE_RE", "LabelStore", "RecordingFetcher", "store_key"]


FILE_RE = re.compile(r"^(?:(\d+)\.)?(.+)\.json$")


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


def store_key(name: str) -> str | None:
    """Store key of a downloaded file name: ``root.N`` for roots, else the role."""
    m = FILE_RE.match(name)
    if m is None:
        return None
    version, role = m.group(1), unquote(m.group(2))
    if role == "root":
        return f"root.{version}" if version is not None else None
    return role
