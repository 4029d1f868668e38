"""A Docker-style token issuer for tests: signs JWTs the way a registry's auth service does."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from notary_server.auth import libtrust_kid

SERVICE = "notary.test"
ISSUER = "test-token-issuer"
REALM = "https://127.0.0.1:1/token"


def _cert(
    key: Any, name: str, issuer_key: Any | None = None, issuer_name: str | None = None
) -> x509.Certificate:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name or name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(issuer_key or key, hashes.SHA256())
    )


@dataclass
class Issuer:
    """Holds a signing key and its certificate; ``bundle`` is what the server trusts."""

    algorithm: str = "ES256"
    key: Any = field(init=False)
    cert: x509.Certificate = field(init=False)

    def __post_init__(self) -> None:
        if self.algorithm == "ES256":
            self.key = ec.generate_private_key(ec.SECP256R1())
        else:
            self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.cert = _cert(self.key, "token issuer")

    def write_bundle(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path

    def token(
        self,
        access: list[dict[str, Any]],
        *,
        audience: str = SERVICE,
        issuer: str = ISSUER,
        expires_in: float = 300,
        not_before: float | None = None,
        now: float | None = None,
        headers: dict[str, Any] | None = None,
    ) -> str:
        now = now if now is not None else time.time()
        claims = {
            "iss": issuer,
            "sub": "tester",
            "aud": audience,
            "exp": int(now + expires_in),
            "nbf": int(not_before if not_before is not None else now - 1),
            "iat": int(now),
            "jti": base64.b16encode(str(now).encode()).decode(),
            "access": access,
        }
        hdr = {"kid": libtrust_kid(self.key.public_key()), **(headers or {})}
        return jwt.encode(claims, self.key, algorithm=self.algorithm, headers=hdr)


def x5c_token(
    issuer: Issuer,
    access: list[dict[str, Any]],
    *,
    not_before: datetime,
    not_after: datetime,
    expires_in: float = 300,
) -> str:
    """A token signed by a leaf key whose certificate (issued by ``issuer``, valid from
    ``not_before`` to ``not_after``) travels in the ``x5c`` header, as Docker's token
    servers send it."""
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "token leaf")]))
        .issuer_name(issuer.cert.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(issuer.key, hashes.SHA256())
    )
    now = time.time()
    claims = {
        "iss": ISSUER,
        "aud": SERVICE,
        "exp": int(now + expires_in),
        "nbf": int(now - 1),
        "iat": int(now),
        "access": access,
    }
    x5c = [base64.b64encode(leaf.public_bytes(serialization.Encoding.DER)).decode()]
    return jwt.encode(claims, leaf_key, algorithm="ES256", headers={"x5c": x5c})


def raw_header_token(issuer: Issuer, access: list[dict[str, Any]], header: dict[str, Any]) -> str:
    """A token signed by ``issuer`` with ``header`` as its JOSE header, verbatim."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": SERVICE, "exp": now + 300, "iat": now, "access": access}
    enc = jwt.utils.base64url_encode
    signing_input = (
        enc(json.dumps({"alg": "ES256", "typ": "JWT", **header}).encode())
        + b"."
        + enc(json.dumps(claims).encode())
    )
    der = issuer.key.sign(signing_input, ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    signature = enc(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
    return (signing_input + b"." + signature).decode()


def repo_access(gun: str, *actions: str) -> list[dict[str, Any]]:
    return [{"type": "repository", "name": gun, "actions": list(actions)}]
