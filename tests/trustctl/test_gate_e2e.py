"""The deploy gate end to end: the in-test API server calls the gate over TLS on
127.0.0.1; the gate asks the real trust server (in process) through the real Verifier.

Attack scenarios are named cases; the denial must come from the gate's validating
webhook and name the image, the repository and the cause.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import urllib3

from tests.trustctl.gatekit import (
    GUN,
    KINDS,
    LOCATIONS,
    POLICY,
    SIDECAR,
    SIDECAR_DIGEST,
    SIGNED,
    SIGNED_DIGEST,
    UNPINNED,
    UNSIGNED,
    GateUnderTest,
    ok,
    pod_spec,
    sidecar_injector,
    sign,
    start_gate,
    with_image_at,
    workload,
)  # fmt: skip
from tests.trustctl.support import FlaskTransport, Mitm, Person, make_server
from trustctl.transport import HttpTransport

MakePerson = Callable[..., Person]
DENIED_BY_GATE = 'admission webhook "verify.gate.trustctl.dev" denied the request: '


def _signed_repository(owner: Person, tmp_path: Path) -> Person:
    ok(owner.run("init", GUN))
    for n, tag in enumerate(("v1", "v2", "strict-1", "warn-1", "gitops-1"), start=1):
        sign(owner, tag, n)
    ok(owner.run("trust", "export", GUN, "-o", str(tmp_path / "root.json")))
    return owner


def _pinned(d: Person, tmp_path: Path) -> Person:
    ok(d.run("trust", "pin", GUN, str(tmp_path / "root.json")))
    return d


@pytest.fixture
def owner(person: MakePerson, tmp_path: Path) -> Person:
    return _signed_repository(person("owner"), tmp_path)


@pytest.fixture
def deployer(person: MakePerson, owner: Person, tmp_path: Path) -> Person:
    return _pinned(person("deployer"), tmp_path)


@pytest.fixture
def own_gate(tmp_path: Path, deployer: Person, server: FlaskTransport) -> Iterator[GateUnderTest]:
    """A gate of the test's own: for tests that cut the network, move the clock or
    rewrite the policy."""
    g = start_gate(tmp_path, deployer.trust_dir, server, mutators=(sidecar_injector(SIDECAR),))
    yield g
    g.stop()


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateUnderTest]:
    """One signed repository and one gate for the read-only cases (the matrix)."""
    tmp = tmp_path_factory.mktemp("gate")
    server = FlaskTransport(make_server())
    registry = HttpTransport()
    owner = Person("owner", tmp / "owner", server_transport=server, registry_transport=registry)
    _signed_repository(owner, tmp)
    d = _pinned(Person("deployer", tmp / "deployer", server_transport=server,
                       registry_transport=registry), tmp)  # fmt: skip
    g = start_gate(tmp, d.trust_dir, server, mutators=(sidecar_injector(SIDECAR),))
    yield g
    g.stop()


def denied(result: Any, *needles: str) -> None:
    assert not result.allowed, result
    assert result.message.startswith(DENIED_BY_GATE), result.message
    for n in needles:
        assert n in result.message, result.message


# --- the bypass matrix ------------------------------------------------------------------


@pytest.mark.parametrize("location", LOCATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_an_unsigned_image_is_denied_in_every_location_and_kind(
    gate: GateUnderTest, kind: str, location: str
) -> None:
    result = gate.admit(workload(kind, with_image_at(location, UNSIGNED)))
    denied(result, f"image {UNSIGNED} (repository {GUN})", "NOT_SIGNED")


@pytest.mark.parametrize(
    "kind", ["Deployment", "ReplicaSet", "StatefulSet", "ReplicationController"]
)
def test_replicas_zero_is_verified_like_any_other(gate: GateUnderTest, kind: str) -> None:
    result = gate.admit(workload(kind, pod_spec(UNSIGNED), replicas=0))
    denied(result, UNSIGNED, "NOT_SIGNED")


def test_kubectl_debug_with_an_unsigned_image_is_denied(gate: GateUnderTest) -> None:
    pod = workload("Pod", pod_spec(f"{SIGNED}@{SIGNED_DIGEST}"))
    debugged = copy.deepcopy(pod)
    debugged["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": UNSIGNED}]
    result = gate.admit(debugged, operation="UPDATE", old=pod, sub_resource="ephemeralcontainers")
    denied(result, UNSIGNED, "NOT_SIGNED")


def test_kubectl_debug_with_a_signed_image_is_admitted_and_pinned(gate: GateUnderTest) -> None:
    pod = workload("Pod", pod_spec(f"{SIGNED}@{SIGNED_DIGEST}"))
    debugged = copy.deepcopy(pod)
    debugged["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": SIDECAR}]
    result = gate.admit(debugged, operation="UPDATE", old=pod, sub_resource="ephemeralcontainers")
    assert result.allowed, result
    assert result.object["spec"]["ephemeralContainers"][0]["image"] == f"{SIDECAR}@{SIDECAR_DIGEST}"


def test_a_signed_tag_is_pinned_to_exactly_its_signed_digest(gate: GateUnderTest) -> None:
    result = gate.admit(
        workload("Deployment", pod_spec(SIGNED, initContainers=[{"name": "i", "image": SIGNED}]))
    )
    assert result.allowed, result
    spec = result.object["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == f"{SIGNED}@{SIGNED_DIGEST}"
    assert spec["initContainers"][0]["image"] == f"{SIGNED}@{SIGNED_DIGEST}"
    # the sidecar was injected after the gate's mutating webhook: the reinvocation pinned it
    assert spec["containers"][1] == {"name": "proxy", "image": f"{SIDECAR}@{SIDECAR_DIGEST}"}
    assert result.calls == ["pin.gate.trustctl.dev", "inject_sidecar", "pin.gate.trustctl.dev",
                            "verify.gate.trustctl.dev"]  # fmt: skip
    assert result.schema_errors == []  # the patched Deployment is a valid Kubernetes object


def test_an_image_volume_is_pinned(gate: GateUnderTest) -> None:
    result = gate.admit(workload("Pod", with_image_at("volumes", SIGNED)))
    assert result.allowed, result
    vol = result.object["spec"]["volumes"][0]["image"]
    assert vol["reference"] == f"{SIGNED}@{SIGNED_DIGEST}"
    assert result.schema_errors == []


def test_a_sidecar_injected_after_the_gate_is_still_checked(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    g = start_gate(tmp_path, deployer.trust_dir, server, mutators=(sidecar_injector(UNSIGNED),))
    try:
        denied(g.admit(workload("Deployment", pod_spec(SIGNED))), UNSIGNED, "NOT_SIGNED")
    finally:
        g.stop()


@pytest.mark.parametrize(
    ("image", "code"),
    [
        pytest.param(f"{SIGNED}@sha256:{9:064x}", "DIGEST_MISMATCH", id="tag-with-another-digest"),
        pytest.param(f"{GUN}@sha256:{9:064x}", "NEEDS_TAG", id="digest-alone-unsigned"),
        pytest.param(f"{GUN}@{SIGNED_DIGEST}", "NEEDS_TAG", id="digest-alone-even-if-signed"),
    ],
)
def test_a_digest_that_is_not_the_signed_digest_is_denied(
    gate: GateUnderTest, image: str, code: str
) -> None:
    denied(gate.admit(workload("Pod", pod_spec(image))), image, code)


def test_the_pinned_reference_is_admitted_again(gate: GateUnderTest) -> None:
    """What the mutating webhook wrote passes the validating webhook (and reinvocation)."""
    result = gate.admit(workload("Pod", pod_spec(f"{SIGNED}@{SIGNED_DIGEST}")))
    assert result.allowed, result
    assert result.object["spec"]["containers"][0]["image"] == f"{SIGNED}@{SIGNED_DIGEST}"


# --- what passes without work --------------------------------------------------------


def test_delete_and_finalizer_removal_pass(gate: GateUnderTest) -> None:
    bad = workload("Deployment", pod_spec(UNSIGNED))
    assert gate.admit(bad, operation="DELETE", old=bad).allowed
    terminating = copy.deepcopy(bad)
    terminating["metadata"]["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    terminating["metadata"]["finalizers"] = ["example.com/cleanup"]
    done = copy.deepcopy(terminating)
    done["metadata"]["finalizers"] = []
    assert gate.admit(done, operation="UPDATE", old=terminating).allowed


def test_an_update_that_changes_no_image_passes_and_a_changed_one_is_verified(
    gate: GateUnderTest,
) -> None:
    old = workload("ReplicaSet", pod_spec(UNSIGNED), replicas=3)  # predates the gate
    scaled = copy.deepcopy(old)
    scaled["spec"]["replicas"] = 0  # the old ReplicaSet scaled down in a rollout
    assert gate.admit(scaled, operation="UPDATE", old=old).allowed
    changed = copy.deepcopy(old)
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = f"{GUN}:v8"
    denied(gate.admit(changed, operation="UPDATE", old=old), f"{GUN}:v8", "NOT_SIGNED")


# --- modes ----------------------------------------------------------------------------


def test_warn_mode_allows_with_a_warning_and_an_audit_annotation(gate: GateUnderTest) -> None:
    image = f"{GUN}:warn-unsigned"
    result = gate.admit(workload("Pod", pod_spec(image)))
    assert result.allowed, result
    assert (
        len(result.warnings) == 1
        and image in result.warnings[0]
        and "warn mode" in result.warnings[0]
    )
    assert all(len(w) <= 120 for w in result.warnings)
    assert result.audit["verify.gate.trustctl.dev/decision"] == "warn"
    assert image in result.audit["verify.gate.trustctl.dev/warned"]


def test_verify_only_mode_checks_without_rewriting(gate: GateUnderTest) -> None:
    result = gate.admit(workload("Pod", pod_spec(f"{GUN}:gitops-1")))
    assert result.allowed, result
    assert result.object["spec"]["containers"][0]["image"] == f"{GUN}:gitops-1"
    denied(
        gate.admit(workload("Pod", pod_spec(f"{GUN}:gitops-2"))), f"{GUN}:gitops-2", "NOT_SIGNED"
    )


# --- fail closed: one case each --------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "code", "repository"),
    [
        pytest.param(UNSIGNED, "NOT_SIGNED", GUN, id="tag-not-signed"),
        pytest.param(f"{UNPINNED}:v1", "NO_PINNED_ROOT", UNPINNED, id="no-pinned-root"),
        pytest.param(f"{GUN}:strict-1", "SIGNER_POLICY", GUN, id="required-signer-missing"),
        pytest.param(
            "127.0.0.1:5999/Gate/App:v1", "INVALID_REFERENCE", None, id="unparsable-reference"
        ),
        pytest.param("example.com/elsewhere/app:v1", "NO_RULE", None, id="no-rule-matches"),
        pytest.param(
            "127.0.0.1:5999/gatex/app:v1", "NO_RULE", None, id="pattern-is-not-a-substring"
        ),
    ],
)
def test_fail_closed(gate: GateUnderTest, image: str, code: str, repository: str | None) -> None:
    result = gate.admit(workload("Pod", pod_spec(image)))
    denied(result, code)
    if repository:
        assert f"(repository {repository})" in result.message


def test_fail_closed_threshold_unmet(
    tmp_path: Path, person: MakePerson, owner: Person, deployer: Person, server: FlaskTransport
) -> None:
    """Two of alice and bob must sign; only alice has: the gate denies, naming it."""
    alice, bob = person("alice"), person("bob")
    for p in (alice, bob):
        ok(p.run("trust", "pin", GUN, str(tmp_path / "root.json")))
        ok(p.run("key", "generate", p.name, "--dir", str(tmp_path)))
    team = ["--paths", "team-*"]
    ok(owner.run("signer", "add", "alice", "--key", str(tmp_path / "alice.pub"), GUN, *team))
    ok(
        owner.run(
            "signer",
            "add",
            "bob",
            "--key",
            str(tmp_path / "bob.pub"),
            GUN,
            "--threshold",
            "2",
            *team,
        )
    )
    digest = [
        "--digest",
        f"sha256:{8:064x}",
        "--size",
        "10",
        "--media-type",
        "application/vnd.oci.image.manifest.v1+json",
    ]
    ok(alice.run("sign", f"{GUN}:team-1", *digest))  # pending: 1 of 2
    g = start_gate(tmp_path, deployer.trust_dir, server)
    try:
        # one of two signatures is not published: python-tuf finds no signed target
        denied(g.admit(workload("Pod", pod_spec(f"{GUN}:team-1"))), f"{GUN}:team-1",
               f"repository {GUN}", "NOT_SIGNED", "not published yet")  # fmt: skip
        ok(bob.run("sign", f"{GUN}:team-1", *digest))  # 2 of 2
        g.clock.offset = timedelta(seconds=11)  # past any cached denial
        assert g.admit(workload("Pod", pod_spec(f"{GUN}:team-1"))).allowed
    finally:
        g.stop()


def test_fail_closed_trust_server_down(own_gate: GateUnderTest) -> None:
    own_gate.transport.down = True
    denied(
        own_gate.admit(workload("Pod", pod_spec(SIGNED))),
        SIGNED,
        f"repository {GUN}",
        "SERVER_UNAVAILABLE",
    )


def test_fail_closed_expired_metadata(own_gate: GateUnderTest) -> None:
    assert own_gate.admit(workload("Pod", pod_spec(SIGNED))).allowed
    own_gate.clock.offset = timedelta(days=400)  # past every expiry: the injected clock
    denied(own_gate.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "STALE", "freeze attack")


def test_fail_closed_bad_signature(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    mitm = Mitm(server)
    g = start_gate(tmp_path, deployer.trust_dir, mitm)
    try:
        real = server.request("GET", f"https://notary.test/v2/{GUN}/_trust/tuf/timestamp.json").data
        doc = json.loads(real)
        doc["signed"]["version"] += 1  # the signature no longer covers the body
        mitm.replay("/timestamp.json", json.dumps(doc).encode())
        denied(g.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "BAD_SIGNATURE")
    finally:
        g.stop()


def test_fail_closed_rollback_after_a_restart(
    tmp_path: Path, owner: Person, deployer: Person, server: FlaskTransport
) -> None:
    """The gate's trusted state lives in its trust dir: a new gate (a restart) still
    refuses the older timestamp an attacker replays."""
    mitm = Mitm(server)
    first = start_gate(tmp_path, deployer.trust_dir, mitm)
    assert first.admit(workload("Pod", pod_spec(SIGNED))).allowed
    old_timestamp = mitm.recorded["timestamp.json"][-1]
    sign(owner, "v3", 3)
    assert first.admit(workload("Pod", pod_spec(f"{GUN}:v3"))).allowed
    first.stop()

    mitm.replay("/timestamp.json", old_timestamp)
    second = start_gate(tmp_path / "restarted", deployer.trust_dir, mitm)
    try:
        denied(
            second.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "ROLLBACK", "rollback attack"
        )
    finally:
        second.stop()


def test_a_stalled_trust_server_is_answered_in_time(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    """The API server gives up after timeoutSeconds (3 s here, failurePolicy Fail); every
    answer must be the gate's own denial, made before that, naming the cause."""
    g = start_gate(tmp_path, deployer.trust_dir, server, timeout_seconds=3)
    g.transport.stalled.set()
    try:
        objs = [workload("Pod", pod_spec(f"{GUN}:v{i % 3 + 1}")) for i in range(12)]
        with ThreadPoolExecutor(12) as pool:
            results = list(pool.map(g.admit, objs))
        for r in results:
            denied(r, "TIMEOUT", f"repository {GUN}", "did not answer in time")
    finally:
        g.stop()


def test_requests_waiting_for_a_thread_are_answered_in_time(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    """More requests than threads, the trust server stalled: a request's deadline runs
    from its arrival, not from when a thread took it up, so those that waited for a
    thread are answered in time too (4 threads, 16 requests, 1 s to answer each)."""
    g = start_gate(tmp_path, deployer.trust_dir, server, timeout_seconds=3, threads=4)
    g.transport.stalled.set()
    try:
        objs = [workload("Pod", pod_spec(f"{GUN}:v{i}")) for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(g.admit, objs))
        for r in results:
            denied(r, "TIMEOUT", f"repository {GUN}")
    finally:
        g.stop()


def test_a_trust_server_answering_503_is_denied_with_its_answer_in_time(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    """The gate's own budget, not trustctl's 30 s retry budget, bounds the Verifier's
    retries: the denial comes before the deadline and names what the server said."""
    g = start_gate(tmp_path, deployer.trust_dir, server, timeout_seconds=4)
    g.transport.unavailable = True
    try:
        denied(g.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, f"repository {GUN}",
               "SERVER_UNAVAILABLE", "HTTP 503 SIGNER_UNAVAILABLE", "gave up after")  # fmt: skip
    finally:
        g.stop()


# --- pinned roots from the policy ----------------------------------------------------------


def _policy_with_root(root: Path) -> str:
    return POLICY.replace(
        '  - pattern: "127.0.0.1:5999/gate/**"\n    server: main\n',
        f'  - pattern: "127.0.0.1:5999/gate/**"\n    server: main\n    root: {root}\n',
    )


def test_a_rules_root_is_pinned_on_first_use(
    tmp_path: Path, owner: Person, server: FlaskTransport
) -> None:
    trust_dir = tmp_path / "fresh-gate-trust"  # nothing pinned by hand
    g = start_gate(tmp_path, trust_dir, server, policy=_policy_with_root(tmp_path / "root.json"))
    try:
        result = g.admit(workload("Pod", pod_spec(SIGNED)))
        assert result.allowed, result
        assert (trust_dir / "tuf" / GUN / "pinned_root.json").read_bytes() == (
            tmp_path / "root.json"
        ).read_bytes()
    finally:
        g.stop()


def test_another_root_pinned_than_the_policys_is_refused(
    tmp_path: Path, person: MakePerson, deployer: Person, server: FlaskTransport
) -> None:
    mallory = person("mallory")
    ok(mallory.run("init", f"{GUN}-elsewhere"))
    ok(mallory.run("trust", "export", f"{GUN}-elsewhere", "-o", str(tmp_path / "other-root.json")))
    g = start_gate(
        tmp_path, deployer.trust_dir, server, policy=_policy_with_root(tmp_path / "other-root.json")
    )
    try:
        denied(
            g.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "ROOT_MISMATCH", "may be an attack"
        )
    finally:
        g.stop()


def test_a_dry_run_is_answered_like_any_request(gate: GateUnderTest) -> None:
    """sideEffects NoneOnDryRun: the API server calls the gate for dry runs too."""
    denied(gate.admit(workload("Pod", pod_spec(UNSIGNED)), dry_run=True), UNSIGNED, "NOT_SIGNED")
    assert gate.admit(workload("Pod", pod_spec(SIGNED)), dry_run=True).allowed


# --- the verdict cache ------------------------------------------------------------------


def test_a_verified_image_is_answered_from_the_cache(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    g = start_gate(tmp_path, deployer.trust_dir, server, mutators=(sidecar_injector(SIDECAR),),
                   cache_ttl=600)  # no renewal within the test  # fmt: skip
    try:
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed  # mutate verifies, validate hits
        calls, hits = g.transport.calls, g.server.gate.cache.hits
        assert hits >= 1
        assert g.admit(workload("Deployment", pod_spec(SIGNED))).allowed
        assert g.transport.calls == calls and g.server.gate.cache.hits > hits
    finally:
        g.stop()


def test_a_hot_verdict_is_renewed_in_the_background_and_never_served_past_its_time(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    """A warm request never waits for the trust server: in the second half of a
    verdict's time a hit answers at once and starts a renewal; past its time the
    verdict answers nothing (the renewal hangs here: the request fails closed)."""
    g = start_gate(tmp_path, deployer.trust_dir, server, cache_ttl=60, timeout_seconds=3)
    try:
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed
        calls = g.transport.calls
        g.transport.stalled.set()  # the trust server hangs from now on
        g.clock.offset = timedelta(seconds=40)
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed  # from the cache...
        for _ in range(200):  # ...while a renewal asks the trust server
            if g.transport.calls > calls:
                break
            time.sleep(0.05)
        assert g.transport.calls > calls, "no renewal asked the trust server"
        g.clock.offset = timedelta(seconds=61)
        denied(g.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "TIMEOUT")
    finally:
        g.stop()


def test_a_cached_verdict_never_outlives_the_metadata_it_rests_on(
    tmp_path: Path, deployer: Person, server: FlaskTransport
) -> None:
    g = start_gate(tmp_path, deployer.trust_dir, server, cache_ttl=10 * 365 * 86400.0)
    try:
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed
        assert g.server.gate.cache.hits >= 2  # answered from the cache, for ten years at most
        expires = json.loads(server.request(
            "GET", f"https://notary.test/v2/{GUN}/_trust/tuf/timestamp.json").data)["signed"]["expires"]  # fmt: skip
        # the verdict rests on the timestamp, the first role to expire
        moment = datetime.strptime(expires, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        g.clock.offset = moment - datetime.now(UTC) + timedelta(seconds=1)
        denied(g.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "STALE")
    finally:
        g.stop()


def test_a_new_repository_state_seen_by_any_verification_ends_every_cached_verdict_of_it(
    tmp_path: Path, deployer: Person, owner: Person, server: FlaskTransport
) -> None:
    """Cache keys carry the trusted metadata versions: once a verification of any tag
    has seen the repository move on (here: v1 re-signed to another digest), no verdict
    resting on the older state answers, however long the cache would keep it."""
    g = start_gate(tmp_path, deployer.trust_dir, server, cache_ttl=600)
    try:
        pinned = g.admit(workload("Pod", pod_spec(SIGNED))).object["spec"]["containers"][0]
        assert pinned["image"] == f"{SIGNED}@{SIGNED_DIGEST}"
        new_digest = sign(owner, "v1", 77)
        denied(g.admit(workload("Pod", pod_spec(UNSIGNED))), "NOT_SIGNED")  # sees the new state
        again = g.admit(workload("Pod", pod_spec(SIGNED))).object["spec"]["containers"][0]
        assert again["image"] == f"{SIGNED}@{new_digest}"
    finally:
        g.stop()


def test_a_root_re_pinned_by_hand_with_the_same_version_ends_every_cached_verdict_of_it(
    tmp_path: Path, person: MakePerson, deployer: Person, server: FlaskTransport
) -> None:
    """Cache keys carry a digest of the pinned root: an operator who re-pins the
    repository by hand (`trustctl trust pin`) to another root with the same version
    number is heard on the next request, however long the cache would keep the verdict
    resting on the old pin."""
    mallory = person("mallory")
    ok(mallory.run("init", f"{GUN}-elsewhere"))
    ok(mallory.run("trust", "export", f"{GUN}-elsewhere", "-o", str(tmp_path / "other-root.json")))
    other = json.loads((tmp_path / "other-root.json").read_bytes())
    mine = json.loads((tmp_path / "root.json").read_bytes())
    assert other["signed"]["version"] == mine["signed"]["version"] == 1
    g = start_gate(tmp_path, deployer.trust_dir, server, cache_ttl=600)
    try:
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed
        assert g.admit(workload("Pod", pod_spec(SIGNED))).allowed
        assert g.server.gate.cache.hits >= 1
        ok(deployer.run("trust", "pin", GUN, str(tmp_path / "other-root.json")))
        denied(g.admit(workload("Pod", pod_spec(SIGNED))), SIGNED, "BAD_SIGNATURE")
    finally:
        g.stop()


def test_transport_errors_are_never_cached(own_gate: GateUnderTest) -> None:
    own_gate.transport.down = True
    denied(own_gate.admit(workload("Pod", pod_spec(SIGNED))), "SERVER_UNAVAILABLE")
    own_gate.transport.down = False
    assert own_gate.admit(workload("Pod", pod_spec(SIGNED))).allowed


def test_a_definitive_denial_is_cached_for_seconds_only(
    own_gate: GateUnderTest, owner: Person
) -> None:
    image = f"{GUN}:late"
    denied(own_gate.admit(workload("Pod", pod_spec(image))), "NOT_SIGNED")
    sign(owner, "late", 7)
    denied(own_gate.admit(workload("Pod", pod_spec(image))), "NOT_SIGNED")  # the cached verdict
    own_gate.clock.offset = timedelta(seconds=11)  # past the 10 s ceiling for denials
    assert own_gate.admit(workload("Pod", pod_spec(image))).allowed


# --- the wire ---------------------------------------------------------------------------


REVIEW: dict[str, Any] = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
          "request": {"uid": "u-1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                      "operation": "CREATE", "object": workload("Pod", pod_spec(SIGNED))}}  # fmt: skip


def _without(path: str) -> bytes:
    doc = copy.deepcopy(REVIEW)
    *parents, last = path.split(".")
    target: Any = doc
    for p in parents:
        target = target[p]
    del target[last]
    return json.dumps(doc).encode()


def _with(**changes: Any) -> bytes:
    return json.dumps({**REVIEW, **changes}).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"[]", id="json-array"),
        pytest.param(_with(apiVersion="admission.k8s.io/v1beta1"), id="v1beta1"),
        pytest.param(_with(apiVersion="admission.k8s.io/v2"), id="unknown-api-version"),
        pytest.param(_with(kind="TokenReview"), id="wrong-kind"),
        pytest.param(_without("request"), id="no-request"),
        pytest.param(_without("request.uid"), id="no-uid"),
        pytest.param(_with(request={**REVIEW["request"], "uid": 7}), id="uid-not-a-string"),
        pytest.param(
            _with(request={**REVIEW["request"], "operation": "PATCH"}), id="unknown-operation"
        ),
    ],
)
@pytest.mark.parametrize("endpoint", ["validate", "mutate"])
def test_a_malformed_review_is_http_400_never_an_allow(
    gate: GateUnderTest, body: bytes, endpoint: str
) -> None:
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(gate.pki.ca_cert))
    r = pool.request("POST", f"https://127.0.0.1:{gate.server.port}/{endpoint}", body=body,
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status == 400, r.data
    doc = json.loads(r.data)
    assert doc["errors"][0]["code"] == "BAD_REVIEW" and "allowed" not in r.data.decode()


def test_a_client_stalling_its_tls_handshake_holds_up_no_one(gate: GateUnderTest) -> None:
    stalled = [socket.create_connection(("127.0.0.1", gate.server.port)) for _ in range(3)]
    try:
        result = gate.admit(workload("Pod", pod_spec(SIGNED)))
        assert result.allowed, result  # not "failed calling webhook ... timed out"
    finally:
        for s in stalled:
            s.close()


def test_the_uid_is_echoed_and_metrics_count_decisions(own_gate: GateUnderTest) -> None:
    pool = urllib3.PoolManager(cert_reqs="CERT_REQUIRED", ca_certs=str(own_gate.pki.ca_cert))
    base = f"https://127.0.0.1:{own_gate.server.port}"
    r = pool.request("POST", f"{base}/validate?timeout=10s", body=json.dumps(REVIEW).encode(),
                     headers={"Content-Type": "application/json"})  # fmt: skip
    assert r.status == 200
    resp = json.loads(r.data)
    assert resp["response"]["uid"] == "u-1" and resp["response"]["allowed"] is True
    metrics = pool.request("GET", f"{base}/metrics").data.decode()
    assert (
        'trustctl_gate_decisions_total{webhook="validate",outcome="allow",reason="verified"} 1'
        in metrics
    )
    assert f'trustctl_gate_trust_seconds_to_expiry{{gun="{GUN}",role="timestamp"}}' in metrics


def test_a_policy_change_takes_effect_on_the_next_request(own_gate: GateUnderTest) -> None:
    assert own_gate.admit(workload("Pod", pod_spec(SIGNED))).allowed
    own_gate.policy_path.write_text(
        POLICY.replace('pattern: "127.0.0.1:5999/gate/**"', 'pattern: "127.0.0.1:5999/other/**"')
        + "\n"
    )
    denied(own_gate.admit(workload("Pod", pod_spec(SIGNED))), "NO_RULE")
    own_gate.policy_path.write_text(
        "version: 1\nrules: [oops\n"
    )  # invalid: the previous policy stays
    denied(own_gate.admit(workload("Pod", pod_spec(SIGNED))), "NO_RULE")
