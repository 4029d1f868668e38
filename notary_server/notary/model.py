"""Notary v1 metadata, parsed as it is on the wire. Pure: no I/O.

What differs from TUF 1.0 (reference/notary-v1.md section 5), and is kept here:

* ``_type`` is capitalised (``Root``, ``Targets``, ``Snapshot``, ``Timestamp``);
  there is no ``spec_version``; ``expires`` is RFC 3339 with any zone offset.
* Binary fields are base64: public keys, signatures, hashes.
* A key is ``{"keytype", "keyval": {"private": null, "public": <b64>}}`` with no
  ``scheme``; its id is the sha256 of that object's canonical JSON and is always
  recomputed, never taken from the file. ``ecdsa`` and ``rsa`` hold DER
  SubjectPublicKeyInfo, ``ed25519`` the raw 32 bytes, ``ecdsa-x509`` and
  ``rsa-x509`` the PEM text of a certificate.
* A signature is ``{"keyid", "method", "sig"}``; ``method`` picks the verifier,
  and an ECDSA signature is the raw ``r || s`` (64 bytes for P-256).
* Snapshot and timestamp ``meta`` entries are ``{length, hashes}`` keyed by role
  name without ``.json``; the snapshot lists root.

The signed bytes are the canonical JSON of ``signed`` (the same algorithm as
securesystemslib's ``encode_canonical``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from notary_signer.canonical import canonical_json, notary_keyid

__all__ = [
    "BASE_ROLES",
    "FormatError",
    "NotaryKey",
    "NotarySignature",
    "Role",
    "Root",
    "Signed",
    "Snapshot",
    "Targets",
    "Timestamp",
    "canonical",
    "der_to_raw",
    "format_expires",
    "key_from_spki",
    "meta_entry",
    "parse_expires",
    "parse_key",
    "parse_signed",
    "valid_signers",
]

BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
TYPES = {"root": "Root", "targets": "Targets", "snapshot": "Snapshot", "timestamp": "Timestamp"}
KEY_TYPES = frozenset({"ecdsa", "ecdsa-x509", "rsa", "rsa-x509", "ed25519"})
METHODS = frozenset({"ecdsa", "eddsa", "rsapss", "rsapkcs1v15", "pycrypto-pkcs#1 pss"})
# Delegation names (notary's tuf/data/roles.go): under targets/, lower case,
# digits, '-', '_', '/', fewer than 256 characters.
_DELEGATION_RE = re.compile(r"targets(/[a-z0-9_-]+)+")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


class FormatError(ValueError):
    """The JSON is not Notary metadata of the expected shape."""


def canonical(obj: Any) -> bytes:
    """Canonical JSON (sorted keys, no whitespace): the bytes Notary signs."""
    try:
        return canonical_json(obj)
    except ValueError as e:
        raise FormatError(str(e)) from None


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise FormatError(f"{what} is not valid base64") from None


def parse_expires(value: Any) -> datetime:
    """An RFC 3339 time with any zone offset and fractional seconds (Go's format)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise FormatError(f"expires {str(value)[:40]!r} is not an RFC 3339 time")
    text = value.upper().replace("Z", "+00:00")
    if "." in text:  # Python keeps microseconds; Go writes up to nanoseconds
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        assert digits
        text = f"{head}.{digits.group()[:6].ljust(6, '0')}{rest[len(digits.group()) :]}"
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        raise FormatError(f"expires {value[:40]!r} is not a valid time") from None


def format_expires(when: datetime) -> str:
    """RFC 3339 in UTC with whole seconds, e.g. ``2027-01-01T00:00:00Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise FormatError(f"{what} must be an integer >= {minimum}")
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FormatError(f"{what} must be a JSON object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise FormatError(f"{what} must be a JSON array")
    return value


# --- keys -------------------------------------------------------------------------


@dataclass(frozen=True)
class NotaryKey:
    """A public key as Notary writes it, with its recomputed id."""

    keytype: str
    public: bytes = field(repr=False)
    keyid: str
    public_key: Any = field(repr=False, compare=False)
    certificate: x509.Certificate | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"keytype": self.keytype, "keyval": {"private": None, "public": b64(self.public)}}

    @property
    def spki(self) -> bytes:
        """DER SubjectPublicKeyInfo: the same key under any id or certificate."""
        spki: bytes = self.public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return spki

    def verify(self, method: str, sig: bytes, data: bytes) -> bool:
        """Whether ``sig`` is a valid ``method`` signature of ``data`` by this key."""
        key = self.public_key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                size = (key.curve.key_size + 7) // 8
                if method != "ecdsa" or len(sig) != 2 * size:
                    return False
                r = int.from_bytes(sig[:size], "big")
                s = int.from_bytes(sig[size:], "big")
                key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
                return True
            if isinstance(key, ed25519.Ed25519PublicKey):
                if method != "eddsa":
                    return False
                key.verify(sig, data)
                return True
            if isinstance(key, rsa.RSAPublicKey):
                if method in ("rsapss", "pycrypto-pkcs#1 pss"):
                    pad: padding.AsymmetricPadding = padding.PSS(
                        mgf=padding.MGF1(hashes.SHA256()), salt_length=hashes.SHA256.digest_size
                    )
                elif method == "rsapkcs1v15":
                    pad = padding.PKCS1v15()
                else:
                    return False
                key.verify(sig, data, pad, hashes.SHA256())
                return True
        except (InvalidSignature, ValueError):
            return False
        return False


def parse_key(obj: Any) -> NotaryKey:
    """A key object from metadata; its id is computed, never read.

    Raises:
        FormatError: unknown key type, bad base64, or key material that does not load.
    """
    obj = _dict(obj, "key")
    keytype = obj.get("keytype")
    if keytype not in KEY_TYPES:
        raise FormatError(f"unsupported key type {str(keytype)[:20]!r}")
    keyval = _dict(obj.get("keyval"), "keyval")
    public = unb64(keyval.get("public"), "keyval.public")
    cert = None
    try:
        if keytype.endswith("-x509"):
            cert = x509.load_pem_x509_certificates(public)[0]
            public_key: Any = cert.public_key()
        elif keytype == "ed25519":
            public_key = ed25519.Ed25519PublicKey.from_public_bytes(public)
        else:
            public_key = serialization.load_der_public_key(public)
    except (ValueError, UnsupportedAlgorithm, IndexError) as e:
        raise FormatError(f"{keytype} key does not load: {str(e)[:80]}") from None
    want = (
        rsa.RSAPublicKey
        if keytype.startswith("rsa")
        else (
            ec.EllipticCurvePublicKey if keytype.startswith("ecdsa") else ed25519.Ed25519PublicKey
        )
    )
    if not isinstance(public_key, want):
        raise FormatError(f"key material is not a {keytype} key")
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        raise FormatError("RSA keys must have at least 2048 bits")
    return NotaryKey(keytype, public, notary_keyid(keytype, public), public_key, cert)


def key_from_spki(der: bytes) -> NotaryKey:
    """A bare public key (DER SubjectPublicKeyInfo, or raw ed25519) as Notary lists it."""
    try:
        loaded: Any = serialization.load_der_public_key(der)
    except ValueError:
        loaded = ed25519.Ed25519PublicKey.from_public_bytes(der)
    if isinstance(loaded, ed25519.Ed25519PublicKey):
        raw = loaded.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return NotaryKey("ed25519", raw, notary_keyid("ed25519", raw), loaded)
    keytype = "rsa" if isinstance(loaded, rsa.RSAPublicKey) else "ecdsa"
    return NotaryKey(keytype, der, notary_keyid(keytype, der), loaded)


def der_to_raw(der: bytes, curve_bytes: int = 32) -> bytes:
    """An ASN.1 DER ECDSA signature as Notary's raw ``r || s``."""
    r, s = decode_dss_signature(der)
    return r.to_bytes(curve_bytes, "big") + s.to_bytes(curve_bytes, "big")


# --- signed envelopes ---------------------------------------------------------------


@dataclass(frozen=True)
class NotarySignature:
    keyid: str
    method: str
    sig: bytes = field(repr=False)


@dataclass(frozen=True)
class Signed:
    """One metadata file: its bytes, its ``signed`` object and signatures."""

    role: str
    raw: bytes = field(repr=False)
    signed: dict[str, Any] = field(repr=False)
    signed_bytes: bytes = field(repr=False)
    signatures: tuple[NotarySignature, ...]
    version: int
    expires: datetime


def parse_signed(role: str, raw: bytes) -> Signed:
    """Parse ``raw`` as a Notary file of ``role`` (a delegation parses as Targets).

    Raises:
        FormatError: not JSON, not ``{signed, signatures}``, wrong ``_type``, a bad
            version or expiry, or a malformed signature.
    """
    try:
        obj = json.loads(raw, parse_constant=_no_constant, parse_float=_no_float)
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"not JSON: {str(e)[:80]}") from None
    obj = _dict(obj, "metadata")
    signed = _dict(obj.get("signed"), "signed")
    base = role if role in BASE_ROLES else "targets"
    if signed.get("_type") != TYPES[base]:
        raise FormatError(f"_type is {str(signed.get('_type'))[:20]!r}, expected {TYPES[base]!r}")
    version = _int(signed.get("version"), "version", 1)
    expires = parse_expires(signed.get("expires"))
    sigs = []
    for i, s in enumerate(_list(obj.get("signatures"), "signatures")):
        s = _dict(s, f"signatures[{i}]")
        keyid, method = s.get("keyid"), s.get("method")
        if not isinstance(keyid, str) or not isinstance(method, str):
            raise FormatError(f"signatures[{i}] needs a keyid and a method")
        sigs.append(NotarySignature(keyid, method, unb64(s.get("sig"), f"signatures[{i}].sig")))
    return Signed(role, raw, signed, canonical(signed), tuple(sigs), version, expires)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _no_float(text: str) -> None:
    raise ValueError(f"{text[:20]} is a float, which canonical JSON cannot encode")


def valid_signers(
    signed: Signed, keys: Mapping[str, NotaryKey], keyids: Iterable[str]
) -> set[bytes]:
    """The distinct public keys (as SPKI) among ``keyids`` that validly signed.

    Counting public keys, not ids, means one key listed under two ids (a bare key
    and a certificate of it, say) counts once: it cannot fake a threshold.

    Raises:
        FormatError: a signature names a listed key id that is not its key's own.
    """
    allowed = set(keyids)
    good: set[bytes] = set()
    for sig in signed.signatures:
        if sig.keyid not in allowed or sig.keyid not in keys:
            continue
        key = keys[sig.keyid]
        if key.keyid != sig.keyid:
            raise FormatError(f"key id {sig.keyid[:16]}... does not match its key")
        if key.verify(sig.method, sig.sig, signed.signed_bytes):
            good.add(key.spki)
    return good


# --- the four role types --------------------------------------------------------------


@dataclass(frozen=True)
class Role:
    """A role's keys and threshold (a base role in root, or a delegation)."""

    name: str
    keyids: tuple[str, ...]
    threshold: int
    paths: tuple[str, ...] | None = None  # delegations only; prefixes, "" = all


def _keys(obj: Any, what: str) -> dict[str, NotaryKey]:
    keys = {}
    for listed_id, k in _dict(obj, what).items():
        key = parse_key(k)
        if key.keyid != listed_id:
            raise FormatError(
                f"key id {str(listed_id)[:16]}... is not the id of its key ({key.keyid[:16]}...)"
            )
        keys[listed_id] = key
    return keys


def _role(name: str, obj: Any, keys: Mapping[str, NotaryKey]) -> Role:
    obj = _dict(obj, f"role {name}")
    keyids = _list(obj.get("keyids"), f"{name}.keyids")
    if not all(isinstance(k, str) for k in keyids):
        raise FormatError(f"{name}.keyids must be strings")
    threshold = _int(obj.get("threshold"), f"{name}.threshold", 1)
    missing = [k for k in keyids if k not in keys]
    if missing:
        raise FormatError(f"role {name} lists key {missing[0][:16]}... that is not in keys")
    if len(keyids) < threshold:
        raise FormatError(f"role {name} has fewer keys than its threshold {threshold}")
    paths = None
    if "paths" in obj or name not in BASE_ROLES:
        raw_paths = _list(obj.get("paths", []), f"{name}.paths")
        if not all(isinstance(p, str) for p in raw_paths):
            raise FormatError(f"{name}.paths must be strings")
        paths = tuple(raw_paths)
    return Role(name, tuple(keyids), threshold, paths)


@dataclass(frozen=True)
class Root:
    file: Signed
    keys: dict[str, NotaryKey]
    roles: dict[str, Role]

    @classmethod
    def parse(cls, raw: bytes) -> Root:
        f = parse_signed("root", raw)
        keys = _keys(f.signed.get("keys"), "keys")
        roles_obj = _dict(f.signed.get("roles"), "roles")
        missing = [r for r in BASE_ROLES if r not in roles_obj]
        if missing:
            raise FormatError(f"root lacks the {missing[0]} role")
        roles = {r: _role(r, roles_obj[r], keys) for r in BASE_ROLES}
        return cls(f, keys, roles)

    def role_keys(self, role: str) -> dict[str, NotaryKey]:
        return {k: self.keys[k] for k in self.roles[role].keyids}


@dataclass(frozen=True)
class Targets:
    file: Signed
    targets: dict[str, dict[str, Any]]
    keys: dict[str, NotaryKey]
    delegations: dict[str, Role]

    @classmethod
    def parse(cls, role: str, raw: bytes) -> Targets:
        f = parse_signed(role, raw)
        targets = _dict(f.signed.get("targets", {}), "targets")
        for path, meta in targets.items():
            _file_meta(meta, f"target {path[:60]!r}")
        deleg = _dict(f.signed.get("delegations", {"keys": {}, "roles": []}), "delegations")
        keys = _keys(deleg.get("keys", {}), "delegations.keys")
        delegations = {}
        for i, r in enumerate(_list(deleg.get("roles", []), "delegations.roles")):
            name = _dict(r, f"delegations.roles[{i}]").get("name")
            if not isinstance(name, str) or not is_delegation(name):
                raise FormatError(f"invalid delegation name {str(name)[:60]!r}")
            if name.rpartition("/")[0] != role:
                raise FormatError(f"{name!r} is not a direct child of {role!r}")
            if name in delegations:
                raise FormatError(f"delegation {name!r} is listed twice")
            delegations[name] = _role(name, r, keys)
        return cls(f, targets, keys, delegations)


@dataclass(frozen=True)
class Snapshot:
    file: Signed
    meta: dict[str, dict[str, Any]]

    @classmethod
    def parse(cls, raw: bytes) -> Snapshot:
        f = parse_signed("snapshot", raw)
        meta = _dict(f.signed.get("meta"), "meta")
        for name, entry in meta.items():
            _file_meta(entry, f"meta[{name[:60]!r}]")
        return cls(f, meta)


@dataclass(frozen=True)
class Timestamp:
    file: Signed
    snapshot_meta: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> Timestamp:
        f = parse_signed("timestamp", raw)
        meta = _dict(f.signed.get("meta"), "meta")
        if "snapshot" not in meta:
            raise FormatError("timestamp meta lacks snapshot")
        return cls(f, _file_meta(meta["snapshot"], "meta['snapshot']"))


def _file_meta(obj: Any, what: str) -> dict[str, Any]:
    """Check a ``{length, hashes, custom?}`` entry: sha256 required (32 bytes), sha512
    optional (64 bytes), other algorithms ignored."""
    obj = _dict(obj, what)
    _int(obj.get("length"), f"{what}.length")
    hashes_ = _dict(obj.get("hashes"), f"{what}.hashes")
    if "sha256" not in hashes_:
        raise FormatError(f"{what} has no sha256 hash")
    for alg, size in (("sha256", 32), ("sha512", 64)):
        if alg in hashes_ and len(unb64(hashes_[alg], f"{what}.hashes.{alg}")) != size:
            raise FormatError(f"{what}.hashes.{alg} is not {size} bytes")
    return obj


def meta_entry(data: bytes) -> dict[str, Any]:
    """``{length, hashes{sha256, sha512}}`` of ``data``, as Notary writes it."""
    return {
        "hashes": {
            "sha256": b64(hashlib.sha256(data).digest()),
            "sha512": b64(hashlib.sha512(data).digest()),
        },
        "length": len(data),
    }


def matches(entry: Mapping[str, Any], data: bytes) -> bool:
    """Whether ``data`` has the length and every sha256/sha512 hash of ``entry``."""
    if entry.get("length") != len(data):
        return False
    hashes_ = entry.get("hashes", {})
    for alg in ("sha256", "sha512"):
        if alg in hashes_ and base64.b64decode(hashes_[alg]) != hashlib.new(alg, data).digest():
            return False
    return "sha256" in hashes_


def is_delegation(name: str) -> bool:
    return len(name) < 256 and bool(_DELEGATION_RE.fullmatch(name))


def path_allowed(path: str, prefixes: Iterable[str]) -> bool:
    """Notary's delegation paths are prefixes; ``""`` allows everything."""
    return any(path.startswith(p) for p in prefixes)
