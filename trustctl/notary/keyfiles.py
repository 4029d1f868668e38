"""Notary's and Docker's private key files, read for ``trustctl key import``.

Notary (``~/.notary/private``) and ``docker trust`` (``~/.docker/trust/private``)
keep one key per file, ``<keyid>.key``: an encrypted PKCS#8 PEM block whose headers
say ``role:`` (``root``, ``targets``, ``snapshot``, a delegation such as
``targets/releases``, or, for ``docker trust key generate NAME``, the signer's name)
and, for repository keys, ``gun:``. Passphrases are Notary's and Docker's own:

* ``NOTARY_ROOT_PASSPHRASE``, ``NOTARY_TARGETS_PASSPHRASE``,
  ``NOTARY_SNAPSHOT_PASSPHRASE``, ``NOTARY_DELEGATION_PASSPHRASE`` (every role that
  is not a base role);
* ``DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE``, ``DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE``
  (every other role);
* else a prompt on a terminal.

Roles are kept: ``root`` and ``targets`` stay root and targets keys (with their
GUN); any delegation key becomes a signer key, named after its Docker signer (the
role header, or the last part of ``targets/<name>``). Snapshot and timestamp keys
are not imported: on a TUF 1.0 repository the trust server holds them.

Every file is read and decrypted before anything is written: a bad file (wrong
passphrase, truncated, not a Notary key) is one error line and changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from trustctl.errors import PassphraseError, UsageError, WrongPassphraseError

__all__ = [
    "NotaryKeyFile",
    "SkippedKey",
    "is_notary_key_file",
    "key_files_in",
    "notary_passphrase",
    "read_notary_keys",
    "trustctl_role",
]

_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_BEGIN_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n")
_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9_-]*): ?(.*)$")
_SIGNER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
BASE_ROLES = ("root", "targets", "snapshot", "timestamp")
SERVER_HELD = ("snapshot", "timestamp")

PromptFn = Callable[[str], "str | None"]


@dataclass(frozen=True)
class NotaryKeyFile:
    """One decrypted Notary key: where it came from and what it is for."""

    path: Path
    notary_role: str
    gun: str | None
    private: object  # a cryptography private key

    @property
    def role(self) -> str:
        return trustctl_role(self.notary_role)[0]

    @property
    def name(self) -> str | None:
        return trustctl_role(self.notary_role)[1]


@dataclass(frozen=True)
class SkippedKey:
    path: Path
    notary_role: str
    reason: str


def trustctl_role(notary_role: str) -> tuple[str, str | None]:
    """(trustctl role, signer name) of a Notary key role."""
    if notary_role in ("root", "targets"):
        return notary_role, None
    name = notary_role.rsplit("/", 1)[-1] if notary_role.startswith("targets/") else notary_role
    if name in ("releases", "delegation") or not _SIGNER_RE.match(name):
        return "delegation", None
    return "delegation", name


def notary_passphrase(environ: Mapping[str, str], notary_role: str) -> str | None:
    """The passphrase Notary or Docker would use for a key of ``notary_role``."""
    base = notary_role if notary_role in BASE_ROLES else "delegation"
    names = [f"NOTARY_{base.upper()}_PASSPHRASE"]
    if base != "delegation" and notary_role not in BASE_ROLES:
        names.append("NOTARY_DELEGATION_PASSPHRASE")
    names.append(
        "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"
        if notary_role == "root"
        else "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"
    )
    for name in names:
        if environ.get(name):
            return environ[name]
    return None


def _headers(body: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in body.decode("ascii", errors="replace").splitlines():
        if not line.strip():
            break
        m = _HEADER_RE.match(line)
        if m is None:
            break
        headers[m.group(1).lower()] = m.group(2).strip()
    return headers


def is_notary_key_file(data: bytes) -> bool:
    """Whether ``data`` looks like a Notary key file: a private key block with a
    ``role`` header and none of trustctl's own (``public``)."""
    m = _BEGIN_RE.search(data)  # a truncated file (no END line) is still recognised
    if m is None or b"PRIVATE KEY" not in m.group(1):
        return False
    headers = _headers(data[m.end() :])
    return "role" in headers and "public" not in headers


def key_files_in(directory: Path) -> list[Path]:
    """The key files of a Notary or Docker trust directory (or its ``private``)."""
    private = directory / "private" if (directory / "private").is_dir() else directory
    files = sorted(p for p in private.glob("*.key") if p.is_file())
    # Notary before 0.6 kept root keys and repository keys in subdirectories
    for sub in ("root_keys", "tuf_keys"):
        if (private / sub).is_dir():
            files += sorted(p for p in (private / sub).rglob("*.key") if p.is_file())
    return files


def _read_one(
    path: Path,
    data: bytes,
    environ: Mapping[str, str],
    prompt: PromptFn | None,
    override: str | None,
) -> NotaryKeyFile | SkippedKey:
    text = data.lstrip()
    if not text.startswith(b"-----BEGIN "):
        raise UsageError(f"{path} is not a PEM key file")
    m = _BLOCK_RE.search(data)
    if m is None:
        raise UsageError(f"{path} is truncated: its PEM block has no END line")
    label, body = m.group(1), m.group(2)
    if b"PRIVATE KEY" not in label:
        raise UsageError(
            f"{path} holds a {label.decode(errors='replace').lower()}, not a Notary private key"
        )
    headers = _headers(body)
    role = headers.get("role")
    if not role:
        raise UsageError(
            f"{path} is not a Notary key file: it has no role header",
            hint="import plain PEM keys with `trustctl key import FILE --role ROLE`",
        )
    if role in SERVER_HELD:
        return SkippedKey(
            path, role, "the trust server holds snapshot and timestamp keys on TUF 1.0 repositories"
        )
    password = override or notary_passphrase(environ, role)
    if password is None and prompt is not None:
        password = prompt(f"Passphrase of the Notary {role} key {path.name}")
    if password is None and b"ENCRYPTED" in label:
        base = role if role in BASE_ROLES else "delegation"
        raise PassphraseError(
            f"no passphrase for the Notary {role} key {path.name} and no terminal to ask on",
            hint=f"set NOTARY_{base.upper()}_PASSPHRASE (or DOCKER_CONTENT_TRUST_*_PASSPHRASE)",
        )
    try:
        private = serialization.load_pem_private_key(
            m.group(0), password.encode() if password and b"ENCRYPTED" in label else None
        )
    except (TypeError, UnsupportedAlgorithm) as e:
        raise UsageError(f"{path} is not a key trustctl can use: {e}") from e
    except ValueError as e:
        if b"ENCRYPTED" in label and _well_formed(m.group(0)):
            raise WrongPassphraseError(
                f"wrong passphrase for the Notary {role} key {path.name}",
                hint="check NOTARY_*_PASSPHRASE / DOCKER_CONTENT_TRUST_*_PASSPHRASE",
            ) from e
        raise UsageError(f"{path} is damaged or truncated: its key does not parse") from e
    return NotaryKeyFile(path, role, headers.get("gun") or None, private)


def _well_formed(pem: bytes) -> bool:
    """Whether an encrypted PEM block's DER parses (then a failure is the passphrase)."""
    import base64

    lines = [
        line
        for line in pem.decode("ascii", errors="replace").splitlines()[1:-1]
        if line.strip() and not _HEADER_RE.match(line)
    ]
    try:
        der = base64.b64decode("".join(lines), validate=True)
    except ValueError:
        return False
    # a complete DER SEQUENCE: 0x30, a length, and exactly that many bytes
    if len(der) < 2 or der[0] != 0x30:
        return False
    size, offset = der[1], 2
    if size & 0x80:
        count = size & 0x7F
        size, offset = int.from_bytes(der[2 : 2 + count], "big"), 2 + count
    return len(der) == offset + size


def read_notary_keys(
    paths: list[Path],
    environ: Mapping[str, str],
    *,
    prompt: PromptFn | None = None,
    passphrase: str | None = None,
) -> tuple[list[NotaryKeyFile], list[SkippedKey]]:
    """Read and decrypt every Notary key file of ``paths`` (nothing is written).

    Raises:
        UsageError: a file is not a complete Notary key file.
        PassphraseError / WrongPassphraseError: a passphrase is missing or wrong.
    """
    keys: list[NotaryKeyFile] = []
    skipped: list[SkippedKey] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror}") from e
        got = _read_one(path, data, environ, prompt, passphrase)
        (skipped if isinstance(got, SkippedKey) else keys).append(got)  # type: ignore[arg-type]
    return keys, skipped
