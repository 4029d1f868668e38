"""The signing service's error tree.

Every error the signer reports, on either side of the wire, is a :class:`SignerError`
subclass with a stable ``code`` and an HTTP status. The HTTP API answers errors with
one envelope::

    {"errors": [{"code": "SIGN_REFUSED", "message": "...", "detail": {...}}]}

and :mod:`notary_signer.client` turns the envelope back into the same class through
:func:`error_for_code`, so callers on the trust server catch the exceptions they
would get from an in-process :class:`~notary_signer.client.LocalKeyService`.

Example::

    try:
        signer.sign(payload)
    except SignerRefusedError as e:
        logger.warning("signer refused: %s", e)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadRequestError",
    "ConfigError",
    "KeyNotFoundError",
    "PassphraseError",
    "SignerError",
    "SignerRefusedError",
    "SignerUnavailableError",
    "UnsupportedAlgorithmError",
    "error_for_code",
]


class SignerError(Exception):
    """Base of every error of the signing service.

    Attributes:
        message: Human-readable text; never contains keys, passphrases or payloads.
        detail: Small JSON-serialisable facts (key id, role, ...) for machines.
        hint: Optional advice shown by the CLI under the message.
    """

    code: ClassVar[str] = "SIGNER_ERROR"
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, *, hint: str | None = None, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.detail: dict[str, Any] = detail

    def to_dict(self) -> dict[str, Any]:
        """Return the error as one entry of the ``errors`` envelope."""
        return {"code": self.code, "message": self.message, "detail": self.detail}


class KeyNotFoundError(SignerError):
    """No key with this key id (or none for this GUN and role)."""

    code = "KEY_NOT_FOUND"
    http_status = 404


class SignerRefusedError(SignerError):
    """Policy refusal: wrong role or GUN, or a payload that is not canonical TUF."""

    code = "SIGN_REFUSED"
    http_status = 403


class UnsupportedAlgorithmError(SignerRefusedError):
    """The requested key algorithm is not one the signer generates.

    A subclass of :class:`SignerRefusedError` so that callers following the
    ``KeyService.create_key`` contract ("raises SignerRefusedError ... or bad
    algorithm") catch it, while the HTTP API still answers 400.
    """

    code = "UNSUPPORTED_ALGORITHM"
    http_status = 400


class BadRequestError(SignerError):
    """Malformed request: bad JSON, a missing or mistyped field."""

    code = "BAD_REQUEST"
    http_status = 400


class PassphraseError(SignerError):
    """A passphrase alias is not set in the environment, or the passphrase is wrong.

    The message names the environment variable, never its value.
    """

    code = "PASSPHRASE"
    http_status = 500


class SignerUnavailableError(SignerError):
    """Client side: the signer cannot be reached, timed out or answered 5xx."""

    code = "SIGNER_UNAVAILABLE"
    http_status = 503


class ConfigError(SignerError):
    """Start-up configuration is missing, unreadable or invalid."""

    code = "CONFIG"
    http_status = 500


_BY_CODE: dict[str, type[SignerError]] = {
    cls.code: cls
    for cls in (
        KeyNotFoundError,
        SignerRefusedError,
        UnsupportedAlgorithmError,
        BadRequestError,
        PassphraseError,
        SignerUnavailableError,
        ConfigError,
    )
}


def error_for_code(code: str) -> type[SignerError]:
    """Return the error class for a stable ``code`` (``SignerError`` if unknown)."""
    return _BY_CODE.get(code, SignerError)
