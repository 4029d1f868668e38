"""trustctl's error tree: every failure a user can see, with an exit code and a hint.

Each class names what went wrong; the CLI prints ``Error: <message>`` and, when there
is one, ``Hint: <hint>`` on stderr, and exits with the class's ``exit_code``:

* 0 success;
* 1 trust failure: unsigned, digest mismatch, stale or rolled-back metadata, a
  refused update, anything that may be an attack;
* 2 usage or local set-up: a malformed reference, a missing key or passphrase, no
  pinned root, rejected credentials;
* 3 network: the trust server or the registry cannot be reached or is unavailable.

Lower layers raise these with ``raise ... from e``; the CLI shows the traceback only
with ``-vv``.

Example:
    >>> err = DigestMismatchError("v1 moved", hint="deploy by digest")
    >>> (err.code, err.exit_code)
    ('DIGEST_MISMATCH', 1)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "EXIT_NETWORK",
    "EXIT_OK",
    "EXIT_TRUST",
    "EXIT_USAGE",
    "AlreadyInitializedError",
    "AuthenticationError",
    "BatchError",
    "ConfigError",
    "CopyFailedError",
    "DigestMismatchError",
    "InvalidReferenceError",
    "ManifestNotFoundError",
    "MissingKeyError",
    "NetworkError",
    "NoPinnedRootError",
    "PassphraseError",
    "PendingConflictError",
    "PendingUnsupportedError",
    "PublishConflictError",
    "PublishUncertainError",
    "RegistryProtocolError",
    "RegistryUnavailableError",
    "RollbackError",
    "ServerRejectedError",
    "ServerUnavailableError",
    "SignerPolicyError",
    "SignersHoldTagError",
    "StaleMetadataError",
    "StateCorruptError",
    "TagNotSignedError",
    "TamperedMetadataError",
    "ThresholdError",
    "ToolMissingError",
    "TrustError",
    "TrustctlError",
    "UnknownRepositoryError",
    "UnmatchableTargetError",
    "UntrustedSignatureError",
    "UsageError",
    "WrongPassphraseError",
]

EXIT_OK = 0
EXIT_TRUST = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3


class TrustctlError(Exception):
    """Base of every error trustctl reports to a user.

    Args:
        message: one line saying what went wrong, with expected and actual values.
        hint: one line saying what to do about it (optional).
        **detail: machine-readable facts for ``--json`` output.
    """

    code: ClassVar[str] = "ERROR"
    exit_code: ClassVar[int] = EXIT_TRUST
    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str, *, hint: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.detail = detail
        self.document: dict[str, Any] = {}
        """More members of the ``--json`` failure document (a batch's ``tags``)."""

    def to_dict(self) -> dict[str, Any]:
        """The error as the ``error`` member of a ``--json`` document."""
        out: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "exit_code": self.exit_code,
            "hint": self.hint,
        }
        if self.detail:
            out["detail"] = self.detail
        return out


# --- exit 2: usage and local set-up -------------------------------------------------


class UsageError(TrustctlError):
    code = "USAGE"
    exit_code = EXIT_USAGE


class InvalidReferenceError(UsageError):
    code = "INVALID_REFERENCE"
    default_hint = "expected REGISTRY[:PORT]/REPOSITORY[:TAG][@sha256:DIGEST], e.g. 127.0.0.1:5000/library/app:v1"


class ConfigError(UsageError):
    code = "CONFIG"


class AlreadyInitializedError(UsageError):
    code = "ALREADY_INITIALIZED"


class MissingKeyError(UsageError):
    code = "MISSING_KEY"


class PassphraseError(UsageError):
    code = "NO_PASSPHRASE"


class WrongPassphraseError(PassphraseError):
    code = "WRONG_PASSPHRASE"


class NoPinnedRootError(UsageError):
    code = "NO_PINNED_ROOT"


class SignersHoldTagError(UsageError):
    """The tag is the signers' (k of n): a single owner key may not sign it."""

    code = "SIGNERS_HOLD_TAG"


class PendingUnsupportedError(UsageError):
    code = "PENDING_UNSUPPORTED"


class ToolMissingError(UsageError):
    code = "TOOL_MISSING"


class AuthenticationError(UsageError):
    code = "UNAUTHORIZED"


# --- exit 1: trust failures ---------------------------------------------------------


class TrustError(TrustctlError):
    code = "TRUST"
    exit_code = EXIT_TRUST


class TagNotSignedError(TrustError):
    code = "NOT_SIGNED"


class UnknownRepositoryError(TrustError):
    code = "UNKNOWN_REPOSITORY"


class DigestMismatchError(TrustError):
    code = "DIGEST_MISMATCH"


class StaleMetadataError(TrustError):
    code = "STALE"


class RollbackError(TrustError):
    code = "ROLLBACK"


class StateCorruptError(TrustError):
    """The trusted state a repository was verified with before is missing or unreadable
    (see :mod:`trustctl.trustedstate`): never read as "nothing trusted yet"."""

    code = "STATE_CORRUPT"


class UntrustedSignatureError(TrustError):
    code = "BAD_SIGNATURE"


class TamperedMetadataError(TrustError):
    code = "TAMPERED"


class UnmatchableTargetError(TrustError):
    """A signed entry without a sha256 hash: valid TUF, but no manifest digest to match."""

    code = "NO_SHA256"


class SignerPolicyError(TrustError):
    code = "SIGNER_POLICY"


class ServerRejectedError(TrustError):
    code = "REJECTED"


class ManifestNotFoundError(TrustError):
    code = "MANIFEST_NOT_FOUND"


class RegistryProtocolError(TrustError):
    code = "REGISTRY_PROTOCOL"


class PendingConflictError(TrustError):
    code = "PENDING_CONFLICT"


class ThresholdError(TrustError):
    code = "THRESHOLD"


class PublishConflictError(TrustError):
    code = "CONFLICT"


class BatchError(TrustctlError):
    """Some references of a many-reference command failed (each is reported too).

    The exit code is the gravest of theirs: 1 if any is a trust failure."""

    code = "SOME_FAILED"

    def __init__(self, message: str, *, failures: list[TrustctlError], **detail: Any) -> None:
        super().__init__(message, hint=failures[0].hint if failures else None, **detail)
        codes = {f.exit_code for f in failures}
        self.exit_code = EXIT_TRUST if EXIT_TRUST in codes or not codes else max(codes)  # type: ignore[misc]


class CopyFailedError(TrustctlError):
    code = "COPY_FAILED"


# --- exit 3: network ----------------------------------------------------------------


class NetworkError(TrustctlError):
    code = "NETWORK"
    exit_code = EXIT_NETWORK


class ServerUnavailableError(NetworkError):
    code = "SERVER_UNAVAILABLE"


class PublishUncertainError(ServerUnavailableError):
    """The upload was sent but its answer was lost: it may or may not be stored.

    The publisher reconciles (reads the repository, checks whether the upload is
    there) before it tries again; this reaches a user only when the retry budget ran
    out first.
    """

    code = "PUBLISH_UNCERTAIN"


class RegistryUnavailableError(NetworkError):
    code = "REGISTRY_UNAVAILABLE"
