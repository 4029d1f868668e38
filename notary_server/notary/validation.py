"""The rules a Notary-dialect upload must pass before anything is stored. Pure.

The rules of notary-server 0.7.0 (reference/notary-v1.md section 3), plus what it
never checked: a delegation's target paths must lie inside the delegation's paths
(and every ancestor's), as prefixes. Every refusal is a server error with Notary's
code (``INVALID_UPDATE`` and a reason, ``VERSION``, ``INVALID_ROLE``,
``MALFORMED_JSON``) and nothing is written.

Example::

    checked = validate_update(gun, {"root": raw_root, "targets": raw_targets}, stored,
                              held={"timestamp": {...}, "snapshot": {...}}, now=now)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from notary_server import errors
from notary_server.notary.model import (
    BASE_ROLES,
    FormatError,
    NotaryKey,
    Role,
    Root,
    Snapshot,
    Targets,
    is_delegation,
    matches,
    path_allowed,
    valid_signers,
)
from notary_server.storage import MAX_VERSION

__all__ = ["Stored", "Validated", "root_certificate_problem", "validate_update"]

#: Reads the current stored bytes of a role (None when there are none).
Stored = Callable[[str], "bytes | None"]


@dataclass
class Validated:
    """What an upload adds: its files (role -> (version, bytes)), the root in force
    afterwards, and whether the server must build the snapshot."""

    root: Root
    new_root: bool
    files: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    server_snapshot: bool = False


def validate_update(
    gun: str,
    uploads: Mapping[str, bytes],
    stored: Stored,
    *,
    held: Mapping[str, AbstractSet[str]],
    now: datetime,
) -> Validated:
    """Check an upload (role name -> bytes) against the stored state.

    ``held`` names, per online role, the Notary key ids of the keys the signer holds
    for this GUN. A ``timestamp`` part is ignored (the server always makes it).

    Raises:
        InvalidRoleError, MalformedJSONError, InvalidUpdateError (BadRootError,
        BadTargetsError, BadSnapshotError, BadHierarchyError), OldVersionError.
    """
    parts = {r: raw for r, raw in uploads.items() if r != "timestamp"}
    for role, raw in parts.items():
        if role not in BASE_ROLES and not is_delegation(role):
            raise errors.InvalidRoleError(f"invalid role name {role[:80]!r}", role=role[:255])
        _check_envelope(role, raw)
    if not parts:
        raise errors.InvalidUpdateError("the upload holds no metadata besides a timestamp")

    stored_root_raw = stored("root")
    try:
        stored_root = Root.parse(stored_root_raw) if stored_root_raw is not None else None
    except FormatError as e:
        raise errors.InvalidUpdateError(
            f"the stored root is not a Notary root ({e}): this repository is in TUF 1.0's "
            "dialect; publish to it with trustctl"
        ) from None
    if "root" in parts:
        root = _check_root(gun, parts["root"], stored_root, now)
        out = Validated(root, True, {"root": (root.file.version, root.file.raw)})
    elif stored_root is None:
        raise errors.InvalidUpdateError(
            "no pre-existing root and no root provided in update", reason="VALIDATION"
        )
    else:
        out = Validated(stored_root, False)
    root = out.root

    loaded: dict[str, bytes] = {"root": root.file.raw}
    parsed: dict[str, Targets] = {}
    for role in sorted((r for r in parts if r.startswith("targets")), key=lambda r: r.count("/")):
        t = _check_targets(role, parts[role], root, parsed, stored, loaded, now)
        _check_newer(role, t.file.version, stored)
        parsed[role] = t
        loaded[role] = t.file.raw
        out.files[role] = (t.file.version, t.file.raw)

    if "snapshot" in parts:
        snap = _check_snapshot(parts["snapshot"], root, loaded, set(parsed), stored, now)
        _check_newer("snapshot", snap.file.version, stored)
        out.files["snapshot"] = (snap.file.version, snap.file.raw)
    else:
        entry = root.roles["snapshot"]
        if len(set(entry.keyids) & set(held.get("snapshot", ()))) < entry.threshold:
            raise errors.BadHierarchyError(
                "no snapshot was included in update and server does not hold current "
                "snapshot key for repository",
                missing="snapshot",
                rule="snapshot-uploaded-or-held",
            )
        out.server_snapshot = True
    entry = root.roles["timestamp"]
    if len(set(entry.keyids) & set(held.get("timestamp", ()))) < entry.threshold:
        raise errors.BadRootError(
            "no timestamp keys exist on the server", rule="root-lists-server-timestamp-key"
        )
    return out


def _check_envelope(role: str, raw: bytes) -> None:
    try:
        obj = json.loads(raw)
        ok = isinstance(obj, dict) and isinstance(obj.get("signed"), dict)
        ok = ok and isinstance(obj.get("signatures"), list)
    except (ValueError, UnicodeDecodeError):
        ok = False
    if not ok:
        raise errors.MalformedJSONError(
            f"{role[:80]}: not a JSON object with signed and signatures", role=role[:255]
        )


def _check_newer(role: str, version: int, stored: Stored) -> None:
    if version > MAX_VERSION:
        raise errors.VersionTooLargeError(
            f"{role}: version {version} is larger than {MAX_VERSION}, the largest version "
            "every store can keep and every client can fetch",
            role=role,
            max_version=MAX_VERSION,
        )
    current = stored(role)
    if current is None:
        return
    try:
        stored_version = json.loads(current)["signed"]["version"]
    except (ValueError, KeyError, TypeError):
        return
    if version <= stored_version:
        raise errors.OldVersionError(
            f"{role} v{version} is not newer than the stored v{stored_version}: "
            "a rollback, or a lost race to publish",
            role=role,
        )


# --- root ---------------------------------------------------------------------------


def root_certificate_problem(key: NotaryKey, gun: str, now: datetime | None) -> str | None:
    """Why ``key`` cannot be a root key of ``gun``, or None.

    A root key is an x509 certificate whose common name is the GUN (or a wildcard
    ``prefix*`` that the GUN starts with), not signed with SHA-1 and, when ``now`` is
    given, valid at ``now``.
    """
    cert = key.certificate
    if cert is None:
        return "is not an x509 certificate"
    names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    cn = names[0] if names else ""
    if not isinstance(cn, str) or not (cn == gun or (cn.endswith("*") and gun.startswith(cn[:-1]))):
        return f"has common name {str(cn)[:80]!r}, not the repository {gun!r}"
    if isinstance(cert.signature_hash_algorithm, hashes.SHA1):
        return "is signed with SHA-1"
    if now is not None and not (cert.not_valid_before_utc <= now <= cert.not_valid_after_utc):
        return f"is not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to {cert.not_valid_after_utc:%Y-%m-%d})"
    return None


def _root_certs(
    root: Root, gun: str, now: datetime | None
) -> tuple[dict[str, NotaryKey], list[str]]:
    good, problems = {}, []
    for keyid, key in root.role_keys("root").items():
        problem = root_certificate_problem(key, gun, now)
        if problem is None:
            good[keyid] = key
        else:
            problems.append(f"root key {keyid[:12]}... {problem}")
    return good, problems


def _check_root(gun: str, raw: bytes, previous: Root | None, now: datetime) -> Root:
    try:
        root = Root.parse(raw)
    except FormatError as e:
        raise errors.BadRootError(f"root: {e}") from None
    version = root.file.version
    if previous is not None and version <= previous.file.version:
        raise errors.OldVersionError(
            f"root v{version} is not newer than the stored v{previous.file.version}", role="root"
        )
    expected = previous.file.version + 1 if previous is not None else 1
    if version != expected:
        raise errors.BadRootError(
            f"Root modifications must increment the version: expected v{expected}, got v{version}",
            rule="root-version-step",
        )
    certs, problems = _root_certs(root, gun, now)
    if not certs:
        raise errors.BadRootError(
            "unable to retrieve valid leaf certificates: " + "; ".join(problems[:3]),
            rule="root-certificate",
        )
    try:
        if previous is not None:
            old_certs, _ = _root_certs(previous, gun, None)  # expiry of old roots is not checked
            have = valid_signers(root.file, old_certs, old_certs)
            need = previous.roles["root"].threshold
            if len(have) < need:
                raise errors.BadRootError(
                    f"root rotation failed: signed by {len(have)} of the previous root's keys, "
                    f"{need} needed: this may be an attack",
                    rule="root-signed-by-previous-root",
                )
        have = valid_signers(root.file, certs, certs)
    except FormatError as e:
        raise errors.BadRootError(f"root: {e}: this may be an attack") from None
    if len(have) < root.roles["root"].threshold:
        raise errors.BadRootError(
            f"root is signed by {len(have)} valid root keys, threshold is "
            f"{root.roles['root'].threshold}: this may be an attack",
            rule="root-signed-by-itself",
        )
    if root.file.expires <= now:
        raise errors.BadRootError(
            f"root expired at {root.file.expires:%Y-%m-%dT%H:%M:%SZ}", rule="not-expired"
        )
    return root


# --- targets and delegations ------------------------------------------------------------


def _load_targets(
    role: str, parsed: Mapping[str, Targets], stored: Stored, loaded: dict[str, bytes]
) -> Targets | None:
    if role in parsed:
        return parsed[role]
    raw = stored(role)
    if raw is None:
        return None
    loaded.setdefault(role, raw)
    try:
        return Targets.parse(role, raw)
    except FormatError as e:
        raise errors.BadTargetsError(f"stored {role}: {e}", role=role) from None


def _check_targets(
    role: str,
    raw: bytes,
    root: Root,
    parsed: Mapping[str, Targets],
    stored: Stored,
    loaded: dict[str, bytes],
    now: datetime,
) -> Targets:
    try:
        t = Targets.parse(role, raw)
    except FormatError as e:
        raise errors.BadTargetsError(f"{role}: {e}", role=role) from None
    chain: list[Role] = []
    if role == "targets":
        keys, entry = root.keys, root.roles["targets"]
    else:
        name = role
        while name != "targets":
            parent_name = name.rpartition("/")[0]
            parent = _load_targets(parent_name, parsed, stored, loaded)
            if parent is None or name not in parent.delegations:
                raise errors.BadTargetsError(
                    f"{role}: {parent_name} does not delegate to {name}",
                    role=role,
                    rule="role-is-delegated",
                )
            chain.append(parent.delegations[name])
            if name == role:
                keys = parent.keys
            name = parent_name
        entry = chain[0]
    try:
        have = valid_signers(t.file, keys, entry.keyids)
    except FormatError as e:
        raise errors.BadTargetsError(f"{role}: {e}: this may be an attack", role=role) from None
    if len(have) < entry.threshold:
        raise errors.BadTargetsError(
            f"{role} is signed by {len(have)} valid keys, threshold is {entry.threshold}: "
            "this may be an attack",
            role=role,
            rule="targets-signature-threshold",
        )
    if t.file.expires <= now:
        raise errors.BadTargetsError(
            f"{role} expired at {t.file.expires:%Y-%m-%dT%H:%M:%SZ}", role=role, rule="not-expired"
        )
    for link in chain:
        prefixes = link.paths or ()
        outside = [p for p in t.targets if not path_allowed(p, prefixes)]
        if outside:
            raise errors.BadTargetsError(
                f"{role} signs {outside[0][:80]!r}, outside the paths delegated to "
                f"{link.name} ({', '.join(repr(p) for p in prefixes[:5]) or 'none'}): "
                "this may be an attack",
                role=role,
                rule="delegated-paths",
            )
    return t


# --- snapshot ------------------------------------------------------------------------------


def _check_snapshot(
    raw: bytes,
    root: Root,
    loaded: Mapping[str, bytes],
    uploaded: AbstractSet[str],
    stored: Stored,
    now: datetime,
) -> Snapshot:
    try:
        snap = Snapshot.parse(raw)
        role = root.roles["snapshot"]
        have = valid_signers(snap.file, root.keys, role.keyids)
    except FormatError as e:
        raise errors.BadSnapshotError(f"snapshot: {e}") from None
    if len(have) < role.threshold:
        raise errors.BadSnapshotError(
            f"snapshot is signed by {len(have)} valid keys, threshold is {role.threshold}: "
            "this may be an attack",
            rule="snapshot-signature-threshold",
        )
    checks = dict(loaded)
    if "targets" not in checks and (stored_targets := stored("targets")) is not None:
        checks["targets"] = stored_targets
    for name in ("root", "targets"):
        if name not in snap.meta:
            raise errors.BadSnapshotError(f"snapshot does not list {name}")
    for name, data in checks.items():
        entry = snap.meta.get(name)
        if entry is None:
            if name in uploaded:
                raise errors.BadSnapshotError(f"snapshot does not list {name}")
            continue
        if not matches(entry, data):
            raise errors.BadSnapshotError(
                f"snapshot's entry for {name} does not match its bytes: this may be an attack",
                rule="snapshot-hashes",
            )
    if snap.file.expires <= now:
        raise errors.BadSnapshotError(
            f"snapshot expired at {snap.file.expires:%Y-%m-%dT%H:%M:%SZ}", rule="not-expired"
        )
    return snap
