"""Shared fixtures for the trust server's tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import pytest
from flask import Flask, Response
from flask import request as http_request

from tests.internals import leaks
from tests.pg import pg_cluster, pg_url  # noqa: F401  (pytest fixtures)


@pytest.fixture(autouse=True)
def error_bodies_name_no_internals(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every error answer of the in-process app, in every server test that uses it, is
    scanned: no host, port, path, SQL or exception class of ours (docs/api.md, Errors).
    What the client sent itself (the repository and file names of the route) may
    come back."""
    if "app" not in request.fixturenames:
        yield
        return
    app: Flask = request.getfixturevalue("app")
    found: list[str] = []

    @app.after_request
    def scan(resp: Response) -> Response:
        if resp.status_code >= 400 and resp.mimetype == "application/json":
            sent = [str(v) for v in (http_request.view_args or {}).values()]
            problems = leaks(resp.get_data(), allow=[*sent, *map(unquote, sent)])
            if problems:
                errors = json.loads(resp.get_data()).get("errors")
                found.append(f"{http_request.method} {http_request.path}: {problems}: {errors}")
        return resp

    yield
    assert found == []
