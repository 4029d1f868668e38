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
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from trustctl.errors import NoPinnedRootError, UntrustedSignatureError, UsageError

if TYPE_CHECKING:  # python-tuf is imported when a root is read: `status` needs none
    from tuf.api.metadata import Metadata, Root

__all__ = [
    "MAX_ROOT_ROTATIONS",
    "PinnedRoot",
    "TrustStore",
    "parse_root",
    "parse_root_chain",
    "verify_root_chain",
    "write_atomic",
]

logger = logging.getLogger(__name__)

# The most root versions a chain may have (python-tuf's UpdaterConfig default).
MAX_ROOT_ROTATIONS = 256


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


def parse_root(data: bytes, *, what: str) -> Metadata[Root]:
    """Parse root metadata and check it is signed by a threshold of its own root keys.

    Raises:
        UsageError: not root metadata.
        UntrustedSignatureError: not self-signed by a threshold of its root keys.
    """
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, Root
    from tuf.api.serialization import DeserializationError, SerializationError

    try:
        md = Metadata[Root].from_bytes(data)
    except DeserializationError as e:
        raise UsageError(f"{what} is not TUF root metadata: {e}") from e
    if not isinstance(md.signed, Root):
        raise UsageError(f"{what} is {md.signed.type} metadata, not root")
    try:
        md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
    except SerializationError as e:  # e.g. a float where canonical JSON allows none
        raise UsageError(
            f"{what} is not TUF root metadata: its signed part has no canonical JSON form "
            "(a float, or a number where an integer belongs?)"
        ) from e
    except UnsignedMetadataError as e:
        raise UntrustedSignatureError(
            f"{what} is not signed by a threshold of its own root keys: {e}; refusing to pin it"
        ) from e
    return md


def verify_root_chain(roots: Sequence[bytes], *, what: str) -> list[Metadata[Root]]:
    """Check root versions the way a TUF client walks them, with python-tuf's Metadata API.

    The first root must be signed by a threshold of its own root keys; each next one
    must be root metadata of exactly the next version, signed by a threshold of the
    previous root's root keys *and* of its own (TUF specification 5.3.4-5.3.5).

    Raises:
        UsageError: empty, too long, or not root metadata.
        UntrustedSignatureError: a step does not verify: this may be an attack.
    """
    from tuf.api.exceptions import UnsignedMetadataError
    from tuf.api.metadata import Metadata, Root
    from tuf.api.serialization import DeserializationError

    if not roots:
        raise UsageError(f"{what} holds no root metadata")
    if len(roots) > MAX_ROOT_ROTATIONS:
        raise UsageError(f"{what} holds more than {MAX_ROOT_ROTATIONS} root versions")
    chain = [parse_root(roots[0], what=f"{what}: the first root")]
    for data in roots[1:]:
        previous = chain[-1].signed
        step = f"root v{previous.version + 1}"
        try:
            md = Metadata[Root].from_bytes(data)
        except DeserializationError as e:
            raise UsageError(f"{what}: {step} is not TUF root metadata: {e}") from e
        if not isinstance(md.signed, Root):
            raise UsageError(f"{what}: {step} is {md.signed.type} metadata, not root")
        if md.signed.version != previous.version + 1:
            raise UntrustedSignatureError(
                f"{what}: root v{previous.version} is followed by root v{md.signed.version}, not "
                f"v{previous.version + 1}; this may be an attack (a rollback or a forged chain)"
            )
        for signer, whose in ((previous, "previous root's"), (md.signed, "own")):
            try:
                signer.verify_delegate(Root.type, md.signed_bytes, md.signatures)
            except UnsignedMetadataError as e:
                raise UntrustedSignatureError(
                    f"{what}: {step} is not signed by a threshold of its {whose} root keys ({e}); "
                    "this may be an attack",
                    hint="do not pin it; ask the repository owner",
                ) from e
        chain.append(md)
    return chain


def parse_root_chain(data: bytes, *, what: str) -> list[bytes]:
    """The root documents in ``data``: one root, or a JSON array of roots (oldest
    first, as ``trustctl trust export --chain`` writes it).

    Raises:
        UsageError: neither.
    """
    stripped = data.lstrip()
    if not stripped.startswith(b"["):
        return [data]
    try:
        docs = json.loads(data)
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{what} is not JSON: {type(e).__name__}") from e
    if not isinstance(docs, list) or not docs or not all(isinstance(d, dict) for d in docs):
        raise UsageError(f"{what} is neither root metadata nor a list of root metadata")
    return [json.dumps(d).encode() for d in docs]


def write_atomic(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (the file gets
    ``mode`` before any byte is written, when given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
        for name in ("metadata", "verified"):
            shutil.rmtree(self.gun_dir(gun) / name, ignore_errors=True)

    def list_pinned(self) -> list[str]:
        """GUNs with a pinned root, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            str(p.parent.relative_to(self.root)) for p in self.root.rglob("pinned_root.json")
        )
