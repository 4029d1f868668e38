"""A Docker-style token issuer for tests: signs JWTs the way a registry's auth service does."""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from notary_server.auth import libtrust_kid

SERVICE = "notary.test"
ISSUER = "test-token-issuer"
REALM = "https://127.0.0.1:1/token"


def _cert(key: Any, name: str, issuer_key: Any | None = None, issuer_name: str | None = None) -> x509.Certificate:
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


def repo_access(gun: str, *actions: str) -> list[dict[str, Any]]:
    return [{"type": "repository", "name": gun, "actions": list(actions)}]
