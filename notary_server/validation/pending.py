"""Partially signed targets metadata waiting for more signatures: what is accepted,
and how co-signatures are merged. Pure."""

from __future__ import annotations

from datetime import datetime

from tuf.api.metadata import Root, Targets

from notary_server import errors
from notary_server.names import check_delegated_role
from notary_server.validation.parsing import DEFAULT_LIMITS, Limits, Parsed, check_structure, parse
from notary_server.validation.state import CandidateState, StoredState
from notary_server.validation.targets import check_paths, delegator_of

__all__ = ["merge_pending", "validate_pending"]


def validate_pending(
    role: str, raw: bytes, stored: StoredState, *, now: datetime, limits: Limits = DEFAULT_LIMITS
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
    check_structure(p, limits)
    state = CandidateState(stored)
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
        check_paths(p, delegator)
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
    state = CandidateState(stored)
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
