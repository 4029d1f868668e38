"""Notary v1 metadata: parse and check the wire format (pure: bytes in, facts out).

What differs from TUF 1.0 (reference/notary-v1.md section 5) and is handled here:

* ``_type`` is capitalised (``Root``, ``Targets``, ``Snapshot``, ``Timestamp``) and
  there is no ``spec_version``; ``expires`` is Go's RFC 3339 with nanoseconds;
* binary fields are base64: public keys, signatures, hashes;
* a key is ``{"keytype", "keyval": {"public", "private": null}}``; its id is the
  SHA-256 of that object's canonical JSON and is recomputed, never trusted;
* ``ecdsa`` signatures are raw ``r || s`` with method ``"ecdsa"``; root keys are x509
  certificates (``ecdsa-x509``/``rsa-x509``: base64 of PEM text) whose common name is
  the GUN (or a ``prefix*`` wildcard);
* snapshot and timestamp ``meta`` name roles without ``.json`` and carry
  ``{length, hashes}`` but no version; the snapshot lists root too;
* delegation ``paths`` are string prefixes (``""`` = every path), a child's paths are
  cut to those under its parent's, and a child is named ``<parent>/<name>``.

Signatures are checked over the canonical JSON of ``signed`` (the same algorithm in
Go's ``docker/go/canonical`` and securesystemslib).

Example:
    >>> parse_time("2036-12-03T21:41:53.920027601Z").year
    2036
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID
from securesystemslib.formats import encode_canonical

from trustctl.errors import StaleMetadataError, TamperedMetadataError, UntrustedSignatureError

__all__ = [
    "BASE_ROLES",
    "Envelope",
    "FileMeta",
    "NotaryKey",
    "RoleKeys",
    "RootInfo",
    "TargetsInfo",
    "check_hashes",
    "check_threshold",
    "cn_matches_gun",
    "parse_envelope",
    "parse_key",
    "parse_meta",
    "parse_root",
    "parse_targets",
    "parse_time",
    "path_allowed",
    "restrict_paths",
    "valid_signatures",
]

BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
_TYPES = {"root": "Root", "targets": "Targets", "snapshot": "Snapshot", "timestamp": "Timestamp"}
_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_ROLE_RE = re.compile(r"^targets(/[-a-z0-9_]+)+$")
_HASH_SIZES = {"sha256": 32, "sha512": 64}
_WEAK_SIGNATURES = ("sha1",)
MIN_RSA_BITS = 2048


def _bad(what: str) -> TamperedMetadataError:
    return TamperedMetadataError(
        f"{what}; this may be an attack (tampered or forged trust data)",
        hint="do not deploy from it",
    )


def b64(value: Any, what: str) -> bytes:
    """Decode a base64 field (Go's ``[]byte`` in JSON)."""
    if not isinstance(value, str):
        raise _bad(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise _bad(f"{what} is not valid base64") from e


def parse_time(text: Any) -> datetime:
    """Go's RFC 3339 (nanoseconds, any zone offset) as an aware UTC datetime."""
    m = _TIME_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise _bad(f"expiry {str(text)[:40]!r} is not an RFC 3339 time")
    base, frac, zone = m.groups()
    moment = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if frac:
        moment += timedelta(microseconds=int(frac.ljust(9, "0")[:6]))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        moment -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    return moment


def canonical(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, no whitespace, integers only)."""
    try:
        return encode_canonical(obj).encode()  # type: ignore[no-any-return,union-attr]
    except Exception as e:
        raise _bad(f"signed metadata has no canonical form ({e})") from e


# --- keys -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NotaryKey:
    """A public key as Notary lists it; ``keyid`` is recomputed from the key."""

    keyid: str
    keytype: str
    public: bytes  # decoded: DER SPKI, raw ed25519, or PEM certificate text

    @property
    def is_certificate(self) -> bool:
        return self.keytype.endswith("-x509")

    def certificates(self) -> list[x509.Certificate]:
        """The certificates of an x509 key (leaf first, then intermediates)."""
        if not self.is_certificate:
            return []
        try:
            return x509.load_pem_x509_certificates(self.public)
        except ValueError:
            return []

    def crypto_key(self) -> Any:
        """The key as a ``cryptography`` public key, or None when it cannot be read."""
        try:
            if self.is_certificate:
                certs = self.certificates()
                return certs[0].public_key() if certs else None
            if self.keytype == "ed25519":
                return ed25519.Ed25519PublicKey.from_public_bytes(self.public)
            if self.keytype in ("ecdsa", "rsa"):
                return serialization.load_der_public_key(self.public)
        except (ValueError, UnsupportedAlgorithm):
            return None
        return None

    def common_name(self) -> str | None:
        certs = self.certificates()
        if not certs:
            return None
        names = certs[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None

    def verify(self, method: str, sig: bytes, message: bytes) -> bool:
        """Whether ``sig`` (Notary's encoding for ``method``) signs ``message``."""
        key = self.crypto_key()
        try:
            if method == "ecdsa" and isinstance(key, ec.EllipticCurvePublicKey):
                size = (key.curve.key_size + 7) // 8
                if len(sig) != 2 * size:
                    return False
                der = encode_dss_signature(
                    int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
                )
                key.verify(der, message, ec.ECDSA(hashes.SHA256()))
            elif method == "eddsa" and isinstance(key, ed25519.Ed25519PublicKey):
                key.verify(sig, message)
            elif method in ("rsapss", "pycrypto-pkcs#1 pss") and isinstance(key, rsa.RSAPublicKey):
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                key.verify(sig, message, pss, hashes.SHA256())
            elif method == "rsapkcs1v15" and isinstance(key, rsa.RSAPublicKey):
                key.verify(sig, message, padding.PKCS1v15(), hashes.SHA256())
            else:
                return False
        except (InvalidSignature, ValueError):
            return False
        return True


def key_id(keytype: str, public_b64: str) -> str:
    """Notary's key id: SHA-256 of the canonical ``{keytype, keyval{private: null, public}}``."""
    obj = {"keytype": keytype, "keyval": {"private": None, "public": public_b64}}
    return hashlib.sha256(canonical(obj)).hexdigest()


def parse_key(listed_id: str, obj: Any, where: str) -> NotaryKey:
    """A key object listed under ``listed_id``; the id must be the key's own."""
    if not isinstance(obj, dict) or not isinstance(obj.get("keyval"), dict):
        raise _bad(f"{where}: key {listed_id[:12]}… is not a key object")
    keytype, public = obj.get("keytype"), obj["keyval"].get("public")
    if not isinstance(keytype, str) or not isinstance(public, str):
        raise _bad(f"{where}: key {listed_id[:12]}… has no keytype or public value")
    actual = key_id(keytype, public)
    if actual != listed_id:
        raise _bad(
            f"{where}: key listed as {listed_id[:12]}… is in fact key {actual[:12]}… "
            "(a key id must be computed from its key)"
        )
    return NotaryKey(actual, keytype, b64(public, f"{where}: public key {listed_id[:12]}…"))


@dataclass(frozen=True)
class RoleKeys:
    """The keys and threshold that sign one role."""

    name: str
    keys: Mapping[str, NotaryKey]
    threshold: int


# --- envelopes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Envelope:
    """One signed metadata file, as downloaded."""

    role: str
    raw: bytes
    signed: dict[str, Any]
    signatures: tuple[dict[str, Any], ...]
    version: int
    expires: datetime

    @property
    def payload(self) -> bytes:
        return canonical(self.signed)


def parse_envelope(raw: bytes, role: str) -> Envelope:
    """Parse ``{"signed": ..., "signatures": [...]}`` of ``role`` (its type checked)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _bad(f"{role} metadata is not JSON") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
        raise _bad(f"{role} metadata has no signed part")
    signed = doc["signed"]
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not all(isinstance(s, dict) for s in sigs):
        raise _bad(f"{role} metadata has no list of signatures")
    expected = _TYPES.get(role, "Targets")
    if signed.get("_type") != expected:
        raise _bad(f"{role} metadata has type {str(signed.get('_type'))[:20]!r}, not {expected}")
    version = signed.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(f"{role} metadata has no valid version")
    return Envelope(role, raw, signed, tuple(sigs), version, parse_time(signed.get("expires")))


def valid_signatures(env: Envelope, role: RoleKeys) -> set[str]:
    """The ids of ``role``'s keys with a valid signature on ``env``."""
    payload = env.payload
    valid = set()
    for sig in env.signatures:
        keyid, method = sig.get("keyid"), sig.get("method")
        key = role.keys.get(keyid) if isinstance(keyid, str) else None
        if key is None or not isinstance(method, str) or keyid in valid:
            continue
        try:
            value = base64.b64decode(sig.get("sig") or "", validate=True)
        except (binascii.Error, ValueError):
            continue
        if key.verify(method.lower(), value, payload):
            valid.add(keyid)
    return valid


def check_threshold(env: Envelope, role: RoleKeys) -> set[str]:
    """The valid signers of ``env``; at least ``role.threshold`` of them.

    Raises:
        UntrustedSignatureError: fewer valid signatures than the threshold.
    """
    if role.threshold < 1:
        raise _bad(f"{role.name} has threshold {role.threshold}")
    valid = valid_signatures(env, role)
    if len(valid) < role.threshold:
        raise UntrustedSignatureError(
            f"{env.role} metadata has {len(valid)} valid signature(s) from the keys of {role.name}, "
            f"{role.threshold} required: it may be forged, or a key change left it unsigned",
            hint="do not deploy from it; ask the repository owner",
        )
    return valid


# --- file meta --------------------------------------------------------------------------


@dataclass(frozen=True)
class FileMeta:
    """``{length, hashes, custom}`` of a target or of a metadata file."""

    length: int
    hashes: Mapping[str, bytes]
    custom: Any = None

    def hex(self, algorithm: str = "sha256") -> str | None:
        value = self.hashes.get(algorithm)
        return value.hex() if value is not None else None


def _file_meta(obj: Any, where: str) -> FileMeta:
    if not isinstance(obj, dict):
        raise _bad(f"{where} is not a file description")
    length = obj.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 0:
        raise _bad(f"{where} has no valid length")
    raw_hashes = obj.get("hashes")
    if not isinstance(raw_hashes, dict):
        raise _bad(f"{where} has no hashes")
    found = {}
    for name, value in raw_hashes.items():
        digest = b64(value, f"{where} hash {name}")
        size = _HASH_SIZES.get(name)
        if size is not None and len(digest) != size:
            raise _bad(f"{where} has a {name} hash of {len(digest)} bytes")
        found[name] = digest
    if not any(name in found for name in _HASH_SIZES):
        raise _bad(f"{where} has neither a sha256 nor a sha512 hash")
    return FileMeta(length, found, obj.get("custom"))


def check_hashes(data: bytes, meta: FileMeta, what: str) -> None:
    """Every supported hash of ``meta`` must match ``data`` (Notary's ``CheckHashes``)."""
    for name in _HASH_SIZES:
        expected = meta.hashes.get(name)
        if expected is not None and hashlib.new(name, data).digest() != expected:
            raise TamperedMetadataError(
                f"{what} does not match the {name} hash the signed metadata above it promised: it "
                "may have been tampered with (a possible mix-and-match attack)",
                hint="do not deploy from it",
            )


def parse_meta(env: Envelope) -> dict[str, FileMeta]:
    """The ``meta`` of a snapshot or timestamp."""
    meta = env.signed.get("meta")
    if not isinstance(meta, dict):
        raise _bad(f"{env.role} metadata has no meta")
    return {str(name): _file_meta(obj, f"{env.role} meta of {name}") for name, obj in meta.items()}


# --- root -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RootInfo:
    env: Envelope
    keys: Mapping[str, NotaryKey]
    roles: Mapping[str, RoleKeys]


def parse_root(env: Envelope) -> RootInfo:
    """The keys and base roles of a root (Notary's ``isValidRootStructure``)."""
    raw_keys, raw_roles = env.signed.get("keys"), env.signed.get("roles")
    if not isinstance(raw_keys, dict) or not isinstance(raw_roles, dict):
        raise _bad("root metadata has no keys or roles")
    keys = {kid: parse_key(kid, obj, "root") for kid, obj in raw_keys.items()}
    roles = {}
    for name in BASE_ROLES:
        spec = raw_roles.get(name)
        if not isinstance(spec, dict):
            raise _bad(f"root metadata does not define the {name} role")
        keyids, threshold = spec.get("keyids"), spec.get("threshold")
        if not isinstance(keyids, list) or not isinstance(threshold, int) or threshold < 1:
            raise _bad(f"root metadata's {name} role has no key ids or threshold")
        missing = [k for k in keyids if k not in keys]
        if missing:
            raise _bad(f"root metadata's {name} role lists unknown key {str(missing[0])[:12]}…")
        roles[name] = RoleKeys(name, {k: keys[k] for k in keyids}, threshold)
    return RootInfo(env, keys, roles)


def cn_matches_gun(common_name: str, gun: str) -> bool:
    """Notary's ``MatchCNToGun``: equal, or a ``prefix*`` wildcard."""
    if common_name.endswith("*"):
        return gun.startswith(common_name.rstrip("*"))
    return common_name == gun


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
    root: RootInfo, gun: str, now: datetime | None
) -> tuple[dict[str, RootCert], list[str]]:
    """The root role's valid leaf certificates for ``gun`` (Notary's ``parseAllCerts`` and
    ``validRootLeafCerts``) and why the others were refused."""
    valid: dict[str, RootCert] = {}
    refused: list[str] = []
    for keyid, key in root.roles["root"].keys.items():
        certs = key.certificates()
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


_FAR_PAST = datetime(1970, 1, 2, tzinfo=UTC)


def chains_to(cert: RootCert, anchors: Iterable[x509.Certificate]) -> bool:
    """Whether ``cert``'s leaf is issued by one of ``anchors``, directly or through the
    intermediates listed with it (Notary's CA trust pinning)."""
    pool = list(anchors)
    current = cert.leaf
    chain = list(cert.intermediates)
    for _ in range(len(chain) + 1):
        for anchor in pool:
            if current.issuer == anchor.subject and _issued_by(current, anchor):
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


def root_threshold_keys(certs: Mapping[str, RootCert]) -> dict[str, NotaryKey]:
    return {kid: c.key for kid, c in certs.items()}


# --- targets ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Delegation:
    """One delegated role as its parent lists it."""

    name: str
    keys: Mapping[str, NotaryKey]
    threshold: int
    paths: tuple[str, ...]

    @property
    def role_keys(self) -> RoleKeys:
        return RoleKeys(self.name, self.keys, self.threshold)


@dataclass(frozen=True)
class TargetsInfo:
    env: Envelope
    targets: Mapping[str, FileMeta]
    delegations: tuple[Delegation, ...] = field(default_factory=tuple)


def valid_role_name(name: Any) -> bool:
    return (
        isinstance(name, str)
        and len(name) < 256
        and bool(_ROLE_RE.match(name))
        and posixpath.normpath(name) == name
    )


def parse_targets(env: Envelope) -> TargetsInfo:
    """Targets and delegations of ``targets`` or a delegated role (Notary's
    ``TargetsFromSigned``: every delegation must be a direct child of this role; a
    delegation that lists an unknown key is left out, as Notary does)."""
    raw_targets = env.signed.get("targets")
    if not isinstance(raw_targets, dict):
        raise _bad(f"{env.role} metadata has no targets")
    targets = {
        str(name): _file_meta(obj, f"{env.role}: target {str(name)[:60]!r}")
        for name, obj in raw_targets.items()
    }
    raw = env.signed.get("delegations") or {}
    if not isinstance(raw, dict):
        raise _bad(f"{env.role} metadata has malformed delegations")
    raw_keys = raw.get("keys") or {}
    raw_roles = raw.get("roles") or []
    if not isinstance(raw_keys, dict) or not isinstance(raw_roles, list):
        raise _bad(f"{env.role} metadata has malformed delegations")
    keys = {kid: parse_key(kid, obj, f"{env.role} delegations") for kid, obj in raw_keys.items()}
    delegations = []
    for spec in raw_roles:
        if not isinstance(spec, dict):
            raise _bad(f"{env.role} metadata has a malformed delegation")
        name = spec.get("name")
        if not valid_role_name(name) or posixpath.dirname(name) != env.role:
            raise _bad(f"{env.role} delegates to {str(name)[:60]!r}, which is not its direct child")
        keyids, threshold = spec.get("keyids") or [], spec.get("threshold")
        paths = spec.get("paths") or []
        if (
            not isinstance(keyids, list)
            or not isinstance(threshold, int)
            or threshold < 1
            or not isinstance(paths, list)
            or not all(isinstance(p, str) for p in paths)
        ):
            raise _bad(f"{env.role}: delegation {name} has malformed keys, threshold or paths")
        if any(k not in keys for k in keyids):
            continue  # BuildDelegationRole: an invalid role, skipped
        delegations.append(Delegation(name, {k: keys[k] for k in keyids}, threshold, tuple(paths)))
    return TargetsInfo(env, targets, tuple(delegations))


def restrict_paths(parent: Iterable[str], child: Iterable[str]) -> tuple[str, ...]:
    """The child's paths that fall under one of the parent's (prefix semantics)."""
    parent = tuple(parent)
    return tuple(p for p in child if any(p.startswith(q) for q in parent))


def path_allowed(path: str, prefixes: Iterable[str]) -> bool:
    """Notary's ``CheckPaths``: some prefix of the role's paths (``""`` = all)."""
    return any(path.startswith(p) for p in prefixes)


def signed_type(raw: bytes) -> str | None:
    """The ``_type`` of a metadata file (``Root`` means Notary's dialect), or None."""
    try:
        doc = json.loads(raw)
        value = doc["signed"]["_type"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return None
    return value if isinstance(value, str) else None


def stale(role: str, expires: datetime, now: datetime) -> StaleMetadataError:
    return StaleMetadataError(
        f"the {role} metadata expired on {expires:%Y-%m-%dT%H:%M:%SZ}: the trust server stopped "
        "renewing it, or someone is replaying old metadata to hide newer changes (a possible "
        "freeze attack)",
        hint="do not deploy from it; check that the trust server and its signer are running",
    )
