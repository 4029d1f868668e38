"""Small helpers for server tests: uploads and snapshots of what is served."""

from __future__ import annotations

import io
import json
from typing import Any

from flask.testing import FlaskClient


def upload(client: FlaskClient, gun: str, files: dict[str, bytes]) -> Any:
    """POST role files as multipart, one part per role, filename = role name."""
    data = {"files": [(io.BytesIO(raw), role) for role, raw in files.items()]}
    return client.post(f"/v2/{gun}/_trust/tuf/", data=data, content_type="multipart/form-data")


def served(client: FlaskClient, gun: str, roles: tuple[str, ...] = ()) -> dict[str, bytes | int]:
    """The bytes served for each current role (or the status code when not found)."""
    out: dict[str, bytes | int] = {}
    for role in ("root", "targets", "snapshot", "timestamp", *roles):
        resp = client.get(f"/v2/{gun}/_trust/tuf/{role}.json")
        out[role] = resp.data if resp.status_code == 200 else resp.status_code
    return out


def error_code(resp: Any) -> tuple[int, str, str | None]:
    body = json.loads(resp.data)
    err = body["errors"][0]
    return resp.status_code, err["code"], (err.get("detail") or {}).get("reason")
