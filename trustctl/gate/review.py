"""AdmissionReview ``admission.k8s.io/v1``: strict parsing in, responses within limits out.

Anything that is not a well-formed v1 AdmissionReview with a ``request`` and a ``uid``
is a :class:`BadReview` (HTTP 400 from the server): never an allow.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["API_VERSION", "AdmissionRequest", "BadReview", "parse_review", "review_response"]

API_VERSION = "admission.k8s.io/v1"
MAX_BODY = 3 * 1024 * 1024  # the API server's own request limit is 3 MiB
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
WARNING_MAX = 120  # each warning kept short, as the API server asks
WARNINGS_TOTAL_MAX = 4096
AUDIT_KEY_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
AUDIT_VALUE_MAX = 1024
MESSAGE_MAX = 4096


class BadReview(ValueError):
    """The request body is not a v1 AdmissionReview the gate can answer."""


@dataclass(frozen=True)
class AdmissionRequest:
    """The fields of ``request`` the gate reads."""

    uid: str
    kind: str
    group: str
    version: str
    operation: str
    sub_resource: str = ""
    namespace: str = ""
    name: str = ""
    object: Mapping[str, Any] | None = None
    old_object: Mapping[str, Any] | None = None
    dry_run: bool = False


def _str(d: Mapping[str, Any], key: str, *, required: bool = False) -> str:
    value = d.get(key)
    if value is None:
        if required:
            raise BadReview(f"request.{key} is missing")
        return ""
    if not isinstance(value, str):
        raise BadReview(f"request.{key} must be a string")
    return value


def parse_review(body: bytes) -> AdmissionRequest:
    """Parse an AdmissionReview request body.

    Raises:
        BadReview: not JSON, not ``admission.k8s.io/v1`` ``AdmissionReview``, no
            ``request``, no ``uid``, or a field of the wrong type.
    """
    if len(body) > MAX_BODY:
        raise BadReview(f"body larger than {MAX_BODY} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadReview(f"body is not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise BadReview("body is not a JSON object")
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        raise BadReview(
            f"expected apiVersion {API_VERSION} kind AdmissionReview, got "
            f"{doc.get('apiVersion')!r} {doc.get('kind')!r}"
        )
    req = doc.get("request")
    if not isinstance(req, dict):
        raise BadReview("request is missing")
    uid = _str(req, "uid", required=True)
    if not uid:
        raise BadReview("request.uid is empty")
    kind = req.get("kind")
    if not isinstance(kind, dict):
        raise BadReview("request.kind is missing")
    operation = _str(req, "operation", required=True)
    if operation not in OPERATIONS:
        raise BadReview(f"request.operation {operation!r} is not one of {sorted(OPERATIONS)}")
    obj, old = req.get("object"), req.get("oldObject")
    for key, value in (("object", obj), ("oldObject", old)):
        if value is not None and not isinstance(value, dict):
            raise BadReview(f"request.{key} must be an object")
    dry_run = req.get("dryRun", False)
    if not isinstance(dry_run, bool):
        raise BadReview("request.dryRun must be a boolean")
    return AdmissionRequest(
        uid=uid,
        kind=_str(kind, "kind", required=True),
        group=_str(kind, "group"),
        version=_str(kind, "version"),
        operation=operation,
        sub_resource=_str(req, "subResource"),
        namespace=_str(req, "namespace"),
        name=_str(req, "name"),
        object=obj,
        old_object=old,
        dry_run=dry_run,
    )


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class Verdict:
    """What the gate answers for one request."""

    allowed: bool
    message: str = ""
    reason: str = ""
    patch: list[dict[str, Any]] | None = None
    warnings: list[str] = field(default_factory=list)
    audit: dict[str, str] = field(default_factory=dict)


def review_response(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview response, with warnings and annotations within the API
    server's limits (each warning <= 120 characters, all <= 4096 bytes)."""
    response: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        response["status"] = {
            "code": 403,
            "reason": "Forbidden",
            "message": _short(verdict.message, MESSAGE_MAX),
        }
    if verdict.patch:
        raw = json.dumps(verdict.patch, separators=(",", ":")).encode()
        response["patch"] = base64.b64encode(raw).decode()
        response["patchType"] = "JSONPatch"
    warnings = _bounded_warnings(verdict.warnings)
    if warnings:
        response["warnings"] = warnings
    audit = {
        f"{k}": _short(v, AUDIT_VALUE_MAX)
        for k, v in verdict.audit.items()
        if AUDIT_KEY_RE.fullmatch(k)
    }
    if audit:
        response["auditAnnotations"] = audit
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


def _bounded_warnings(warnings: Sequence[str]) -> list[str]:
    out: list[str] = []
    total = 0
    for w in warnings:
        w = _short(" ".join(w.split()), WARNING_MAX)
        if total + len(w.encode()) > WARNINGS_TOTAL_MAX:
            break
        out.append(w)
        total += len(w.encode())
    return out
