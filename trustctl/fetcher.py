"""The python-tuf ngclient fetcher: TUF downloads over trustctl's :class:`Transport`.

ngclient's own ``Urllib3Fetcher`` can set neither a CA bundle nor auth headers, so
trustctl gives the ``Updater`` this fetcher instead. It carries the trust server's
explicit ``--tls-ca`` and its token auth (through the transport) and reports HTTP
errors as :class:`tuf.api.exceptions.DownloadHTTPError`, which ngclient needs: a 404
on ``N.root.json`` is how it learns that it has the newest root.

Example:
    >>> fetcher = TransportFetcher(HttpTransport(ca_file="ca.pem"), scope="repository:r/a:pull")  # doctest: +SKIP
    >>> Updater(cache_dir, metadata_url, fetcher=fetcher, bootstrap=pinned_root)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface

from trustctl.transport import Transport

__all__ = ["ServerHTTPError", "TransportFetcher"]

logger = logging.getLogger(__name__)

# ngclient enforces its own, smaller per-role limits on top of this cap.
MAX_METADATA_BYTES = 64 * 1024 * 1024


class ServerHTTPError(DownloadHTTPError):
    """A DownloadHTTPError that also keeps the server's error code (``METADATA_NOT_FOUND``...)."""

    def __init__(
        self, message: str, status_code: int, server_code: str | None, gave_up: str | None = None
    ) -> None:
        super().__init__(message, status_code)
        self.server_code = server_code
        #: "gave up after N tries in S s" when retries (trustctl.retry) ran out.
        self.gave_up = gave_up

    def summary(self) -> str:
        """``HTTP 503 SIGNER_UNAVAILABLE; gave up after 9 tries in 30.1 s``."""
        text = f"HTTP {self.status_code}"
        if self.server_code:
            text += f" {self.server_code}"
        return f"{text}; {self.gave_up}" if self.gave_up else text


class TransportFetcher(FetcherInterface):
    """ngclient fetcher over a :class:`Transport`.

    Args:
        transport: carries TLS trust and credentials for the trust server.
        scope: token scope to ask for when the server challenges (pull access).
    """

    def __init__(self, transport: Transport, *, scope: str | None = None) -> None:
        self._transport = transport
        self._scope = scope

    def _fetch(self, url: str) -> Iterator[bytes]:
        """Download ``url``; raise DownloadHTTPError for any HTTP error status.

        Transport failures (refused connection, TLS) propagate and are wrapped in
        ``DownloadError`` by ``FetcherInterface.fetch``.
        """
        resp = self._transport.request("GET", url, scope=self._scope, max_bytes=MAX_METADATA_BYTES)
        if resp.status >= 400:
            code = None
            try:
                code = resp.json()["errors"][0]["code"]
            except (ValueError, KeyError, IndexError, TypeError):
                pass
            logger.debug("GET %s -> HTTP %d %s", url, resp.status, code or "")
            raise ServerHTTPError(f"GET {url}: HTTP {resp.status}", resp.status, code, resp.gave_up)
        return iter((resp.data,))
