"""The last check before a publish is committed: would a TUF client accept the result?

Replays the candidate state through python-tuf's own client-side trust rules
(``TrustedMetadataSet``, internal to python-tuf: wrapped here, in one place). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from tuf.api import exceptions as tuf_exceptions
from tuf.ngclient._internal.trusted_metadata_set import TrustedMetadataSet
from tuf.ngclient.config import EnvelopeType

from notary_server import errors
from notary_server.validation import delegator_of

__all__ = ["check_client_view"]


def check_client_view(
    trusted_root: bytes,
    new_root: bytes | None,
    timestamp: bytes,
    snapshot: bytes,
    targets: Sequence[str],
    get: Any,
    now: datetime,
) -> None:
    """Replay the candidate state through python-tuf's client-side trust rules.

    ``trusted_root`` is the stored root (or the uploaded v1 for a new repository);
    ``targets`` the targets-type roles to load (their delegators are loaded first,
    found with :func:`delegator_of` over ``get``).

    Raises:
        InvalidUpdateError: a TUF client would refuse the state.
    """
    try:
        trusted = TrustedMetadataSet(trusted_root, EnvelopeType.METADATA)
        trusted.reference_time = now
        if new_root is not None:
            trusted.update_root(new_root)
        trusted.update_timestamp(timestamp)
        trusted.update_snapshot(snapshot)
        loaded: set[str] = set()

        def load(role: str) -> None:
            if role in loaded:
                return
            parsed = get(role)
            if role == "targets":
                trusted.update_targets(parsed.raw)
            else:
                parent, _ = delegator_of(role, get)
                load(parent)
                trusted.update_delegated_targets(parsed.raw, role, parent)
            loaded.add(role)

        for role in ["targets", *targets]:
            load(role)
    except (tuf_exceptions.RepositoryError, ValueError, KeyError) as e:
        raise errors.InvalidUpdateError(
            f"a TUF client would refuse the resulting repository: {e}"
        ) from e
