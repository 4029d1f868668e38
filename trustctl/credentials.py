"""Where registry and trust-server credentials come from.

Order, first hit wins:

1. environment: ``TRUSTCTL_REGISTRY_USERNAME`` / ``TRUSTCTL_REGISTRY_PASSWORD`` for
   registries, ``TRUSTCTL_SERVER_USERNAME`` / ``TRUSTCTL_SERVER_PASSWORD`` for the
   trust server;
2. Docker's ``config.json`` (``$DOCKER_CONFIG/config.json``, else
   ``~/.docker/config.json``): a credential helper named in ``credHelpers`` or
   ``credsStore`` (``docker-credential-<name> get``), else the base64 ``auth`` (or
   ``username``/``password``) stored under ``auths`` for the host.

Passwords never appear in ``repr``, logs or argv.

Example:
    >>> store = CredentialStore(environ={"TRUSTCTL_REGISTRY_USERNAME": "ci",
    ...                                  "TRUSTCTL_REGISTRY_PASSWORD": "s3cret"})
    >>> store.lookup("registry.example.com")
    Credentials(username='ci')
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DOCKER_HUB_HOSTS", "CredentialStore", "Credentials"]

logger = logging.getLogger(__name__)

DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
_DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HELPER_TIMEOUT = 15.0


@dataclass(frozen=True)
class Credentials:
    """A user name and a password (or token), for Basic auth or a token request."""

    username: str
    password: str = field(repr=False)

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


class CredentialStore:
    """Looks up credentials for a host.

    Args:
        environ: the environment (``os.environ`` in production).
        env_prefix: ``TRUSTCTL_REGISTRY`` or ``TRUSTCTL_SERVER``.
        docker_config: path of Docker's config.json; default from ``DOCKER_CONFIG``
            or ``~/.docker/config.json``.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        env_prefix: str = "TRUSTCTL_REGISTRY",
        docker_config: Path | None = None,
    ) -> None:
        self._environ = environ
        self._prefix = env_prefix
        if docker_config is None:
            base = environ.get("DOCKER_CONFIG")
            docker_config = (
                Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"
            )
        self._docker_config = docker_config

    def lookup(self, host: str) -> Credentials | None:
        """Credentials for ``host`` (``name[:port]``), or None for anonymous access."""
        user = self._environ.get(f"{self._prefix}_USERNAME")
        password = self._environ.get(f"{self._prefix}_PASSWORD")
        if user and password is not None:
            logger.debug("using credentials for %s from %s_USERNAME", host, self._prefix)
            return Credentials(user, password)
        config = self._load_docker_config()
        if not config:
            return None
        keys = _config_keys(host)
        helpers = config.get("credHelpers") or {}
        for key in keys:
            if isinstance(helpers, dict) and key in helpers:
                return _run_helper(str(helpers[key]), key)
        auths = config.get("auths") or {}
        for key in keys:
            entry = auths.get(key) if isinstance(auths, dict) else None
            if isinstance(entry, dict):
                creds = _from_auth_entry(entry)
                if creds is not None:
                    logger.debug("using credentials for %s from %s", host, self._docker_config)
                    return creds
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            return _run_helper(store, keys[0])
        return None

    def _load_docker_config(self) -> dict[str, Any] | None:
        try:
            data = json.loads(self._docker_config.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            logger.warning("ignoring unreadable Docker config %s: %s", self._docker_config, e)
            return None
        return data if isinstance(data, dict) else None


def _config_keys(host: str) -> list[str]:
    if host in DOCKER_HUB_HOSTS:
        return [_DOCKER_HUB_KEY, "docker.io", "index.docker.io", "registry-1.docker.io"]
    return [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]


def _from_auth_entry(entry: dict[str, Any]) -> Credentials | None:
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            name, sep, secret = base64.b64decode(auth).decode().partition(":")
        except ValueError:  # binascii.Error, non-ASCII text, or not UTF-8
            logger.warning("ignoring a malformed 'auth' entry in the Docker config")
            return None
        if sep:
            return Credentials(name, secret)
    user, password = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(password, str):
        return Credentials(user, password)
    return None


def _run_helper(name: str, server: str) -> Credentials | None:
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run(
            [program, "get"],
            input=server,
            capture_output=True,
            text=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
            env=dict(os.environ),
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:  # ValueError: a NUL in the name
        logger.warning("credential helper %r failed: %s", program, e)
        return None
    if proc.returncode != 0:
        logger.debug("credential helper %r has no credentials for %r", program, server)
        return None
    try:
        data = json.loads(proc.stdout)
        user, secret = data["Username"], data["Secret"]
    except (ValueError, KeyError, TypeError):
        logger.warning("credential helper %r returned unreadable output", program)
        return None
    if user == "<token>":  # an identity token: OAuth refresh flow, not supported
        logger.warning("credential helper %r returned an identity token; ignoring it", program)
        return None
    return Credentials(str(user), str(secret))
