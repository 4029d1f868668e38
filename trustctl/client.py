"""Client of the trust server's write API (and a few direct reads).

Routes (docs/api.md), under ``{server}/v2/<gun>/_trust/tuf/``:

* ``POST .../`` multipart, one ``files`` part per role file (filename = role name);
* ``GET|POST .../<timestamp|snapshot>.key`` server-held public keys (rotate on POST);
* ``GET .../<N>.root.json`` for trust bootstrap;
* ``DELETE .../`` remote delete;
* ``GET|PUT|DELETE {server}/v2/<gun>/_trust/pending/<role>.json`` partially signed
  metadata waiting for more signatures (optional server feature).

Every failure becomes a :class:`~trustctl.errors.TrustctlError`; a version conflict
on publish becomes :class:`VersionConflictError`, which the publisher answers with a
rebase and retry.

Example:
    >>> client = ServerClient("https://notary.example.com", HttpTransport(ca_file="ca.pem"))  # doctest: +SKIP
    >>> client.publish("reg.example.com/app", {"targets": targets_bytes})  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from securesystemslib.signer import Key

from trustctl.errors import (
    AuthenticationError,
    PendingUnsupportedError,
    PublishConflictError,
    PublishUncertainError,
    ServerRejectedError,
    ServerUnavailableError,
    TrustctlError,
    UnknownRepositoryError,
)
from trustctl.retry import REFUSED_CODES, RETRIABLE_STATUS
from trustctl.transport import Response, Transport, TransportError

__all__ = [
    "ServerClient",
    "ServerErrorInfo",
    "VersionConflictError",
    "server_error_info",
    "transport_failure",
]

logger = logging.getLogger(__name__)

SERVER_KEY_ROLES = ("timestamp", "snapshot")
_REASON_HINTS = {
    "BAD_ROOT": "the new root must be signed by the previous root's keys and by its own",
    "EXPIRED": "renew the metadata (trustctl publish re-signs what it changes)",
    "BAD_KEYS": "a key id does not match its key, or a key is listed twice",
    "BAD_HIERARCHY": "the parent role does not delegate to this role",
}


class VersionConflictError(PublishConflictError):
    """Someone published first (HTTP 409 ``VERSION``): fetch, rebase, retry."""

    code = "VERSION"


class ServerErrorInfo:
    """The first entry of the server's ``{"errors": [...]}`` envelope."""

    def __init__(self, code: str | None, message: str | None, detail: Mapping[str, Any]) -> None:
        self.code = code
        self.message = message
        self.detail = detail


def info_code(resp: Response) -> str | None:
    return server_error_info(resp).code


def _gave_up(resp: Response) -> str:
    return f"; {resp.gave_up}" if resp.gave_up else ""


def server_error_info(resp: Response) -> ServerErrorInfo:
    try:
        entry = resp.json()["errors"][0]
        detail = entry.get("detail")
        return ServerErrorInfo(
            entry.get("code"), entry.get("message"), detail if isinstance(detail, dict) else {}
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ServerErrorInfo(None, None, {})


def transport_failure(server: str, e: TransportError) -> ServerUnavailableError:
    """The user-facing error for a trust server we could not talk to."""
    hint = (
        "pass the server's CA bundle with --tls-ca FILE (or TRUSTCTL_TLS_CA)"
        if e.tls
        else "check --server (TRUSTCTL_SERVER) and that the trust server is running"
    )
    return ServerUnavailableError(
        f"cannot reach the trust server at {server}: {e.reason}", hint=hint
    )


def _uncertain(gun: str, why: str) -> PublishUncertainError:
    return PublishUncertainError(
        f"the upload of {gun} was sent but {why}: it may or may not be stored",
        hint=f"`trustctl verify` or `trustctl inspect {gun}` shows what is published; "
        "`trustctl publish` sends what is still staged",
    )


class ServerClient:
    """Calls the trust server.

    Args:
        server: base URL, e.g. ``https://127.0.0.1:4443``.
        transport: carries the CA bundle and credentials.
    """

    def __init__(self, server: str, transport: Transport) -> None:
        self.server = server.rstrip("/")
        self._transport = transport

    def metadata_url(self, gun: str) -> str:
        return f"{self.server}/v2/{gun}/_trust/tuf/"

    # --- reads -------------------------------------------------------------------

    def get_file(self, gun: str, filename: str) -> bytes | None:
        """A metadata file (e.g. ``1.root.json``), or None when the server has none."""
        resp = self._call("GET", self.metadata_url(gun) + filename, scope=_scope(gun, "pull"))
        if resp.status == 404:
            return None
        self._check(resp, gun, f"GET {filename}")
        return resp.data

    def server_key(self, gun: str, role: str) -> Key:
        """The server-held public key for ``role`` (timestamp or snapshot) of ``gun``."""
        return self._key_call("GET", gun, role)

    def rotate_server_key(self, gun: str, role: str) -> Key:
        """Ask the server for a new ``role`` key; it is pending until a root lists it."""
        return self._key_call("POST", gun, role)

    # --- writes ------------------------------------------------------------------

    def publish(self, gun: str, files: Mapping[str, bytes]) -> None:
        """Upload role files atomically (one multipart request).

        Raises:
            VersionConflictError: someone else published first.
            ServerRejectedError: the server refused the update (names the rule).
            PublishUncertainError: the request was sent and its answer lost (a
                reset, a proxy's 502 or 504): reconcile before trying again.
            AuthenticationError, ServerUnavailableError.
        """
        parts = [(role, data) for role, data in files.items()]
        try:
            resp = self._transport.request(
                "POST", self.metadata_url(gun), files=parts, scope=_scope(gun, "push,pull")
            )
        except TransportError as e:
            if e.sent and not e.tls:
                raise _uncertain(
                    gun, f"the connection failed before the answer ({e.reason})"
                ) from e
            raise transport_failure(self.server, e) from e
        if resp.status in RETRIABLE_STATUS and not (
            resp.status == 503 and info_code(resp) in REFUSED_CODES
        ):
            raise _uncertain(gun, f"the answer was HTTP {resp.status}{_gave_up(resp)}")
        self._check(resp, gun, "publish")

    def delete(self, gun: str) -> None:
        """Delete all of ``gun``'s trust data on the server."""
        resp = self._call("DELETE", self.metadata_url(gun), scope=_scope(gun, "*"))
        if resp.status == 404:
            return
        self._check(resp, gun, "delete")

    # --- pending signatures (optional server feature) ---------------------------------

    def pending_url(self, gun: str, role: str) -> str:
        return f"{self.server}/v2/{gun}/_trust/pending/{quote(role, safe='')}.json"

    def get_pending(self, gun: str, role: str) -> bytes | None:
        resp = self._call("GET", self.pending_url(gun, role), scope=_scope(gun, "pull"))
        if resp.status == 404:
            if server_error_info(resp).code == "METADATA_NOT_FOUND":
                return None
            raise _pending_unsupported(self.server)
        if resp.status == 405:
            raise _pending_unsupported(self.server)
        self._check(resp, gun, "read pending signatures")
        return resp.data

    def put_pending(self, gun: str, role: str, data: bytes) -> None:
        resp = self._call(
            "PUT",
            self.pending_url(gun, role),
            body=data,
            headers={"Content-Type": "application/json"},
            scope=_scope(gun, "push,pull"),
        )
        if resp.status in (404, 405) and server_error_info(resp).code != "METADATA_NOT_FOUND":
            raise _pending_unsupported(self.server)
        self._check(resp, gun, "store pending signatures")

    def delete_pending(self, gun: str, role: str) -> None:
        resp = self._call("DELETE", self.pending_url(gun, role), scope=_scope(gun, "push,pull"))
        if resp.status in (404, 405):
            return
        self._check(resp, gun, "discard pending signatures")

    # --- internals ---------------------------------------------------------------

    def _key_call(self, method: str, gun: str, role: str) -> Key:
        if role not in SERVER_KEY_ROLES:
            raise ValueError(f"the server holds only {SERVER_KEY_ROLES} keys, not {role!r}")
        scope = _scope(gun, "*" if method == "POST" else "push,pull")
        resp = self._call(method, self.metadata_url(gun) + f"{role}.key", scope=scope)
        self._check(resp, gun, f"{'rotate' if method == 'POST' else 'get'} the {role} key")
        try:
            doc = resp.json()
            keyid = doc.pop("keyid")
            return Key.from_dict(keyid, doc)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ServerRejectedError(
                f"the trust server sent an unreadable {role} key: {e}",
                hint="is --server a trust server?",
            ) from e

    def _call(self, method: str, url: str, **kwargs: Any) -> Response:
        try:
            return self._transport.request(method, url, **kwargs)
        except TransportError as e:
            raise transport_failure(self.server, e) from e

    def _check(self, resp: Response, gun: str, action: str) -> None:
        if 200 <= resp.status < 300:
            return
        raise error_for_response(resp, gun, action, self.server)


def error_for_response(resp: Response, gun: str, action: str, server: str) -> TrustctlError:
    """Map a trust-server error response to the user-facing error."""
    info = server_error_info(resp)
    message = info.message or f"HTTP {resp.status}"
    code = info.code or ""
    if resp.status == 409 or code == "VERSION":
        return VersionConflictError(f"{action} for {gun}: {message}", server_code=code)
    if resp.status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
        host = server.split("://", 1)[-1]
        return AuthenticationError(
            f"the trust server refused to {action} for {gun} (HTTP {resp.status}: {message})",
            hint=f"set TRUSTCTL_SERVER_USERNAME and TRUSTCTL_SERVER_PASSWORD, or `docker login {host}`",
        )
    if resp.status == 404:
        return UnknownRepositoryError(
            f"the trust server has no trust data for {gun}",
            hint=f"create it with `trustctl init {gun}`, or check the repository name and --server",
        )
    if resp.status >= 500 or code.endswith("_UNAVAILABLE"):
        notes = [n for n in (resp.gave_up, _request_id(resp)) if n]
        return ServerUnavailableError(
            f"the trust server could not {action} for {gun}: {code or resp.status} {message}"
            f"{' (' + '; '.join(notes) + ')' if notes else ''}",
            hint="try again later; --retry-budget SECONDS (TRUSTCTL_RETRY_BUDGET) waits longer",
        )
    reason = str(info.detail.get("reason", "")) if info.detail else ""
    return ServerRejectedError(
        f"the trust server refused to {action} for {gun}: {message}",
        hint=_REASON_HINTS.get(reason),
        server_code=code or None,
        reason=reason or None,
    )


def _request_id(resp: Response) -> str | None:
    """``request <id>``: what the server's operator finds the details under in its log."""
    rid = resp.header("x-request-id") or ""
    return f"request {rid}" if rid and len(rid) <= 64 and rid.isprintable() else None


def _scope(gun: str, actions: str) -> str:
    return f"repository:{gun}:{actions}"


def _pending_unsupported(server: str) -> PendingUnsupportedError:
    return PendingUnsupportedError(
        f"the trust server at {server} does not hold partially signed metadata",
        hint="signers who sign with a threshold above 1 must share a directory: pass --pending-dir DIR "
        "(or TRUSTCTL_PENDING_DIR)",
    )
