"""Fixtures for trustctl's tests: a real registry, the real server in process, people."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.registry import RegistryProcess, push_image, registry  # noqa: F401  (fixture)
from tests.trustctl.support import FlaskTransport, Person, ServerClock, make_server, unique_repo
from trustctl.transport import HttpTransport


@dataclass
class Image:
    """An image pushed by a test: ``gun``, ``tag`` and what the registry says about it."""

    gun: str
    tag: str
    digest: str
    size: int
    media_type: str

    @property
    def ref(self) -> str:
        return f"{self.gun}:{self.tag}"


@pytest.fixture
def push(registry: RegistryProcess) -> Callable[..., Image]:  # noqa: F811 (the fixture)
    """``push(repo=None, tag="v1", content=b"...")``: push a tiny OCI image."""

    def _push(repo: str | None = None, tag: str = "v1", content: bytes | None = None) -> Image:
        repo = repo or unique_repo()
        digest, size, media_type = push_image(
            registry.url, repo, tag, content or f"{repo}:{tag}".encode()
        )
        return Image(f"{registry.host}/{repo}", tag, digest, size, media_type)

    return _push


@pytest.fixture
def server_clock() -> ServerClock:
    return ServerClock()


@pytest.fixture
def server(server_clock: ServerClock) -> FlaskTransport:
    """The real trust server app in process (fresh memory store per test)."""
    return FlaskTransport(make_server(server_clock))


@pytest.fixture
def person(tmp_path: Path, server: FlaskTransport) -> Callable[..., Person]:
    """``person("alice")``: a trust dir talking to the in-process server and the registry."""
    registry_transport = HttpTransport()

    def make(name: str, **kwargs: object) -> Person:
        kwargs.setdefault("server_transport", server)
        kwargs.setdefault("registry_transport", registry_transport)
        return Person(name, tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make
