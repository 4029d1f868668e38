"""Test seams for trustctl: the real trust server in process, a CLI runner, people.

* :class:`FlaskTransport` implements trustctl's ``Transport`` over the real
  ``notary_server`` app's test client (memory store, in-process signer), so the
  client's whole workflow runs against the real server logic with no sockets.
* :class:`Mitm` wraps a transport and lets a test replay or replace responses: the
  freeze, rollback and tampering attacks.
* :class:`Person` is a trust dir plus passphrases; ``person.run(...)`` invokes the
  CLI in process (click's ``CliRunner``) and returns a :class:`Run`.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from click.testing import CliRunner
from flask import Flask

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.storage.memory import MemoryStore
from notary_signer.client import LocalKeyService
from notary_signer.keystore.memory import MemoryKeyStore
from tests.secrets import remember
from trustctl.cli import main
from trustctl.context import Overrides
from trustctl.transport import DEFAULT_MAX_BYTES, MultipartFile, Response, Transport

SERVER_URL = "https://notary.test"
FAST_KDF = 1_000  # PBKDF2 iterations for test keys (production: 600,000)


@dataclass
class ServerClock:
    """The in-process server's clock; ``offset`` moves it away from real time."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0) + self.offset


@dataclass
class InProcessServer:
    """The real trust server app over a memory store and an in-process signer."""

    app: Flask
    keystore: MemoryKeyStore
    clock: ServerClock


def make_server(clock: ServerClock | None = None, **config: Any) -> InProcessServer:
    keystore = MemoryKeyStore()
    clock = clock or ServerClock()
    app = create_app(
        ServerConfig(**config), store=MemoryStore(), keys=LocalKeyService(keystore), clock=clock
    )
    return InProcessServer(app, keystore, clock)


class FlaskTransport:
    """trustctl ``Transport`` over a Flask test client (no sockets)."""

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        self._client = server.app.test_client()
        self.requests: list[tuple[str, str]] = []

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
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self.requests.append((method, path))
        kwargs: dict[str, Any] = {"headers": dict(headers or {})}
        if files is not None:
            kwargs["data"] = {
                "files": [(io.BytesIO(data), name, "application/json") for name, data in files]
            }
            kwargs["content_type"] = "multipart/form-data"
        elif body is not None:
            kwargs["data"] = body
        resp = self._client.open(path, method=method, **kwargs)
        data = resp.get_data()
        return Response(
            resp.status_code,
            {k.lower(): v for k, v in resp.headers.items()},
            data[:max_bytes],
            url,
            len(data) > max_bytes,
        )


class Mitm:
    """A transport in the middle: replays or replaces answers for matching URLs."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.rules: dict[str, Callable[[Response], Response]] = {}
        self.recorded: dict[str, list[bytes]] = {}

    def replay(self, suffix: str, data: bytes) -> None:
        """Answer every GET of a URL ending in ``suffix`` with ``data``."""
        self.rules[suffix] = lambda r: Response(
            200, {"content-type": "application/json"}, data, r.url
        )

    def clear(self) -> None:
        self.rules.clear()

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        resp = self.inner.request(method, url, **kwargs)
        if method == "GET" and resp.status == 200:
            self.recorded.setdefault(url.rsplit("/", 1)[-1], []).append(resp.data)
        for suffix, rule in self.rules.items():
            if method == "GET" and url.endswith(suffix):
                return rule(resp)
        return resp


@dataclass
class Run:
    """One CLI invocation's outcome."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None

    @property
    def json(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.stdout)
        return doc

    def __str__(self) -> str:
        return f"exit {self.exit_code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


@dataclass
class Person:
    """Someone with a trust dir: the owner, a signer, a deployer."""

    name: str
    trust_dir: Path
    server_transport: Transport
    registry_transport: Transport | None = None
    env: dict[str, str] = field(default_factory=dict)
    pending_dir: Path | None = None
    server_url: str = SERVER_URL

    def __post_init__(self) -> None:
        self.env.setdefault("TRUSTCTL_ROOT_PASSPHRASE", f"{self.name} root passphrase")
        self.env.setdefault("TRUSTCTL_TARGETS_PASSPHRASE", f"{self.name} targets passphrase")
        self.env.setdefault("TRUSTCTL_DELEGATION_PASSPHRASE", f"{self.name} delegation passphrase")
        for name, value in self.env.items():
            if name.endswith("PASSPHRASE"):
                remember(value)  # the final log scan looks for it

    def run(self, *args: str, env: Mapping[str, str] | None = None) -> Run:
        environ = {**self.env, **(env or {})}
        overrides = Overrides(
            server_transport=self.server_transport,
            registry_transport=self.registry_transport,
            interactive=False,
            kdf_iterations=FAST_KDF,
            environ=environ,
            sleep=lambda _s: None,
        )
        argv = ["--server", self.server_url, "--trust-dir", str(self.trust_dir)]
        if self.pending_dir is not None:
            argv += ["--pending-dir", str(self.pending_dir)]
        runner = CliRunner()
        result = runner.invoke(main, [*argv, *args], obj=overrides, env=_clean_env(environ))
        return Run(result.exit_code, result.stdout, result.stderr, result.exception)


def _clean_env(environ: Mapping[str, str]) -> dict[str, str | None]:
    """CliRunner env: our variables, and every other TRUSTCTL_* unset."""
    import os

    cleared: dict[str, str | None] = {
        k: None for k in os.environ if k.startswith(("TRUSTCTL_", "DOCKER_CONTENT_TRUST"))
    }
    cleared.update(environ)
    return cleared


def unique_repo(prefix: str = "app") -> str:
    return f"test/{prefix}-{uuid.uuid4().hex[:8]}"
