"""The Kubernetes objects that deploy the gate, with safe defaults.

Both webhooks fail closed (``failurePolicy: Fail``), time out at 10 s (the gate
answers by 8 s), have ``sideEffects: NoneOnDryRun`` and skip ``kube-system`` and the
gate's own namespace, so a cluster restart cannot deadlock on the gate. The mutating
webhook only pins digests and is re-invoked if a later mutator changes the object;
the validating webhook decides on the final object.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KINDS", "manifest"]

KINDS: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/ephemeralcontainers", "replicationcontrollers", "podtemplates"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "replicasets", "statefulsets", "daemonsets"],
    },
    {"apiGroups": ["batch"], "resources": ["jobs", "cronjobs"]},
]


def _rules() -> list[dict[str, Any]]:
    return [
        {**k, "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "scope": "*"}
        for k in KINDS
    ]


def _webhook(
    name: str, path: str, namespace: str, ca_bundle: str, mutating: bool
) -> dict[str, Any]:
    hook: dict[str, Any] = {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": {
            "service": {"namespace": namespace, "name": "trustctl-gate", "path": path, "port": 443},
            "caBundle": ca_bundle,
        },
        "rules": _rules(),
        "failurePolicy": "Fail",
        "matchPolicy": "Equivalent",
        "sideEffects": "NoneOnDryRun",
        "timeoutSeconds": 10,
        "namespaceSelector": {
            "matchExpressions": [
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": sorted({"kube-system", namespace}),
                }
            ]
        },
    }
    if mutating:
        hook["reinvocationPolicy"] = "IfNeeded"
    return hook


def manifest(
    *, namespace: str, image: str, ca_bundle: str, replicas: int = 2
) -> list[dict[str, Any]]:
    """Deployment, Service, MutatingWebhookConfiguration, ValidatingWebhookConfiguration.

    Args:
        namespace: the gate's namespace (excluded from both webhooks).
        image: the gate's own image (pin it by digest).
        ca_bundle: base64 PEM of the CA that signed the gate's serving certificate.
    """
    labels = {"app.kubernetes.io/name": "trustctl-gate"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "trustctl-gate", "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "gate",
                            "image": image,
                            "args": [
                                "--trust-dir",
                                "/var/lib/trustctl-gate/trust",
                                "gate",
                                "serve",
                                "--policy",
                                "/etc/trustctl-gate/policy/policy.yaml",
                                "--listen",
                                "0.0.0.0:8443",
                                "--tls-cert",
                                "/etc/trustctl-gate/tls/tls.crt",
                                "--tls-key",
                                "/etc/trustctl-gate/tls/tls.key",
                            ],
                            "ports": [{"name": "https", "containerPort": 8443}],
                            "readinessProbe": {
                                "httpGet": {"path": "/healthz", "port": 8443, "scheme": "HTTPS"}
                            },
                            "securityContext": {
                                "runAsNonRoot": True,
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {
                                    "name": "policy",
                                    "mountPath": "/etc/trustctl-gate/policy",
                                    "readOnly": True,
                                },
                                {
                                    "name": "tls",
                                    "mountPath": "/etc/trustctl-gate/tls",
                                    "readOnly": True,
                                },
                                {"name": "state", "mountPath": "/var/lib/trustctl-gate"},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "policy", "configMap": {"name": "trustctl-gate-policy"}},
                        {"name": "tls", "secret": {"secretName": "trustctl-gate-tls"}},
                        {"name": "state", "emptyDir": {}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "trustctl-gate", "namespace": namespace, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "https", "port": 443, "targetPort": 8443}]},
    }
    mutating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "trustctl-gate"},
        "webhooks": [_webhook("pin.gate.trustctl.dev", "/mutate", namespace, ca_bundle, True)],
    }
    validating = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "trustctl-gate"},
        "webhooks": [
            _webhook("verify.gate.trustctl.dev", "/validate", namespace, ca_bundle, False)
        ],
    }
    return [deployment, service, mutating, validating]
