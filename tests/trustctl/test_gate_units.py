"""The gate's pure parts: AdmissionReview parsing and responses, where images hide,
the policy file (line-numbered errors) and pattern matching on parsed references
(hypothesis properties)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trustctl.gate.images import UnknownKind, find_images
from trustctl.gate.manifest import manifest
from trustctl.gate.policy import Pattern, PolicyError, load_policy
from trustctl.gate.review import BadReview, Verdict, parse_review, review_response
from trustctl.gate.state import RootMismatchError, RootPins
from trustctl.notary.pinning import NotaryPin
from trustctl.notary.verify import notary_state
from trustctl.reference import ImageRef, parse_reference
from trustctl.truststore import TrustStore

# --- patterns: parsed references, never substrings ------------------------------------

component = st.from_regex(r"[a-z0-9]{1,6}(?:[-_.][a-z0-9]{1,4})?", fullmatch=True)
host = st.builds(lambda a, b, port: f"{a}.{b}" + (f":{port}" if port else ""),
                 st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True),
                 st.sampled_from(["io", "com", "example"]),
                 st.one_of(st.none(), st.integers(1, 65535)))  # fmt: skip
tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,10}", fullmatch=True)


@st.composite
def refs(draw: st.DrawFn) -> ImageRef:
    parts = draw(st.lists(component, min_size=1, max_size=4))
    return ImageRef(draw(host), "/".join(parts), draw(tag), None)


@given(refs())
def test_a_pattern_of_the_exact_name_matches_it(ref: ImageRef) -> None:
    assert Pattern.parse(ref.gun).matches(ref)
    assert Pattern.parse(f"{ref.gun}:{ref.tag}").matches(ref)


@given(refs(), component)
def test_a_pattern_is_never_a_substring_or_prefix(ref: ImageRef, extra: str) -> None:
    pattern = Pattern.parse(ref.gun)
    longer = ImageRef(ref.registry, ref.repository + extra, ref.tag)
    deeper = ImageRef(ref.registry, f"{ref.repository}/{extra}", ref.tag)
    other_host = ImageRef(f"{extra}{ref.registry}", ref.repository, ref.tag)
    for victim in (longer, deeper, other_host):
        if victim.gun != ref.gun:
            assert not pattern.matches(victim), (pattern, victim)


@given(refs(), component)
def test_a_star_stays_within_one_component(ref: ImageRef, extra: str) -> None:
    parent = ref.repository.rsplit("/", 1)[0] if "/" in ref.repository else None
    star = Pattern.parse(f"{ref.registry}/{parent + '/' if parent else ''}*")
    assert star.matches(ref)
    deeper = ImageRef(ref.registry, f"{ref.repository}/{extra}", ref.tag)
    assert not star.matches(deeper)
    assert Pattern.parse(f"{ref.registry}/**").matches(deeper)


@given(refs(), tag)
def test_a_tag_pattern_matches_the_tag_only(ref: ImageRef, other: str) -> None:
    pattern = Pattern.parse(f"{ref.gun}:{ref.tag}")
    assert pattern.matches(ImageRef(ref.registry, ref.repository, other)) == (other == ref.tag)
    assert not pattern.matches(ImageRef(ref.registry, ref.repository, None, f"sha256:{0:064x}"))


@given(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), tag)
def test_docker_hub_names_are_normalised(name: str, t: str) -> None:
    ref = parse_reference(f"{name}:{t}")
    for text in (name, f"library/{name}", f"docker.io/library/{name}", "docker.io/library/*"):
        assert Pattern.parse(text).matches(ref), text
    assert not Pattern.parse(f"docker.io/{name}").matches(ref)


@pytest.mark.parametrize(
    ("pattern", "image", "matches"),
    [
        pytest.param("evil.com/app", "evil.com/app-x:1", False, id="suffix-is-not-a-match"),
        pytest.param("evil.com/app", "notevil.com/app:1", False, id="host-is-anchored"),
        pytest.param(
            "*.example.com/app", "a.b.example.com/app:1", False, id="star-is-one-label-run"
        ),
        pytest.param("*.example.com/app", "a.example.com/app:1", True, id="star-in-host"),
        pytest.param("r.io/team/*", "r.io/team/a/b:1", False, id="star-not-across-slash"),
        pytest.param("r.io/**/app", "r.io/a/b/app:1", True, id="double-star-any-depth"),
        pytest.param("r.io/**/app", "r.io/app:1", True, id="double-star-zero-components"),
        pytest.param("**", "quay.io/x/y:1", True, id="everything"),
    ],
)
def test_pattern_cases(pattern: str, image: str, matches: bool) -> None:
    assert Pattern.parse(pattern).matches(parse_reference(image)) is matches


POLICY = """\
version: 1
servers:
  a: {url: "https://a.example"}
  b: {url: "https://b.example"}
rules:
  - pattern: "r.io/**"
    server: a
  - pattern: "r.io/team/*"
    server: b
  - pattern: "r.io/team/app:prod-*"
    server: a
    signers: [release]
    gun: "mirror.example/{repository}"
"""


def test_the_most_specific_rule_wins() -> None:
    policy = load_policy(POLICY)

    def server_for(image: str) -> str | None:
        rule = policy.rule_for(parse_reference(image))
        return rule.server if rule else None

    assert server_for("r.io/x/y:1") == "a"
    assert server_for("r.io/team/app:dev") == "b"
    rule = policy.rule_for(parse_reference("r.io/team/app:prod-1"))
    assert rule is not None
    assert (
        rule.signers == ("release",)
        and rule.gun_for(parse_reference("r.io/team/app:prod-1")) == "mirror.example/team/app"
    )
    assert policy.rule_for(parse_reference("q.io/team/app:1")) is None


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        pytest.param("version: 2\n", 1, "version must be 1", id="version"),
        pytest.param("version: 1\nrules: [oops\n", 3, "not valid YAML", id="yaml"),
        pytest.param(
            "version: 1\nunmatched: maybe\n", 2, "unmatched must be deny or allow", id="unmatched"
        ),
        pytest.param("version: 1\nrulez: []\n", 2, "unknown field 'rulez'", id="unknown-field"),
        pytest.param(
            POLICY + "  - pattern: x\n    server: c\n", 15, "server 'c' is not defined", id="server"
        ),
        pytest.param(
            POLICY + "  - pattern: 'a/**b'\n    server: a\n",
            14,
            "** must be a whole component",
            id="pattern",
        ),
        pytest.param(
            POLICY + "  - pattern: x\n    server: a\n    mode: audit\n",
            16,
            "mode must be one of",
            id="mode",
        ),
        pytest.param(
            POLICY + "  - pattern: x\n    server: a\n    gun: '{host}/x'\n", 16, "gun", id="gun"
        ),
        pytest.param(POLICY + "  - server: a\n", 14, "pattern is required", id="no-pattern"),
        pytest.param(
            POLICY + "  - pattern: x\n    server: a\n    signers: alice\n",
            16,
            "must be a list",
            id="signers",
        ),
        pytest.param(
            POLICY + "  - pattern: x\n    server: a\n    root: /nonexistent/root.json\n",
            16,
            "cannot be read",
            id="root-missing",
        ),
        pytest.param(
            POLICY + f"  - pattern: x\n    server: a\n    root: {__file__}\n",
            16,
            f"rule: root '{__file__}'",
            id="root-not-a-root",
        ),
        pytest.param(
            POLICY + "  - pattern: x\n    server: a\n    root_keyid: abc\n",
            16,
            "not a full 64-hex-digit root certificate id",
            id="root-keyid-malformed",
        ),
        pytest.param(
            POLICY + f"  - pattern: x\n    server: a\n    root_ca: {__file__}\n",
            16,
            "not a PEM certificate bundle",
            id="root-ca-not-pem",
        ),
        pytest.param(
            POLICY
            + f"  - pattern: x\n    server: a\n    root_keyid: {'a' * 64}\n    root: r.json\n",
            17,
            "give only one of root, root_keyid, root_ca",
            id="two-roots",
        ),
    ],
)
def test_an_invalid_policy_names_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(PolicyError) as e:
        load_policy(text, source="policy.yaml")
    assert str(e.value).startswith(f"policy.yaml:{line}: "), str(e.value)
    assert words in str(e.value)


def test_a_rules_notary_root_is_pinned_as_trust_pin_pins_it_and_another_is_refused(
    tmp_path: Path,
) -> None:
    """``root_ca`` and ``root_keyid`` pin a Notary repository (trustctl's Notary pin, as
    ``trust pin --ca-bundle`` / ``--keyid`` write it); a restarted gate with the same
    policy finds it pinned; a policy naming another anchor is refused, not re-pinned."""
    from notary_signer.devcerts import ensure_dev_pki

    ca = ensure_dev_pki(tmp_path / "pki").ca_cert
    text = (
        POLICY
        + f"  - pattern: 'r.io/legacy/*'\n    server: a\n    root_ca: {ca}\n"
        + f"  - pattern: 'r.io/other/*'\n    server: a\n    root_keyid: [{'ab' * 32}]\n"
    )

    def rule_root(image: str) -> tuple[NotaryPin, str]:
        rule = load_policy(text, source="policy.yaml").rule_for(parse_reference(image))
        assert rule is not None and isinstance(rule.root, NotaryPin), rule
        return rule.root, rule.root_source

    gun = "r.io/legacy/app"
    by_ca, source = rule_root(f"{gun}:1")
    assert by_ca.mode == "ca" and by_ca.ca_pem == ca.read_bytes()
    RootPins(tmp_path / "trust").ensure(gun, by_ca, source)
    stored = notary_state(TrustStore(tmp_path / "trust"), gun).pin()
    assert stored is not None and stored.ca_pem == by_ca.ca_pem
    assert stored.source == f"gate policy ({ca})"
    RootPins(tmp_path / "trust").ensure(gun, *rule_root(f"{gun}:1"))  # a restart: the same
    by_id, id_source = rule_root("r.io/other/app:1")
    assert by_id.mode == "certs" and by_id.cert_ids == ("ab" * 32,)
    with pytest.raises(RootMismatchError, match="may be an attack"):
        RootPins(tmp_path / "trust").ensure(gun, by_id, id_source)
    assert notary_state(TrustStore(tmp_path / "trust"), gun).pin() == stored  # unchanged


# --- AdmissionReview ----------------------------------------------------------------


def test_the_kubernetes_round_trip_fixture_parses() -> None:
    """The shape of k8s.io/api's testdata AdmissionReview (every request field set)."""
    review = {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "uidValue", "kind": {"group": "groupValue", "version": "versionValue", "kind": "kindValue"},
            "resource": {"group": "g", "version": "v", "resource": "r"}, "subResource": "subResourceValue",
            "requestKind": {"group": "g", "version": "v", "kind": "k"},
            "requestResource": {"group": "g", "version": "v", "resource": "r"},
            "requestSubResource": "s", "name": "nameValue", "namespace": "namespaceValue",
            "operation": "CREATE", "userInfo": {"username": "u", "uid": "x", "groups": ["g"], "extra": {"k": ["v"]}},
            "object": {"apiVersion": "v1", "kind": "Pod"}, "oldObject": {"apiVersion": "v1", "kind": "Pod"},
            "dryRun": True, "options": {"apiVersion": "v1", "kind": "CreateOptions"},
        },
        "response": None,
    }  # fmt: skip
    req = parse_review(json.dumps(review).encode())
    assert (req.uid, req.kind, req.group, req.sub_resource, req.dry_run) == (
        "uidValue", "kindValue", "groupValue", "subResourceValue", True)  # fmt: skip
    assert req.object == {"apiVersion": "v1", "kind": "Pod"}


@pytest.mark.parametrize(
    "body",
    [b"", b"null", b'"x"', b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}',
     b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"","kind":{"kind":"Pod"},"operation":"CREATE"}}',
     b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"kind":"Pod"},"operation":"CREATE","object":[]}}',
     b'\xff\xfe'],
    ids=["empty", "null", "string", "no-request", "empty-uid", "object-not-a-map", "not-utf8"],
)  # fmt: skip
def test_malformed_reviews_are_refused(body: bytes) -> None:
    with pytest.raises(BadReview):
        parse_review(body)


def test_responses_stay_within_the_api_servers_limits() -> None:
    verdict = Verdict(True, patch=[{"op": "replace", "path": "/spec/containers/0/image", "value": "x"}],
                      warnings=["w" * 500] * 100, audit={"decision": "warn", "bad key/": "x"})  # fmt: skip
    doc = review_response("u-9", verdict)
    resp = doc["response"]
    assert resp["uid"] == "u-9" and resp["patchType"] == "JSONPatch"
    assert json.loads(base64.b64decode(resp["patch"]))[0]["value"] == "x"
    assert all(len(w) <= 120 for w in resp["warnings"])
    assert sum(len(w) for w in resp["warnings"]) <= 4096
    assert resp["auditAnnotations"] == {"decision": "warn"}
    denied = review_response("u-1", Verdict(False, "no"))["response"]
    assert denied["status"]["code"] == 403 and "patch" not in denied


# --- images ----------------------------------------------------------------------------


def test_every_location_is_found_with_its_patch_path() -> None:
    spec = {"containers": [{"name": "a", "image": "a:1"}], "initContainers": [{"name": "b", "image": "b:1"}],
            "ephemeralContainers": [{"name": "c", "image": "c:1"}],
            "volumes": [{"name": "v", "image": {"reference": "v:1"}}, {"name": "e", "emptyDir": {}}]}  # fmt: skip
    cron = {"spec": {"jobTemplate": {"spec": {"template": {"spec": spec}}}}}
    sites = find_images(cron, "batch", "CronJob")
    assert [(s.path, s.image) for s in sites] == [
        ("/spec/jobTemplate/spec/template/spec/containers/0/image", "a:1"),
        ("/spec/jobTemplate/spec/template/spec/initContainers/0/image", "b:1"),
        ("/spec/jobTemplate/spec/template/spec/ephemeralContainers/0/image", "c:1"),
        ("/spec/jobTemplate/spec/template/spec/volumes/0/image/reference", "v:1"),
    ]
    pod_template = find_images({"template": {"spec": spec}}, "", "PodTemplate")
    assert pod_template[0].path == "/template/spec/containers/0/image"


def test_an_unknown_kind_is_refused_and_a_non_string_image_is_reported() -> None:
    with pytest.raises(UnknownKind):
        find_images({}, "example.com", "Widget")
    assert (
        find_images({"spec": {"containers": [{"name": "a", "image": 5}]}}, "", "Pod")[0].image == ""
    )


# --- manifest ----------------------------------------------------------------------------


def test_the_manifest_has_safe_defaults() -> None:
    docs = manifest(namespace="gate", image="r.io/gate@sha256:" + "0" * 64, ca_bundle="Q0E=")
    kinds = [d["kind"] for d in docs]
    assert kinds == [
        "Deployment",
        "Service",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ]
    for config in docs[2:]:
        (hook,) = config["webhooks"]
        assert hook["failurePolicy"] == "Fail" and hook["timeoutSeconds"] == 10
        assert hook["sideEffects"] == "NoneOnDryRun" and hook["admissionReviewVersions"] == ["v1"]
        excluded = hook["namespaceSelector"]["matchExpressions"][0]
        assert excluded["operator"] == "NotIn" and set(excluded["values"]) == {
            "kube-system",
            "gate",
        }
        resources = {r for rule in hook["rules"] for r in rule["resources"]}
        assert {
            "pods",
            "pods/ephemeralcontainers",
            "deployments",
            "cronjobs",
            "podtemplates",
        } <= resources
    assert docs[2]["webhooks"][0]["reinvocationPolicy"] == "IfNeeded"
    assert "reinvocationPolicy" not in docs[3]["webhooks"][0]


# --- the decision core, with an in-memory verifier -------------------------------------


class InstantRefusal:
    """A verifier (the Verifier's interface) that refuses at once."""

    def verify(
        self, image: object, *, signers: object = (), registry_mode: object = None
    ) -> object:
        from trustctl.errors import TagNotSignedError

        raise TagNotSignedError(f"{image} is not signed")

    def trusted_versions(self, gun: str) -> None:
        return None


def test_a_verification_finished_before_it_is_registered_does_not_deadlock() -> None:
    """A verification can finish before the request registers its completion callback
    (the callback then runs at once, in the request's thread): no lock may be held."""
    import threading

    from trustctl.gate.cache import VerdictCache
    from trustctl.gate.decide import Gate
    from trustctl.gate.review import AdmissionRequest

    policy = load_policy(
        "version: 1\nservers: {m: {url: 'https://t.example'}}\nrules: [{pattern: '**', server: m}]\n"
    )
    gate = Gate(
        lambda: policy,
        lambda _s, _b: InstantRefusal(),
        workers=4,
        cache=VerdictCache(ttl=0, negative_ttl=0),
    )
    codes: list[str] = []

    def run() -> None:
        for i in range(300):
            pod = {"spec": {"containers": [{"name": "a", "image": f"r.io/app:t{i}"}]}}
            req = AdmissionRequest(f"u{i}", "Pod", "", "v1", "CREATE", object=pod)
            codes.append(gate.validate(req, timeout=3).reason)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    gate.close()
    assert not worker.is_alive(), f"deadlocked after {len(codes)} requests"
    assert set(codes) == {"NOT_SIGNED"}


def test_a_cache_entry_is_renewed_once_in_its_second_half_and_never_served_after() -> None:
    from datetime import UTC, datetime, timedelta

    from trustctl.gate.cache import VerdictCache

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    cache: VerdictCache[str] = VerdictCache(ttl=10, clock=lambda: now[0])
    cache.put_positive("k", "verified", now[0] + timedelta(days=1))
    assert cache.lookup("k") == ("verified", False)
    now[0] += timedelta(seconds=5)
    assert cache.lookup("k") == ("verified", True)  # the first hit of the second half renews
    assert cache.lookup("k") == ("verified", False)  # ...once
    now[0] += timedelta(seconds=5)
    assert cache.lookup("k") is None  # its time is up, renewed or not
    cache.put_positive("k", "renewed", now[0] + timedelta(seconds=4))  # metadata expiry first
    now[0] += timedelta(seconds=2)
    assert cache.lookup("k") == ("renewed", True)


def test_the_cache_lets_dead_entries_go_as_new_ones_arrive() -> None:
    """100,000 distinct references (each denied once) must not leave 100,000 dead
    entries in memory: a put drops least recently used entries whose time is up."""
    from datetime import UTC, datetime, timedelta

    from trustctl.gate.cache import VerdictCache

    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    cache: VerdictCache[str] = VerdictCache(negative_ttl=2, clock=lambda: now[0])
    for i in range(100):
        cache.put_negative(("old", i), "denied", "NOT_SIGNED")
    now[0] += timedelta(seconds=3)
    for i in range(100):
        cache.put_negative(("new", i), "denied", "NOT_SIGNED")
    assert len(cache) == 100
    assert cache.get(("new", 0)) == "denied" and cache.get(("old", 0)) is None


class HeldVerifier:
    """A verifier (the Verifier's interface) whose state moves on as soon as a
    verification starts, and which answers when ``release`` is set."""

    def __init__(self) -> None:
        import threading

        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.versions: int | None = None

    def verify(
        self, image: object, *, signers: object = (), registry_mode: object = None
    ) -> object:
        from datetime import UTC, datetime, timedelta
        from types import SimpleNamespace

        self.calls += 1
        self.versions = 1  # the state the verification rests on, before it answers
        self.started.set()
        self.release.wait(30)
        later = datetime.now(UTC) + timedelta(days=1)
        return SimpleNamespace(digest=f"sha256:{1:064x}", expires={"timestamp": later},
                               fresh_until=later, versions=1)  # fmt: skip

    def trusted_versions(self, gun: str) -> int | None:
        return self.versions


def test_a_request_arriving_while_the_state_moves_on_joins_the_verification_in_flight() -> None:
    """The cache key carries the trusted versions, read before verifying; a request
    that reads the new versions while the verification that moved the state is still
    in flight must join it, not start another (one fetch per metadata file)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from trustctl.gate.decide import Gate
    from trustctl.gate.review import AdmissionRequest

    policy = load_policy(
        "version: 1\nservers: {m: {url: 'https://t.example'}}\nrules: [{pattern: '**', server: m}]\n"
    )
    verifier = HeldVerifier()
    gate = Gate(lambda: policy, lambda _s, _b: verifier, workers=4)
    pod = {"spec": {"containers": [{"name": "a", "image": "r.io/app:v1"}]}}
    try:
        with ThreadPoolExecutor(2) as ex:
            first = ex.submit(
                gate.validate, AdmissionRequest("u1", "Pod", "", "v1", "CREATE", object=pod), 10
            )
            assert verifier.started.wait(30)  # in flight, the state already moved on
            second = ex.submit(
                gate.validate, AdmissionRequest("u2", "Pod", "", "v1", "CREATE", object=pod), 10
            )
            while verifier.calls < 2 and not second.done() and gate.cache.misses < 2:
                verifier.started.wait(0.01)  # until the second request has looked up...
            time.sleep(0.2)  # ...and joined or started a verification (synchronisation only)
            verifier.release.set()
            assert first.result(30).allowed and second.result(30).allowed
    finally:
        gate.close()
    assert verifier.calls == 1
