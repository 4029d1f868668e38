"""Development PKI: files, modes, SANs, EKUs, idempotence and renewal."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from notary_signer.devcerts import ensure_dev_pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_creates_everything_with_private_keys_0600(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path / "new" / "keys")
    for key in (pki.ca_key, pki.server_key, pki.signer_key, pki.client_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
        assert b"PRIVATE KEY" in key.read_bytes()
    ca = _cert(pki.ca_cert)
    for cert_path, usage in [
        (pki.server_cert, ExtendedKeyUsageOID.SERVER_AUTH),
        (pki.signer_cert, ExtendedKeyUsageOID.SERVER_AUTH),
        (pki.client_cert, ExtendedKeyUsageOID.CLIENT_AUTH),
    ]:
        cert = _cert(cert_path)
        cert.verify_directly_issued_by(ca)
        assert list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
        assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_idempotent(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    ensure_dev_pki(tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    pki.client_cert.unlink()
    ensure_dev_pki(tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after["dev-ca.pem"] == before["dev-ca.pem"]
    assert after["server-client.pem"] != before["server-client.pem"]
    assert after["signer.pem"] == before["signer.pem"]


def test_renews_certificates_expiring_within_30_days(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path)
    old_leaf, old_ca = pki.signer_cert.read_bytes(), pki.ca_cert.read_bytes()
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=340)  # leaves live 365 days
    ensure_dev_pki(tmp_path, now=soon)
    assert pki.ca_cert.read_bytes() == old_ca
    assert pki.signer_cert.read_bytes() != old_leaf


def test_new_ca_reissues_every_leaf(tmp_path: Path) -> None:
    pki = ensure_dev_pki(tmp_path)
    old = pki.server_cert.read_bytes()
    pki.ca_key.unlink()
    ensure_dev_pki(tmp_path)
    assert pki.server_cert.read_bytes() != old
    _cert(pki.server_cert).verify_directly_issued_by(_cert(pki.ca_cert))
