"""End-to-end fixtures: real signer and server processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import pg_cluster, pg_url  # noqa: F401  (pytest fixtures)
from tests.procs import Stack, start_stack
from tests.registry import RegistryProcess, start_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """Debian's docker-registry on a free loopback port, for the whole session."""
    try:
        reg = start_registry(tmp_path_factory.mktemp("e2e-registry"))
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Signer + server, on SQLite or on a throwaway PostgreSQL cluster."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    s = start_stack(tmp_path, url)
    try:
        yield s
    finally:
        s.stop()
