"""End-to-end fixtures: real signer and server processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import pg_cluster, pg_url  # noqa: F401  (pytest fixtures)
from tests.procs import Stack, start_stack
from tests.registry import registry  # noqa: F401  (fixture)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    """Signer + server, on SQLite or on a throwaway PostgreSQL cluster."""
    url = request.getfixturevalue("pg_url") if request.param == "postgres" else None
    s = start_stack(tmp_path, url)
    try:
        yield s
    finally:
        s.stop()
