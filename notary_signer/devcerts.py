"""Development PKI for mutual TLS between the trust server and the signer.

DEVELOPMENT AND TESTS ONLY: production deployments bring their own PKI.

:func:`ensure_dev_pki` creates, when missing, in one directory:

========================  ==================================================
``dev-ca.pem``            development CA (also the signer's client CA)
``server.pem``            trust server certificate (serverAuth)
``signer.pem``            signer certificate (serverAuth)
``server-client.pem``     certificate the trust server presents to the signer
                          (clientAuth only)
========================  ==================================================

each with its ``*-key.pem`` (ECDSA P-256, PKCS#8, mode 0600). Leaf certificates
carry SANs ``DNS:localhost`` and ``IP:127.0.0.1``. Existing files are reused when
all are present, chain to the CA and expire in more than 30 days.

Example::

    pki = ensure_dev_pki(Path("keys"))
    SignerClient(url, ca_file=str(pki.ca_cert), cert_file=str(pki.client_cert),
                 key_file=str(pki.client_key))
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DevPKI", "ensure_dev_pki"]

logger = logging.getLogger(__name__)

_RENEW_BEFORE = dt.timedelta(days=30)
_CA_LIFETIME = dt.timedelta(days=3650)
_LEAF_LIFETIME = dt.timedelta(days=365)


@dataclass(frozen=True)
class DevPKI:
    """Paths of the development PKI files."""

    directory: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    signer_cert: Path
    signer_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> DevPKI:
        """The file layout under ``directory`` (nothing is created)."""
        d = Path(directory)
        return cls(
            d,
            d / "dev-ca.pem",
            d / "dev-ca-key.pem",
            d / "server.pem",
            d / "server-key.pem",
            d / "signer.pem",
            d / "signer-key.pem",
            d / "server-client.pem",
            d / "server-client-key.pem",
        )


_LEAVES = {
    # attribute prefix -> (common name, extended key usage)
    "server": ("notary-server (DEV ONLY)", ExtendedKeyUsageOID.SERVER_AUTH),
    "signer": ("notary-signer (DEV ONLY)", ExtendedKeyUsageOID.SERVER_AUTH),
    "client": ("notary-server client (DEV ONLY)", ExtendedKeyUsageOID.CLIENT_AUTH),
}


def ensure_dev_pki(directory: Path, *, now: dt.datetime | None = None) -> DevPKI:
    """Create the development PKI in ``directory`` unless a usable one is there.

    Args:
        directory: Target directory (created with mode 0700 if missing).
        now: Current time (injected by tests).

    Returns:
        The paths of all files.

    Raises:
        OSError: the directory or files cannot be written.
    """
    now = now or dt.datetime.now(dt.UTC)
    pki = DevPKI.in_directory(directory)
    pki.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca = _load_valid(pki.ca_cert, pki.ca_key, None, now)
    if ca is None:
        logger.info("generating development CA in %s", pki.directory)
        ca = _new_ca(now)
        _write(pki.ca_cert, pki.ca_key, ca)
        force = True
    else:
        force = False
    for prefix, (name, usage) in _LEAVES.items():
        cert_path = getattr(pki, f"{prefix}_cert")
        key_path = getattr(pki, f"{prefix}_key")
        if force or _load_valid(cert_path, key_path, ca[0], now) is None:
            logger.info("generating development certificate %s", cert_path.name)
            _write(cert_path, key_path, _new_leaf(ca, name, usage, now))
    return pki


_Pair = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _load_valid(
    cert_path: Path, key_path: Path, issuer: x509.Certificate | None, now: dt.datetime
) -> _Pair | None:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    if cert.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        return None
    if cert.not_valid_after_utc - now < _RENEW_BEFORE:
        return None
    if issuer is not None:
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            return None
    return cert, key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "notary-tuf development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_ca(now: dt.datetime) -> _Pair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("notary-tuf development CA (DEV ONLY)")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            _key_usage(key_cert_sign=True, crl_sign=True),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _new_leaf(ca: _Pair, common_name: str, usage: x509.ObjectIdentifier, now: dt.datetime) -> _Pair:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    sans = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _LEAF_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(digital_signature=True),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(sans, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write(cert_path: Path, key_path: Path, pair: _Pair) -> None:
    cert, key = pair
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_file(key_path, key_pem, 0o600)
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write atomically: a temp file created with ``mode``, then renamed."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # O_CREAT keeps the mode of a leftover temp file
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
