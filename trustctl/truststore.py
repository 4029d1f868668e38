"""Root pinning and the per-repository directories under the trust dir.

No trust on first use by default: verification of a GUN starts from a root that was
pinned on purpose, by ``trustctl init`` (the owner), by ``trustctl trust pin GUN
ROOT_FILE`` or ``--keyid`` (a deployer who got the root or its key id out of band),
or by an explicit ``--tofu`` that says which root keys it accepted. From the pinned
root, python-tuf follows every later root rotation (each new root must be signed by
the previous one), so deployers need no change when the owner rotates keys.

Layout, per GUN::

    <trust dir>/tuf/<gun>/pinned_root.json   the trust anchor (raw bytes)
    <trust dir>/tuf/<gun>/pin.json           how and when it was pinned
    <trust dir>/tuf/<gun>/trusted_state.json verified from this pin before (trustedstate.py)
    <trust dir>/tuf/<gun>/metadata/          python-tuf's verified cache
    <trust dir>/tuf/<gun>/verified/          trustctl's copy of the bytes python-tuf got
    <trust dir>/tuf/<gun>/changes/           staged changes (see changes.py)
    <trust dir>/tuf/<gun>/.lock              one trustctl at a time per GUN

Example:
    >>> store = TrustStore(Path("~/.trustctl").expanduser())  # doctest: +SKIP
    >>> store.pin("127.0.0.1:5000/app", root_bytes, source="file root.json")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustctl.atomicfile import write_atomic
from trustctl.errors import NoPinnedRootError
from trustctl.rootchain import parse_root

if TYPE_CHECKING:
    from tuf.api.metadata import Metadata, Root

    from trustctl.trustedstate import TufState

__all__ = ["PinnedRoot", "TrustStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PinnedRoot:
    """A pinned root: its bytes and what it says about itself."""

    gun: str
    data: bytes
    version: int
    keyids: tuple[str, ...]
    threshold: int
    source: str
    pinned_at: str


class TrustStore:
    """Per-GUN state under ``<trust dir>/tuf``."""

    def __init__(self, trust_dir: Path) -> None:
        self.trust_dir = trust_dir
        self.root = trust_dir / "tuf"
        self._checked: dict[bytes, Metadata[Root]] = {}  # pinned bytes already verified

    def gun_dir(self, gun: str) -> Path:
        # GUNs are validated by reference.parse_gun: no "..", no control characters.
        return self.root / gun

    def cache_dir(self, gun: str) -> Path:
        path = self.gun_dir(gun) / "metadata"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def changes_dir(self, gun: str) -> Path:
        return self.gun_dir(gun) / "changes"

    @contextlib.contextmanager
    def lock(self, gun: str) -> Iterator[None]:
        """Hold the GUN's lock file (python-tuf's cache is single-process)."""
        directory = self.gun_dir(gun)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # --- pinning -------------------------------------------------------------------

    def pinned(self, gun: str) -> PinnedRoot | None:
        path = self.gun_dir(gun) / "pinned_root.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        md = self._checked.get(data)
        if md is None:  # a command asks several times; parse and verify the bytes once
            md = self._checked[data] = parse_root(data, what=f"the pinned root of {gun} ({path})")
        info: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            info = json.loads((self.gun_dir(gun) / "pin.json").read_text())
        role = md.signed.roles["root"]
        return PinnedRoot(
            gun,
            data,
            md.signed.version,
            tuple(role.keyids),
            role.threshold,
            str(info.get("source", "unknown")),
            str(info.get("pinned_at", "")),
        )

    def pinned_bytes(self, gun: str) -> bytes | None:
        """The pinned root's bytes as stored (not parsed or verified), or None."""
        try:
            return (self.gun_dir(gun) / "pinned_root.json").read_bytes()
        except FileNotFoundError:
            return None

    def require_pinned(self, gun: str) -> PinnedRoot:
        """The pinned root of ``gun``.

        Raises:
            NoPinnedRootError: nothing is pinned for ``gun``.
        """
        pinned = self.pinned(gun)
        if pinned is None:
            raise NoPinnedRootError(
                f"no root is pinned for {gun}, so nothing about it can be verified yet",
                hint=f"get the repository's root.json from its owner and run `trustctl trust pin {gun} root.json` "
                f"(or `trustctl trust pin {gun} --keyid ID`; --tofu trusts whatever the server sends)",
            )
        return pinned

    def pin(self, gun: str, data: bytes, *, source: str) -> PinnedRoot:
        """Pin ``data`` (root metadata) as the trust anchor of ``gun``.

        The verified cache is dropped, so the next verification starts from the pin.

        Raises:
            UsageError / UntrustedSignatureError: not a self-signed root.
        """
        parse_root(data, what="the root to pin")
        directory = self.gun_dir(gun)
        write_atomic(directory / "pinned_root.json", data)
        pinned_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_atomic(
            directory / "pin.json", json.dumps({"source": source, "pinned_at": pinned_at}).encode()
        )
        self.clear_cache(gun)
        pinned = self.pinned(gun)
        assert pinned is not None
        logger.info("pinned root v%d of %s (%s)", pinned.version, gun, source)
        return pinned

    def unpin(self, gun: str) -> bool:
        """Forget the pin and the cache of ``gun``. True when something was pinned."""
        directory = self.gun_dir(gun)
        existed = (directory / "pinned_root.json").exists()
        for name in ("pinned_root.json", "pin.json"):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()
        self.clear_cache(gun)
        return existed

    def clear_cache(self, gun: str) -> None:
        """Drop the trusted state and the mark that it was verified: the next
        verification starts over from the pin (see :mod:`trustctl.trustedstate`)."""
        from trustctl.trustedstate import clear_marker

        clear_marker(self.gun_dir(gun))
        for name in ("metadata", "verified"):
            shutil.rmtree(self.gun_dir(gun) / name, ignore_errors=True)

    def state(self, gun: str, metadata_dir: Path | None = None) -> TufState:
        """The guard on ``gun``'s trusted state (python-tuf's cache in ``metadata_dir``,
        default ``<gun dir>/metadata``; see :mod:`trustctl.trustedstate`)."""
        from trustctl.trustedstate import TufState

        return TufState(gun, self.gun_dir(gun), metadata_dir or self.gun_dir(gun) / "metadata")

    def list_pinned(self) -> list[str]:
        """GUNs with a pinned root, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            str(p.parent.relative_to(self.root)) for p in self.root.rglob("pinned_root.json")
        )
