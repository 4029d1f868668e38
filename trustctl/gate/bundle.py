"""Offline bundles: the byte-exact trust metadata of chosen repositories (TUF 1.0 or
Notary's dialect), for a gate with no line to the trust server.

A bundle is a tar.gz of ``manifest.json``, ``manifest.sig`` and
``metadata/<gun>/<file>`` (the files as the trust server serves them, as
:mod:`trustctl.gate.collect` takes them: the root chain, timestamp, snapshot, targets
and delegated roles; each name percent-encoded to one path component, see
:func:`member_name`). The manifest names a ``sequence`` that only grows,
``issued_at`` and ``not_after = min(issued_at + budget, every expiry inside)``, and
each file's length and SHA-256; ``manifest.sig`` is an Ed25519 signature over
``manifest.json`` by a bundle key whose public half the gate pins.

The gate imports a bundle only whole: signature, then every hash and length, then a
sequence above the one in force; it unpacks beside the current one and swaps a
symlink (``os.replace``), so a crash leaves the previous bundle in force. In offline
mode the Verifier's transport is :class:`BundleTransport`: it reads files from the
bundle and never opens a connection; the client workflow (python-tuf's, or Notary's
for a repository pinned as a Notary one) is the same as online.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from trustctl.errors import TrustctlError, TrustError, UsageError
from trustctl.transport import DEFAULT_MAX_BYTES, MultipartFile, Response

__all__ = [
    "DEFAULT_BUDGET",
    "MAX_BUDGET",
    "BundleRefusedError",
    "BundleStaleError",
    "BundleStore",
    "BundleTransport",
    "Manifest",
    "bundle_state",
    "create_bundle",
    "member_name",
    "near_stale_warning",
]

SCHEMA = "trustctl-gate-bundle/1"
DEFAULT_BUDGET = timedelta(days=7)
MAX_BUDGET = timedelta(days=90)
MAX_ARCHIVE = 256 * 1024 * 1024
MAX_MEMBER = 64 * 1024 * 1024
_PREFIX = "/_trust/tuf/"


class BundleRefusedError(TrustError):
    code = "BUNDLE_REFUSED"


class BundleStaleError(TrustError):
    code = "BUNDLE_STALE"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_iso(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class Manifest:
    sequence: int
    bundle_id: str
    issued_at: datetime
    not_after: datetime
    files: Mapping[str, Mapping[str, Any]]  # "gun/name" -> {sha256, length}

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
            if doc["schema"] != SCHEMA:
                raise ValueError(f"schema {doc['schema']!r}")
            files = {
                f"{gun}/{name}": meta
                for gun, names in doc["repositories"].items()
                for name, meta in names.items()
            }
            return cls(int(doc["sequence"]), str(doc["bundle_id"]), _parse_iso(doc["issued_at"]),
                       _parse_iso(doc["not_after"]), files)  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise BundleRefusedError(f"the bundle manifest is malformed: {e}") from None


def member_name(name: str) -> str:
    """A served file's name in a bundle: percent-encoded to one path component (a
    Notary delegated role's ``targets/releases.<sha256>.json`` is
    ``targets%2Freleases.<sha256>.json``; TUF 1.0's names are unchanged)."""
    return quote(name, safe="")


def _expiries(what: str, data: bytes) -> list[datetime]:
    """The expiries inside one metadata file: its ``expires`` (RFC 3339: TUF 1.0 writes
    whole seconds in UTC, Notary any offset and fractions), and for a Notary root the
    end of its root certificates' validity (Notary's client refuses a root whose
    certificates expired)."""
    from notary_server.notary.model import FormatError, parse_expires
    from trustctl.notary.model import certificates, parse_root, signed_type

    try:
        found = [parse_expires(json.loads(data)["signed"]["expires"])]
        if signed_type(data) == "Root":
            for key in parse_root(data).role_keys("root").values():
                found.extend(c.not_valid_after_utc for c in certificates(key)[:1])
    except (ValueError, KeyError, TypeError, FormatError, TrustctlError) as e:
        raise BundleRefusedError(f"{what} has no readable expiry: {e}") from None
    return found


_ROOT_FILE = re.compile(r"(?:[0-9]+\.)?root\.json")


def _older_roots(gun: str, files: Mapping[str, bytes]) -> set[str]:
    """The roots before the newest in ``files``: a client reads them only to follow
    rotations and never checks their expiry (python-tuf's workflow and Notary's
    alike), so a root that expired long ago must not make a bundle stale at birth."""
    versions = {}
    for name, data in files.items():
        if _ROOT_FILE.fullmatch(name):
            try:
                versions[name] = int(json.loads(data)["signed"]["version"])
            except (ValueError, KeyError, TypeError) as e:
                raise BundleRefusedError(f"{name} of {gun} has no readable version: {e}") from None
    newest = max(versions.values(), default=0)
    return {name for name, version in versions.items() if version < newest}


def create_bundle(
    repositories: Mapping[str, Mapping[str, bytes]],
    *,
    key: Ed25519PrivateKey,
    sequence: int,
    budget: timedelta = DEFAULT_BUDGET,
    now: datetime | None = None,
) -> bytes:
    """The bundle (tar.gz bytes) of ``repositories`` (GUN -> file name -> bytes).

    Raises:
        UsageError: a budget above 90 days, or a sequence below 1.
    """
    if budget > MAX_BUDGET or budget <= timedelta(0):
        raise UsageError(f"the offline budget must be above 0 and at most {MAX_BUDGET.days} days")
    if sequence < 1:
        raise UsageError("the bundle sequence must be 1 or more")
    issued = (now or datetime.now(UTC)).replace(microsecond=0)
    not_after = issued + budget
    listing: dict[str, dict[str, dict[str, Any]]] = {}
    for gun, files in repositories.items():
        older_roots = _older_roots(gun, files)
        for name, data in files.items():
            if name not in older_roots:
                not_after = min(not_after, *_expiries(f"{name} of {gun}", data))
            listing.setdefault(gun, {})[member_name(name)] = {
                "sha256": hashlib.sha256(data).hexdigest(), "length": len(data)}  # fmt: skip
    manifest = json.dumps(
        {"schema": SCHEMA, "bundle_id": str(uuid.uuid4()), "sequence": sequence,
         "issued_at": _iso(issued), "not_after": _iso(not_after), "repositories": listing},
        sort_keys=True, indent=1,
    ).encode()  # fmt: skip
    sig = json.dumps({"ed25519": base64.b64encode(key.sign(manifest)).decode()}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        members = {"manifest.json": manifest, "manifest.sig": sig}
        for gun, files in repositories.items():
            for name, data in files.items():
                members[f"metadata/{gun}/{member_name(name)}"] = data
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(issued.timestamp())
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class BundleStore:
    """The bundles a gate imported, under ``directory``: ``current`` -> ``bundle-N``."""

    def __init__(self, directory: Path, keys: Sequence[Ed25519PublicKey]) -> None:
        self.directory = directory
        self.keys = list(keys)

    @property
    def current_dir(self) -> Path:
        return self.directory / "current"

    def current(self) -> Manifest | None:
        try:
            return Manifest.parse((self.current_dir / "manifest.json").read_bytes())
        except FileNotFoundError:
            return None

    def import_bundle(self, data: bytes) -> Manifest:
        """Check ``data`` whole, then make it the bundle in force (atomically).

        Raises:
            BundleRefusedError: too large, unsigned, a bad signature, a file whose hash
                or length differs, a missing or extra file, or a sequence not above the
                one in force. Nothing is changed then.
        """
        if len(data) > MAX_ARCHIVE:
            raise BundleRefusedError(f"the bundle is larger than {MAX_ARCHIVE} bytes")
        members = _read_members(data)
        manifest_bytes = members.pop("manifest.json", None)
        sig_bytes = members.pop("manifest.sig", None)
        if manifest_bytes is None or sig_bytes is None:
            raise BundleRefusedError(
                "the bundle has no signed manifest (manifest.json and manifest.sig)"
            )
        self._check_signature(manifest_bytes, sig_bytes)
        manifest = Manifest.parse(manifest_bytes)
        given = {name.removeprefix("metadata/"): body for name, body in members.items()}
        if set(given) != set(manifest.files):
            raise BundleRefusedError(
                "the bundle's files differ from its manifest (a file added or missing)"
            )
        for name, meta in manifest.files.items():
            body = given[name]
            if len(body) != meta["length"] or hashlib.sha256(body).hexdigest() != meta["sha256"]:
                raise BundleRefusedError(
                    f"{name} does not match the signed manifest: it may have been tampered with"
                )
        current = self.current()
        if current is not None and manifest.sequence <= current.sequence:
            raise BundleRefusedError(
                f"bundle sequence {manifest.sequence} is not above {current.sequence} (in force): "
                "an older bundle replayed may be an attack"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        staging = self.directory / f".incoming-{uuid.uuid4().hex}"
        final = self.directory / f"bundle-{manifest.sequence}"
        try:
            for name, body in {
                "manifest.json": manifest_bytes,
                **{f"metadata/{k}": v for k, v in given.items()},
            }.items():
                path = staging / name
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(body)
                    f.flush()
                    os.fsync(f.fileno())
            shutil.rmtree(final, ignore_errors=True)
            os.replace(staging, final)
            link = self.directory / f".current-{uuid.uuid4().hex}"
            os.symlink(final.name, link)
            os.replace(link, self.current_dir)  # the swap: one rename
            dirfd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    def _check_signature(self, manifest: bytes, sig: bytes) -> None:
        try:
            raw = base64.b64decode(json.loads(sig)["ed25519"], validate=True)
        except (ValueError, KeyError, TypeError) as e:
            raise BundleRefusedError(f"the bundle signature is malformed: {e}") from None
        for key in self.keys:
            try:
                key.verify(raw, manifest)
                return
            except InvalidSignature:
                continue
        raise BundleRefusedError(
            "the bundle manifest is not signed by a pinned bundle key: it may be an attack"
        )

    def check_fresh(self, now: datetime) -> Manifest:
        """The bundle in force, if it is still fresh at ``now``.

        Raises:
            BundleStaleError: no bundle imported, or ``now`` is past its ``not_after``.
        """
        manifest = self.current()
        if manifest is None:
            raise BundleStaleError(
                "no offline bundle has been imported", hint="`trustctl gate import-bundle`"
            )
        if now > manifest.not_after:
            raise BundleStaleError(
                f"offline bundle {manifest.bundle_id} (sequence {manifest.sequence}) is stale since "
                f"{_iso(manifest.not_after)}: import a newer bundle"
            )
        return manifest


WARN_FRACTION = 0.2  # warn in the last 20 % of a bundle's life


def near_stale_warning(
    store: BundleStore, clock: Callable[[], datetime]
) -> Callable[[], str | None]:
    """A warning while the bundle in force is in the last 20 % of its life."""

    def warning() -> str | None:
        manifest = store.current()
        if manifest is None:
            return None
        now = clock()
        life = manifest.not_after - manifest.issued_at
        if manifest.not_after - now <= life * WARN_FRACTION and now <= manifest.not_after:
            return f"offline trust bundle {manifest.sequence} goes stale at {_iso(manifest.not_after)}: import a newer one"
        return None

    return warning


def bundle_state(store: BundleStore) -> Callable[[], tuple[int, datetime] | None]:
    """For the metrics: the sequence and ``not_after`` of the bundle in force."""

    def state() -> tuple[int, datetime] | None:
        m = store.current()
        return (m.sequence, m.not_after) if m is not None else None

    return state


def _read_members(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for info in tar:
                name = info.name
                if not info.isfile() or name.startswith("/") or ".." in name.split("/"):
                    raise BundleRefusedError(
                        f"the bundle holds an entry that is not a plain file: {name!r}"
                    )
                if info.size > MAX_MEMBER:
                    raise BundleRefusedError(f"{name} is larger than {MAX_MEMBER} bytes")
                if name in out:
                    raise BundleRefusedError(f"{name} appears twice in the bundle")
                f = tar.extractfile(info)
                assert f is not None
                out[name] = f.read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BundleRefusedError(f"the bundle is not a readable tar.gz: {e}") from None
    return out


class BundleTransport:
    """The trust server's transport in offline mode: files from the bundle in force,
    404 for anything else; it never opens a connection."""

    def __init__(self, store: BundleStore, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.requests = 0

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
        self.requests += 1
        path = urlsplit(url).path
        if method != "GET" or not path.startswith("/v2/") or _PREFIX not in path:
            return Response(404, {}, b"", url)
        gun, _, name = path[len("/v2/") :].partition(_PREFIX)
        name = member_name(unquote(name))
        if name in ("", ".", "..") or ".." in gun.split("/"):
            return Response(404, {}, b"", url)
        try:
            data = (self.store.current_dir / "metadata" / gun / name).read_bytes()
        except OSError:
            return Response(404, {}, b"", url)
        return Response(200, {"content-type": "application/json"}, data[:max_bytes], url,
                        len(data) > max_bytes)  # fmt: skip
