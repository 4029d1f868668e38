"""Generated bad input against the server: never a 500, never a changed state.

Hypothesis sends uploads, headers, GUNs, role names and JSON documents to the real
Flask app (memory store, in-process signer). Every answer must be a 2xx/3xx or a 4xx
with the error envelope, and the served metadata must be unchanged unless the answer
was a success.
"""

from __future__ import annotations

import io
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.service import TrustService
from notary_server.storage.memory import MemoryStore
from notary_signer.client import LocalKeyService
from notary_signer.keystore.memory import MemoryKeyStore
from tests.tufrepo import Owner

GUN = "127.0.0.1:5000/fuzz/app"
CASES = settings(
    max_examples=600,
    derandomize=True,  # the same cases on every run, so CI is repeatable
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_service = TrustService(
    MemoryStore(), LocalKeyService(MemoryKeyStore()), ServerConfig(max_file_bytes=64 * 1024, max_body_bytes=256 * 1024)
)
_app = create_app(service=_service)
_client = _app.test_client()
_owner = Owner(timestamp_key=_service.server_key(GUN, "timestamp"), snapshot_key=_service.server_key(GUN, "snapshot"))
_owner.add_tag("v1")
_GOOD = {"root": _owner.root_bytes(), "targets": _owner.targets_bytes()}
assert _client.post(
    f"/v2/{GUN}/_trust/tuf/",
    data={"files": [(io.BytesIO(raw), role) for role, raw in _GOOD.items()]},
    content_type="multipart/form-data",
).status_code == 200


def _state() -> dict[str, bytes]:
    return {r: _client.get(f"/v2/{GUN}/_trust/tuf/{r}.json").data for r in ("root", "targets", "snapshot", "timestamp")}


_BEFORE = _state()


def _check(resp: Any) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.data[:500])
    if resp.status_code >= 400:
        body = json.loads(resp.data)
        assert body["errors"][0]["code"]
        assert "Traceback (most recent call last)" not in resp.get_data(as_text=True)
    else:
        return
    assert _state() == _BEFORE


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


def _mutate(doc: dict[str, Any], path: list[str], value: Any) -> bytes:
    target = doc
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            break
        target = nxt
    if isinstance(target, dict) and path:
        target[path[-1]] = value
    return json.dumps(doc).encode()


_TARGETS_DOC = json.loads(_GOOD["targets"])
_PATHS = [
    ["signed", "version"], ["signed", "expires"], ["signed", "_type"], ["signed", "targets"],
    ["signed", "spec_version"], ["signed", "delegations"], ["signatures"], ["signed"], ["extra"],
    ["signed", "targets", "v1"], ["signed", "targets", "../x"],
]


@CASES
@given(path=st.sampled_from(_PATHS), value=json_values, role=st.sampled_from(["targets", "root", "snapshot", "targets/x"]))
def test_mutated_metadata_documents(path: list[str], value: Any, role: str) -> None:
    raw = _mutate(json.loads(json.dumps(_TARGETS_DOC)), path, value)
    resp = _client.post(
        f"/v2/{GUN}/_trust/tuf/", data={"files": [(io.BytesIO(raw), role)]}, content_type="multipart/form-data"
    )
    _check(resp)


@CASES
@given(body=st.binary(max_size=2048), role=st.text(max_size=40))
def test_arbitrary_bytes_under_arbitrary_role_names(body: bytes, role: str) -> None:
    resp = _client.post(
        f"/v2/{GUN}/_trust/tuf/", data={"files": [(io.BytesIO(body), role or "x")]}, content_type="multipart/form-data"
    )
    _check(resp)


@CASES
@given(gun=st.text(max_size=80), filename=st.text(max_size=60), method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]))
def test_arbitrary_guns_and_file_names(gun: str, filename: str, method: str) -> None:
    from urllib.parse import quote

    path = f"/v2/{quote(gun, safe='/')}/_trust/tuf/{quote(filename, safe='/')}"
    _check(_client.open(path, method=method))


@CASES
@given(
    content_type=st.sampled_from(
        ["multipart/form-data", "multipart/form-data; boundary=x", "application/json", "text/plain", ""]
    ),
    body=st.binary(max_size=1024),
    headers=st.dictionaries(
        st.sampled_from(["If-None-Match", "Authorization", "Content-Length", "Accept", "Range"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    ),
)
def test_arbitrary_bodies_and_headers(content_type: str, body: bytes, headers: dict[str, str]) -> None:
    headers.pop("Content-Length", None)
    resp = _client.post(f"/v2/{GUN}/_trust/tuf/", data=body, content_type=content_type, headers=headers)
    _check(resp)
    _check(_client.get(f"/v2/{GUN}/_trust/tuf/targets.json", headers=headers))


@CASES
@given(change_id=st.text(max_size=12), records=st.text(max_size=12))
def test_arbitrary_changefeed_parameters(change_id: str, records: str) -> None:
    _check(_client.get(f"/v2/{GUN}/_trust/changefeed", query_string={"change_id": change_id, "records": records}))
