"""An in-test API server: plays kube-apiserver's part in admission, as documented.

No kube-apiserver runs on these machines, so this harness does what it does with
webhooks (k8s.io/apiserver ``admission/plugin/webhook``):

* POSTs an ``admission.k8s.io/v1`` AdmissionReview over TLS, trusting only the
  webhook's ``caBundle``, with ``?timeout=Ns`` and that timeout enforced; a call that
  fails (timeout, TLS, HTTP status, malformed response) is handled by
  ``failurePolicy`` (``Fail``: the request is refused; ``Ignore``: skipped);
* checks the response with the API server's own error strings, in its order;
* runs mutating webhooks first (in-process mutators such as a sidecar injector
  among them), re-invokes an ``IfNeeded`` webhook once when a later mutator changed
  the object, applies each patch with the ``jsonpatch`` package, validates the result
  against Kubernetes' schemas (``kubernetes-validate``), then runs the validating
  webhooks on the final object;
* truncates warnings as the API server does (256 characters each, 4096 in all).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonpatch
import urllib3

try:
    import kubernetes_validate
except ImportError as e:  # pragma: no cover - a clear message instead of a skip
    raise ImportError("the gate tests need kubernetes-validate: pip install -e '.[test]'") from e

KUBERNETES_VERSION = "1.33"  # image volumes are beta from 1.33
RESOURCES = {
    "Pod": "pods", "PodTemplate": "podtemplates", "ReplicationController": "replicationcontrollers",
    "Deployment": "deployments", "ReplicaSet": "replicasets", "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets", "Job": "jobs", "CronJob": "cronjobs",
}  # fmt: skip
WARNING_MAX = 256
WARNINGS_TOTAL = 4096

Mutator = Callable[[dict[str, Any]], dict[str, Any]]


@dataclass
class Webhook:
    """One entry of a Mutating/ValidatingWebhookConfiguration."""

    name: str
    url: str
    ca_bundle: Path
    mutating: bool
    timeout_seconds: int = 10
    failure_policy: str = "Fail"
    reinvocation_policy: str = "IfNeeded"
    side_effects: str = "NoneOnDryRun"


@dataclass
class Admission:
    """What the API server made of a request."""

    allowed: bool
    message: str = ""
    object: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)


class WebhookCallError(Exception):
    """The call failed (not a denial): failurePolicy decides."""


class ApiServer:
    """Admission as the API server runs it, for one list of webhooks and mutators.

    ``chain`` is the mutating order: :class:`Webhook` objects (mutating) and plain
    callables (in-process mutators, e.g. a sidecar injector). ``validating`` run last.
    """

    def __init__(self, chain: Sequence[Webhook | Mutator], validating: Sequence[Webhook]) -> None:
        self.chain = list(chain)
        self.validating = list(validating)
        self._pools: dict[Path, urllib3.PoolManager] = {}

    def _pool(self, ca: Path) -> urllib3.PoolManager:
        if ca not in self._pools:
            self._pools[ca] = urllib3.PoolManager(
                cert_reqs="CERT_REQUIRED", ca_certs=str(ca), maxsize=64, retries=False
            )
        return self._pools[ca]

    # --- one webhook call ------------------------------------------------------------

    def review(self, obj: Mapping[str, Any], *, operation: str, old: Mapping[str, Any] | None,
               sub_resource: str, dry_run: bool) -> dict[str, Any]:  # fmt: skip
        group, _, version = obj["apiVersion"].rpartition("/")
        kind = {"group": group, "version": version, "kind": obj["kind"]}
        resource = {"group": group, "version": version, "resource": RESOURCES[obj["kind"]]}
        meta = obj.get("metadata", {})
        return {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "kind": kind,
                "resource": resource,
                "subResource": sub_resource or None,
                "requestKind": kind,
                "requestResource": resource,
                "requestSubResource": sub_resource or None,
                "name": meta.get("name", ""),
                "namespace": meta.get("namespace", "default"),
                "operation": operation,
                "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
                "object": obj if operation != "DELETE" else None,
                "oldObject": old,
                "dryRun": dry_run,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            },
        }

    def call(self, hook: Webhook, review: Mapping[str, Any]) -> dict[str, Any]:
        """POST the review; return ``response`` after the API server's checks.

        Raises:
            WebhookCallError: the call failed (failurePolicy applies).
        """
        uid = review["request"]["uid"]
        try:
            r = self._pool(hook.ca_bundle).request(
                "POST",
                f"{hook.url}?timeout={hook.timeout_seconds}s",
                body=json.dumps(review).encode(),
                headers={"Content-Type": "application/json"},
                timeout=urllib3.Timeout(total=hook.timeout_seconds),
            )
        except urllib3.exceptions.HTTPError as e:
            raise WebhookCallError(f"failed to call webhook: {e}") from e
        if r.status != 200:
            raise WebhookCallError(
                f"failed to call webhook: the server responded with status {r.status}"
            )
        try:
            doc = json.loads(r.data)
        except ValueError as e:
            raise WebhookCallError(f"failed to decode the response: {e}") from e
        if doc.get("apiVersion") != "admission.k8s.io/v1" or doc.get("kind") != "AdmissionReview":
            raise WebhookCallError(
                "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview"
            )
        resp = doc.get("response")
        if resp is None:
            raise WebhookCallError("webhook response was absent")
        if resp.get("uid") != uid:
            raise WebhookCallError(f'expected response.uid="{uid}", got "{resp.get("uid")}"')
        has_patch, has_type = bool(resp.get("patch")), resp.get("patchType") is not None
        if has_patch and not has_type:
            raise WebhookCallError("webhook returned response.patch but not response.patchType")
        if has_type and not has_patch:
            raise WebhookCallError("webhook returned response.patchType but not response.patch")
        if has_type and resp["patchType"] != "JSONPatch":
            raise WebhookCallError(f"unsupported patch type {resp['patchType']!r}")
        if not isinstance(resp.get("allowed"), bool):
            raise WebhookCallError("response.allowed is not a boolean")
        return resp

    # --- the whole admission ------------------------------------------------------------

    def admit(self, obj: Mapping[str, Any], *, operation: str = "CREATE",
              old: Mapping[str, Any] | None = None, sub_resource: str = "",
              dry_run: bool = False) -> Admission:  # fmt: skip
        out = Admission(True, object=copy.deepcopy(dict(obj)))
        invoked: dict[int, int] = {}  # chain index -> times called
        last_change_after: dict[int, bool] = {}
        for i, step in enumerate(self.chain):
            before = copy.deepcopy(out.object)
            if not self._mutate(step, out, operation, old, sub_resource, dry_run):
                return out
            invoked[i] = 1
            if out.object != before:
                for j in invoked:
                    if j != i:
                        last_change_after[j] = True
        for j, step in enumerate(self.chain):  # reinvocation: once, if a later one changed it
            again = isinstance(step, Webhook) and step.reinvocation_policy == "IfNeeded"
            if (
                again
                and last_change_after.get(j)
                and not self._mutate(step, out, operation, old, sub_resource, dry_run)
            ):
                return out
        if operation != "DELETE":
            try:
                kubernetes_validate.validate(out.object, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.ValidationError as e:
                out.schema_errors.append(str(e))
        for hook in self.validating:
            if not self._call_into(
                hook, out, operation, old, sub_resource, dry_run, patch_ok=False
            ):
                return out
        return out

    def _mutate(self, step: Webhook | Mutator, out: Admission, operation: str,
                old: Mapping[str, Any] | None, sub_resource: str, dry_run: bool) -> bool:  # fmt: skip
        if isinstance(step, Webhook):
            return self._call_into(step, out, operation, old, sub_resource, dry_run, patch_ok=True)
        out.object = step(copy.deepcopy(out.object))
        out.calls.append(getattr(step, "__name__", "mutator"))
        return True

    def _call_into(self, hook: Webhook, out: Admission, operation: str, old: Mapping[str, Any] | None,
                   sub_resource: str, dry_run: bool, *, patch_ok: bool) -> bool:  # fmt: skip
        """Call one webhook and fold its answer into ``out``; False when the request ends."""
        if dry_run and hook.side_effects in ("Unknown", "Some"):
            out.allowed, out.message = (
                False,
                f'admission webhook "{hook.name}" does not support dry run',
            )
            return False
        out.calls.append(hook.name)
        review = self.review(out.object, operation=operation, old=old,
                             sub_resource=sub_resource, dry_run=dry_run)  # fmt: skip
        try:
            resp = self.call(hook, review)
        except WebhookCallError as e:
            if hook.failure_policy == "Ignore":
                return True
            out.allowed = False
            out.message = f'Internal error occurred: failed calling webhook "{hook.name}": {e}'
            return False
        for w in resp.get("warnings") or []:
            w = w if len(w) <= WARNING_MAX else w[: WARNING_MAX - 3] + "..."
            if sum(len(x) for x in out.warnings) + len(w) <= WARNINGS_TOTAL:
                out.warnings.append(w)
        for k, v in (resp.get("auditAnnotations") or {}).items():
            out.audit[f"{hook.name}/{k}"] = v
        if not resp["allowed"]:
            status = resp.get("status") or {}
            out.allowed = False
            out.message = (
                f'admission webhook "{hook.name}" denied the request: {status.get("message", "")}'
            )
            return False
        if resp.get("patch"):
            if not patch_ok:
                out.allowed = False
                out.message = f'validating webhook "{hook.name}" returned a patch'
                return False
            ops = json.loads(base64.b64decode(resp["patch"]))
            out.object = jsonpatch.JsonPatch(ops).apply(out.object)
        return True
