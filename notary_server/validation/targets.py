"""The rules for targets and delegated roles (DESIGN section 4, rule 4): who delegates
to a role, its version, its delegator's threshold, expiry and delegated paths. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tuf.api.metadata import Targets

from notary_server import errors
from notary_server.validation.parsing import Parsed
from notary_server.validation.state import CandidateState

__all__ = ["check_paths", "check_targets", "delegator_of"]


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


def check_targets(p: Parsed, state: CandidateState, now: datetime) -> None:
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
        check_paths(p, delegator)


def check_paths(p: Parsed, parent: Targets) -> None:
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
