"""Bearer-token authorisation following the Docker registry token specification.

A client without a token (or with too little access) gets ``401`` and a challenge

    WWW-Authenticate: Bearer realm="https://auth.example/token",service="notary",
                      scope="repository:reg/app:pull"

It asks the realm for a token (with basic credentials or an identity token) and
retries with ``Authorization: Bearer <jwt>``. The JWT is checked here for its
signature (ES256 or RS256, by a key of a certificate in the configured root bundle),
issuer, audience (the service), expiry and not-before; its ``access`` claim grants
actions per repository. Pure apart from reading the bundle once.

Scopes per route: ``pull`` for reads, ``push,pull`` for uploads and for getting
server-held keys (so no signer key is ever created for an anonymous request), ``*``
for deletion, key rotation and the global change feed.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from notary_server import errors

if TYPE_CHECKING:
    from cryptography import x509

# jwt and cryptography's x509 are imported where used: a server without token
# authentication never loads them (the app imports this module for ``Access``).

__all__ = ["Access", "TokenAuth", "libtrust_kid"]

logger = logging.getLogger(__name__)

ALGORITHMS = ["ES256", "RS256"]


@dataclass(frozen=True)
class Access:
    """One required grant: ``repository:<name>:<actions>``."""

    type: str
    name: str
    actions: tuple[str, ...]

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def libtrust_kid(public_key: Any) -> str:
    """The key id Docker's token servers put in ``kid``: base32 of the SPKI hash."""
    from cryptography.hazmat.primitives import serialization

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, len(b32), 4))


class TokenAuth:
    def __init__(
        self,
        *,
        realm: str,
        service: str,
        issuer: str,
        root_certs: Iterable[x509.Certificate],
        clock: Callable[[], datetime],
        leeway_seconds: int = 30,
    ) -> None:
        self.realm, self.service, self.issuer = realm, service, issuer
        self.roots = list(root_certs)
        if not self.roots:
            raise ValueError("the token auth root certificate bundle is empty")
        self.keys = {libtrust_kid(c.public_key()): c.public_key() for c in self.roots}
        self.clock = clock
        self.leeway = leeway_seconds

    @classmethod
    def from_bundle(cls, path: str, **kwargs: Any) -> TokenAuth:
        from cryptography import x509

        certs = x509.load_pem_x509_certificates(Path(path).read_bytes())
        return cls(root_certs=certs, **kwargs)

    def challenge(self, required: list[Access], error: str | None = None) -> str:
        """The ``WWW-Authenticate`` value. Names in the scope are validated before they
        get here (``notary_server.app``); quoting escapes the rest (RFC 9110 quoted-string)."""
        parts = [f"realm={_quoted(self.realm)}", f"service={_quoted(self.service)}"]
        if required:
            parts.append(f"scope={_quoted(' '.join(a.scope() for a in required))}")
        if error:
            parts.append(f"error={_quoted(error)}")
        return "Bearer " + ",".join(parts)

    def check(self, authorization: str | None, required: list[Access]) -> None:
        """Raise UnauthorizedError (with a challenge) unless the token grants ``required``."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise self._unauthorized(required, "authentication required")
        token = authorization[7:].strip()
        claims = self._verify(token, required)
        granted = _granted(claims.get("access"))
        missing = [
            a
            for a in required
            if not set(a.actions) <= granted.get((a.type, a.name), set())
            and "*" not in granted.get((a.type, a.name), set())
        ]
        if missing:
            raise self._unauthorized(
                required,
                "the token does not grant " + " ".join(a.scope() for a in missing),
                error="insufficient_scope",
            )

    def _verify(self, token: str, required: list[Access]) -> dict[str, Any]:
        import jwt

        try:
            key = self._key_for(jwt.get_unverified_header(token))
            return self._decode_at(token, key)
        except (jwt.PyJWTError, ValueError) as e:
            logger.warning("refused a bearer token: %s", e)
            raise self._unauthorized(required, f"invalid token: {e}", error="invalid_token") from e

    def _decode_at(self, token: str, key: Any) -> dict[str, Any]:
        """Decode with signature, issuer and audience checks, then time checks at our clock."""
        import jwt

        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=ALGORITHMS,
            audience=self.service,
            issuer=self.issuer,
            options={"require": ["exp", "iss", "aud"], "verify_exp": False, "verify_nbf": False},
        )
        now = self.clock().timestamp()
        if not isinstance(claims.get("exp"), (int, float)) or now > claims["exp"] + self.leeway:
            raise jwt.ExpiredSignatureError("the token has expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not isinstance(nbf, (int, float)) or now < nbf - self.leeway):
            raise jwt.ImmatureSignatureError("the token is not valid yet")
        return claims

    def _key_for(self, header: dict[str, Any]) -> Any:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature

        if header.get("alg") not in ALGORITHMS:
            raise ValueError(f"algorithm {header.get('alg')!r} is not accepted")
        chain = header.get("x5c")
        if chain is not None:
            if (
                not isinstance(chain, list)
                or not chain
                or not all(isinstance(c, str) for c in chain)
            ):
                raise ValueError("x5c must be a non-empty list of base64 certificates")
            leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0], validate=True))
            self._check_validity(leaf)
            for root in self.roots:
                if leaf == root:
                    return leaf.public_key()
                try:
                    leaf.verify_directly_issued_by(root)
                    return leaf.public_key()
                except (ValueError, TypeError, InvalidSignature):
                    continue
            raise ValueError("the token's certificate does not chain to the root bundle")
        kid = header.get("kid")
        if kid is not None:
            if not isinstance(kid, str) or kid not in self.keys:
                raise ValueError("the token's key id is not in the root bundle")
            return self.keys[kid]
        if len(self.keys) == 1:
            return next(iter(self.keys.values()))
        raise ValueError("the token names no key (kid or x5c)")

    def _check_validity(self, cert: x509.Certificate) -> None:
        """The certificate is inside its validity period at our clock, give or take the leeway."""
        from datetime import timedelta

        now, leeway = self.clock(), timedelta(seconds=self.leeway)
        if now + leeway < cert.not_valid_before_utc:
            raise ValueError("the token's certificate is not valid yet")
        if now - leeway > cert.not_valid_after_utc:
            raise ValueError("the token's certificate has expired")

    def _unauthorized(
        self, required: list[Access], message: str, error: str | None = None
    ) -> errors.UnauthorizedError:
        err = errors.UnauthorizedError(
            message,
            access=[{"type": a.type, "name": a.name, "actions": list(a.actions)} for a in required],
        )
        err.headers = {"WWW-Authenticate": self.challenge(required, error)}
        return err


def _quoted(value: str) -> str:
    """An HTTP quoted-string: backslash and double quote escaped, control characters dropped."""
    clean = "".join(c for c in value if c == "\t" or " " <= c != "\x7f")
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _granted(access: Any) -> dict[tuple[str, str], set[str]]:
    granted: dict[tuple[str, str], set[str]] = {}
    if not isinstance(access, list):
        return granted
    for entry in access:
        if not isinstance(entry, dict):
            continue
        actions = entry.get("actions")
        if not isinstance(actions, list):
            continue
        key = (str(entry.get("type", "")), str(entry.get("name", "")))
        granted.setdefault(key, set()).update(str(a) for a in actions)
    return granted
