"""Notary's client-side rules over the wire format (pure: bytes in, facts out).

The wire format itself (base64 fields, key ids recomputed, raw r||s ECDSA with a
``method``, the four role types, RFC 3339 expiry, ``{length, hashes}`` entries) is
parsed by :mod:`notary_server.notary.model`, the one implementation the trust
server and trustctl share. This module adds what only a *client* decides
(reference section 3 and trustpinning/certs.go):

* thresholds count distinct public keys (a key listed under two ids counts once);
* root certificates: x509 leaf certificates whose common name is the GUN (or a
  ``prefix*`` wildcard), not SHA-1 signed, RSA of 2048 bits or more, within their
  validity period (previous roots are read without the period);
* CA trust pinning: a root certificate issued by a pinned CA, directly or through
  the intermediates listed with it;
* delegation paths are prefixes, a child's paths cut to those under its parent's.

Every problem leaves as a :class:`~trustctl.errors.TrustctlError` that says plainly
when it may be an attack.

Example:
    >>> restrict_paths(["v1"], ["v1.2", "v2"])
    ('v1.2',)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from notary_server.notary.model import (
    FormatError,
    NotaryKey,
    Root,
    Signed,
    Snapshot,
    Targets,
    Timestamp,
    matches,
    parse_key,
    path_allowed,
    valid_signers,
)
from trustctl.errors import StaleMetadataError, TamperedMetadataError, UntrustedSignatureError

__all__ = [
    "Delegation",
    "NotaryKey",
    "RoleKeys",
    "Root",
    "RootCert",
    "Signed",
    "Targets",
    "certificate_problem",
    "chains_to",
    "check_hashes",
    "check_threshold",
    "cn_matches_gun",
    "common_name",
    "entry_hex",
    "parse",
    "parse_key",
    "path_allowed",
    "restrict_paths",
    "root_certificates",
    "signed_keyids",
    "signed_type",
    "stale",
]

T = TypeVar("T")
MIN_RSA_BITS = 2048
_WEAK_SIGNATURES = ("sha1",)
_FAR_PAST = datetime(1970, 1, 2, tzinfo=UTC)


def _bad(what: str) -> TamperedMetadataError:
    return TamperedMetadataError(
        f"{what}; this may be an attack (tampered or forged trust data)",
        hint="do not deploy from it",
    )


def parse(what: str, fn: Callable[[], T]) -> T:
    """Run a wire-format parser; a format error is tampered trust data."""
    try:
        return fn()
    except FormatError as e:
        raise _bad(f"{what} is not valid Notary metadata ({e})") from e


def parse_root(raw: bytes) -> Root:
    return parse("root metadata", lambda: Root.parse(raw))


def parse_targets(role: str, raw: bytes) -> Targets:
    return parse(f"{role} metadata", lambda: Targets.parse(role, raw))


def parse_snapshot(raw: bytes) -> Snapshot:
    return parse("snapshot metadata", lambda: Snapshot.parse(raw))


def parse_timestamp(raw: bytes) -> Timestamp:
    return parse("timestamp metadata", lambda: Timestamp.parse(raw))


def signed_type(raw: bytes | None) -> str | None:
    """The ``_type`` of a metadata file (``Root`` means Notary's dialect), or None."""
    try:
        value = json.loads(raw or b"")["signed"]["_type"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, str) else None


# --- signatures ---------------------------------------------------------------------


@dataclass(frozen=True)
class RoleKeys:
    """The keys and threshold that sign one role."""

    name: str
    keys: Mapping[str, NotaryKey]
    threshold: int

    @classmethod
    def of_root(cls, root: Root, role: str) -> RoleKeys:
        return cls(role, root.role_keys(role), root.roles[role].threshold)


@dataclass(frozen=True)
class Delegation:
    """A delegated role as its parent lists it, paths already cut to the parent's."""

    name: str
    keys: Mapping[str, NotaryKey]
    threshold: int
    paths: tuple[str, ...]

    @property
    def role_keys(self) -> RoleKeys:
        return RoleKeys(self.name, self.keys, self.threshold)


def delegations_of(parent: Targets, parent_paths: Iterable[str]) -> list[Delegation]:
    """``parent``'s delegations (Notary's ``GetValidDelegations``)."""
    parent_paths = tuple(parent_paths)
    out = []
    for name, role in parent.delegations.items():
        keys = {k: parent.keys[k] for k in role.keyids}
        out.append(
            Delegation(name, keys, role.threshold, restrict_paths(parent_paths, role.paths or ()))
        )
    return out


def signed_keyids(signed: Signed, role: RoleKeys) -> set[str]:
    """The ids of ``role``'s keys with a valid signature on ``signed``."""
    try:
        good = valid_signers(signed, role.keys, role.keys)
    except FormatError as e:
        raise _bad(f"{signed.role} metadata: {e}") from e
    return {keyid for keyid, key in role.keys.items() if key.spki in good}


def check_threshold(signed: Signed, role: RoleKeys) -> set[str]:
    """The ids that validly signed; at least ``role.threshold`` distinct keys.

    Raises:
        UntrustedSignatureError: fewer distinct valid keys than the threshold.
    """
    try:
        good = valid_signers(signed, role.keys, role.keys)
    except FormatError as e:
        raise _bad(f"{signed.role} metadata: {e}") from e
    if len(good) < role.threshold:
        raise UntrustedSignatureError(
            f"{signed.role} metadata has {len(good)} valid signature(s) from the keys of {role.name}, "
            f"{role.threshold} required: it may be forged, or a key change left it unsigned",
            hint="do not deploy from it; ask the repository owner",
        )
    return {keyid for keyid, key in role.keys.items() if key.spki in good}


# --- file entries -------------------------------------------------------------------------


def check_hashes(data: bytes, entry: Mapping[str, Any], what: str) -> None:
    """``data`` must have the length and every hash the signed entry names."""
    if not matches(entry, data):
        raise TamperedMetadataError(
            f"{what} does not match the length and hashes the signed metadata above it promised: "
            "it may have been tampered with (a possible mix-and-match attack)",
            hint="do not deploy from it",
        )


def entry_hex(entry: Mapping[str, Any], algorithm: str = "sha256") -> str | None:
    """A hash of a ``{length, hashes}`` entry as hex (the wire has base64)."""
    value = (entry.get("hashes") or {}).get(algorithm)
    if not isinstance(value, str):
        return None
    return base64.b64decode(value).hex()


# --- root certificates ----------------------------------------------------------------------


def cn_matches_gun(common_name: str, gun: str) -> bool:
    """Notary's ``MatchCNToGun``: equal, or a ``prefix*`` wildcard."""
    if common_name.endswith("*"):
        return gun.startswith(common_name.rstrip("*"))
    return common_name == gun


def certificates(key: NotaryKey) -> list[x509.Certificate]:
    """Every certificate an x509 key carries (leaf first, then intermediates)."""
    if not key.keytype.endswith("-x509"):
        return []
    try:
        return x509.load_pem_x509_certificates(key.public)
    except ValueError:
        return []


def common_name(key: NotaryKey) -> str | None:
    certs = certificates(key)
    names = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME) if certs else []
    return str(names[0].value) if names else None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def certificate_problem(cert: x509.Certificate, now: datetime | None) -> str | None:
    """Why Notary's ``ValidateCertificate`` refuses ``cert`` (None when it accepts it);
    ``now`` None skips the validity period (previous roots are read that way)."""
    if cert.not_valid_before_utc > cert.not_valid_after_utc:
        return "its validity window is invalid"
    algorithm = cert.signature_hash_algorithm
    if algorithm is not None and algorithm.name in _WEAK_SIGNATURES:
        return "it is signed with SHA-1"
    public = cert.public_key()
    if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
        return "its RSA key is too short"
    if now is not None:
        if now + timedelta(days=1) < cert.not_valid_before_utc:
            return "it is not valid yet"
        if now > cert.not_valid_after_utc:
            return f"it expired on {cert.not_valid_after_utc:%Y-%m-%d}"
    return None


@dataclass(frozen=True)
class RootCert:
    """A root key's leaf certificate (and intermediates) that names the GUN."""

    keyid: str
    key: NotaryKey
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]


def root_certificates(
    root: Root, gun: str, now: datetime | None
) -> tuple[dict[str, RootCert], list[str]]:
    """The root role's valid leaf certificates for ``gun`` (Notary's ``parseAllCerts``
    and ``validRootLeafCerts``) and why the others were refused."""
    valid: dict[str, RootCert] = {}
    refused: list[str] = []
    for keyid, key in root.role_keys("root").items():
        certs = certificates(key)
        leaves = [c for c in certs if not _is_ca(c)]
        if not certs or len(leaves) != 1 or _is_ca(certs[0]):
            refused.append(f"{keyid[:12]}… is not one x509 leaf certificate")
            continue
        leaf = leaves[0]
        names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(names[0].value) if names else ""
        if not cn_matches_gun(cn, gun):
            refused.append(f"{keyid[:12]}… is issued to {cn!r}, not to {gun}")
            continue
        problem = certificate_problem(leaf, now)
        if problem is not None:
            refused.append(f"certificate {keyid[:12]}… ({cn}): {problem}")
            continue
        intermediates = tuple(
            c for c in certs if _is_ca(c) and certificate_problem(c, now or _FAR_PAST) is None
        )
        valid[keyid] = RootCert(keyid, key, leaf, intermediates)
    return valid, refused


def chains_to(cert: RootCert, anchors: Iterable[x509.Certificate]) -> bool:
    """Whether ``cert``'s leaf is issued by one of ``anchors``, directly or through the
    intermediates listed with it (Notary's CA trust pinning)."""
    pool = list(anchors)
    current = cert.leaf
    chain = list(cert.intermediates)
    for _ in range(len(chain) + 1):
        if any(current.issuer == a.subject and _issued_by(current, a) for a in pool):
            return True
        nxt = next(
            (c for c in chain if current.issuer == c.subject and _issued_by(current, c)), None
        )
        if nxt is None:
            return False
        chain.remove(nxt)
        current = nxt
    return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


# --- paths and expiry -------------------------------------------------------------------------


def restrict_paths(parent: Iterable[str], child: Iterable[str]) -> tuple[str, ...]:
    """The child's paths that fall under one of the parent's (prefix semantics)."""
    parent = tuple(parent)
    return tuple(p for p in child if any(p.startswith(q) for q in parent))


def stale(role: str, expires: datetime) -> StaleMetadataError:
    return StaleMetadataError(
        f"the {role} metadata expired on {expires:%Y-%m-%dT%H:%M:%SZ}: the trust server stopped "
        "renewing it, or someone is replaying old metadata to hide newer changes (a possible "
        "freeze attack)",
        hint="do not deploy from it; check that the trust server and its signer are running",
    )
