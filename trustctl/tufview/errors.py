"""How python-tuf's refusals reach the user: one :class:`~trustctl.errors.TrustctlError`
each, saying plainly when it may be an attack.
"""

from __future__ import annotations

from typing import Any

from tuf.api import exceptions as tuf_exc
from tuf.api.serialization import DeserializationError

from trustctl.client import transport_failure
from trustctl.errors import (
    AuthenticationError,
    RollbackError,
    ServerUnavailableError,
    StaleMetadataError,
    TagNotSignedError,
    TamperedMetadataError,
    TrustctlError,
    TrustError,
    UnknownRepositoryError,
    UntrustedSignatureError,
)
from trustctl.fetcher import ServerHTTPError
from trustctl.transport import TransportError

__all__ = ["UnpublishedRoleError", "map_tuf_error"]


class UnpublishedRoleError(TagNotSignedError):
    """A lookup reaches a delegated role the snapshot does not list: TUF clients
    refuse to look past it (python-tuf: "delegated but not part of snapshot"), so
    nothing that role or a later one lists counts as signed."""

    def __init__(self, message: str, *, role: str, **detail: Any) -> None:
        super().__init__(message, role=role, **detail)
        self.role = role


def map_tuf_error(e: BaseException, gun: str, server: str) -> TrustctlError:
    """Translate a python-tuf exception into the error a user sees."""
    if isinstance(e, TrustctlError):
        return e
    if isinstance(e, tuf_exc.ExpiredMetadataError):
        return StaleMetadataError(
            f"the trust data for {gun} is stale ({e}): the trust server stopped renewing it, or someone is "
            "replaying old metadata to hide newer changes (a possible freeze attack)",
            hint="do not deploy from it; check that the trust server and its signer are running",
        )
    if isinstance(e, tuf_exc.BadVersionNumberError):
        return RollbackError(
            f"the trust server sent older metadata for {gun} than this client has already seen ({e}): "
            "a possible rollback attack",
            hint="do not deploy; if the repository was deleted and re-created on purpose, re-pin its root "
            f"with `trustctl trust pin {gun} ROOT_FILE`",
        )
    if isinstance(e, tuf_exc.UnsignedMetadataError):
        return UntrustedSignatureError(
            f"trust metadata for {gun} is not signed by enough trusted keys ({e}); it may be forged, or a "
            "key change left it unsigned",
            hint="do not deploy from it; ask the repository owner",
        )
    if isinstance(e, tuf_exc.DownloadLengthMismatchError):
        return TamperedMetadataError(
            f"the trust server sent more data for {gun} than the signed metadata allows ({e}): it may have "
            "been tampered with, or this is an endless-data attack",
            hint="do not deploy from it",
        )
    if isinstance(e, tuf_exc.LengthOrHashMismatchError):
        return TamperedMetadataError(
            f"trust metadata for {gun} does not match what the signed snapshot promised ({e}); "
            "it may have been tampered with (a possible mix-and-match attack)",
            hint="do not deploy from it",
        )
    if isinstance(e, ServerHTTPError | tuf_exc.DownloadHTTPError):
        status = e.status_code
        if status == 404:
            return UnknownRepositoryError(
                f"the trust server has no trust data for {gun}",
                hint=f"check the repository name and --server; the owner creates it with `trustctl init {gun}`",
            )
        if status in (401, 403):
            return AuthenticationError(
                f"the trust server refused to send trust data for {gun} (HTTP {status})",
                hint="set TRUSTCTL_SERVER_USERNAME and TRUSTCTL_SERVER_PASSWORD",
            )
        if status >= 500:
            why = e.summary() if isinstance(e, ServerHTTPError) else f"HTTP {status}"
            return ServerUnavailableError(
                f"the trust server failed to send trust data for {gun} ({why})",
                hint="try again later; --retry-budget SECONDS (TRUSTCTL_RETRY_BUDGET) waits longer",
            )
        return TrustError(f"the trust server answered HTTP {status} for {gun}")
    if isinstance(e, tuf_exc.SlowRetrievalError):
        return ServerUnavailableError(f"the trust server is too slow sending trust data for {gun}")
    if isinstance(e, tuf_exc.DownloadError):
        cause = e.__cause__ or e.__context__
        if isinstance(cause, TransportError):
            return transport_failure(server, cause)
        return ServerUnavailableError(f"downloading trust data for {gun} failed: {e}")
    if isinstance(e, tuf_exc.RepositoryError | DeserializationError):
        return TamperedMetadataError(
            f"trust metadata for {gun} failed verification ({e}); this may be an attack",
            hint="do not deploy from it",
        )
    raise e
