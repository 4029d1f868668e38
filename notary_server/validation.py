"""Checks an upload against the stored state of a repository: the server's trust core.

Pure: bytes and python-tuf objects in, a :class:`ValidatedUpload` out, or a
:class:`~notary_server.errors.NotaryError` naming the broken rule. No Flask, no SQL,
no clock of its own (``now`` is passed in), so every rule is testable with plain bytes.

Rules (DESIGN section 4), in the order they are checked:

* every part parses as TUF metadata of the type its role name says;
* every key id is the id computed from its key, and no public key is listed twice
  under different ids (python-tuf counts key ids: a duplicated key fakes a threshold);
* root: version exactly stored+1 (1 for a new repository), signed by a threshold of
  the previous root's keys and of its own, consistent snapshots on, not expired, and
  the timestamp role lists the server's timestamp key for this repository;
* targets and delegated roles, parents first: version above the stored one, signed by
  a threshold of the keys the parent delegates to, not expired, every target path
  allowed by the delegation, every target name sane;
* snapshot, if the client manages it: signed by the root's snapshot role, newer,
  consistent with every targets role, never dropping or rolling back an entry;
  otherwise the server must hold the snapshot key.

:func:`notary_server.clientview.check_client_view` then replays the candidate state through python-tuf's own
client-side trust rules, so that nothing is committed that a TUF client would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata, Root, Signed, Snapshot, Targets

from notary_server import errors
from notary_server.keycheck import check_keys
from notary_server.names import TOP_LEVEL_ROLES, check_delegated_role, target_path_problem
from notary_server.storage import MAX_VERSION, MetaUpdate
from notary_signer.canonical import canonical_json

__all__ = [
    "MAX_VERSION",
    "Limits",
    "Parsed",
    "ParsedUpload",
    "ServerKeyIds",
    "StoredState",
    "ValidatedUpload",
    "delegator_of",
    "merge_pending",
    "parse",
    "parse_upload",
    "validate_pending",
    "validate_upload",
]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one upload may contain (all configurable)."""

    max_targets_per_role: int = 200_000
    max_delegations_per_role: int = 1_024
    max_keys_per_role: int = 256
    #: Nesting depth of free-form JSON (target ``custom`` data, unrecognised fields).
    max_json_depth: int = 16
    max_target_path_length: int = 1024


@dataclass(frozen=True)
class ServerKeyIds:
    """Key ids of the online keys the signer holds for one GUN."""

    timestamp: frozenset[str] = frozenset()
    snapshot: frozenset[str] = frozenset()


class StoredState(Protocol):
    """Read access to the current stored files of one GUN."""

    def current(self, role: str) -> bytes | None:
        """Raw bytes of the newest stored version of ``role``, or None."""

    def roles(self) -> Iterable[str]:
        """Names of every stored role."""

    # Optional: ``version(role) -> int | None``, the stored version without parsing.


class Parsed:
    """One metadata file: its bytes, its parsed form and its canonical signed bytes
    (computed on first use for stored files, at parse time for uploads)."""

    __slots__ = ("_signed_bytes", "md", "raw", "role")

    def __init__(
        self, role: str, raw: bytes, md: Metadata[Any], signed_bytes: bytes | None = None
    ) -> None:
        self.role = role
        self.raw = raw
        self.md = md
        self._signed_bytes = signed_bytes

    def __repr__(self) -> str:
        return f"Parsed({self.role!r}, v{self.version})"

    @property
    def signed_bytes(self) -> bytes:
        if self._signed_bytes is None:
            self._signed_bytes = canonical_json(self.md.signed.to_dict())
        return self._signed_bytes

    @property
    def signed(self) -> Any:
        return self.md.signed

    @property
    def version(self) -> int:
        return int(self.md.signed.version)


@dataclass
class ValidatedUpload:
    """An upload that passed every rule; what the publisher needs next."""

    root: Parsed  # the root in force after the update
    new_root: Parsed | None
    targets: dict[str, Parsed]  # uploaded targets-type roles, parents first
    snapshot: Parsed | None  # client-managed snapshot, if uploaded
    server_snapshot: bool  # the server must build the next snapshot
    #: The candidate state: uploaded files over stored ones, parsed once (role -> Parsed).
    lookup: Callable[[str], Parsed | None] = field(default=lambda role: None, repr=False)

    def files(self) -> list[MetaUpdate]:
        """Uploaded files to store, in the order they were checked."""
        parts = [self.new_root, *self.targets.values(), self.snapshot]
        return [MetaUpdate(p.role, p.version, p.raw) for p in parts if p is not None]


_EXPECTED_TYPE: dict[str, type[Signed]] = {"root": Root, "snapshot": Snapshot}


class _FloatError(ValueError):
    pass


def _no_float(text: str) -> Any:
    raise _FloatError(f"{text[:20]} is a float or constant, which canonical JSON cannot encode")


def parse(role: str, raw: bytes, *, canonical: bool = True) -> Parsed:
    """Parse ``raw`` as the metadata of ``role``.

    Parses like python-tuf's ``Metadata.from_bytes`` (UTF-8 JSON, then
    ``Metadata.from_dict``), refusing floats and NaN/Infinity, which have no
    canonical form. ``canonical=False`` defers computing the canonical signed bytes
    to first use (for stored files that may never need them).

    Raises:
        MalformedJSONError: not TUF metadata, not of the role's type, or not
            representable as canonical JSON (floats, for instance).
    """
    expected: type[Signed] = _EXPECTED_TYPE.get(role, Targets)
    try:
        obj = json.loads(raw.decode("utf-8"), parse_float=_no_float, parse_constant=_no_float)
    except _FloatError as e:
        raise errors.MalformedJSONError(f"{role}: cannot be canonicalised: {e}", role=role) from e
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise errors.MalformedJSONError(f"{role}: not valid TUF metadata: {_cause(e)}", role=role) from e
    try:
        md: Metadata[Any] = Metadata.from_dict(obj)
    except Exception as e:  # python-tuf raises several types for bad input
        raise errors.MalformedJSONError(f"{role}: not valid TUF metadata: {_cause(e)}", role=role) from e
    if not isinstance(md.signed, expected):
        raise errors.MalformedJSONError(
            f"{role}: expected metadata of type {expected.type!r}, got {md.signed.type!r}", role=role
        )
    parsed = Parsed(role, raw, md)
    if canonical:
        try:
            parsed.signed_bytes  # noqa: B018 - computed now so that a failure is MalformedJSON
        except (ValueError, RecursionError) as e:
            raise errors.MalformedJSONError(f"{role}: cannot be canonicalised: {e}", role=role) from e
    return parsed


def _cause(e: BaseException) -> str:
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e) or type(e).__name__


# --- the checks ---------------------------------------------------------------------


class _State:
    """The candidate state: uploaded files over stored ones, parsed on demand."""

    def __init__(self, stored: StoredState) -> None:
        self._stored = stored
        self._parsed: dict[str, Parsed | None] = {}
        self.uploaded: dict[str, Parsed] = {}

    def stored(self, role: str) -> Parsed | None:
        if role not in self._parsed:
            raw = self._stored.current(role)
            self._parsed[role] = parse(role, raw, canonical=False) if raw is not None else None
        return self._parsed[role]

    def stored_version(self, role: str) -> int | None:
        """The stored version of ``role``, without parsing it when the store can tell."""
        if role not in self._parsed:
            version = getattr(self._stored, "version", None)
            if version is not None:
                return version(role)
        found = self.stored(role)
        return found.version if found is not None else None

    def get(self, role: str) -> Parsed | None:
        return self.uploaded.get(role) or self.stored(role)


class ParsedUpload(dict[str, Parsed]):
    """Role name -> parsed file: an upload that passed every check needing no stored
    state (:func:`parse_upload`)."""


def parse_upload(uploads: Mapping[str, bytes], limits: Limits = Limits()) -> ParsedUpload:
    """Every check of an upload that needs no stored state: role names, parsing, sizes.

    The expensive part of validating an upload (parsing a large targets file takes
    seconds), so the server runs it before taking the repository's write lock.

    Raises:
        NotaryError: the first broken rule, as a named error.
    """
    if not uploads:
        raise errors.MalformedUploadError("the upload contains no metadata")
    if "timestamp" in uploads:
        raise errors.InvalidRoleError(
            "timestamp is generated by the server and cannot be uploaded", role="timestamp"
        )
    for role in uploads:
        if role not in TOP_LEVEL_ROLES:
            check_delegated_role(role)
    parsed = ParsedUpload((role, parse(role, raw)) for role, raw in uploads.items())
    for p in parsed.values():
        _check_structure(p, limits)
    return parsed


def validate_upload(
    uploads: Mapping[str, bytes] | ParsedUpload,
    stored: StoredState,
    *,
    server_keys: ServerKeyIds,
    now: datetime,
    limits: Limits = Limits(),
) -> ValidatedUpload:
    """Check an upload of role files against the stored state of one GUN.

    Args:
        uploads: role name -> raw bytes, as sent by the client, or what
            :func:`parse_upload` made of them.
        stored: the GUN's current stored files.
        server_keys: ids of the online keys the signer holds for this GUN.
        now: the reference time for expiry checks.

    Raises:
        NotaryError: the first broken rule, as a named error (see module docstring).
    """
    parsed = uploads if isinstance(uploads, ParsedUpload) else parse_upload(uploads, limits)
    state = _State(stored)

    # Root first: everything else is checked against the root in force afterwards.
    prev_root = state.stored("root")
    new_root = parsed.get("root")
    if new_root is not None:
        _check_root(new_root, prev_root, server_keys, now)
        state.uploaded["root"] = new_root
    elif prev_root is None:
        raise errors.BadHierarchyError(
            "this repository has no root yet: the first upload must include root and targets",
            rule="first-upload-has-root",
        )
    root = state.get("root")
    assert root is not None
    if root.signed.is_expired(now):
        raise errors.ExpiredMetadataError(
            f"the stored root v{root.version} has expired: upload a new root first",
            role="root",
            rule="stored-root-not-expired",
        )

    targets_roles = sorted(
        (r for r in parsed if r not in ("root", "snapshot")),
        key=lambda r: (r != "targets", r.count("/"), r),
    )
    for role in targets_roles:
        state.uploaded[role] = parsed[role]
        _check_targets(parsed[role], state, now)
    if state.get("targets") is None:
        raise errors.BadHierarchyError(
            "this repository has no targets yet: the first upload must include root and targets",
            rule="first-upload-has-targets",
        )

    server_snapshot = _holds_threshold(root.signed, "snapshot", server_keys.snapshot)
    snapshot = parsed.get("snapshot")
    if snapshot is not None:
        _check_client_snapshot(snapshot, root.signed, state, stored, now)
    elif not server_snapshot:
        raise errors.BadHierarchyError(
            "no snapshot in the upload, and the server does not hold this repository's "
            "snapshot key: sign and upload snapshot, or list the server's snapshot key in root",
            missing="snapshot",
            rule="snapshot-uploaded-or-held",
        )

    return ValidatedUpload(
        root=root,
        new_root=new_root,
        targets={r: parsed[r] for r in targets_roles},
        snapshot=snapshot,
        server_snapshot=snapshot is None,
        lookup=state.get,
    )


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value (iterative: no recursion limit to hit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            deepest = max(deepest, depth)
            stack.extend((v, depth + 1) for v in node)
    return deepest


def _check_depth(role: str, free_form: Any, limits: Limits) -> None:
    if free_form and _depth(free_form) > limits.max_json_depth:
        raise errors.TooLargeError(
            f"{role}: free-form JSON nested deeper than {limits.max_json_depth} levels", role=role
        )


def _check_version(role: str, version: int, what: str = "") -> None:
    if version > MAX_VERSION:
        raise errors.VersionTooLargeError(
            f"{role}: {what or 'version'} {version} is larger than {MAX_VERSION}, the largest "
            "version every store can keep and every client can fetch",
            role=role,
            max_version=MAX_VERSION,
        )


def _check_structure(p: Parsed, limits: Limits) -> None:
    signed = p.signed
    _check_version(p.role, p.version)
    if isinstance(signed, Snapshot):
        for name, meta in signed.meta.items():
            _check_version(p.role, meta.version, f"the version of {name[:80]}")
    _check_depth(p.role, p.md.unrecognized_fields, limits)
    _check_depth(p.role, signed.unrecognized_fields, limits)
    if isinstance(signed, Root):
        check_keys("root", signed.keys, limits.max_keys_per_role * 8)
        for name, role in signed.roles.items():
            if len(role.keyids) > limits.max_keys_per_role:
                raise errors.TooLargeError(f"root: role {name} lists too many keys", role="root")
    if isinstance(signed, Targets):
        if len(signed.targets) > limits.max_targets_per_role:
            raise errors.TooLargeError(
                f"{p.role}: {len(signed.targets)} targets is more than the "
                f"{limits.max_targets_per_role} allowed per role",
                role=p.role,
            )
        for path, target in signed.targets.items():
            problem = target_path_problem(path, limits.max_target_path_length)
            if problem:
                raise errors.BadTargetsError(
                    f"{p.role}: {problem}: {path[:80]!r}", role=p.role, rule="target-name"
                )
            _check_depth(p.role, target.unrecognized_fields, limits)
        if signed.delegations is not None:
            _check_delegations(p.role, signed, limits)


def _check_delegations(role: str, signed: Targets, limits: Limits) -> None:
    delegations = signed.delegations
    assert delegations is not None
    check_keys(role, delegations.keys, limits.max_keys_per_role * 8)
    roles = delegations.roles or {}
    if len(roles) > limits.max_delegations_per_role:
        raise errors.TooLargeError(f"{role}: too many delegated roles", role=role)
    for name, delegated in roles.items():
        try:
            check_delegated_role(name)
        except errors.InvalidRoleError as e:
            raise errors.BadTargetsError(
                f"{role}: delegates to an {e.message}", role=role, rule="delegated-role-name"
            ) from e
        missing = [k for k in delegated.keyids if k not in delegations.keys]
        if missing:
            raise errors.BadTargetsError(
                f"{role}: delegation {name} lists key ids that are not in its keys: {missing}",
                role=role,
                rule="delegation-keys-known",
            )
    succinct = delegations.succinct_roles
    if succinct is not None:
        missing = [k for k in succinct.keyids if k not in delegations.keys]
        if missing:
            raise errors.BadTargetsError(
                f"{role}: hash-bin delegation lists unknown key ids: {missing}",
                role=role,
                rule="delegation-keys-known",
            )


def _holds_threshold(root: Root, role: str, held: frozenset[str]) -> bool:
    r = root.roles[role]
    return len(set(r.keyids) & held) >= r.threshold


def _check_root(
    new: Parsed, prev: Parsed | None, server_keys: ServerKeyIds, now: datetime
) -> None:
    root: Root = new.signed
    stored_version = prev.version if prev else 0
    if root.version <= stored_version:
        raise errors.OldVersionError(
            f"root v{root.version} is not newer than the stored root v{stored_version}",
            role="root",
            stored_version=stored_version,
            sent_version=root.version,
        )
    if root.version != stored_version + 1:
        raise errors.BadRootError(
            f"expected root v{stored_version + 1}, got v{root.version}: "
            "root versions must increase one at a time",
            role="root",
            rule="root-version-step",
        )
    if not root.consistent_snapshot:
        raise errors.BadRootError(
            "root must set consistent_snapshot to true",
            role="root",
            rule="root-consistent-snapshot",
        )

    result = root.get_root_verification_result(
        prev.signed if prev else None, new.signed_bytes, new.md.signatures
    )
    if prev is not None and not result.first.verified:
        first = result.first
        raise errors.BadRootError(
            f"root v{root.version} carries {len(first.signed)} of the {first.threshold} "
            f"signatures that root v{prev.version} requires from its keys: a new root must be "
            "signed by the previous root's keys (this may be an attack)",
            role="root",
            rule="root-signed-by-previous-root",
            signed=sorted(first.signed),
            threshold=first.threshold,
        )
    if not result.second.verified:
        second = result.second
        raise errors.BadRootError(
            f"root v{root.version} carries {len(second.signed)} of the {second.threshold} "
            "signatures it requires from its own root keys",
            role="root",
            rule="root-signed-by-itself",
            signed=sorted(second.signed),
            threshold=second.threshold,
        )
    if root.is_expired(now):
        raise errors.ExpiredMetadataError(
            f"root v{root.version} expired at {root.expires:%Y-%m-%dT%H:%M:%SZ}",
            role="root",
            rule="not-expired",
        )
    if not _holds_threshold(root, "timestamp", server_keys.timestamp):
        raise errors.BadRootError(
            "root must list the server's timestamp key for this repository "
            "(GET .../_trust/tuf/timestamp.key) under the timestamp role",
            role="root",
            rule="root-lists-server-timestamp-key",
            server_keyids=sorted(server_keys.timestamp),
        )


def delegator_of(role: str, get: Any) -> tuple[str, Targets]:
    """Find the targets role that delegates to ``role``.

    ``targets`` delegates top-level names (``targets/releases``, hash bins); a deeper
    name is delegated by the role named by its path prefix (``targets/a`` for
    ``targets/a/b``). ``get(role)`` returns a :class:`Parsed` or None.

    Raises:
        BadHierarchyError: no such role delegates to ``role``.
    """
    candidates = ["targets"]
    if "/" in role and role.rsplit("/", 1)[0] != "targets":
        candidates.append(role.rsplit("/", 1)[0])
    for name in candidates:
        parent = get(name)
        if parent is not None and _delegates(parent.signed, role):
            return name, parent.signed
    raise errors.BadHierarchyError(
        f"no role delegates to {role}: add the delegation to its parent first",
        role=role,
        rule="role-is-delegated",
    )


def _delegates(parent: Targets, role: str) -> bool:
    d = parent.delegations
    if d is None:
        return False
    if d.roles is not None and role in d.roles:
        return True
    return d.succinct_roles is not None and d.succinct_roles.is_delegated_role(role)


def _check_targets(p: Parsed, state: _State, now: datetime) -> None:
    if p.role == "targets":
        root = state.get("root")
        assert root is not None
        parent_name, delegator = "root", root.signed
    else:
        parent_name, delegator = delegator_of(p.role, state.get)
    stored_version = state.stored_version(p.role)
    if stored_version is not None and p.version <= stored_version:
        raise errors.OldVersionError(
            f"{p.role} v{p.version} is not newer than the stored v{stored_version}",
            role=p.role,
            stored_version=stored_version,
            sent_version=p.version,
        )
    result = delegator.get_verification_result(p.role, p.signed_bytes, p.md.signatures)
    if not result.verified:
        raise errors.BadTargetsError(
            f"{p.role} v{p.version} is signed by {len(result.signed)} of the "
            f"{result.threshold} keys that {parent_name} requires",
            role=p.role,
            rule="targets-signature-threshold",
            signed=sorted(result.signed),
            threshold=result.threshold,
        )
    if p.signed.is_expired(now):
        raise errors.ExpiredMetadataError(
            f"{p.role} v{p.version} expired at {p.signed.expires:%Y-%m-%dT%H:%M:%SZ}",
            role=p.role,
            rule="not-expired",
        )
    if isinstance(delegator, Targets):
        _check_paths(p, delegator)


def _check_paths(p: Parsed, parent: Targets) -> None:
    d = parent.delegations
    assert d is not None
    allowed: Callable[[str], bool]
    if d.roles is not None and p.role in d.roles:
        allowed = d.roles[p.role].is_delegated_path
    else:
        assert d.succinct_roles is not None
        succinct = d.succinct_roles
        allowed = lambda path: succinct.get_role_for_target(path) == p.role
    outside = [path for path in p.signed.targets if not allowed(path)]
    if outside:
        raise errors.BadTargetsError(
            f"{p.role} signs {len(outside)} target(s) outside the paths delegated to it, "
            f"e.g. {outside[0]!r}; this may be an attack",
            role=p.role,
            rule="delegated-paths",
            outside=outside[:10],
        )


def _check_client_snapshot(
    p: Parsed, root: Root, state: _State, stored: StoredState, now: datetime
) -> None:
    result = root.get_verification_result("snapshot", p.signed_bytes, p.md.signatures)
    if not result.verified:
        raise errors.BadSnapshotError(
            f"snapshot is signed by {len(result.signed)} of the {result.threshold} keys "
            "that root requires",
            role="snapshot",
            rule="snapshot-signature-threshold",
        )
    prev = state.stored("snapshot")
    if prev is not None and p.version <= prev.version:
        raise errors.OldVersionError(
            f"snapshot v{p.version} is not newer than the stored v{prev.version}",
            role="snapshot",
            stored_version=prev.version,
            sent_version=p.version,
        )
    if p.signed.is_expired(now):
        raise errors.ExpiredMetadataError(
            "snapshot has expired", role="snapshot", rule="not-expired"
        )
    meta = p.signed.meta
    names = set(stored.roles()) | set(state.uploaded)
    for role in sorted(names - {"root", "snapshot", "timestamp"}):
        current = state.get(role)
        assert current is not None
        entry = meta.get(f"{role}.json")
        if entry is None or entry.version != current.version:
            listed = entry.version if entry else None
            raise errors.BadSnapshotError(
                f"snapshot lists {role} v{listed}, but the repository's {role} is "
                f"v{current.version}",
                role="snapshot",
                rule="snapshot-lists-current-versions",
            )
        try:
            entry.verify_length_and_hashes(current.raw)
        except tuf_exceptions.LengthOrHashMismatchError as e:
            raise errors.BadSnapshotError(
                f"snapshot entry for {role}: {e}", role="snapshot", rule="snapshot-hashes"
            ) from e
    if prev is not None:
        for name, old in prev.signed.meta.items():
            new = meta.get(name)
            if new is None or new.version < old.version:
                raise errors.BadSnapshotError(
                    f"snapshot drops or rolls back {name} (was v{old.version})",
                    role="snapshot",
                    rule="snapshot-keeps-every-entry",
                )


def validate_pending(
    role: str, raw: bytes, stored: StoredState, *, now: datetime, limits: Limits = Limits()
) -> Parsed:
    """Check partially signed targets metadata that waits for more signatures.

    Everything a publish would check except the threshold: the next version of a
    targets-type role, unexpired, inside its delegation's paths, and carrying at
    least one valid signature from a key its parent delegates to.

    Raises:
        NotaryError: the named rule it breaks.
    """
    if role in ("root", "snapshot", "timestamp"):
        raise errors.InvalidRoleError(
            f"only targets and delegated roles can wait for signatures, not {role}", role=role
        )
    if role != "targets":
        check_delegated_role(role)
    p = parse(role, raw)
    _check_structure(p, limits)
    state = _State(stored)
    root = state.stored("root")
    if root is None:
        raise errors.MetadataNotFoundError("this repository has no root yet", role=role)
    if role == "targets":
        parent_name, delegator = "root", root.signed
    else:
        parent_name, delegator = delegator_of(role, state.get)
    current = state.stored(role)
    if current is not None and p.version <= current.version:
        raise errors.OldVersionError(
            f"{role} v{p.version} is not newer than the stored v{current.version}",
            role=role,
            stored_version=current.version,
            sent_version=p.version,
        )
    if p.signed.is_expired(now):
        raise errors.ExpiredMetadataError(
            f"{role} v{p.version} has expired", role=role, rule="not-expired"
        )
    result = delegator.get_verification_result(role, p.signed_bytes, p.md.signatures)
    if not result.signed:
        raise errors.BadTargetsError(
            f"{role} v{p.version} carries no valid signature from a key {parent_name} delegates to",
            role=role,
            rule="pending-signed-by-delegated-key",
        )
    invalid = sorted(set(p.md.signatures) - set(result.signed))
    if invalid:
        # a valid co-signature waiting on the server must never be replaced by junk
        raise errors.BadTargetsError(
            f"{role} v{p.version} carries signatures that do not verify with a key "
            f"{parent_name} delegates to ({', '.join(k[:12] for k in invalid[:5])}); "
            "this may be an attack",
            role=role,
            rule="pending-signatures-verify",
            invalid=invalid[:10],
        )
    if isinstance(delegator, Targets):
        _check_paths(p, delegator)
    return p


def merge_pending(existing: bytes, new: Parsed, stored: StoredState) -> bytes:
    """What the pending store keeps when ``new`` (checked by :func:`validate_pending`)
    arrives on top of ``existing``.

    Co-signers of the same payload: every signature that still verifies is kept, and
    an existing valid signature is never replaced. Another payload: ``new`` wins.
    """
    try:
        old = parse(new.role, existing)
    except errors.NotaryError:
        return new.raw
    if old.signed_bytes != new.signed_bytes:
        return new.raw
    state = _State(stored)
    if new.role == "targets":
        root = state.stored("root")
        assert root is not None
        delegator: Root | Targets = root.signed
    else:
        delegator = delegator_of(new.role, state.get)[1]
    valid = delegator.get_verification_result(new.role, old.signed_bytes, old.md.signatures).signed
    merged = {k: sig for k, sig in old.md.signatures.items() if k in valid}
    for keyid, sig in new.md.signatures.items():
        merged.setdefault(keyid, sig)
    old.md.signatures.clear()
    old.md.signatures.update(merged)
    return old.md.to_bytes()
