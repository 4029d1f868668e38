"""The library API from a warm process: state kept in memory, still correct TUF.

The real trust server runs in process (memory store, hash-bin repository); a
deployer pins the root with the CLI and verifies through :class:`trustctl.api.Verifier`,
whose transport counts what travels. Attacks go through
:class:`~tests.trustctl.support.Mitm`; expiry through an injected clock.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tuf.api.metadata import SuccinctRoles

from tests.trustctl.support import SERVER_URL, FlaskTransport, Mitm, Person, Run
from trustctl.api import Verifier
from trustctl.errors import (
    NetworkError,
    NoPinnedRootError,
    RollbackError,
    ServerUnavailableError,
    SignerPolicyError,
    StaleMetadataError,
    TagNotSignedError,
)

MakePerson = Callable[..., Person]
GUN = "127.0.0.1:5999/warm/app"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
OWNER_BINS = SuccinctRoles([], 1, 8, "bins")


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


def sign(owner: Person, tag: str, n: int) -> None:
    digest = ["--digest", f"sha256:{n:064x}", "--size", "1234", "--media-type", MEDIA]
    ok(owner.run("sign", f"{GUN}:{tag}", *digest))


def fetched(requests: list[tuple[str, str]]) -> list[str]:
    """Metadata files fetched: ``timestamp``, ``3.snapshot``, ``bins-0a``..."""
    out = []
    for method, path in requests:
        m = re.search(r"/_trust/tuf/(.+)\.json$", path)
        if method == "GET" and m:
            out.append(m.group(1))
    return out


class Clock:
    """The verifier's clock: real time plus ``offset``."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def owner(person: MakePerson, tmp_path: Path) -> Person:
    owner = person("owner")
    ok(owner.run("init", GUN))  # 256 hash bins
    ok(owner.run("trust", "export", GUN, "-o", str(tmp_path / "root.json")))
    return owner


def deployer(person: MakePerson, tmp_path: Path, transport: object) -> Person:
    d = person("deployer", server_transport=transport)
    ok(d.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    return d


def verifier(d: Person, transport: object, clock: Clock | None = None) -> Verifier:
    return Verifier(SERVER_URL, trust_dir=d.trust_dir, transport=transport, clock=clock)  # type: ignore[arg-type]


def test_a_warm_call_fetches_only_the_next_root_and_the_timestamp(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    sign(owner, "v2", 2)
    assert OWNER_BINS.get_role_for_target("v1") != OWNER_BINS.get_role_for_target("v2")
    d = deployer(person, tmp_path, server)
    api = verifier(d, server)

    first = api.verify(f"{GUN}:v1")
    assert first.digest == f"sha256:{1:064x}"
    assert (api.stats.reused, api.stats.refreshed) == (0, 1)

    server.requests.clear()
    again = api.verify(f"{GUN}:v1")
    # the TUF workflow's first steps: is there a root v2 (404), and the timestamp
    assert fetched(server.requests) == ["2.root", "timestamp"]
    assert again == first and (api.stats.reused, api.stats.refreshed) == (1, 1)

    server.requests.clear()
    other = api.verify(f"{GUN}:v2")  # another bin: verified against the same snapshot
    bin_v2 = f"1.{OWNER_BINS.get_role_for_target('v2')}"
    assert fetched(server.requests) == ["2.root", "timestamp", bin_v2]
    assert other.digest == f"sha256:{2:064x}" and api.stats.reused == 2

    server.requests.clear()
    api.verify(f"{GUN}:v2")
    assert fetched(server.requests) == ["2.root", "timestamp"]


def test_the_answer_is_the_clis_answer(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    sign(owner, "v2", 2)
    d = deployer(person, tmp_path, server)
    api = verifier(d, server)
    api.verify(f"{GUN}:v1")  # v1's bin is in memory too, but v2's answer rests on its own
    warm = api.verify(f"{GUN}:v2")
    assert api.stats.reused == 1
    cli = ok(d.run("--json", "verify", f"{GUN}:v2", "--no-registry-check")).json
    assert cli.pop("tags") == [{"ok": True, **warm.to_dict()}]
    assert {"schema_version": cli["schema_version"], "command": "verify", "ok": True,
            **warm.to_dict()} == cli  # fmt: skip
    assert set(warm.expires) == {"root", "timestamp", "snapshot", "targets", warm.report.role}


def test_a_new_signature_and_a_revocation_show_on_the_next_call(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    d = deployer(person, tmp_path, server)
    api = verifier(d, server)
    api.verify(f"{GUN}:v1")
    with pytest.raises(TagNotSignedError):
        api.verify(f"{GUN}:v2")

    sign(owner, "v2", 2)
    assert api.verify(f"{GUN}:v2").digest == f"sha256:{2:064x}"
    assert api.stats.refreshed == 2  # the new timestamp ran the full workflow

    ok(owner.run("revoke", f"{GUN}:v1"))
    with pytest.raises(TagNotSignedError):
        api.verify(f"{GUN}:v1")
    refreshed = api.stats.refreshed
    with pytest.raises(TagNotSignedError):
        api.verify(f"{GUN}:v1")
    assert api.stats.refreshed == refreshed  # the revoked state is the one kept


def test_a_required_signer_is_checked_on_warm_calls(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    d = deployer(person, tmp_path, server)
    api = verifier(d, server)
    api.verify(f"{GUN}:v1")
    with pytest.raises(SignerPolicyError):
        api.verify(f"{GUN}:v1", signers=["alice"])
    assert api.stats.reused == 1


def test_a_frozen_server_is_refused_once_its_timestamp_expires(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    d = deployer(person, tmp_path, server)
    clock = Clock()
    api = verifier(d, server, clock)
    first = api.verify(f"{GUN}:v1")
    timestamp_expires = first.expires["timestamp"]
    assert timestamp_expires == first.fresh_until  # the first role to expire

    # The server goes on sending the very same timestamp: a frozen (or replaying) server.
    clock.offset = timestamp_expires - datetime.now(UTC) - timedelta(seconds=30)
    api.verify(f"{GUN}:v1")  # still fresh by 30 seconds
    assert api.stats.reused == 1
    clock.offset += timedelta(seconds=60)
    server.requests.clear()
    with pytest.raises(StaleMetadataError, match="freeze attack"):
        api.verify(f"{GUN}:v1")
    assert "timestamp" in fetched(server.requests)
    assert api.stats.reused == 1  # expired state is never reused: the full workflow judged
    with pytest.raises(StaleMetadataError):  # and not answered from memory either
        api.verify(f"{GUN}:v1")


def test_a_replayed_older_timestamp_is_refused_as_a_rollback(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    mitm = Mitm(server)
    d = deployer(person, tmp_path, mitm)
    api = verifier(d, mitm)
    api.verify(f"{GUN}:v1")
    old_timestamp = mitm.recorded["timestamp.json"][-1]
    sign(owner, "v2", 2)
    api.verify(f"{GUN}:v2")  # the verifier has now seen the newer state

    mitm.replay("/timestamp.json", old_timestamp)
    with pytest.raises(RollbackError, match="rollback attack"):
        api.verify(f"{GUN}:v1")
    with pytest.raises(RollbackError):
        api.verify(f"{GUN}:v1")
    mitm.clear()
    assert api.verify(f"{GUN}:v2").digest == f"sha256:{2:064x}"


def test_another_process_moving_the_cache_on_is_not_rolled_back(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    """The verifier's timestamp is older than the one on disk: python-tuf must judge."""
    sign(owner, "v1", 1)
    mitm = Mitm(server)
    d = deployer(person, tmp_path, mitm)
    api = verifier(d, mitm)
    api.verify(f"{GUN}:v1")
    old_timestamp = mitm.recorded["timestamp.json"][-1]
    sign(owner, "v2", 2)
    ok(d.run("verify", f"{GUN}:v2", "--no-registry-check"))  # the CLI, same trust dir
    mitm.replay("/timestamp.json", old_timestamp)  # the bytes the verifier holds
    with pytest.raises(RollbackError):
        api.verify(f"{GUN}:v1")


def test_unpinning_is_noticed_by_a_warm_verifier(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    d = deployer(person, tmp_path, server)
    api = verifier(d, server)
    api.verify(f"{GUN}:v1")
    ok(d.run("trust", "unpin", GUN))
    with pytest.raises(NoPinnedRootError):
        api.verify(f"{GUN}:v1")
    with pytest.raises(ValueError, match="registry client"):
        api.verify(f"{GUN}:v1", registry_mode="tag")


class HoldFirst:
    """The trust server's transport, holding its first request until ``release``."""

    def __init__(self, inner: FlaskTransport) -> None:
        self.inner = inner
        self.holding = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        with self._lock:
            first = not self.holding.is_set()
            self.holding.set()
        if first:
            self.release.wait(30)
        return self.inner.request(method, url, **kwargs)


@pytest.mark.parametrize("warm", [False, True], ids=["cold-repository", "warm-repository"])
def test_concurrent_calls_for_one_repository_fetch_each_metadata_file_once(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path, warm: bool
) -> None:
    """Calls that arrive while another call of the same repository asks the trust server
    share its answer (an admission webhook gets bursts for one repository)."""
    tags = [f"v{n}" for n in range(1, 6)]
    for n, tag in enumerate(tags, 1):
        sign(owner, tag, n)
    d = deployer(person, tmp_path, server)
    hold = HoldFirst(server)
    api = verifier(d, hold)
    if warm:
        hold.release.set()  # nothing held while warming up (it waited 30 s for a release)
        for tag in tags:
            api.verify(f"{GUN}:{tag}")
        hold.holding.clear()
        hold.release.clear()
    server.requests.clear()
    with ThreadPoolExecutor(len(tags)) as ex:
        futures = [ex.submit(api.verify, f"{GUN}:{tag}") for tag in tags]
        assert hold.holding.wait(30)  # one call is asking the trust server...
        time.sleep(0.5)  # ...while the others arrive (synchronisation, nothing timed)
        hold.release.set()
        answers = [f.result(timeout=60) for f in futures]
    assert [a.digest for a in answers] == [f"sha256:{n:064x}" for n in range(1, 6)]
    files = fetched(server.requests)
    assert "timestamp" in files
    assert sorted(files) == sorted(set(files)), files


def test_the_trusted_versions_follow_the_state_in_memory(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    sign(owner, "v1", 1)
    d = deployer(person, tmp_path, server)
    api = verifier(d, server)
    assert api.trusted_versions(GUN) is None  # nothing verified yet
    first = api.verify(f"{GUN}:v1")
    held = api.trusted_versions(GUN)
    assert held is not None and first.versions == held and held.root == 1
    sign(owner, "v2", 2)
    server.requests.clear()
    assert api.trusted_versions(GUN) == held  # read from memory: the server was not asked
    assert fetched(server.requests) == []
    second = api.verify(f"{GUN}:v2")
    moved = api.trusted_versions(GUN)
    assert moved == second.versions and moved is not None
    assert moved.timestamp > held.timestamp and moved.snapshot > held.snapshot


class Refusing:
    """A trust server that cannot be reached, counting the attempts."""

    def __init__(self) -> None:
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.calls += 1
        raise NetworkError(f"cannot reach the trust server at {url}: connection refused")


def test_concurrent_calls_share_one_failed_check(
    person: MakePerson, owner: Person, server: FlaskTransport, tmp_path: Path
) -> None:
    """The calls waiting for a check that fails get its error; none asks again."""
    sign(owner, "v1", 1)
    d = deployer(person, tmp_path, server)
    refusing = Refusing()
    hold = HoldFirst(refusing)  # type: ignore[arg-type]
    api = Verifier(SERVER_URL, trust_dir=d.trust_dir, transport=hold, retry_budget=0)  # type: ignore[arg-type]
    with ThreadPoolExecutor(5) as ex:
        futures = [ex.submit(api.verify, f"{GUN}:v1") for _ in range(5)]
        assert hold.holding.wait(30)
        time.sleep(0.5)  # the others arrive meanwhile (synchronisation, nothing timed)
        hold.release.set()
        errors = [f.exception(timeout=60) for f in futures]
    assert all(isinstance(e, ServerUnavailableError) for e in errors), errors
    assert refusing.calls == 1 and api.stats.shared == 4
