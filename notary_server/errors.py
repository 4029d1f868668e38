"""The trust server's error tree.

Every error the server reports to a client is a :class:`NotaryError` subclass with a
stable ``code`` (the incumbent's names where the meaning is the same) and an HTTP
status. Views never build error responses by hand: the app's error handler turns any
``NotaryError`` into the envelope

    {"errors": [{"code": "INVALID_UPDATE", "message": "...", "detail": {...}}]}

Validation failures are ``InvalidUpdateError`` subclasses whose ``detail["reason"]``
names the broken rule (``BAD_ROOT``, ``BAD_TARGETS``, ``BAD_SNAPSHOT``, ...), so a
client can tell them apart without parsing the message.

Messages are written for the client and name nothing internal: no host, port, file
path, SQL or library exception text. What went wrong inside (the signer's address,
the database driver's error) is the exception's ``__cause__``, which the app logs
under the request id it also sends to the client (:func:`envelope`).

A ``503`` (:class:`SignerUnavailableError`, :class:`StorageUnavailableError`) means
nothing was stored: the client may send the same request again after
``retry_after`` seconds (the ``Retry-After`` header).
"""

from __future__ import annotations

import random
import re
from typing import Any, ClassVar

__all__ = [
    "REQUEST_ID_HEADER",
    "BadHierarchyError",
    "BadKeysError",
    "BadRootError",
    "BadSnapshotError",
    "BadTargetsError",
    "BusyError",
    "ConfigError",
    "DeniedError",
    "ExpiredMetadataError",
    "InvalidGunError",
    "InvalidParametersError",
    "InvalidRoleError",
    "InvalidUpdateError",
    "MalformedJSONError",
    "MalformedUploadError",
    "MetadataNotFoundError",
    "MethodNotAllowedError",
    "NoFilenameError",
    "NotFoundError",
    "NotaryError",
    "OldVersionError",
    "SignerUnavailableError",
    "StorageUnavailableError",
    "TooLargeError",
    "TooManyPartsError",
    "UnauthorizedError",
    "VersionTooLargeError",
    "describe_cause",
    "envelope",
    "new_request_id",
]


class NotaryError(Exception):
    """Base of every error the server reports to a client."""

    code: ClassVar[str] = "UNKNOWN"
    http_status: ClassVar[int] = 500
    default_message: ClassVar[str] = "unknown error"
    #: Seconds after which the same request may succeed (sent as ``Retry-After``).
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        self.message = message or self.default_message
        self.detail = detail
        #: Extra response headers (the ``WWW-Authenticate`` challenge of a 401).
        self.headers: dict[str, str] = {}
        if self.retry_after is not None:
            self.headers["Retry-After"] = str(self.retry_after)
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail:
            entry["detail"] = self.detail
        return entry


REQUEST_ID_HEADER = "X-Request-ID"
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def new_request_id(offered: str | None = None) -> str:
    """The id of one request: the client's (or a proxy's) ``X-Request-ID`` when it is
    a plain token of 8 to 64 characters, else 16 random hex digits."""
    if offered and _CLIENT_REQUEST_ID.fullmatch(offered):
        return offered
    # an id to find a request in the logs, not a secret: no system call per request
    # (``random`` is reseeded in every forked worker)
    return f"{random.getrandbits(64):016x}"


def envelope(error: NotaryError, request_id: str | None) -> dict[str, Any]:
    """The JSON body of an error answer: ``{"errors": [...], "request_id": ...}``."""
    body: dict[str, Any] = {"errors": [error.to_dict()]}
    if request_id:
        body["request_id"] = request_id
    return body


def describe_cause(error: BaseException) -> str:
    """The chain of causes behind ``error``, for the server's log only (never a body)."""
    parts: list[str] = []
    seen: set[int] = set()
    cause = error.__cause__ or error.__context__
    while cause is not None and id(cause) not in seen and len(parts) < 4:
        seen.add(id(cause))
        parts.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    return " <- ".join(parts) if parts else "no further cause"


class MalformedUploadError(NotaryError):
    code = "MALFORMED_UPLOAD"
    http_status = 400
    default_message = "upload must be multipart/form-data with one part per role"


class NoFilenameError(NotaryError):
    code = "NO_FILENAME"
    http_status = 400
    default_message = "a multipart part has no filename (the filename names the role)"


class InvalidRoleError(NotaryError):
    code = "INVALID_ROLE"
    http_status = 400
    default_message = "invalid role name"


class InvalidGunError(NotaryError):
    code = "INVALID_GUN"
    http_status = 400
    default_message = "invalid repository name (GUN)"


class MalformedJSONError(NotaryError):
    code = "MALFORMED_JSON"
    http_status = 400
    default_message = "metadata is not valid TUF JSON"


class TooLargeError(NotaryError):
    code = "TOO_LARGE"
    http_status = 413
    default_message = "request exceeds a configured size limit"


class TooManyPartsError(TooLargeError):
    code = "TOO_MANY_PARTS"
    default_message = "the upload has more parts than allowed"


class InvalidUpdateError(NotaryError):
    """The upload parsed, but breaks a TUF rule. ``detail["reason"]`` says which."""

    code = "INVALID_UPDATE"
    http_status = 400
    default_message = "update sent by the client is invalid"
    reason: ClassVar[str] = "VALIDATION"

    def __init__(self, message: str | None = None, **detail: Any) -> None:
        detail.setdefault("reason", self.reason)
        super().__init__(message, **detail)


class BadRootError(InvalidUpdateError):
    reason = "BAD_ROOT"


class BadTargetsError(InvalidUpdateError):
    reason = "BAD_TARGETS"


class BadSnapshotError(InvalidUpdateError):
    reason = "BAD_SNAPSHOT"


class BadHierarchyError(InvalidUpdateError):
    reason = "BAD_HIERARCHY"


class BadKeysError(InvalidUpdateError):
    """A key id that is not the key's own id, or one key listed under two ids."""

    reason = "BAD_KEYS"


class ExpiredMetadataError(InvalidUpdateError):
    reason = "EXPIRED"


class OldVersionError(NotaryError):
    """Same or older version than stored: a rollback, or a lost race to publish."""

    code = "VERSION"
    http_status = 409
    default_message = "a newer or equal version is already stored; fetch, rebase and retry"


class VersionTooLargeError(NotaryError):
    """A version past ``storage.MAX_VERSION``, which no store could keep or client fetch."""

    code = "VERSION_TOO_LARGE"
    http_status = 400
    default_message = "the metadata version is larger than the server accepts"


class MetadataNotFoundError(NotaryError):
    code = "METADATA_NOT_FOUND"
    http_status = 404
    default_message = "trust metadata not found"


class InvalidParametersError(NotaryError):
    code = "INVALID_PARAMETERS"
    http_status = 400
    default_message = "invalid request parameters"


class SignerUnavailableError(NotaryError):
    code = "SIGNER_UNAVAILABLE"
    http_status = 503
    default_message = (
        "the signing service is unavailable; nothing was stored: try again in a few seconds"
    )
    retry_after = 1


class BusyError(NotaryError):
    code = "BUSY"
    http_status = 503
    default_message = (
        "the server is checking as many large uploads as it may at once; "
        "nothing was stored: try again in a few seconds"
    )
    retry_after = 2


class StorageUnavailableError(NotaryError):
    code = "STORAGE_UNAVAILABLE"
    http_status = 503
    default_message = (
        "the metadata database is unavailable; nothing was stored: try again in a few seconds"
    )
    retry_after = 1


class UnauthorizedError(NotaryError):
    code = "UNAUTHORIZED"
    http_status = 401
    default_message = "authentication required"


class DeniedError(NotaryError):
    code = "DENIED"
    http_status = 403
    default_message = "requested access to the resource is denied"


class NotFoundError(NotaryError):
    code = "GENERIC_NOT_FOUND"
    http_status = 404
    default_message = "no such endpoint"


class MethodNotAllowedError(NotaryError):
    code = "UNSUPPORTED"
    http_status = 405
    default_message = "method not allowed on this endpoint"


class ConfigError(NotaryError):
    """A setting is missing, unreadable or out of range (reported by the command line
    at start-up, never to a client)."""

    code = "CONFIG"
    http_status = 500
    default_message = "invalid server configuration"
