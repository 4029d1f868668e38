"""Every check of an upload that needs no stored state: role names, parsing as TUF
metadata of the role's type, canonical form, versions, sizes and nesting, key ids,
target names and delegation structure. Pure.

The expensive part of validating an upload (parsing a large targets file takes
seconds), so the server runs it before taking the repository's write lock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuf.api.metadata import Metadata, Root, Signed, Snapshot, Targets

from notary_server import errors
from notary_server.keycheck import check_keys
from notary_server.names import TOP_LEVEL_ROLES, check_delegated_role, target_path_problem
from notary_server.storage import MAX_VERSION
from notary_signer.canonical import canonical_json

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "Parsed",
    "ParsedUpload",
    "check_structure",
    "parse",
    "parse_upload",
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


#: The default bounds (for callers in other modules: ``Limits()`` as a default there
#: reads as a call per definition to linters).
DEFAULT_LIMITS = Limits()


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
        raise errors.MalformedJSONError(
            f"{role}: not valid TUF metadata: {_cause(e)}", role=role
        ) from e
    try:
        md: Metadata[Any] = Metadata.from_dict(obj)
    except Exception as e:  # python-tuf raises several types for bad input
        raise errors.MalformedJSONError(
            f"{role}: not valid TUF metadata: {_cause(e)}", role=role
        ) from e
    if not isinstance(md.signed, expected):
        raise errors.MalformedJSONError(
            f"{role}: expected metadata of type {expected.type!r}, got {md.signed.type!r}",
            role=role,
        )
    parsed = Parsed(role, raw, md)
    if canonical:
        try:
            parsed.signed_bytes  # noqa: B018 - computed now so that a failure is MalformedJSON
        except (ValueError, RecursionError) as e:
            raise errors.MalformedJSONError(
                f"{role}: cannot be canonicalised: {e}", role=role
            ) from e
    return parsed


def _cause(e: BaseException) -> str:
    while e.__cause__ is not None:
        e = e.__cause__
    return str(e) or type(e).__name__


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
        check_structure(p, limits)
    return parsed


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


def check_structure(p: Parsed, limits: Limits) -> None:
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
