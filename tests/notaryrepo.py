"""A Notary v1 (0.7.0) publisher in Python, for tests: writes metadata exactly as the
notary CLI does (capitalised types, base64 fields, x509 root certificates with
CN = GUN, raw r||s ECDSA signatures with ``method``), and lets a test bend any rule.
Independent of notary_server.notary except for canonical JSON, which is the
standard algorithm.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from securesystemslib.formats import encode_canonical

NOTARY_UA = {"User-Agent": "Go-http-client/1.1"}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def canonical(obj: Any) -> bytes:
    text = encode_canonical(obj)
    assert isinstance(text, str)
    return text.encode()


def key_object(keytype: str, public: bytes) -> dict[str, Any]:
    return {"keytype": keytype, "keyval": {"private": None, "public": b64(public)}}


def keyid_of(obj: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(obj)).hexdigest()


def sha1_certificate(key: ec.EllipticCurvePrivateKey, cn: str) -> bytes:
    """A certificate signed with SHA-1 (cryptography refuses to make one; openssl can)."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "key.pem"
        path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-sha1",
                "-key",
                str(path),
                "-days",
                "30",
                "-subj",
                "/CN=" + cn.replace("/", "\\/"),
            ],
            check=True,
            capture_output=True,
        ).stdout


def certificate(
    key: ec.EllipticCurvePrivateKey,
    cn: str,
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    algorithm: hashes.HashAlgorithm | None = None,
    serial: int | None = None,
) -> bytes:
    """A self-signed code-signing certificate, as ``notary init`` makes for root."""
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(minutes=5))
        .not_valid_after(not_after or now + timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
        .sign(key, algorithm or hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Signing:
    """A private key and the key object it is listed as."""

    private: ec.EllipticCurvePrivateKey
    obj: dict[str, Any]

    @property
    def keyid(self) -> str:
        return keyid_of(self.obj)

    @classmethod
    def bare(cls, private: ec.EllipticCurvePrivateKey | None = None) -> Signing:
        private = private or ec.generate_private_key(ec.SECP256R1())
        der = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return cls(private, key_object("ecdsa", der))

    @classmethod
    def cert(cls, cn: str, private: ec.EllipticCurvePrivateKey | None = None, **kw: Any) -> Signing:
        private = private or ec.generate_private_key(ec.SECP256R1())
        return cls(private, key_object("ecdsa-x509", certificate(private, cn, **kw)))

    @classmethod
    def sha1_cert(cls, cn: str) -> Signing:
        private = ec.generate_private_key(ec.SECP256R1())
        return cls(private, key_object("ecdsa-x509", sha1_certificate(private, cn)))

    def sign(self, data: bytes) -> dict[str, str]:
        r, s = decode_dss_signature(self.private.sign(data, ec.ECDSA(hashes.SHA256())))
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return {"keyid": self.keyid, "method": "ecdsa", "sig": b64(raw)}


def signed_file(signed: dict[str, Any], *signers: Signing) -> bytes:
    data = canonical(signed)
    return json.dumps(
        {"signed": signed, "signatures": [s.sign(data) for s in signers]}, separators=(",", ":")
    ).encode()


def expires(days: float = 365) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(data: bytes) -> dict[str, Any]:
    return {
        "hashes": {
            "sha256": b64(hashlib.sha256(data).digest()),
            "sha512": b64(hashlib.sha512(data).digest()),
        },
        "length": len(data),
    }


def target(content: bytes) -> dict[str, Any]:
    return meta(content)


@dataclass
class NotaryOwner:
    """The keys and state of one Notary repository's owner (root, targets, snapshot)."""

    gun: str
    timestamp_key: dict[str, Any]
    root: Signing = field(init=False)
    targets: Signing = field(default_factory=Signing.bare)
    snapshot: Signing | None = field(default_factory=Signing.bare)  # None: server-held
    snapshot_key: dict[str, Any] | None = None  # the server's, when it holds snapshot
    version: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Signing.cert(self.gun)

    def root_signed(
        self, version: int, *, root_keys: list[Signing] | None = None, threshold: int = 1
    ) -> dict[str, Any]:
        root_keys = root_keys or [self.root]
        snap_obj = self.snapshot.obj if self.snapshot else self.snapshot_key
        assert snap_obj is not None
        keys = {k.keyid: k.obj for k in root_keys}
        keys[self.targets.keyid] = self.targets.obj
        keys[keyid_of(snap_obj)] = snap_obj
        keys[keyid_of(self.timestamp_key)] = self.timestamp_key
        return {
            "_type": "Root",
            "consistent_snapshot": False,
            "expires": expires(3650),
            "keys": keys,
            "roles": {
                "root": {"keyids": [k.keyid for k in root_keys], "threshold": threshold},
                "targets": {"keyids": [self.targets.keyid], "threshold": 1},
                "snapshot": {"keyids": [keyid_of(snap_obj)], "threshold": 1},
                "timestamp": {"keyids": [keyid_of(self.timestamp_key)], "threshold": 1},
            },
            "version": version,
        }

    def targets_signed(
        self,
        version: int,
        targets: dict[str, bytes],
        delegations: list[tuple[str, list[Signing], list[str]]] = (),  # type: ignore[assignment]
        *,
        role: str = "targets",
    ) -> dict[str, Any]:
        keys: dict[str, Any] = {}
        roles = []
        for name, signers, paths in delegations:
            for s in signers:
                keys[s.keyid] = s.obj
            roles.append(
                {"name": name, "keyids": [s.keyid for s in signers], "threshold": 1, "paths": paths}
            )
        return {
            "_type": "Targets",
            "delegations": {"keys": keys, "roles": roles},
            "expires": expires(1095),
            "targets": {name: target(content) for name, content in targets.items()},
            "version": version,
        }

    def snapshot_file(self, version: int, files: dict[str, bytes]) -> bytes:
        assert self.snapshot is not None
        signed = {
            "_type": "Snapshot",
            "expires": expires(1095),
            "meta": {role: meta(data) for role, data in files.items()},
            "version": version,
        }
        return signed_file(signed, self.snapshot)
