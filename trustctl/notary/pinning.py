"""How a deployer anchors trust in a Notary-dialect repository, and where it is kept.

Notary's client pins a repository's root one of three ways (``trust_pinning`` in its
config; reference section 1b), and trustctl offers the same three, chosen on purpose:

* ``certs``: the root's certificate ids (the key ids root.json lists for the root
  role, as ``notary`` and ``docker trust inspect`` print them);
* ``ca``: a CA bundle that must have issued a root certificate (kept by value in
  the pin, so changing the file later changes nothing);
* ``tofu``: whatever root the server sends first (said explicitly, and announced).

As in Notary (0.4.0+), the pin is checked on every root, rotations included, and
every new root must also be signed by a threshold of the previous root's
certificates. Layout, per GUN::

    <trust dir>/tuf/<gun>/notary/pin.json     the pin (mode, ids or CA bundle)
    <trust dir>/tuf/<gun>/notary/root.json    the newest verified root (raw bytes)
    <trust dir>/tuf/<gun>/notary/state.json   highest verified version of every role
    <trust dir>/tuf/<gun>/notary/trusted_state.json   verified from this pin before
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

from trustctl.atomicfile import write_atomic
from trustctl.errors import UsageError
from trustctl.notary.model import RootCert, certificate_problem, chains_to
from trustctl.trustedstate import clear_marker, notary_problem, record_verified, refuse

__all__ = ["NotaryPin", "NotaryState", "load_ca_bundle"]

CERTS, CA, TOFU = "certs", "ca", "tofu"


def load_ca_bundle(pem: bytes, what: str) -> list[x509.Certificate]:
    """The certificates of a PEM CA bundle.

    Raises:
        UsageError: no certificate in it.
    """
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise UsageError(f"{what} is not a PEM certificate bundle: {e}") from e
    if not certs:
        raise UsageError(f"{what} holds no certificate")
    return certs


@dataclass(frozen=True)
class NotaryPin:
    """A trust pin for one GUN."""

    mode: str
    cert_ids: tuple[str, ...] = ()
    ca_pem: bytes = b""
    source: str = ""
    pinned_at: str = ""

    def describe(self) -> str:
        if self.mode == CERTS:
            return "root certificate id " + ", ".join(i[:16] + "…" for i in self.cert_ids)
        if self.mode == CA:
            return "CA bundle " + (self.source or "")
        return "trust on first use"

    def accepts(self, cert: RootCert, now: datetime) -> bool:
        """Notary's trust-pin check of one valid root certificate."""
        if self.mode == CERTS:
            return cert.keyid in self.cert_ids
        if self.mode == CA:
            anchors = [
                c
                for c in load_ca_bundle(self.ca_pem, "the pinned CA bundle")
                if certificate_problem(c, now) is None
            ]
            return chains_to(cert, anchors)
        return self.mode == TOFU

    def to_json(self) -> dict[str, Any]:
        return {
            "dialect": "notary",
            "mode": self.mode,
            "cert_ids": list(self.cert_ids),
            "ca_pem": self.ca_pem.decode(),
            "source": self.source,
            "pinned_at": self.pinned_at,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> NotaryPin:
        return cls(
            str(doc["mode"]),
            tuple(str(i) for i in doc.get("cert_ids") or ()),
            str(doc.get("ca_pem") or "").encode(),
            str(doc.get("source") or ""),
            str(doc.get("pinned_at") or ""),
        )

    @classmethod
    def by_cert_ids(cls, ids: Iterable[str]) -> NotaryPin:
        ids = tuple(i.lower() for i in ids)
        for i in ids:
            if len(i) != 64 or any(c not in "0123456789abcdef" for c in i):
                raise UsageError(f"{i[:70]!r} is not a full 64-hex-digit root certificate id")
        return cls(CERTS, ids, source="certificate id " + ", ".join(ids), pinned_at=_now())

    @classmethod
    def by_ca(cls, pem: bytes, source: str) -> NotaryPin:
        load_ca_bundle(pem, source)
        return cls(CA, ca_pem=pem, source=source, pinned_at=_now())

    @classmethod
    def tofu(cls) -> NotaryPin:
        return cls(TOFU, source="tofu", pinned_at=_now())


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NotaryState:
    """The pin and the verified state of one GUN under ``<gun dir>/notary``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def pin(self) -> NotaryPin | None:
        try:
            return NotaryPin.from_json(json.loads((self.directory / "pin.json").read_text()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise UsageError(
                f"cannot read {self.directory / 'pin.json'}: {e}",
                hint="pin the repository again (`trustctl trust pin`)",
            ) from e

    def pin_bytes(self) -> bytes | None:
        """``pin.json`` as stored (not parsed), or None: what a process keeping verified
        state in memory compares to notice a re-pin."""
        try:
            return (self.directory / "pin.json").read_bytes()
        except FileNotFoundError:
            return None

    def marker(self) -> bytes | None:
        """``state.json`` as stored, or None: changes when any process verified a newer
        state of the repository."""
        try:
            return (self.directory / "state.json").read_bytes()
        except FileNotFoundError:
            return None

    def set_pin(self, pin: NotaryPin) -> None:
        """Pin (and forget the verified state: the next run starts from the pin)."""
        self.clear()
        write_atomic(self.directory / "pin.json", json.dumps(pin.to_json(), indent=1).encode())

    def unpin(self) -> bool:
        existed = (self.directory / "pin.json").exists()
        shutil.rmtree(self.directory, ignore_errors=True)
        return existed

    def clear(self) -> None:
        """Forget the verified state and the mark that it was verified."""
        clear_marker(self.directory)
        for name in ("root.json", "state.json"):
            with contextlib.suppress(FileNotFoundError):
                (self.directory / name).unlink()

    def check(self, gun: str) -> None:
        """Before the client workflow reads the verified state.

        Raises:
            StateCorruptError: verified before from this pin, and the state does not
                read back whole (see :mod:`trustctl.trustedstate`).
        """
        problem = notary_problem(self.directory, self.pin_bytes())
        if problem:
            raise refuse(gun, problem, notary=True)

    def trusted_root(self) -> bytes | None:
        try:
            return (self.directory / "root.json").read_bytes()
        except FileNotFoundError:
            return None

    def versions(self) -> dict[str, int]:
        try:
            doc = json.loads((self.directory / "state.json").read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return {str(k): int(v) for k, v in (doc.get("versions") or {}).items()}

    def save(self, root: bytes, versions: Mapping[str, int]) -> None:
        """Remember the newest verified root and ratchet every role's version up."""
        merged = self.versions()
        for role, version in versions.items():
            merged[role] = max(version, merged.get(role, 0))
        write_atomic(self.directory / "root.json", root)
        write_atomic(
            self.directory / "state.json",
            json.dumps({"versions": dict(sorted(merged.items()))}, indent=1).encode(),
        )
        pin = self.pin_bytes()
        if pin is not None:
            record_verified(self.directory, pin)
