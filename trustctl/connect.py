"""Reaching the trust server: its checked URL and its transport.

Shared by the CLI's :class:`~trustctl.context.TrustContext` and the library
(:class:`~trustctl.api.Verifier`, :mod:`trustctl.library`), which builds its
collaborators from these functions and never builds the CLI's context object.

Example:
    >>> server_url("https://notary:4443/")
    'https://notary:4443'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from trustctl.errors import ConfigError
from trustctl.reference import is_loopback_host, split_host_port

if TYPE_CHECKING:
    from trustctl.retry import RetryPolicy
    from trustctl.transport import Transport

__all__ = ["check_file", "server_transport", "server_url"]


def server_url(server: str | None, *, config_file: Path | None = None) -> str:
    """The trust server's base URL, checked.

    Raises:
        ConfigError: not configured, or plain HTTP to a non-loopback host.
    """
    if not server:
        where = f', or add "server" to {config_file}' if config_file is not None else ""
        raise ConfigError(
            "no trust server configured",
            hint=f"pass --server https://HOST:PORT, set TRUSTCTL_SERVER{where}",
        )
    parts = urlsplit(server)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigError(
            f"--server {server!r} is not an http(s) URL",
            hint="e.g. --server https://notary:4443",
        )
    if parts.scheme == "http" and not is_loopback_host(split_host_port(parts.netloc)[0]):
        raise ConfigError(
            f"refusing plain HTTP to the trust server {server}: metadata and credentials would travel in clear",
            hint="use https:// (plain HTTP is allowed on loopback addresses only)",
        )
    return server.rstrip("/")


def check_file(value: str | None, option: str) -> str | None:
    """``value`` if it names a file (or is None).

    Raises:
        ConfigError: no such file.
    """
    if value is None:
        return None
    if not Path(value).is_file():
        raise ConfigError(f"{option} {value}: no such file")
    return value


def server_transport(
    *,
    tls_ca: str | None,
    timeout: float,
    retry: RetryPolicy | None,
    environ: Mapping[str, str],
    inner: Transport | None = None,
) -> Transport:
    """The trust server's transport (HTTPS with ``tls_ca`` and the credentials in
    ``TRUSTCTL_SERVER_*``, or ``inner``), retrying what is safe under ``retry``
    (:mod:`trustctl.retry`; None or a budget of 0: no retries)."""
    from trustctl.retry import RetryingTransport

    if inner is None:
        from trustctl.credentials import CredentialStore
        from trustctl.transport import HttpTransport

        creds = CredentialStore(environ=environ, env_prefix="TRUSTCTL_SERVER")
        inner = HttpTransport(
            ca_file=check_file(tls_ca, "--tls-ca"), credentials=creds.lookup, timeout=timeout
        )
    if retry is None or retry.budget <= 0:
        return inner
    return RetryingTransport(inner, retry)
