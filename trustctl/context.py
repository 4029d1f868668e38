"""Settings and the per-run context every command receives: the single injection point.

:class:`Settings` is what the global options, ``TRUSTCTL_*`` variables and the
optional ``<trust dir>/config.json`` say (flags > environment > config file).
:class:`TrustContext` builds the collaborators from it on first use (key store,
trust store, server client, registry client, pending store) and lets tests swap
the network (:class:`Overrides`: pass it as ``CliRunner.invoke(..., obj=...)``).

Example:
    >>> ctx = TrustContext(Settings(server="https://127.0.0.1:4443", trust_dir=Path("/tmp/t")))
    >>> ctx.trust.gun_dir("127.0.0.1:5000/app")
    PosixPath('/tmp/t/tuf/127.0.0.1:5000/app')
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustctl.connect import check_file, server_transport, server_url
from trustctl.errors import ConfigError
from trustctl.output import Printer

# Collaborators are imported when first built, so a command loads only what it uses
# (`verify` never loads the key store, the publisher or skopeo support).
if TYPE_CHECKING:
    from trustctl.changes import Changelist
    from trustctl.client import ServerClient
    from trustctl.keys import KeyStore, Prompt
    from trustctl.pending import PendingStore
    from trustctl.registry import RegistryClient
    from trustctl.repo import Publisher
    from trustctl.retry import RetryPolicy
    from trustctl.transport import Transport
    from trustctl.truststore import TrustStore
    from trustctl.tufview import TrustedRepository

__all__ = ["Overrides", "Settings", "TrustContext", "load_config_file"]

logger = logging.getLogger(__name__)

CONFIG_KEYS = ("server", "tls_ca", "registry_ca", "insecure_registries", "pending_dir")


@dataclass(frozen=True)
class Settings:
    """Resolved global settings."""

    server: str | None = None
    trust_dir: Path = field(default_factory=lambda: Path.home() / ".trustctl")
    tls_ca: str | None = None
    registry_ca: str | None = None
    insecure_registries: tuple[str, ...] = ()
    pending_dir: Path | None = None
    json: bool = False
    verbosity: int = 0
    timeout: float = 30.0
    #: Seconds one request or publish may spend riding through a restart (0: no retries).
    retry_budget: float = 30.0


@dataclass
class Overrides:
    """Test seams: replace the network, the prompt, the clock."""

    server_transport: Transport | None = None
    registry_transport: Transport | None = None
    prompt: Prompt | None = None
    interactive: bool | None = None
    kdf_iterations: int | None = None
    clock: Callable[[], datetime] | None = None
    sleep: Callable[[float], None] | None = None
    monotonic: Callable[[], float] | None = None
    environ: Mapping[str, str] | None = None


def load_config_file(trust_dir: Path) -> dict[str, Any]:
    """``<trust dir>/config.json`` (optional): defaults for the global options.

    Raises:
        ConfigError: the file exists but is not a JSON object.
    """
    path = trust_dir / "config.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    unknown = sorted(set(data) - set(CONFIG_KEYS))
    if unknown:
        logger.warning("ignoring unknown keys in %s: %s", path, ", ".join(unknown))
    return {k: v for k, v in data.items() if k in CONFIG_KEYS}


class TrustContext:
    """Everything a command needs, built lazily from :class:`Settings`."""

    def __init__(
        self,
        settings: Settings,
        *,
        printer: Printer | None = None,
        overrides: Overrides | None = None,
    ) -> None:
        self.settings = settings
        self.printer = printer or Printer(json_mode=settings.json, verbosity=settings.verbosity)
        self.overrides = overrides or Overrides()
        self.environ: Mapping[str, str] = (
            self.overrides.environ if self.overrides.environ is not None else os.environ
        )
        self.clock: Callable[[], datetime] = self.overrides.clock or (lambda: datetime.now(UTC))
        self.sleep: Callable[[float], None] = self.overrides.sleep or time.sleep

    # --- local state -------------------------------------------------------------

    @cached_property
    def trust(self) -> TrustStore:
        from trustctl.truststore import TrustStore

        return TrustStore(self.settings.trust_dir)

    @cached_property
    def keystore(self) -> KeyStore:
        from trustctl.keys import DEFAULT_KDF_ITERATIONS, KeyStore, PassphraseSource

        interactive = self.overrides.interactive
        if interactive is None:
            interactive = sys.stdin.isatty()
        prompt = self.overrides.prompt if interactive else None
        if prompt is None and interactive:
            prompt = _click_prompt
        iterations = self.overrides.kdf_iterations or DEFAULT_KDF_ITERATIONS
        return KeyStore(
            self.settings.trust_dir / "private",
            PassphraseSource(self.environ, prompt),
            kdf_iterations=iterations,
        )

    # --- network -----------------------------------------------------------------

    @property
    def server(self) -> str:
        """The trust server's base URL.

        Raises:
            ConfigError: not configured, or plain HTTP to a non-loopback host.
        """
        return server_url(self.settings.server, config_file=self.settings.trust_dir / "config.json")

    @cached_property
    def retry(self) -> RetryPolicy:
        """How long to ride through a restart (``--retry-budget``), on the injected clock."""
        from trustctl.retry import RetryPolicy

        return RetryPolicy(
            budget=self.settings.retry_budget,
            clock=self.overrides.monotonic or time.monotonic,
            sleep=self.sleep,
        )

    @cached_property
    def server_transport(self) -> Transport:
        """The trust server's transport: retries what is safe (:mod:`trustctl.retry`)."""
        return server_transport(
            tls_ca=self.settings.tls_ca,
            timeout=self.settings.timeout,
            retry=self.retry if self.settings.retry_budget > 0 else None,
            environ=self.environ,
            inner=self.overrides.server_transport,
        )

    @cached_property
    def registry_transport(self) -> Transport:
        if self.overrides.registry_transport is not None:
            return self.overrides.registry_transport
        from trustctl.credentials import CredentialStore
        from trustctl.transport import HttpTransport

        creds = CredentialStore(environ=self.environ, env_prefix="TRUSTCTL_REGISTRY")
        return HttpTransport(
            ca_file=check_file(self.settings.registry_ca, "--registry-ca"),
            credentials=creds.lookup,
            timeout=self.settings.timeout,
        )

    @cached_property
    def client(self) -> ServerClient:
        from trustctl.client import ServerClient

        return ServerClient(self.server, self.server_transport)

    @cached_property
    def registry(self) -> RegistryClient:
        from trustctl.registry import RegistryClient

        return RegistryClient(
            transport=self.registry_transport,
            insecure_registries=self.settings.insecure_registries,
            warn=self.printer.warn,
        )

    def pending_store(self) -> PendingStore:
        from trustctl.pending import DirectoryPendingStore, ServerPendingStore

        if self.settings.pending_dir is not None:
            return DirectoryPendingStore(self.settings.pending_dir)
        return ServerPendingStore(self.client)

    def open_trusted(self, gun: str) -> TrustedRepository:
        """A fresh verified view of ``gun`` (call with the GUN's lock held).

        Raises:
            NoPinnedRootError: nothing pinned for ``gun``.
            StateCorruptError: ``gun`` was verified before and its trusted state is damaged.
        """
        from trustctl.fetcher import TransportFetcher
        from trustctl.tufview import TrustedRepository

        pinned = self.trust.require_pinned(gun)
        fetcher = TransportFetcher(self.server_transport, scope=f"repository:{gun}:pull")
        return TrustedRepository(
            gun=gun,
            cache_dir=self.trust.cache_dir(gun),
            metadata_url=self.client.metadata_url(gun),
            fetcher=fetcher,
            pinned_root=pinned.data,
            server=self.server,
            state=self.trust.state(gun),
        )

    def publisher(self, gun: str) -> Publisher:
        from trustctl.repo import Publisher, Services

        services = Services(
            client=self.client,
            keystore=self.keystore,
            open_trusted=lambda: self.open_trusted(gun),
            pending_store=self.pending_store,
            clock=self.clock,
            sleep=self.sleep,
            warn=self.printer.warn,
            retry=self.retry,
        )
        return Publisher(gun, services)

    def staged(self, gun: str) -> Changelist:
        """The changes staged for ``gun`` (``--no-publish``; call with the GUN's lock held)."""
        from trustctl.changes import Changelist

        return Changelist(self.trust.changes_dir(gun))


def _click_prompt(text: str, confirm: bool) -> str:
    import click

    return str(click.prompt(text, hide_input=True, confirmation_prompt=confirm, err=True))
