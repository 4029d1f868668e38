"""A WSGI fast path for the hottest requests: GET of a metadata file.

Reads of ``timestamp.json`` and friends are most of a trust server's traffic (and
``GET /v2/``, which every notary command sends first). This thin layer answers them without Flask's request machinery (about half the cost of a
read), through the same :func:`notary_server.api.lookup_metadata` the Flask view
uses, including the 404 every TUF client gets when it asks whether root N+1 exists.
Anything else, server-side errors, and any request it is not sure about (auth on,
an ``If-Modified-Since`` without ``If-None-Match``, undecodable paths) goes to Flask
unchanged, so behaviour is the same either way; tests run both paths and compare
the bytes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.http import HTTP_STATUS_CODES, http_date

from notary_server.api import lookup_metadata
from notary_server.errors import NotaryError, envelope, new_request_id
from notary_server.metrics import Metrics
from notary_server.service import TrustService

__all__ = ["FastReads"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_MARK = "/_trust/tuf/"
_PING = b"{}\n"


class FastReads:
    def __init__(self, app: WSGIApp, service: TrustService, metrics: Metrics) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        path: str = environ.get("PATH_INFO", "")
        if path == "/v2/" and environ.get("REQUEST_METHOD") == "GET":
            return self._ping(environ, started, start_response)
        if (
            environ.get("REQUEST_METHOD") != "GET"
            or not path.startswith("/v2/")
            or not path.endswith(".json")
            or _MARK not in path
            or ("HTTP_IF_MODIFIED_SINCE" in environ and "HTTP_IF_NONE_MATCH" not in environ)
        ):
            return self.app(environ, start_response)
        try:
            decoded = path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return self.app(environ, start_response)
        gun, _, filename = decoded[len("/v2/") :].partition(_MARK)
        rid = new_request_id(environ.get("HTTP_X_REQUEST_ID"))
        try:
            found = lookup_metadata(self.service, gun, filename)  # decoded once, as Flask's
        except NotaryError as e:
            if e.http_status >= 500 or e.headers:
                return self.app(environ, start_response)  # Flask logs those
            return self._error(e, rid, started, start_response)
        if found is None:
            return self.app(environ, start_response)
        stored, cache_control = found
        etag = f'"{stored.sha256}"'
        headers = [
            ("X-Request-ID", rid),
            ("ETag", etag),
            ("Cache-Control", cache_control),
            ("Last-Modified", http_date(stored.created_at)),
        ]
        match = environ.get("HTTP_IF_NONE_MATCH", "")
        if match and (match.strip() == "*" or etag in match or f"W/{etag}" in match):
            start_response("304 NOT MODIFIED", headers)
            body: list[bytes] = []
            status = 304
        else:
            headers += [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(stored.data))),
            ]
            start_response("200 OK", headers)
            body = [stored.data]
            status = 200
        self.metrics.observe("tuf.get_metadata", "GET", status, time.perf_counter() - started)
        return body

    def _ping(
        self, environ: dict[str, Any], started: float, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """``GET /v2/``, which every notary command sends first: ``{}`` as Flask's."""
        start_response(
            "200 OK",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(_PING))),
                ("X-Request-ID", new_request_id(environ.get("HTTP_X_REQUEST_ID"))),
            ],
        )
        self.metrics.observe("tuf.ping", "GET", 200, time.perf_counter() - started)
        return [_PING]

    def _error(
        self, e: NotaryError, rid: str, started: float, start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """The error envelope, byte for byte what Flask's handler sends (``jsonify``)."""
        body = (json.dumps(envelope(e, rid), separators=(",", ":")) + "\n").encode()
        status = e.http_status
        start_response(
            f"{status} {HTTP_STATUS_CODES.get(status, '').upper()}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("X-Request-ID", rid),
            ],
        )
        self.metrics.observe("tuf.get_metadata", "GET", status, time.perf_counter() - started)
        return [body]
