"""Secrets the test suites use, and the scan that looks for them in every log.

Register every passphrase or password a test hands to our programs with
``remember`` and every private key whose material a test can read with
``remember_key``. After the last test of any selection, the session fixture in
``tests/conftest.py`` runs :func:`scan_logs` over every log file under pytest's base
temporary directory and fails the run if it finds one of them, or any private key in
a standard encoding (PEM, or DER as base64 or hex, whoever's key it is), or if it
read no log line at all.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)
from securesystemslib.signer import CryptoSigner

#: Passphrases and passwords the suites hand to our programs.
KNOWN: set[str] = set()
#: Private key material (raw and DER, as hex and base64) of keys the suites can read.
KEYS: set[bytes] = set()

#: Shorter secrets would match ordinary words in logs.
MIN_SECRET = 6


def remember(secret: str) -> str:
    """Record ``secret`` for the final scan and return it (shorter than
    :data:`MIN_SECRET`: not scanned for, it would match ordinary words)."""
    if len(secret) >= MIN_SECRET:
        KNOWN.add(secret)
    return secret


def remember_key(signer: CryptoSigner) -> CryptoSigner:
    """Record every encoding of ``signer``'s private key for the final scan."""
    KEYS.update(key_needles(signer))
    return signer


def key_needles(signer: CryptoSigner) -> list[bytes]:
    """The private key's raw value and PKCS#8 DER, each as hex and as base64."""
    key = load_pem_private_key(signer.private_bytes, password=None)
    der = key.private_bytes(Encoding.DER, PrivateFormat.PKCS8, NoEncryption())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = (key.curve.key_size + 7) // 8
        raw = key.private_numbers().private_value.to_bytes(size, "big")
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    else:
        raw = der
    return [
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw),
        der.hex().encode(),
        base64.b64encode(der),
    ]


PATTERNS = [
    re.compile(rb"PRIVATE KEY"),
    re.compile(rb"\"private\"\s*:\s*\"[^\"]+\""),
    re.compile(rb"passphrase\s*=\s*\S", re.IGNORECASE),
]
#: A DER private key (PKCS#8, SEC 1 or PKCS#1): a SEQUENCE whose first element is the
#: version INTEGER 0 or 1, followed by an AlgorithmIdentifier, an OCTET STRING or an
#: INTEGER. Certificates and public keys start with a nested SEQUENCE instead.
DER_PRIVATE = re.compile(
    rb"\A\x30(?:[\x00-\x7f]|\x81[\s\S]|\x82[\s\S]{2})\x02\x01[\x00\x01][\x30\x04\x02]"
)
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/]{40,}={0,2}")
HEX_RUN = re.compile(rb"\b(?:[0-9a-fA-F]{2}){32,}\b")


@dataclass
class ScanResult:
    files: int = 0
    lines: int = 0
    findings: list[str] = field(default_factory=list)


def scan_bytes(data: bytes) -> list[str]:
    """What in ``data`` looks like a secret: one short description per finding."""
    found: list[str] = []
    for pattern in PATTERNS:
        found += [f"{m.group(0)[:40]!r}" for m in pattern.finditer(data)]
    found += [f"a test secret ({s[:3]}...)" for s in sorted(KNOWN) if s.encode() in data]
    found += [f"a test private key ({k[:6]!r}...)" for k in KEYS if k in data]
    for m in BASE64_RUN.finditer(data):
        try:
            decoded = base64.b64decode(m.group(0) + b"=" * (-len(m.group(0)) % 4))
        except (binascii.Error, ValueError):
            continue
        if DER_PRIVATE.match(decoded):
            found.append(f"a DER private key in base64 ({m.group(0)[:12]!r}...)")
    for m in HEX_RUN.finditer(data):
        if DER_PRIVATE.match(bytes.fromhex(m.group(0).decode())):
            found.append(f"a DER private key in hex ({m.group(0)[:12]!r}...)")
    return found


def scan_logs(base: Path) -> ScanResult:
    """Scan every ``*.log`` file under ``base``."""
    result = ScanResult()
    for log in sorted(p for p in base.rglob("*.log") if p.is_file()):
        data = log.read_bytes()
        result.files += 1
        result.lines += data.count(b"\n")
        result.findings += [f"{log.relative_to(base)}: {f}" for f in scan_bytes(data)]
    return result
