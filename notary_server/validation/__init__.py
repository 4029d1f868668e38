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

The rules live by job: :mod:`.parsing` (no stored state needed), :mod:`.root`,
:mod:`.targets`, :mod:`.snapshot` and :mod:`.pending`; :mod:`.state` holds the types
they share. This module runs them in order (:func:`validate_upload`) and is the
package's public face.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from notary_server import errors
from notary_server.storage import MAX_VERSION
from notary_server.validation.parsing import (
    DEFAULT_LIMITS,
    Limits,
    Parsed,
    ParsedUpload,
    parse,
    parse_upload,
)
from notary_server.validation.pending import merge_pending, validate_pending
from notary_server.validation.root import check_root, holds_threshold
from notary_server.validation.snapshot import check_client_snapshot
from notary_server.validation.state import (
    CandidateState,
    ServerKeyIds,
    StoredState,
    ValidatedUpload,
)
from notary_server.validation.targets import check_targets, delegator_of

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


def validate_upload(
    uploads: Mapping[str, bytes] | ParsedUpload,
    stored: StoredState,
    *,
    server_keys: ServerKeyIds,
    now: datetime,
    limits: Limits = DEFAULT_LIMITS,
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
    state = CandidateState(stored)

    # Root first: everything else is checked against the root in force afterwards.
    prev_root = state.stored("root")
    new_root = parsed.get("root")
    if new_root is not None:
        check_root(new_root, prev_root, server_keys, now)
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
        check_targets(parsed[role], state, now)
    if state.get("targets") is None:
        raise errors.BadHierarchyError(
            "this repository has no targets yet: the first upload must include root and targets",
            rule="first-upload-has-targets",
        )

    server_snapshot = holds_threshold(root.signed, "snapshot", server_keys.snapshot)
    snapshot = parsed.get("snapshot")
    if snapshot is not None:
        check_client_snapshot(snapshot, root.signed, state, stored, now)
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
