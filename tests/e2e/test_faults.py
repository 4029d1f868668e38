"""Faults injected into real processes: nothing acknowledged is ever lost.

Each test counts what it injected and what was acknowledged, and prints a line the
closing notes quote (run with -s to see them).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import urllib3
from tuf.api.metadata import Metadata, Targets

from tests.client_view import HTTPSFetcher, judge
from tests.e2e.remote import Remote
from tests.pg import PostgresCluster
from tests.procs import start_stack
from tests.tufrepo import Owner

GUN = "127.0.0.1:5000/faults/app"


def _error(resp) -> str:
    return json.loads(resp.data)["errors"][0]["code"]


def _targets(remote: Remote) -> dict:
    return Metadata[Targets].from_bytes(remote.get("targets.json").data).signed.targets


def test_signer_stopped_while_publishing(tmp_path: Path) -> None:
    stack = start_stack(tmp_path)
    try:
        remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
        owner = remote.new_owner()
        owner.add_tag("v1")
        pinned = owner.root_bytes()
        assert remote.publish({"root": pinned, "targets": owner.targets_bytes()}).status == 200
        before = remote.current()

        stack.signer.stop()
        owner.add_tag("v2")
        resp = remote.publish({"targets": owner.targets_bytes()})
        assert (resp.status, _error(resp)) == (503, "SIGNER_UNAVAILABLE")
        # reads keep being served while the timestamp is valid
        assert remote.current() == before
        fetcher = HTTPSFetcher(str(stack.pki.ca_cert))
        assert judge(tmp_path / "c1", stack.url, GUN, "v1", fetcher, pinned) is not None
        health = remote.pool.request("GET", f"{stack.url}/_notary_server/health")
        # anonymous health says "unavailable" only; the details are in the server's log
        assert health.status == 503 and json.loads(health.data) == {"status": "unavailable"}
        assert "health check: signer:" in stack.logs()

        stack.signer.start()  # the service recovers by itself
        assert remote.publish({"targets": owner.targets_bytes()}).status == 200
        assert judge(tmp_path / "c2", stack.url, GUN, "v2", fetcher, pinned) is not None
        print("\nFAULTS signer-stopped: injected=1 refused-with-503=1 recovered=1")
    finally:
        stack.stop()


@pytest.fixture
def own_cluster() -> Iterator[PostgresCluster]:
    with PostgresCluster.started() as cluster:
        yield cluster


def test_database_stopped_gives_503_and_no_partial_write(
    tmp_path: Path, own_cluster: PostgresCluster
) -> None:
    # every read asks the database (by default a worker may answer a current file for
    # up to a second from its last answer: notary_server/generation.py)
    stack = start_stack(
        tmp_path, own_cluster.create_database("faults"), current_recheck_seconds="0"
    )
    try:
        remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
        owner = remote.new_owner()
        owner.add_tag("v1")
        assert (
            remote.publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()}).status
            == 200
        )
        before = remote.current()

        own_cluster.stop()
        owner.add_tag("v2")
        resp = remote.publish({"targets": owner.targets_bytes()})
        assert (resp.status, _error(resp)) == (503, "STORAGE_UNAVAILABLE")
        read = remote.get("targets.json")
        assert (read.status, _error(read)) == (503, "STORAGE_UNAVAILABLE")

        own_cluster.start()
        assert remote.current() == before  # nothing half-written
        assert remote.publish({"targets": owner.targets_bytes()}).status == 200
        assert "v2" in _targets(remote)
        print("\nFAULTS database-stopped: injected=1 refused-with-503=2 partial-writes=0")
    finally:
        stack.stop()


@dataclass
class Burst:
    """Publishers' outcomes, kept by the threads and judged by the test (no asserts in
    threads): every POST is in flight from its send until its answer is recorded."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    in_flight: set[str] = field(default_factory=set)
    outcomes: dict[str, int | str] = field(default_factory=dict)  # tag -> status or error
    errors: list[BaseException] = field(default_factory=list)  # anything unexpected

    def acknowledged(self) -> list[str]:
        return [t for t, o in self.outcomes.items() if o == 200]


#: What a client sees when the server dies under its request: not acknowledged.
CONNECTION_LOST = (urllib3.exceptions.ProtocolError, urllib3.exceptions.NewConnectionError,
                   urllib3.exceptions.MaxRetryError, urllib3.exceptions.SSLError, ConnectionError)  # fmt: skip


def _publish_until_refused(remote: Remote, me: Owner, prefix: str, burst: Burst) -> None:
    """Publish tags one after another (rebasing on 409) until the server is gone."""
    try:
        for i in range(200):
            tag = f"{prefix}-{i}"
            while True:
                try:
                    current = remote.get("targets.json")
                except CONNECTION_LOST as e:
                    with burst.cond:
                        burst.outcomes[tag] = type(e).__name__
                    return
                me.targets = Metadata[Targets].from_bytes(current.data).signed
                me.add_tag(tag)
                with burst.cond:
                    burst.in_flight.add(tag)
                try:
                    status: int | str = remote.publish({"targets": me.targets_bytes()}).status
                except CONNECTION_LOST as e:
                    status = type(e).__name__
                with burst.cond:
                    burst.in_flight.discard(tag)
                    if status != 409:
                        burst.outcomes[tag] = status
                    burst.cond.notify_all()
                if status != 409:
                    break
            if status != 200:
                return
    except BaseException as e:  # noqa: BLE001 - judged by the test, in the main thread
        with burst.cond:
            burst.errors.append(e)
            burst.cond.notify_all()


def test_server_killed_in_a_burst_of_publishes_loses_nothing_acknowledged(
    tmp_path: Path, pg_url: str
) -> None:
    stack = start_stack(tmp_path, pg_url)
    try:
        remote = Remote(stack.url, GUN, str(stack.pki.ca_cert))
        owner = remote.new_owner()
        pinned = owner.root_bytes()
        owner.add_tag("base")
        assert remote.publish({"root": pinned, "targets": owner.targets_bytes()}).status == 200

        burst = Burst()
        threads = []
        for n in range(4):
            me = remote.new_owner()
            me.targets_signer = owner.targets_signer
            mine = Remote(stack.url, GUN, str(stack.pki.ca_cert))  # a connection each
            threads.append(
                threading.Thread(target=_publish_until_refused, args=(mine, me, f"p{n}", burst))
            )
        for t in threads:
            t.start()
        with burst.cond:
            # kill once 30 publishes were acknowledged and others wait for their answer;
            # the lock keeps the in-flight set as it is at the kill
            started = burst.cond.wait_for(
                lambda: burst.errors or (len(burst.acknowledged()) >= 30 and burst.in_flight),
                timeout=120,
            )
            assert started and not burst.errors, burst.errors
            hit = set(burst.in_flight)
            stack.server.kill()  # SIGKILL in the middle of the burst
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads)
        assert burst.errors == [], burst.errors  # nothing but lost connections
        stack.server.start()

        # the kill hit publishes in flight: their clients got no answer
        assert hit and all(isinstance(burst.outcomes[t], str) for t in hit), {
            t: burst.outcomes[t] for t in hit
        }
        acknowledged = burst.acknowledged()
        tags = _targets(remote)
        lost = [t for t in acknowledged if t not in tags]
        print(
            f"\nFAULTS sigkill-burst: acknowledged={len(acknowledged)} "
            f"in-flight-at-kill={len(hit)} lost={len(lost)}"
        )
        assert lost == []
        # the stored chain is whole: a fresh client accepts it end to end
        assert judge(
            tmp_path / "after", stack.url, GUN, "base", HTTPSFetcher(str(stack.pki.ca_cert)), pinned
        )
    finally:
        stack.stop()


def test_two_server_processes_on_one_postgresql_lose_no_tag(tmp_path: Path, pg_url: str) -> None:
    stack = start_stack(tmp_path, pg_url)
    try:
        _, second_url = stack.add_server()
        remotes = [Remote(u, GUN, str(stack.pki.ca_cert)) for u in (stack.url, second_url)]
        owner = remotes[0].new_owner()
        owner.add_tag("base")
        assert (
            remotes[0]
            .publish({"root": owner.root_bytes(), "targets": owner.targets_bytes()})
            .status
            == 200
        )

        outcomes: dict[str, int | str] = {}
        lock = threading.Lock()

        def publisher(n: int) -> None:
            remote = remotes[n % 2]
            me = remote.new_owner()
            me.targets_signer = owner.targets_signer
            for i in range(8):
                tag = f"r{n}-{i}"
                try:
                    status: int | str = remote.publish_tag(me, tag)
                except Exception as e:  # noqa: BLE001 - judged by the test, in the main thread
                    status = repr(e)
                with lock:
                    outcomes[tag] = status

        threads = [threading.Thread(target=publisher, args=(n,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)

        assert not any(t.is_alive() for t in threads)
        assert {t: o for t, o in outcomes.items() if o != 200} == {}
        acknowledged = list(outcomes)
        tags = _targets(remotes[1])
        assert sorted(t for t in tags if t != "base") == sorted(acknowledged)
        assert len(acknowledged) == 48
        with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql")) as conn:
            dupes = conn.execute(
                "SELECT role, version, count(DISTINCT sha256) FROM tuf_files "
                "GROUP BY gun, role, version HAVING count(DISTINCT sha256) > 1"
            ).fetchall()
        assert dupes == []
        print(f"\nFAULTS two-replicas: publishes={len(acknowledged)} lost=0 duplicate-versions=0")
    finally:
        stack.stop()
