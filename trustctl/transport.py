"""HTTP for trustctl: one small :class:`Transport` seam, one urllib3 implementation.

Everything trustctl sends over the network (TUF downloads, uploads to the trust
server, Registry API calls) goes through a :class:`Transport`. Tests substitute an
in-memory one; production uses :class:`HttpTransport`, which

* trusts exactly the CA bundle it is given (``ca_file``) when there is one. urllib3
  then loads only that file, so ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or
  ``SSL_CERT_FILE`` in the environment cannot override an explicit ``--tls-ca``;
  without one it uses the system trust store;
* answers ``401`` challenges once per request: ``Basic`` with the host's
  credentials, or ``Bearer realm=..,service=..,scope=..`` by fetching a token from
  the realm (Docker's registry token flow) and caching it per scope;
* bounds every response body (``max_bytes``) against endless-data attacks;
* turns connection failures into :class:`TransportError`.

Example:
    >>> t = HttpTransport(ca_file=None)
    >>> resp = t.request("GET", "http://127.0.0.1:1/v2/")  # doctest: +SKIP
    Traceback (most recent call last):
    TransportError: ...
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

import urllib3

from trustctl import __version__
from trustctl.credentials import Credentials
from trustctl.reference import is_loopback_host, split_host_port

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Challenge",
    "HttpTransport",
    "MultipartFile",
    "Response",
    "Transport",
    "TransportError",
    "parse_challenge",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 32 * 1024 * 1024
USER_AGENT = f"trustctl/{__version__}"

MultipartFile = tuple[str, bytes]
"""One part of a multipart upload: (filename, content); sent as form field ``files``."""


@dataclass(frozen=True)
class Response:
    """An HTTP response, body read (and bounded). Header names are lower case."""

    status: int
    headers: Mapping[str, str]
    data: bytes
    url: str = ""
    truncated: bool = False
    #: Set by :class:`~trustctl.retry.RetryingTransport` when this is the last of
    #: several retriable answers: the tries and the time spent ("gave up after ...").
    gave_up: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as JSON (raises ``ValueError`` when it is not)."""
        return json.loads(self.data)


class TransportError(Exception):
    """The request never got an HTTP answer: DNS, refused connection, TLS, timeout.

    Attributes:
        tls: a TLS failure (never healed by retrying).
        sent: the request may have reached the server (the connection failed after
            it was written): a write may have been carried out.
        retriable: trying again may succeed (refused, reset, timed out).
    """

    def __init__(
        self,
        url: str,
        reason: str,
        *,
        tls: bool = False,
        sent: bool = False,
        retriable: bool | None = None,
    ) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason
        self.tls = tls
        self.sent = sent
        self.retriable = (not tls) if retriable is None else retriable


class Transport(Protocol):
    """The one network seam. ``scope`` is a token scope hint for 401 challenges."""

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        files: Sequence[MultipartFile] | None = None,
        scope: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Response: ...


@dataclass(frozen=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)


_PARAM_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> Challenge:
    """Parse ``Bearer realm="..",service="..",scope=".."`` (or ``Basic realm=..``)."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _PARAM_RE.finditer(rest):
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = value.replace('\\"', '"')
    return Challenge(scheme.lower(), params)


CredentialLookup = Callable[[str], Credentials | None]


class HttpTransport:
    """urllib3 transport with explicit TLS trust and registry-style auth challenges.

    Args:
        ca_file: CA bundle to trust instead of the system store (explicit wins).
        credentials: ``host -> Credentials | None`` for Basic auth and token requests.
        timeout: seconds for connect and for each read.
        retries: quick connection-level retries (failed connects; reads of GET/HEAD).
            Answers such as 503 are retried above, by
            :class:`~trustctl.retry.RetryingTransport`, within its time budget.
    """

    def __init__(
        self,
        *,
        ca_file: str | None = None,
        credentials: CredentialLookup | None = None,
        timeout: float = 30.0,
        retries: int = 2,
    ) -> None:
        self._pool = urllib3.PoolManager(
            ca_certs=ca_file,
            cert_reqs="CERT_REQUIRED",
            num_pools=8,
            maxsize=4,
        )
        self._credentials = credentials
        self._timeout = urllib3.Timeout(connect=min(timeout, 10.0), read=timeout)
        self._retries = retries
        self._auth: dict[tuple[str, str | None], str] = {}
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        files: Sequence[MultipartFile] | None = None,
        scope: str | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> Response:
        host = urlsplit(url).netloc
        hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
        with self._lock:
            cached = self._auth.get((host, scope))
        if cached:
            hdrs["Authorization"] = cached
        resp = self._send(method, url, hdrs, body, files, max_bytes)
        challenge_header = resp.header("www-authenticate")
        if resp.status == 401 and challenge_header and self._credentials is not None:
            auth = self._authorize(url, parse_challenge(challenge_header), scope)
            if auth:
                with self._lock:
                    self._auth[(host, scope)] = auth
                hdrs["Authorization"] = auth
                resp = self._send(method, url, hdrs, body, files, max_bytes)
        return resp

    # --- internals ---------------------------------------------------------------

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        files: Sequence[MultipartFile] | None,
        max_bytes: int,
    ) -> Response:
        idempotent = method in ("GET", "HEAD")
        retry = urllib3.Retry(
            total=self._retries,
            connect=self._retries,
            read=self._retries if idempotent else 0,
            other=0,  # TLS failures do not heal by retrying
            status=0,
            allowed_methods=frozenset({"GET", "HEAD", "PUT", "DELETE", "POST"}),
            backoff_factor=0.2,
            raise_on_status=False,
            redirect=5,
        )
        kwargs: dict[str, Any] = {
            "headers": headers,
            "preload_content": False,
            "timeout": self._timeout,
            "retries": retry,
        }
        if files is not None:
            kwargs["fields"] = [("files", (name, data, "application/json")) for name, data in files]
            kwargs["encode_multipart"] = True
        elif body is not None:
            kwargs["body"] = body
        try:
            raw = self._pool.request(method, url, **kwargs)
        except urllib3.exceptions.MaxRetryError as e:
            raise _transport_error(url, e.reason or e) from e
        except urllib3.exceptions.HTTPError as e:
            raise _transport_error(url, e) from e
        except OSError as e:  # a reset while urllib3 writes the request body
            raise _transport_error(url, e) from e
        truncated = False
        try:
            if method == "HEAD":
                data = b""
            else:
                data = raw.read(max_bytes + 1)
                truncated = len(data) > max_bytes
                data = data[:max_bytes]
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raw.close()
            raise _transport_error(url, e, sent=True) from e
        if truncated:
            raw.close()  # never hand a half-read connection back to the pool
        else:
            raw.release_conn()
        hdrs = {k.lower(): v for k, v in raw.headers.items()}
        logger.debug("%s %s -> %d (%d bytes)", method, url, raw.status, len(data))
        return Response(raw.status, hdrs, data, url, truncated)

    def _authorize(self, url: str, challenge: Challenge, scope: str | None) -> str | None:
        assert self._credentials is not None
        host = urlsplit(url).netloc
        creds = self._credentials(host)
        if challenge.scheme == "basic":
            if creds is None:
                return None
            if not _safe_for_secrets(url):
                logger.warning("not sending credentials to %s over plain HTTP", host)
                return None
            return creds.basic_header()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            logger.debug("unsupported auth challenge %r", challenge.scheme)
            return None
        token = self._fetch_token(challenge, scope, creds)
        return f"Bearer {token}" if token else None

    def _fetch_token(
        self, challenge: Challenge, scope: str | None, creds: Credentials | None
    ) -> str | None:
        realm = challenge.params["realm"]
        query: list[tuple[str, str]] = []
        if challenge.params.get("service"):
            query.append(("service", challenge.params["service"]))
        wanted = challenge.params.get("scope") or scope
        for s in (wanted or "").split(" "):
            if s:
                query.append(("scope", s))
        token_url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
        headers = {"User-Agent": USER_AGENT}
        if creds is not None:
            if _safe_for_secrets(token_url):
                headers["Authorization"] = creds.basic_header()
            else:
                logger.warning("not sending credentials to token service %s over plain HTTP", realm)
        resp = self._send("GET", token_url, headers, None, None, 1024 * 1024)
        if resp.status != 200:
            logger.info("token service %s answered HTTP %d", realm, resp.status)
            return None
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            return None
        return str(token) if token else None


def _safe_for_secrets(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    return is_loopback_host(split_host_port(parts.netloc)[0])


def _transport_error(
    url: str, reason: BaseException | str, *, sent: bool | None = None
) -> TransportError:
    """A :class:`TransportError` saying whether the request may have been sent."""
    text = str(reason)
    tls = isinstance(reason, urllib3.exceptions.SSLError) or "SSL" in text or "CERTIFICATE" in text
    if sent is None:
        # a failed connect (refused, connect timeout, TLS handshake) sent nothing;
        # anything later (reset, read timeout, closed without an answer) may have
        sent = (
            not isinstance(
                reason,
                urllib3.exceptions.ConnectTimeoutError | urllib3.exceptions.NewConnectionError,
            )
            and not tls
        )
    retriable = not tls
    if "Connection refused" in text:
        text = "connection refused"
    elif "Name or service not known" in text or "nodename nor servname" in text:
        text, retriable = "host name not found", False
    elif "timed out" in text.lower():
        text = "timed out"
    elif tls:
        text = f"TLS error: {_tls_summary(text)}"
    elif sent and (
        isinstance(reason, urllib3.exceptions.ProtocolError | ConnectionError)
        or "Connection aborted" in text
        or "RemoteDisconnected" in text
    ):
        text = "connection closed before the answer arrived"
    return TransportError(url, text, tls=tls, sent=sent, retriable=retriable)


def _tls_summary(text: str) -> str:
    m = re.search(r"\[SSL: ([A-Z_]+)\][^(]*\(?([^)]*)", text)
    if m:
        return m.group(0).strip(" ('\")")[:200]
    return text[:200]
