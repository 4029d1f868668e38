"""python-tuf's ngclient as the independent judge of what a server serves.

``judge(...)`` runs a fresh ``Updater`` (the TUF client workflow maintained by the
TUF community) against a server: in process through a Flask test client, or over
real HTTPS. It returns the target info the client accepts for a tag.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import urllib3
from flask.testing import FlaskClient
from tuf.api import exceptions
from tuf.api.metadata import TargetFile
from tuf.ngclient import FetcherInterface, Updater


class FlaskFetcher(FetcherInterface):
    """Fetches through a Flask test client (no sockets); records every path."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.fetched: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = urlparse(url).path
        self.fetched.append(path)
        resp = self.client.get(path)
        if resp.status_code >= 400:
            raise exceptions.DownloadHTTPError(
                f"HTTP {resp.status_code} for {path}", resp.status_code
            )
        return iter([resp.data])


class HTTPSFetcher(FetcherInterface):
    """Fetches over real HTTPS, trusting exactly ``ca_file`` (never the environment)."""

    def __init__(self, ca_file: str) -> None:
        self.pool = urllib3.PoolManager(ca_certs=ca_file, cert_reqs="CERT_REQUIRED")

    def _fetch(self, url: str) -> Iterator[bytes]:
        resp = self.pool.request("GET", url, timeout=10, retries=False)
        if resp.status >= 400:
            raise exceptions.DownloadHTTPError(f"HTTP {resp.status} for {url}", resp.status)
        return iter([resp.data])


def updater(
    metadata_dir: Path, base_url: str, gun: str, fetcher: FetcherInterface, bootstrap: bytes | None
) -> Updater:
    metadata_dir.mkdir(parents=True, exist_ok=True)
    return Updater(
        str(metadata_dir),
        f"{base_url}/v2/{gun}/_trust/tuf/",
        fetcher=fetcher,
        bootstrap=bootstrap,
    )


def judge(
    metadata_dir: Path,
    base_url: str,
    gun: str,
    tag: str,
    fetcher: FetcherInterface,
    bootstrap: bytes | None,
) -> TargetFile | None:
    up = updater(metadata_dir, base_url, gun, fetcher, bootstrap)
    up.refresh()
    return up.get_targetinfo(tag)
