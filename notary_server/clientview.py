"""The last check before a publish is committed: would a TUF client accept the result?

Replays the candidate state the way a TUF client reads it, over the exact bytes that
will be stored and served: python-tuf parses each file itself and computes the
canonical form its signatures are checked over (nothing parsed or canonicalised by
this server is reused), then its public metadata API checks the client's rules:

* a new root is signed by the trusted root and by itself, one version up;
* root, timestamp, snapshot and every targets role loaded are unexpired at ``now``;
* the timestamp and snapshot carry the root's thresholds of signatures, the
  snapshot matches the length, hashes and version the timestamp names;
* each targets role matches the snapshot's entry (length, hashes, version) and is
  signed by a threshold of the keys its delegator names (its delegator loaded first).

Pure. python-tuf's ngclient runs the same rules (``TrustedMetadataSet``, which is not
public API) and is the judge in the tests (``tests/client_view.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from tuf.api import exceptions as tuf_exceptions
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp
from tuf.api.serialization import DeserializationError

from notary_server import errors
from notary_server.validation import delegator_of

__all__ = ["check_client_view"]

#: The roles a client loads (python-tuf's own ``Metadata`` type variable's constraints).
S = TypeVar("S", Root, Timestamp, Snapshot, Targets)


def _load(
    kind: type[S],
    name: str,
    data: bytes,
    delegator: Root | Targets,
    meta: MetaFile | None,
    now: datetime,
) -> Metadata[S]:
    """``data`` as a TUF client loads it: matched to ``meta``, parsed, signed by
    ``delegator``'s keys for ``name``, the version ``meta`` names, unexpired."""
    if meta is not None:
        meta.verify_length_and_hashes(data)
    md = Metadata[S].from_bytes(data)
    if md.signed.type != kind.type:
        raise tuf_exceptions.RepositoryError(f"expected {kind.type}, got {md.signed.type}")
    delegator.verify_delegate(name, md.signed_bytes, md.signatures)
    if meta is not None and md.signed.version != meta.version:
        raise tuf_exceptions.BadVersionNumberError(
            f"expected {name} v{meta.version}, got v{md.signed.version}"
        )
    if md.signed.is_expired(now):
        raise tuf_exceptions.ExpiredMetadataError(f"{name} is expired")
    return md


def check_client_view(
    trusted_root: bytes,
    new_root: bytes | None,
    timestamp: bytes,
    snapshot: bytes,
    targets: Sequence[str],
    get: Any,
    now: datetime,
) -> None:
    """Replay the candidate state as a TUF client would read it (see module docstring).

    ``trusted_root`` is the stored root (or the uploaded v1 for a new repository);
    ``targets`` the targets-type roles to load (their delegators are loaded first,
    found with :func:`delegator_of` over ``get``, whose ``raw`` bytes are the ones that
    will be served).

    Raises:
        InvalidUpdateError: a TUF client would refuse the state.
    """
    try:
        root_md = Metadata[Root].from_bytes(trusted_root)
        root = root_md.signed
        root.verify_delegate(Root.type, root_md.signed_bytes, root_md.signatures)
        if new_root is not None:
            new = Metadata[Root].from_bytes(new_root)
            root.verify_delegate(Root.type, new.signed_bytes, new.signatures)
            if new.signed.version != root.version + 1:
                raise tuf_exceptions.BadVersionNumberError(
                    f"expected root v{root.version + 1}, got v{new.signed.version}"
                )
            new.signed.verify_delegate(Root.type, new.signed_bytes, new.signatures)
            root = new.signed
        if root.is_expired(now):
            raise tuf_exceptions.ExpiredMetadataError("root is expired")
        ts = _load(Timestamp, Timestamp.type, timestamp, root, None, now).signed
        snap = _load(Snapshot, Snapshot.type, snapshot, root, ts.snapshot_meta, now).signed
        loaded: dict[str, Root | Targets] = {"root": root}

        def load(role: str) -> Root | Targets:
            if role in loaded:
                return loaded[role]
            parsed = get(role)
            if parsed is None:
                raise tuf_exceptions.RepositoryError(f"{role} does not exist")
            parent = "root" if role == Targets.type else delegator_of(role, get)[0]
            delegator = load(parent)
            meta = snap.meta.get(f"{role}.json")
            if meta is None:
                raise tuf_exceptions.RepositoryError(f"the snapshot does not list {role}")
            loaded[role] = _load(Targets, role, parsed.raw, delegator, meta, now).signed
            return loaded[role]

        for role in [Targets.type, *targets]:
            load(role)
    except (tuf_exceptions.RepositoryError, DeserializationError, ValueError, KeyError) as e:
        raise errors.InvalidUpdateError(
            f"a TUF client would refuse the resulting repository: {e}"
        ) from e
