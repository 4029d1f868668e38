"""Generated input against the server: never a 500, and the stored state changes only
by an upload the server accepts, and then to one a TUF client accepts.

Hypothesis sends uploads, headers, GUNs, role names and JSON documents to the real
Flask app (memory store, in-process signer, a clock that does not move). Mutated
metadata documents are signed again by the key their role expects, so the version,
expiry, path, delegation and key rules meet them, not only the signature check.
After every answer the served metadata is compared with the state before it.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from securesystemslib.formats import encode_canonical
from securesystemslib.signer import CryptoSigner

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.service import TrustService
from notary_server.storage.memory import MemoryStore
from notary_signer.client import LocalKeyService
from notary_signer.keystore.memory import MemoryKeyStore
from tests.client_view import FlaskFetcher, updater
from tests.conftest import FakeClock
from tests.server.helpers import served, upload
from tests.tufrepo import Owner

GUN = "127.0.0.1:5000/fuzz/app"
DELEGATED = "targets/alice"
CASES = settings(
    max_examples=600,
    derandomize=True,  # the same cases on every run, so CI is repeatable
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass
class World:
    """One repository on a fresh app: root, targets delegating ``alice-*`` to alice."""

    clock: FakeClock = field(default_factory=FakeClock)
    client: FlaskClient = field(init=False)
    owner: Owner = field(init=False)
    alice: CryptoSigner = field(default_factory=CryptoSigner.generate_ecdsa)
    pinned: bytes = b""
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    before: dict[str, bytes | int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        config = ServerConfig(max_file_bytes=64 * 1024, max_body_bytes=256 * 1024)
        service = TrustService(
            MemoryStore(), LocalKeyService(MemoryKeyStore()), config, clock=self.clock
        )
        self.client = create_app(service=service).test_client()
        self.owner = Owner(
            timestamp_key=service.server_key(GUN, "timestamp"),
            snapshot_key=service.server_key(GUN, "snapshot"),
            now=self.clock.now,
        )
        self.owner.delegate(DELEGATED, [self.alice], paths=["alice-*"])
        self.owner.add_tag("v1")
        self.owner.add_tag("alice-1", role=DELEGATED)
        files = {
            "root": self.owner.root_bytes(),
            "targets": self.owner.targets_bytes(),
            DELEGATED: self.owner.delegated_bytes(DELEGATED),
        }
        assert upload(self.client, GUN, files).status_code == 200
        self.pinned = files["root"]
        self.docs = {role: json.loads(raw) for role, raw in files.items()}
        snapshot = self.client.get(f"/v2/{GUN}/_trust/tuf/snapshot.json")
        self.docs["snapshot"] = json.loads(snapshot.data)  # the client may sign one
        self.before = self.state()

    def state(self) -> dict[str, bytes | int]:
        return served(self.client, GUN, (DELEGATED,))

    def signers(self, role: str) -> list[CryptoSigner]:
        return {
            "root": self.owner.root_signers,
            "targets": [self.owner.targets_signer],
            DELEGATED: [self.alice],
        }.get(role, [CryptoSigner.generate_ecdsa()])

    def check(self, resp: Any, uploaded: dict[str, bytes] | None = None) -> None:
        """The answer is named, and the state is unchanged, or changed to what was
        uploaded and a TUF client accepts (then the next case starts afresh)."""
        assert resp.status_code < 500, (resp.status_code, resp.data[:500])
        assert "Traceback (most recent call last)" not in resp.get_data(as_text=True)
        after = self.state()
        if resp.status_code >= 400:
            assert json.loads(resp.data)["errors"][0]["code"]
        if resp.status_code >= 400 or not uploaded:
            assert after == self.before
            return
        for role, raw in uploaded.items():
            assert after[role] == raw, role
        with TemporaryDirectory() as d:  # python-tuf's client accepts what is served
            up = updater(Path(d), "http://t", GUN, FlaskFetcher(self.client), self.pinned)
            up.refresh()
            up.get_targetinfo("alice-1")  # walks the delegation too
        self.reset()


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    yield World()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _at(doc: Any, path: list[str], value: Any) -> None:
    target = doc
    for key in path[:-1]:
        nxt = target.get(key) if isinstance(target, dict) else None
        if not isinstance(nxt, dict):
            break
        target = nxt
    if isinstance(target, dict) and path:
        target[path[-1]] = value


def _signed(doc: dict[str, Any], signers: list[CryptoSigner]) -> bytes:
    """``doc`` with fresh signatures over its (mutated) signed part, when it has a
    canonical form; as it is otherwise."""
    try:
        payload = encode_canonical(doc["signed"]).encode()
    except Exception:  # noqa: BLE001 - floats and the like: no canonical form to sign
        return json.dumps(doc).encode()
    doc["signatures"] = [s.sign(payload).to_dict() for s in signers]
    return json.dumps(doc).encode()


_PATHS = [
    ["signed", "version"],
    ["signed", "expires"],
    ["signed", "_type"],
    ["signed", "targets"],
    ["signed", "spec_version"],
    ["signed", "delegations"],
    ["signatures"],
    ["signed"],
    ["extra"],
    ["signed", "targets", "v1"],
    ["signed", "targets", "../x"],
    ["signed", "targets", "alice-2"],
    ["signed", "targets", "bob-1"],
    ["signed", "delegations", "roles"],
    ["signed", "delegations", "keys"],
    ["signed", "roles"],
    ["signed", "keys"],
    ["signed", "consistent_snapshot"],
    ["signed", "roles", "timestamp"],
    ["signed", "meta"],
    ["signed", "meta", "targets.json"],
]
_TARGET = {"length": 3, "hashes": {"sha256": "ab" * 32}}
_INTERESTING = st.sampled_from(
    [0, 1, 2, 3, -1, 2**31 - 1, 2**31, 2**63, "2000-01-01T00:00:00Z", "2999-01-01T00:00:00Z",
     "2026-13-01T00:00:00Z", _TARGET, {"alice-9": _TARGET}, {"bob-9": _TARGET}, {}, [], None,
     {"keys": {}, "roles": []}, {"version": 1}, {"version": 9}, {"keys": {}, "roles": [{"name": "targets/bob", "keyids": [],
      "threshold": 1, "paths": ["*"], "terminating": False}]}]
)  # fmt: skip


_NAMES = st.sampled_from(["alice-", "bob-", "v", "../", "a/b", "alice-\u2028"]).flatmap(
    lambda prefix: st.text("0123456789abc", max_size=4).map(lambda tail: prefix + tail)
)
_WELL_TYPED = st.one_of(
    st.integers(-2, 5),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.dictionaries(_NAMES, st.just(_TARGET), max_size=3),
    st.fixed_dictionaries(
        {
            "keys": st.just({}),
            "roles": st.lists(
                st.fixed_dictionaries(
                    {
                        "name": _NAMES.map(lambda n: "targets/" + n),
                        "keyids": st.just([]),
                        "threshold": st.integers(0, 2),
                        "paths": st.lists(_NAMES.map(lambda n: n + "*"), max_size=2),
                        "terminating": st.booleans(),
                    }
                ),
                max_size=2,
            ),
        }
    ),
)


@CASES
@given(
    path=st.sampled_from(_PATHS),
    value=st.one_of(_WELL_TYPED, _WELL_TYPED, _INTERESTING, json_values),
    role=st.sampled_from(["targets", DELEGATED, "root", "snapshot", "targets/x"]),
    next_version=st.booleans(),
    sign=st.booleans(),
)
def test_mutated_metadata_documents(
    world: World, path: list[str], value: Any, role: str, next_version: bool, sign: bool
) -> None:
    doc = copy.deepcopy(world.docs.get(role, world.docs["targets"]))
    if next_version and isinstance(doc["signed"].get("version"), int):
        doc["signed"]["version"] += 1  # past the version rule, to the ones after it
    _at(doc, path, value)
    raw = _signed(doc, world.signers(role)) if sign else json.dumps(doc).encode()
    world.check(upload(world.client, GUN, {role: raw}), {role: raw})


def test_a_valid_next_version_is_accepted_and_judged(world: World) -> None:
    """The fuzz table's success path works: a re-signed next version is stored as sent."""
    doc = copy.deepcopy(world.docs[DELEGATED])
    doc["signed"]["version"] += 1
    doc["signed"]["targets"]["alice-2"] = _TARGET
    raw = _signed(doc, [world.alice])
    resp = upload(world.client, GUN, {DELEGATED: raw})
    assert resp.status_code == 200, resp.data
    world.check(resp, {DELEGATED: raw})


def test_a_re_signed_document_meets_the_rule_after_the_signature(world: World) -> None:
    """Re-signing reaches the rules past the signature check: here, delegated paths."""
    doc = copy.deepcopy(world.docs[DELEGATED])
    doc["signed"]["version"] += 1
    doc["signed"]["targets"]["bob-1"] = _TARGET
    resp = upload(world.client, GUN, {DELEGATED: _signed(doc, [world.alice])})
    assert resp.get_json()["errors"][0]["detail"]["rule"] == "delegated-paths", resp.data
    world.check(resp, {DELEGATED: b""})


@CASES
@given(body=st.binary(max_size=2048), role=st.text(max_size=40))
def test_arbitrary_bytes_under_arbitrary_role_names(world: World, body: bytes, role: str) -> None:
    resp = world.client.post(
        f"/v2/{GUN}/_trust/tuf/",
        data={"files": [(io.BytesIO(body), role or "x")]},
        content_type="multipart/form-data",
    )
    world.check(resp, {role or "x": body})


@CASES
@given(
    gun=st.text(max_size=80),
    filename=st.text(max_size=60),
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
)
def test_arbitrary_guns_and_file_names(world: World, gun: str, filename: str, method: str) -> None:
    from urllib.parse import quote

    path = f"/v2/{quote(gun, safe='/')}/_trust/tuf/{quote(filename, safe='/')}"
    world.check(world.client.open(path, method=method))


@CASES
@given(
    content_type=st.sampled_from(
        [
            "multipart/form-data",
            "multipart/form-data; boundary=x",
            "application/json",
            "text/plain",
            "",
        ]
    ),
    body=st.binary(max_size=1024),
    headers=st.dictionaries(
        st.sampled_from(["If-None-Match", "Authorization", "Content-Length", "Accept", "Range"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
        max_size=3,
    ),
)
def test_arbitrary_bodies_and_headers(
    world: World, content_type: str, body: bytes, headers: dict[str, str]
) -> None:
    headers.pop("Content-Length", None)
    resp = world.client.post(
        f"/v2/{GUN}/_trust/tuf/", data=body, content_type=content_type, headers=headers
    )
    world.check(resp)
    world.check(world.client.get(f"/v2/{GUN}/_trust/tuf/targets.json", headers=headers))


@CASES
@given(change_id=st.text(max_size=12), records=st.text(max_size=12))
def test_arbitrary_changefeed_parameters(world: World, change_id: str, records: str) -> None:
    query = {"change_id": change_id, "records": records}
    world.check(world.client.get(f"/v2/{GUN}/_trust/changefeed", query_string=query))
