"""Use cases of Notary-dialect repositories: publish, renew, server-held keys.

:class:`NotaryRepos` shares the trust server's collaborators (storage with its
per-GUN locks and change feed, the signing service, the clock and configuration)
with :class:`~notary_server.service.TrustService`, which hands a request over when
the repository or the upload is in Notary's dialect. Errors carry Notary's HTTP
statuses (the notary client reads a 400 as a validation failure and any status but
400 and 404 as "server unavailable") and its ``detail`` shape
(``{"Name": "ErrBadRoot", "Error": {"Msg": ...}}``) next to our ``reason``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from securesystemslib.signer import Key

from notary_server import errors
from notary_server.caches import Bounded
from notary_server.notary import generate
from notary_server.notary.model import (
    FormatError,
    NotaryKey,
    NotarySignature,
    Root,
    der_to_raw,
    key_from_spki,
    parse_expires,
)
from notary_server.notary.validation import validate_update
from notary_server.publisher import RENEWAL_RETRY, signer_call
from notary_server.repostate import ReadState, TxState, compare_and_store
from notary_server.storage import MetaUpdate, StoredFile

if TYPE_CHECKING:
    from notary_server.service import TrustService

__all__ = ["NotaryRepos", "notary_key", "notary_status"]

logger = logging.getLogger(__name__)

_DETAIL_NAMES = {
    "VALIDATION": "ErrValidation",
    "BAD_ROOT": "ErrBadRoot",
    "BAD_TARGETS": "ErrBadTargets",
    "BAD_SNAPSHOT": "ErrBadSnapshot",
    "BAD_HIERARCHY": "ErrBadHierarchy",
}
# Our statuses that Notary spells differently.
_STATUS = {409: 400, 413: 400, 405: 404}


def notary_status(e: errors.NotaryError) -> errors.NotaryError:
    """``e`` with Notary's HTTP status and, for validation errors, its detail shape."""
    e.http_status = _STATUS.get(e.http_status, e.http_status)  # type: ignore[misc]
    reason = e.detail.get("reason")
    if isinstance(e, errors.InvalidUpdateError) and reason in _DETAIL_NAMES:
        error: dict[str, Any] = {"Msg": e.message}
        if reason == "BAD_HIERARCHY":
            error["Missing"] = e.detail.get("missing", "")
        e.detail.update({"Name": _DETAIL_NAMES[reason], "Error": error})
    return e


@contextmanager
def notary_errors() -> Iterator[None]:
    try:
        yield
    except errors.NotaryError as e:
        notary_status(e)
        raise


def notary_key(key: Key) -> NotaryKey:
    """A signer key (securesystemslib) as Notary lists it: DER SPKI in base64 for
    ECDSA and RSA, the raw 32 bytes for ed25519; the id is Notary's."""
    public = key.keyval["public"]
    if key.keytype == "ed25519":
        return key_from_spki(bytes.fromhex(public))
    loaded = serialization.load_pem_public_key(public.encode())
    return key_from_spki(
        loaded.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _version(data: bytes) -> int:
    return int(json.loads(data)["signed"]["version"])


class NotaryRepos:
    def __init__(self, trust: TrustService) -> None:
        self._trust = trust
        self._ids: Bounded[str, NotaryKey] = Bounded(65536)  # signer key id -> Notary form
        # the signer's keys by GUN: a hint that saves two signer round trips per
        # publish, never a source of trust (as the Publisher's): refreshed when a
        # root is uploaded, when the hint lacks a key root lists, and after key changes
        self._held: Bounded[str, dict[str, dict[str, Key]]] = Bounded(65536)

    @property
    def _clock(self) -> Callable[[], datetime]:
        return self._trust.clock

    def _notary(self, key: Key) -> NotaryKey:
        found = self._ids.get(key.keyid)
        if found is None:
            found = notary_key(key)
            self._ids.put(key.keyid, found)
        return found

    def held(self, gun: str, *, fresh: bool = True) -> dict[str, dict[str, Key]]:
        """The signer's keys for ``gun`` by online role, by their Notary key id
        (from the hint when ``fresh`` is false and the hint has the GUN)."""
        if not fresh and (cached := self._held.get(gun)) is not None:
            return cached
        call = signer_call
        held = {
            role: {self._notary(k).keyid: k for k in call(self._trust.keys.list_keys, gun, role)}
            for role in ("timestamp", "snapshot")
        }
        self._held.put(gun, held)
        return held

    def forget(self, gun: str) -> None:
        """Drop the key hint of ``gun`` (a key was created or the GUN deleted)."""
        self._held.forget(gun)

    # --- publishing -------------------------------------------------------------

    def publish(self, gun: str, uploads: Mapping[str, bytes]) -> None:
        with notary_errors():
            self._publish(gun, uploads)

    def _publish(self, gun: str, uploads: Mapping[str, bytes]) -> None:
        """Compare-and-store, as :meth:`TrustService.publish`: checked and signed
        without the write lock, stored under it if nothing read meanwhile changed."""
        files = compare_and_store(
            self._trust.store,
            gun,
            lambda state: (self._prepare(gun, uploads, state, self._clock()), ()),
        )
        logger.info(
            "published %s (Notary dialect): %s",
            gun,
            ", ".join(f"{f.role} v{f.version}" for f in files),
        )

    def _prepare(
        self, gun: str, uploads: Mapping[str, bytes], state: ReadState, now: datetime
    ) -> list[MetaUpdate]:
        """The files to store for ``uploads`` over ``state``: checked, with the next
        snapshot (when the server holds its key) and timestamp signed."""
        fresh = "root" in uploads  # a new root is checked against what the signer says now
        held = self.held(gun, fresh=fresh)
        try:
            checked = validate_update(
                gun, uploads, state.current, held={r: set(k) for r, k in held.items()}, now=now
            )
        except (errors.BadHierarchyError, errors.BadRootError):
            if fresh:
                raise
            held = self.held(gun)  # a stale hint? ask the signer once
            checked = validate_update(
                gun, uploads, state.current, held={r: set(k) for r, k in held.items()}, now=now
            )
        files = [MetaUpdate(r, v, raw) for r, (v, raw) in checked.files.items()]
        if checked.server_snapshot:
            changed = {r: raw for r, (_, raw) in checked.files.items()}
            snapshot = self._next_snapshot(gun, state, checked.root, held, changed, now)
            files.append(snapshot)
            snapshot_raw = snapshot.data
        else:
            snapshot_raw = checked.files["snapshot"][1]
        files.append(
            self._next_timestamp(
                gun, state.current("timestamp"), snapshot_raw, checked.root, held, now
            )
        )
        return files

    def _next_snapshot(
        self,
        gun: str,
        state: TxState,
        root: Root,
        held: Mapping[str, Mapping[str, Key]],
        changed: Mapping[str, bytes],
        now: datetime,
    ) -> MetaUpdate:
        prev = state.file("snapshot")
        if prev is not None:
            previous: dict[str, Any] | None = json.loads(prev.data)["signed"]
            files = dict(changed)
        else:  # the first server-made snapshot lists every stored role
            previous = None
            files = {}
            for r in state.roles():
                f = state.file(r)
                if f is not None and r not in ("snapshot", "timestamp"):
                    files[r] = f.data
            files.update(changed)
        payload = generate.snapshot_payload(previous, files, now + self._trust.expiries.snapshot)
        data = self._sign(gun, "snapshot", payload, root, held)
        return MetaUpdate("snapshot", _version(data), data)

    def _next_timestamp(
        self,
        gun: str,
        previous: bytes | None,
        snapshot: bytes,
        root: Root,
        held: Mapping[str, Mapping[str, Key]],
        now: datetime,
    ) -> MetaUpdate:
        prev_version = _version(previous) if previous is not None else None
        payload = generate.timestamp_payload(
            prev_version, snapshot, now + self._trust.expiries.timestamp
        )
        data = self._sign(gun, "timestamp", payload, root, held)
        return MetaUpdate("timestamp", _version(data), data)

    def _sign(
        self,
        gun: str,
        role: str,
        payload: bytes,
        root: Root,
        held: Mapping[str, Mapping[str, Key]],
    ) -> bytes:
        """``payload`` signed by a threshold of the server-held keys root lists for
        ``role``, through the signer (which checks GUN, role and payload)."""
        entry = root.roles[role]
        keyids = [k for k in entry.keyids if k in held[role]][: entry.threshold]
        if len(keyids) < entry.threshold:
            raise errors.BadHierarchyError(
                f"the server does not hold enough {role} keys for {gun}", missing=role
            )
        sigs = []
        for keyid in keyids:
            key = held[role][keyid]
            signer = signer_call(self._trust.keys.get_signer, gun, role, key)
            sig = signer_call(signer.sign, payload)
            raw = bytes.fromhex(sig.signature)
            if key.keytype == "ed25519":
                sigs.append(NotarySignature(keyid, "eddsa", raw))
            else:
                sigs.append(NotarySignature(keyid, "ecdsa", der_to_raw(raw)))
        return generate.assemble(payload, sigs)

    # --- freshness ----------------------------------------------------------------

    def _expiries(self, gun: str, ts: StoredFile) -> tuple[datetime, datetime | None]:
        cached = self._trust._freshness.get(ts.sha256)
        if cached is None:
            ts_expires = parse_expires(json.loads(ts.data)["signed"]["expires"])
            snap = self._trust.store.get_current(gun, "snapshot")
            snap_expires = (
                parse_expires(json.loads(snap.data)["signed"]["expires"]) if snap else None
            )
            cached = (ts_expires, snap_expires)
            self._trust._freshness.put(ts.sha256, cached)
        return cached

    def _needs_renewal(self, gun: str, ts: StoredFile, now: datetime) -> bool:
        ts_expires, snap_expires = self._expiries(gun, ts)
        exp = self._trust.expiries
        if ts_expires - now < exp.timestamp_renew_before:
            return True
        return snap_expires is not None and snap_expires - now < exp.snapshot_renew_before

    def ensure_fresh(self, gun: str, ts: StoredFile) -> StoredFile:
        """The current timestamp, renewed first when inside its renewal window."""
        now = self._clock()
        if not self._needs_renewal(gun, ts, now):
            return ts
        failed_at = self._trust._renewal_failed
        failed = failed_at.get(gun)
        if failed is not None and now - failed < RENEWAL_RETRY and self._expiries(gun, ts)[0] > now:
            return ts  # renewal failed moments ago: a read does not wait for the signer again
        try:
            self.renew(gun)
            return self._trust._current(gun, "timestamp") or ts
        except (
            errors.SignerUnavailableError,
            errors.StorageUnavailableError,
            errors.InvalidUpdateError,
        ) as e:
            if self._expiries(gun, ts)[0] <= now:
                raise errors.SignerUnavailableError(
                    f"the timestamp of {gun} has expired and could not be renewed: {e.message}",
                    gun=gun,
                ) from e
            failed_at.put(gun, now)  # serve the still valid one; spare the next reads the wait
            logger.warning("could not renew the timestamp of %s yet: %s", gun, e.message)
            return ts

    def renew(self, gun: str) -> bool:
        """Re-sign the timestamp (and a server-held snapshot near expiry) when inside
        the renewal window; whether anything was written."""
        now = self._clock()
        with self._trust.store.transaction(gun) as tx:
            ts = tx.current("timestamp")
            root_file = tx.current("root")
            snap = tx.current("snapshot")
            if (
                ts is None
                or root_file is None
                or snap is None
                or not self._needs_renewal(gun, ts, now)
            ):
                return False
            root = Root.parse(root_file.data)
            held = self.held(gun)
            files = []
            _, snap_expires = self._expiries(gun, ts)
            role = root.roles["snapshot"]
            server_snapshot = len(set(role.keyids) & set(held["snapshot"])) >= role.threshold
            snapshot_raw = snap.data
            if (
                server_snapshot
                and snap_expires is not None
                and snap_expires - now < self._trust.expiries.snapshot_renew_before
            ):
                update = self._next_snapshot(gun, TxState(tx), root, held, {}, now)
                files.append(update)
                snapshot_raw = update.data
            files.append(self._next_timestamp(gun, ts.data, snapshot_raw, root, held, now))
            tx.add(files)
        logger.info("renewed %s: %s", gun, ", ".join(f"{f.role} v{f.version}" for f in files))
        return True

    # --- keys ---------------------------------------------------------------------

    def active_key(self, gun: str, role: str, root_data: bytes) -> Key | None:
        """The signer-held key the stored root lists for ``role``, if any."""
        try:
            listed = Root.parse(root_data).roles[role].keyids
        except FormatError:
            return None
        held = self.held(gun)[role]
        active = [held[k] for k in listed if k in held]
        return active[-1] if active else None
