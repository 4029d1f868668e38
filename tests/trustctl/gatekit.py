"""Test kit for the deploy gate: a signed repository, the gate over TLS on 127.0.0.1,
the in-test API server in front of it, and Kubernetes objects of every kind.

The trust server is the real ``notary_server`` app in process (as in the other
trustctl tests); the gate is the real :class:`~trustctl.gate.serve.GateServer` on a
TLS socket, deciding with the real :class:`~trustctl.api.Verifier`, whose transport
and clock are passed in (:class:`Switch` turns the trust server off or stalls it).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notary_signer.devcerts import DevPKI, ensure_dev_pki
from tests.trustctl.apiserver import Admission, ApiServer, Mutator, Webhook
from tests.trustctl.support import SERVER_URL, Person, Run
from trustctl.api import Verifier
from trustctl.errors import NetworkError
from trustctl.gate.bundle import BundleStore, bundle_state, near_stale_warning
from trustctl.gate.cache import VerdictCache
from trustctl.gate.decide import Budget, Gate, PolicyFile
from trustctl.gate.policy import Server
from trustctl.gate.serve import THREADS, GateServer
from trustctl.gate.state import RootPins, StateGuard, offline_check
from trustctl.transport import Response, Transport

REGISTRY = "127.0.0.1:5999"
GUN = f"{REGISTRY}/gate/app"
UNPINNED = f"{REGISTRY}/gate/other"
MEDIA = "application/vnd.oci.image.manifest.v1+json"
SIGNED = f"{GUN}:v1"
SIGNED_DIGEST = f"sha256:{1:064x}"
SIDECAR = f"{GUN}:v2"
SIDECAR_DIGEST = f"sha256:{2:064x}"
UNSIGNED = f"{GUN}:v9"  # the repository exists, this tag was never signed

POLICY = f"""\
version: 1
unmatched: deny
servers:
  main:
    url: {SERVER_URL}
rules:
  - pattern: "{REGISTRY}/gate/**"
    server: main
  - pattern: "{REGISTRY}/gate/app:warn-*"
    server: main
    mode: warn
  - pattern: "{REGISTRY}/gate/app:gitops-*"
    server: main
    mode: verify-only
  - pattern: "{REGISTRY}/gate/app:strict-*"
    server: main
    signers: [alice]
"""


def ok(run: Run) -> Run:
    assert run.exit_code == 0, str(run)
    return run


def sign(owner: Person, tag: str, n: int) -> str:
    digest = f"sha256:{n:064x}"
    ok(
        owner.run(
            "sign", f"{GUN}:{tag}", "--digest", digest, "--size", "1234", "--media-type", MEDIA
        )
    )
    return digest


class Clock:
    """The verifier's clock: real time plus ``offset``."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


class Switch:
    """A transport to the trust server that can be cut (``down``), answer 503 to
    everything (``unavailable``: its signer restarting) or stall (``stalled``)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.down = False
        self.unavailable = False
        self.stalled = threading.Event()  # set: requests hang until released
        self.release = threading.Event()
        self.calls = 0

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.calls += 1
        if self.down:
            raise NetworkError(f"cannot reach the trust server at {url}: connection refused")
        if self.unavailable:
            envelope = {"errors": [{"code": "SIGNER_UNAVAILABLE", "message": "restarting",
                                    "detail": None}]}  # fmt: skip
            return Response(503, {"content-type": "application/json"},
                            json.dumps(envelope).encode(), url)  # fmt: skip
        if self.stalled.is_set():
            self.release.wait(30)
        return self.inner.request(method, url, **kwargs)


@dataclass
class GateUnderTest:
    """The gate on 127.0.0.1 over TLS and the API server in front of it."""

    server: GateServer
    api: ApiServer
    mutate: Webhook
    validate: Webhook
    pki: DevPKI
    policy_path: Path
    clock: Clock
    transport: Switch
    extra: list[GateServer] = field(default_factory=list)

    def admit(self, obj: dict[str, Any], **kwargs: Any) -> Admission:
        return self.api.admit(obj, **kwargs)

    def stop(self) -> None:
        self.transport.release.set()
        self.server.stop()


def start_gate(
    tmp_path: Path,
    trust_dir: Path,
    transport: Transport,
    *,
    policy: str = POLICY,
    timeout_seconds: int = 10,
    mutators: tuple[Mutator, ...] = (),
    cache_ttl: float = 1.0,
    bundle: BundleStore | None = None,
    threads: int = THREADS,
) -> GateUnderTest:
    pki = ensure_dev_pki(tmp_path / "gate-pki")
    policy_path = tmp_path / "policy.yaml"
    if not policy_path.exists():
        policy_path.write_text(policy)
    clock = Clock()
    switch = transport if isinstance(transport, Switch) else Switch(transport)

    def verifier_for(server: Server, budget: Budget) -> Verifier:
        return Verifier(server.url, trust_dir=trust_dir, transport=switch, clock=clock,
                        timeout=budget.read_timeout, retry_budget=budget.retry)  # fmt: skip

    gate = Gate(
        PolicyFile(policy_path),
        verifier_for,
        timeout_seconds=timeout_seconds,
        state_check=offline_check(StateGuard(trust_dir), bundle, clock),
        cache=VerdictCache(ttl=cache_ttl, clock=clock),
        pin=RootPins(trust_dir).ensure,
    )
    if bundle is not None:
        gate.freshness_warning = near_stale_warning(bundle, clock)
        gate.metrics.bundle = bundle_state(bundle)
    srv = GateServer(gate, "127.0.0.1", 0, pki.server_cert, pki.server_key, threads=threads).start()
    base = f"https://127.0.0.1:{srv.port}"
    mutate = Webhook("pin.gate.trustctl.dev", f"{base}/mutate", pki.ca_cert, True, timeout_seconds)
    validate = Webhook(
        "verify.gate.trustctl.dev", f"{base}/validate", pki.ca_cert, False, timeout_seconds
    )
    api = ApiServer([mutate, *mutators], [validate])
    return GateUnderTest(srv, api, mutate, validate, pki, policy_path, clock, switch)


# --- Kubernetes objects ------------------------------------------------------------------

KINDS = ["Pod", "PodTemplate", "ReplicationController", "Deployment", "ReplicaSet",
         "StatefulSet", "DaemonSet", "Job", "CronJob"]  # fmt: skip
LOCATIONS = ["containers", "initContainers", "ephemeralContainers", "volumes"]


def pod_spec(image: str = SIGNED, **extra: list[dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": image}]}
    spec.update(extra)
    return spec


def with_image_at(location: str, image: str) -> dict[str, Any]:
    """A pod spec whose main container is signed and ``image`` sits at ``location``."""
    if location == "containers":
        return {
            "containers": [{"name": "main", "image": SIGNED}, {"name": "extra", "image": image}]
        }
    if location == "volumes":
        return pod_spec(
            volumes=[{"name": "data", "image": {"reference": image, "pullPolicy": "IfNotPresent"}}]
        )
    if location == "ephemeralContainers":
        return pod_spec(ephemeralContainers=[{"name": "debug", "image": image}])
    extra: dict[str, list[dict[str, Any]]] = {location: [{"name": "init", "image": image}]}
    return pod_spec(SIGNED, **extra)


def workload(
    kind: str, spec: dict[str, Any], *, replicas: int = 1, name: str = "web"
) -> dict[str, Any]:
    labels = {"app": name}
    meta = {"name": name, "namespace": "default"}
    template = {"metadata": {"labels": labels}, "spec": spec}
    if kind == "Pod":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
    if kind == "PodTemplate":
        return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": meta, "template": template}
    if kind in ("Job", "CronJob"):
        spec = {**spec, "restartPolicy": "Never"}
        template = {"metadata": {"labels": labels}, "spec": spec}
        job = {"template": template}
        if kind == "Job":
            return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": job}
        return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": meta,
                "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": job}}}  # fmt: skip
    if kind == "ReplicationController":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta,
                "spec": {"replicas": replicas, "selector": labels, "template": template}}  # fmt: skip
    body: dict[str, Any] = {"selector": {"matchLabels": labels}, "template": template}
    if kind != "DaemonSet":
        body["replicas"] = replicas
    if kind == "StatefulSet":
        body["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": body}


def images_of(obj: dict[str, Any]) -> Iterator[str]:
    from trustctl.gate.images import find_images

    group = obj["apiVersion"].rpartition("/")[0]
    for site in find_images(obj, group, obj["kind"]):
        yield site.image


def sidecar_injector(image: str) -> Mutator:
    """An in-test mutating admission plugin that adds a sidecar container."""

    def inject_sidecar(obj: dict[str, Any]) -> dict[str, Any]:
        from trustctl.gate.images import pod_spec_path

        spec = obj
        for part in pod_spec_path(obj["apiVersion"].rpartition("/")[0], obj["kind"]):
            spec = spec[part]
        if not any(c["name"] == "proxy" for c in spec["containers"]):
            spec["containers"].append({"name": "proxy", "image": image})
        return obj

    return inject_sidecar


__all__ = ["Callable"]
