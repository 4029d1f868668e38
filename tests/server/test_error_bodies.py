"""Error answers name no internals; 503s say when to come back; reads ride through a
signer outage (issue 17).

Every error body carries the stable code, a sentence for the client and the request
id (also the ``X-Request-ID`` header); the details go to the server log under that id.
The failing collaborators below are in-memory stand-ins behind the real interfaces,
failing the way the real ones do (their messages carry hosts, ports, SQL).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy.exc
from flask.testing import FlaskClient
from securesystemslib.signer import Key, Signer

from notary_server.app import create_app
from notary_server.config import ServerConfig
from notary_server.errors import StorageUnavailableError
from notary_server.service import RENEWAL_RETRY, TrustService
from notary_server.storage import StoredFile
from notary_server.storage.memory import MemoryStore
from notary_signer.client import LocalKeyService
from notary_signer.errors import SignerUnavailableError
from notary_signer.keystore.memory import MemoryKeyStore
from tests.conftest import GUN, FakeClock
from tests.internals import leaks
from tests.server.helpers import upload
from tests.tufrepo import Owner

SIGNER_PORT, DB_PORT = 41507, 5432
SIGNER_DOWN = (
    f"signer at https://127.0.0.1:{SIGNER_PORT} is unreachable: HTTPSConnection(host='127.0.0.1', "
    f"port={SIGNER_PORT}): Failed to establish a new connection: [Errno 111] Connection refused"
)


class SignerDown:
    """A key service whose signer went away: it fails like SignerClient does."""

    def __init__(self) -> None:
        self.calls = 0

    def _down(self, *_args: Any, **_kwargs: Any) -> Any:
        self.calls += 1
        raise SignerUnavailableError(SIGNER_DOWN)

    create_key = list_keys = sign_batch = check_health = _down

    def get_signer(self, gun: str, role: str, key: Key) -> Signer:
        return self._down()


class DatabaseDown(MemoryStore):
    """A store whose database went away: SQLAlchemy's error (with its SQL) as cause."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def _fail(self) -> None:
        cause = sqlalchemy.exc.OperationalError(
            "SELECT version, sha256 FROM tuf_files WHERE gun = %s",
            {},
            Exception(
                f'connection to server at "127.0.0.1", port {DB_PORT} failed: Connection refused'
            ),
        )
        raise StorageUnavailableError() from cause

    def current_digest(self, gun: str, role: str) -> tuple[int, str] | None:
        if self.down:
            self._fail()
        return super().current_digest(gun, role)

    def get_current(self, gun: str, role: str) -> StoredFile | None:
        if self.down:
            self._fail()
        return super().get_current(gun, role)

    def transaction(self, gun: str) -> Any:
        if self.down:
            self._fail()
        return super().transaction(gun)

    def delete(self, gun: str) -> bool:
        if self.down:
            raise RuntimeError(f"bug in /srv/notary/storage.py talking to 127.0.0.1:{DB_PORT}")
        return super().delete(gun)


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = DatabaseDown()
        self.keys = LocalKeyService(MemoryKeyStore())
        self.service = TrustService(self.store, self.keys, ServerConfig(), clock=self.clock)
        self.client: FlaskClient = create_app(service=self.service).test_client()

    def publish(self) -> Owner:
        owner = Owner(
            timestamp_key=self.service.server_key(GUN, "timestamp"),
            snapshot_key=self.service.server_key(GUN, "snapshot"),
            now=self.clock.now,
        )
        owner.add_tag("v1")
        files = {"root": owner.root_bytes(), "targets": owner.targets_bytes()}
        assert upload(self.client, GUN, files).status_code == 200
        return owner

    def publish_notary(self) -> str:
        """A repository in Notary v1's dialect (server-held timestamp); its GUN."""
        from tests.server.test_notary_dialect import NGUN, init

        init(self.client, NGUN)
        return NGUN

    def timestamp_version(self, gun: str = GUN) -> int:
        resp = self.client.get(f"/v2/{gun}/_trust/tuf/timestamp.json")
        assert resp.status_code == 200, resp.data
        return int(json.loads(resp.data)["signed"]["version"])


@pytest.fixture
def world() -> World:
    return World()


def _signer_down(w: World) -> None:
    w.service.keys = SignerDown()


def _database_down(w: World) -> None:
    w.store.down = True


def _publish_v2(w: World, owner: Owner) -> Any:
    owner.add_tag("v2")
    return upload(w.client, GUN, {"targets": owner.targets_bytes()})


TUF = f"/v2/{GUN}/_trust/tuf"
Case = Callable[[World, Owner], Any]
CASES: list[tuple[str, Callable[[World], None], Case, int, str]] = [
    ("signer-down-publish", _signer_down, _publish_v2, 503, "SIGNER_UNAVAILABLE"),
    (
        "signer-down-rotate-key",
        _signer_down,
        lambda w, o: w.client.post(f"{TUF}/timestamp.key"),
        503,
        "SIGNER_UNAVAILABLE",
    ),
    (
        "database-down-read",
        _database_down,
        lambda w, o: w.client.get(f"{TUF}/targets.json"),
        503,
        "STORAGE_UNAVAILABLE",
    ),
    ("database-down-publish", _database_down, _publish_v2, 503, "STORAGE_UNAVAILABLE"),
    ("unexpected-bug", _database_down, lambda w, o: w.client.delete(f"{TUF}/"), 500, "UNKNOWN"),
    (
        "unknown-file",
        lambda w: None,
        lambda w, o: w.client.get(f"{TUF}/nothing.here"),
        404,
        "METADATA_NOT_FOUND",
    ),
    (
        "not-multipart",
        lambda w: None,
        lambda w, o: w.client.post(f"{TUF}/", data=b"x"),
        400,
        "MALFORMED_UPLOAD",
    ),
    (
        "not-json",
        lambda w: None,
        lambda w, o: w.client.post(
            f"{TUF}/",
            data={"files": [(io.BytesIO(b"{nope"), "targets")]},
            content_type="multipart/form-data",
        ),
        400,
        "MALFORMED_JSON",
    ),
    (
        "bad-gun",
        lambda w: None,
        lambda w, o: w.client.get("/v2/UPPER..case/_trust/tuf/root.json"),
        400,
        "INVALID_GUN",
    ),
    (
        "no-route",
        lambda w: None,
        lambda w, o: w.client.get("/v3/nothing"),
        404,
        "GENERIC_NOT_FOUND",
    ),
    ("wrong-method", lambda w: None, lambda w, o: w.client.patch(f"{TUF}/"), 405, "UNSUPPORTED"),
]


@pytest.mark.parametrize(
    ("break_it", "call", "status", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_error_bodies_name_no_internals_and_carry_the_request_id(
    world: World,
    caplog: pytest.LogCaptureFixture,
    break_it: Callable[[World], None],
    call: Case,
    status: int,
    code: str,
) -> None:
    owner = world.publish()
    break_it(world)
    with caplog.at_level(logging.INFO, logger="notary_server"):
        resp = call(world, owner)
    body = json.loads(resp.data)
    assert (resp.status_code, body["errors"][0]["code"]) == (status, code), resp.data
    assert leaks(resp.data, [SIGNER_PORT, DB_PORT]) == [], resp.data
    rid = resp.headers["X-Request-ID"]
    assert body["request_id"] == rid
    if status == 503:
        assert resp.headers["Retry-After"] == "1"
        assert "try again" in body["errors"][0]["message"]
    if status >= 500:  # the log has what the body leaves out, under the same id
        logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
        assert rid in logged and (str(SIGNER_PORT) in logged or str(DB_PORT) in logged), logged


def test_a_client_request_id_is_kept(world: World) -> None:
    resp = world.client.get(f"{TUF}/nothing.here", headers={"X-Request-ID": "ci-job-1234-step-5"})
    assert resp.headers["X-Request-ID"] == "ci-job-1234-step-5"
    forged = world.client.get(
        f"{TUF}/nothing.here", headers={"X-Request-ID": "ok; level=ERROR fake"}
    )
    assert forged.headers["X-Request-ID"] != "ok; level=ERROR fake"  # replaced by our own id


@pytest.mark.parametrize("dialect", ["tuf", "notary"])
def test_reads_do_not_wait_for_a_signer_that_just_failed_to_renew(
    world: World, dialect: str
) -> None:
    if dialect == "tuf":
        world.publish()
        gun = GUN
    else:
        gun = world.publish_notary()
    first = world.timestamp_version(gun)
    down = SignerDown()
    world.service.keys = down
    world.clock.advance(hours=20)  # inside the renewal window, not expired

    assert world.timestamp_version(gun) == first  # renewal failed: the valid one is served
    tried = down.calls
    assert tried > 0
    for _ in range(3):
        assert world.timestamp_version(gun) == first
    assert down.calls == tried  # and the next reads did not ask the signer again

    world.clock.advance(seconds=RENEWAL_RETRY.total_seconds() + 1)
    assert world.timestamp_version(gun) == first
    assert down.calls > tried  # until a while later one read tries again
