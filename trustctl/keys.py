"""The offline key store: encrypted private keys under ``<trust dir>/private``.

Each key is one file, ``private/<keyid>.key`` (mode 0600, directory 0700), holding
an encrypted PKCS#8 PEM block (PBES2: PBKDF2-HMAC-SHA256, 600,000 iterations by
default, AES-256-CBC) with RFC 1421 style headers that say what the key is for::

    -----BEGIN ENCRYPTED PRIVATE KEY-----
    role: targets
    gun: 127.0.0.1:5000/library/app
    name: alice
    scheme: ecdsa-sha2-nistp256
    public: MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE...

    MIIBFjBRBgkqhkiG9w0BBQ0wRDAjBgkqhkiG9w0BBQwwFgQQ...
    -----END ENCRYPTED PRIVATE KEY-----

The public half is readable without a passphrase (``key list``, choosing signing
keys); the private half needs the passphrase of the key's role, taken from
:class:`PassphraseSource`: environment variables first (``TRUSTCTL_ROOT_PASSPHRASE``,
``TRUSTCTL_TARGETS_PASSPHRASE``, ``TRUSTCTL_DELEGATION_PASSPHRASE``, or Docker's
``DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE`` / ``..._REPOSITORY_PASSPHRASE``), else an
interactive prompt. Passphrases never come from argv.

Example:
    >>> store = KeyStore(Path("/tmp/t/private"), PassphraseSource({"TRUSTCTL_ROOT_PASSPHRASE": "pw"}))
    >>> info = store.generate("root", gun="127.0.0.1:5000/app")  # doctest: +SKIP
    >>> store.signer(info.keyid).sign(b"payload")  # doctest: +SKIP

Why one module of this size: the key file format, its encryption and the store's
file rules (modes, names, import and export) must change together, and every
function here reads or writes that one format.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from securesystemslib.signer import CryptoSigner, Key, SSlibKey

from trustctl.atomicfile import write_atomic
from trustctl.errors import MissingKeyError, PassphraseError, UsageError, WrongPassphraseError

if TYPE_CHECKING:
    from trustctl.kdf import Derivation, Pbes2Params
from trustctl.keyformat import (
    PrivateKey,
    encrypt_pkcs8,
    load_public_key_file,
    public_key_from_pem,
    public_key_to_pem,
    scheme_for,
)

__all__ = [
    "ALGORITHMS",
    "PASSPHRASE_ENV",
    "ROLES",
    "KeyInfo",
    "KeyStore",
    "PassphraseSource",
    "encrypt_pkcs8",
    "key_file_params",
    "load_public_key_file",
    "pem_body",
    "public_key_from_pem",
    "public_key_to_pem",
]

logger = logging.getLogger(__name__)

ROLES = ("root", "targets", "delegation")
ALGORITHMS = ("ecdsa", "ed25519", "rsa")
DEFAULT_KDF_ITERATIONS = 600_000
PREFETCH_MIN_ITERATIONS = 100_000
PASSPHRASE_ENV: Mapping[str, tuple[str, ...]] = {
    "root": ("TRUSTCTL_ROOT_PASSPHRASE", "DOCKER_CONTENT_TRUST_ROOT_PASSPHRASE"),
    "targets": ("TRUSTCTL_TARGETS_PASSPHRASE", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"),
    "delegation": ("TRUSTCTL_DELEGATION_PASSPHRASE", "DOCKER_CONTENT_TRUST_REPOSITORY_PASSPHRASE"),
}
_HEADER_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*): ?(.*)$")
_PEM_BLOCK_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----.*?-----END \1-----\r?\n?", re.DOTALL)
_KEYID_RE = re.compile(r"^[0-9a-f]{64}$")

Prompt = Callable[[str, bool], str]
"""``prompt(text, confirm) -> passphrase``; ``confirm`` asks twice (new keys)."""


@dataclass(frozen=True)
class KeyInfo:
    """What the store knows about a key without decrypting it."""

    keyid: str
    role: str
    public: Key
    path: Path
    gun: str | None = None
    name: str | None = None

    @property
    def algorithm(self) -> str:
        return self.public.scheme

    @property
    def label(self) -> str:
        """What people call it: "bins key" for the owner's bins key, else "<role> key"."""
        return "bins key" if self.role == "targets" and self.name == "bins" else f"{self.role} key"


class PassphraseSource:
    """Passphrases by key role: environment first, then ``prompt`` (if any).

    Args:
        environ: the environment.
        prompt: interactive prompt, or None when there is no terminal.
    """

    def __init__(self, environ: Mapping[str, str], prompt: Prompt | None = None) -> None:
        self._environ = environ
        self._prompt = prompt
        self._cache: dict[str, str] = {}

    @property
    def interactive(self) -> bool:
        return self._prompt is not None

    def from_env(self, role: str) -> str | None:
        for name in PASSPHRASE_ENV.get(role, ()):
            value = self._environ.get(name)
            if value:
                return value
        return None

    def get(self, role: str, *, purpose: str, new: bool = False, label: str | None = None) -> str:
        """The passphrase for keys of ``role`` (``label`` names the key in messages).

        Raises:
            PassphraseError: none in the environment and no terminal to ask on.
        """
        value = self.from_env(role) or self._cache.get(role)
        if value:
            return value
        label = label or f"{role} key"
        if self._prompt is None:
            names = " or ".join(PASSPHRASE_ENV.get(role, ("TRUSTCTL_DELEGATION_PASSPHRASE",)))
            raise PassphraseError(
                f"no passphrase for the {label} ({purpose}) and no terminal to ask on",
                hint=f"set {names}",
            )
        value = self._prompt(f"Passphrase for the {label} ({purpose})", new)
        if not value:
            raise PassphraseError(f"an empty passphrase is not allowed for the {label}")
        self._cache[role] = value
        return value

    def forget(self, role: str) -> None:
        self._cache.pop(role, None)

    def retry_allowed(self, role: str) -> bool:
        """A wrong passphrase may be retried only when it was typed, not from env."""
        return self._prompt is not None and self.from_env(role) is None


# --- the store ----------------------------------------------------------------------------


def _parse_key_file(path: Path, data: bytes) -> tuple[dict[str, str], bytes]:
    text = data.decode("ascii", errors="replace")
    headers: dict[str, str] = {}
    lines = text.splitlines()
    for line in lines[1:]:
        if not line.strip():
            break
        m = _HEADER_RE.match(line)
        if not m:
            break
        headers[m.group(1).lower()] = m.group(2).strip()
    return headers, data


class KeyStore:
    """Encrypted private keys, one file per key id.

    Args:
        directory: ``<trust dir>/private``.
        passphrases: where passphrases come from.
        kdf_iterations: PBKDF2 iterations for new files (tests use fewer).
    """

    def __init__(
        self,
        directory: Path,
        passphrases: PassphraseSource,
        *,
        kdf_iterations: int = DEFAULT_KDF_ITERATIONS,
    ) -> None:
        self.directory = directory
        self.passphrases = passphrases
        self._iterations = kdf_iterations
        self._signers: dict[str, CryptoSigner] = {}
        self._derivations: dict[str, Derivation] = {}

    # reading ------------------------------------------------------------------------

    def all_keys(self) -> list[KeyInfo]:
        """Every key in the store, sorted by role then key id."""
        if not self.directory.is_dir():
            return []
        infos = []
        for path in sorted(self.directory.glob("*.key")):
            info = self._info(path)
            if info is not None:
                infos.append(info)
        order = {r: i for i, r in enumerate(ROLES)}
        return sorted(
            infos, key=lambda k: (order.get(k.role, 9), k.gun or "", k.name or "", k.keyid)
        )

    def get(self, keyid: str) -> KeyInfo | None:
        if not _KEYID_RE.match(keyid):
            return None
        path = self.directory / f"{keyid}.key"
        return self._info(path) if path.exists() else None

    def find(self, prefix: str) -> KeyInfo:
        """The one key whose id starts with ``prefix`` (at least 6 hex digits).

        Raises:
            MissingKeyError: no key, or more than one, matches.
        """
        matches = (
            [k for k in self.all_keys() if k.keyid.startswith(prefix.lower())]
            if len(prefix) >= 6
            else []
        )
        if len(matches) != 1:
            why = "no key" if not matches else f"{len(matches)} keys"
            raise MissingKeyError(
                f"{why} in {self.directory} match key id {prefix!r}", hint="see `trustctl key list`"
            )
        return matches[0]

    def held(self, keyids: Iterable[str]) -> list[KeyInfo]:
        """The keys among ``keyids`` whose private half is in this store."""
        out = []
        for keyid in keyids:
            info = self.get(keyid)
            if info is not None:
                out.append(info)
        return out

    def signer(self, keyid: str, *, purpose: str = "signing") -> CryptoSigner:
        """Decrypt the private key ``keyid`` into a signer.

        Raises:
            MissingKeyError: the key is not in this store.
            PassphraseError / WrongPassphraseError: no passphrase, or a wrong one.
        """
        if keyid in self._signers:
            return self._signers[keyid]
        info = self.get(keyid)
        if info is None:
            raise MissingKeyError(f"private key {keyid[:12]}… is not in {self.directory}")
        derivation = self._derivations.pop(keyid, None)
        if derivation is not None:
            prefetched = self._signer_from(info, derivation, purpose)
            if prefetched is not None:
                return prefetched
        data = info.path.read_bytes()
        logger.debug("opening key %s… (PBKDF2, once per command)", keyid[:12])
        for attempt in range(3):
            passphrase = self.passphrases.get(info.role, purpose=purpose, label=info.label)
            try:
                private = serialization.load_pem_private_key(data, passphrase.encode())
                break
            except ValueError as e:
                self.passphrases.forget(info.role)
                if attempt < 2 and self.passphrases.retry_allowed(info.role):
                    continue
                names = " or ".join(PASSPHRASE_ENV.get(info.role, ()))
                raise WrongPassphraseError(
                    f"wrong passphrase for the {info.label} {keyid[:12]}…",
                    hint=f"check {names}" if not self.passphrases.interactive else "try again",
                ) from e
        actual = SSlibKey.from_crypto(private.public_key(), scheme=info.public.scheme)
        if actual.keyid != keyid:
            raise MissingKeyError(
                f"key file {info.path} is inconsistent: its private key is {actual.keyid[:12]}…",
                hint="the file was modified; re-import the key",
            )
        signer = CryptoSigner(private, info.public)  # type: ignore[arg-type]
        self._signers[keyid] = signer
        return signer

    def prefetch(self, keyid: str) -> bool:
        """Start deriving ``keyid``'s decryption key on another core (see
        :mod:`trustctl.kdf`) when its passphrase is in the environment; :meth:`signer`
        picks the result up. Never prompts. Returns whether it started."""
        if keyid in self._signers or keyid in self._derivations:
            return False
        info = self.get(keyid)
        passphrase = self.passphrases.from_env(info.role) if info is not None else None
        if info is None or not passphrase:
            return False
        from trustctl.kdf import Derivation

        params = key_file_params(info.path)
        if params is None or params.iterations < PREFETCH_MIN_ITERATIONS:
            return False  # a cheap KDF is not worth a thread
        logger.debug("opening key %s… (PBKDF2, once per command) in the background", keyid[:12])
        self._derivations[keyid] = Derivation(passphrase, params)
        return True

    def likely_signing_key(self, gun: str) -> str | None:
        """The key a ``sign`` of ``gun`` will most likely need: the repository's bins key,
        else the only signer key, else the repository's targets key (a guess: a wrong
        one only costs background work)."""
        keys = self.all_keys()
        bins = [k for k in keys if k.gun == gun and k.name == "bins" and k.role == "targets"]
        delegation = [k for k in keys if k.role == "delegation"]
        targets = [k for k in keys if k.gun == gun and k.role == "targets" and not k.name]
        for candidates in (bins, delegation if len(delegation) == 1 else [], targets):
            if candidates:
                return candidates[0].keyid
        return None

    def _signer_from(
        self, info: KeyInfo, derivation: Derivation, purpose: str
    ) -> CryptoSigner | None:
        from trustctl.kdf import decrypt

        passphrase = self.passphrases.get(info.role, purpose=purpose, label=info.label)
        if passphrase != derivation.passphrase:
            return None
        key = derivation.key()
        private = decrypt(derivation.params, key) if key is not None else None
        if private is None:
            return None  # the in-process decryption reports what is wrong
        actual = SSlibKey.from_crypto(private.public_key(), scheme=info.public.scheme)
        if actual.keyid != info.keyid:
            return None
        signer = CryptoSigner(private, info.public)  # type: ignore[arg-type]
        self._signers[info.keyid] = signer
        return signer

    # writing ------------------------------------------------------------------------

    def generate(
        self,
        role: str,
        *,
        gun: str | None = None,
        name: str | None = None,
        algorithm: str = "ecdsa",
    ) -> KeyInfo:
        """Create and store a new key pair for ``role``.

        Raises:
            UsageError: unknown role or algorithm.
            PassphraseError: no passphrase available.
        """
        if role not in ROLES:
            raise UsageError(f"unknown key role {role!r}: expected one of {', '.join(ROLES)}")
        private: PrivateKey
        if algorithm == "ecdsa":
            private = ec.generate_private_key(ec.SECP256R1())
        elif algorithm == "ed25519":
            private = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "rsa":
            private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
        else:
            raise UsageError(
                f"unknown algorithm {algorithm!r}: expected one of {', '.join(ALGORITHMS)}"
            )
        passphrase = self.passphrases.get(role, purpose=f"new {role} key", new=True)
        return self._store(private, role=role, gun=gun, name=name, passphrase=passphrase)

    def import_pem(
        self,
        data: bytes,
        *,
        role: str | None,
        gun: str | None,
        name: str | None,
        input_passphrase: Callable[[], str | None],
    ) -> list[KeyInfo]:
        """Import private keys from PEM text (one or more blocks, encrypted or not).

        Headers ``role:``, ``gun:`` and ``name:`` in a block are used unless the
        arguments override them; the default role is ``delegation``.

        Raises:
            UsageError: no private key in the input.
            WrongPassphraseError: an encrypted block did not decrypt.
        """
        blocks = [m.group(0) for m in _PEM_BLOCK_RE.finditer(data) if b"PRIVATE KEY" in m.group(1)]
        if not blocks:
            raise UsageError("no PEM private key found in the input")
        loaded = []  # every block is read and checked before any is stored
        for block in blocks:
            headers, _ = _parse_key_file(Path("-"), block)
            key_role = role or headers.get("role") or "delegation"
            if key_role not in ROLES:
                raise UsageError(
                    f"unknown key role {key_role!r}: expected one of {', '.join(ROLES)}"
                )
            password = None
            if b"ENCRYPTED" in block:
                password = input_passphrase() or self.passphrases.from_env(key_role)
                if password is None:
                    raise PassphraseError(
                        "the key to import is encrypted and no passphrase was given",
                        hint="set TRUSTCTL_IMPORT_PASSPHRASE (or the role's TRUSTCTL_*_PASSPHRASE)",
                    )
            try:
                private = serialization.load_pem_private_key(
                    block, password.encode() if password else None
                )
            except (ValueError, TypeError, UnsupportedAlgorithm) as e:
                raise WrongPassphraseError(f"cannot decrypt the key to import: {e}") from e
            scheme_for(private.public_key())  # UsageError for a key type TUF cannot use
            key_gun, key_name = (
                gun or headers.get("gun") or None,
                name or headers.get("name") or None,
            )
            loaded.append((private, key_role, key_gun, key_name))
        imported = []
        for private, key_role, key_gun, key_name in loaded:
            passphrase = self.passphrases.get(
                key_role, purpose=f"imported {key_role} key", new=True
            )
            imported.append(
                self._store(
                    private,  # type: ignore[arg-type]
                    role=key_role,
                    gun=key_gun,
                    name=key_name,
                    passphrase=passphrase,
                )
            )
        return imported

    def add_private(
        self, private: PrivateKey, *, role: str, gun: str | None, name: str | None
    ) -> tuple[KeyInfo, bool]:
        """Store an already decrypted private key (Notary's key files); (info, stored):
        a key the store already holds is left as it is.

        Raises:
            UsageError: a role or key type trustctl cannot use.
            PassphraseError: no passphrase for ``role``.
        """
        if role not in ROLES:
            raise UsageError(f"unknown key role {role!r}: expected one of {', '.join(ROLES)}")
        public = private.public_key()
        existing = self.get(SSlibKey.from_crypto(public, scheme=scheme_for(public)).keyid)
        if existing is not None:
            return existing, False
        passphrase = self.passphrases.get(role, purpose=f"imported {role} key", new=True)
        return self._store(private, role=role, gun=gun, name=name, passphrase=passphrase), True

    def export(self, keyid: str) -> bytes:
        """The stored (still encrypted) PEM of ``keyid``, headers included."""
        info = self.get(keyid)
        if info is None:
            raise MissingKeyError(f"private key {keyid[:12]}… is not in {self.directory}")
        return info.path.read_bytes()

    def remove(self, keyid: str) -> None:
        info = self.get(keyid)
        if info is None:
            raise MissingKeyError(f"private key {keyid[:12]}… is not in {self.directory}")
        info.path.unlink()
        self._signers.pop(keyid, None)

    # internals ------------------------------------------------------------------------

    def _store(
        self,
        private: PrivateKey,
        *,
        role: str,
        gun: str | None,
        name: str | None,
        passphrase: str,
    ) -> KeyInfo:
        public = private.public_key()
        key = SSlibKey.from_crypto(public, scheme=scheme_for(public))
        der = encrypt_pkcs8(private, passphrase, self._iterations)
        spki = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        headers = [f"role: {role}"]
        if gun:
            headers.append(f"gun: {gun}")
        if name:
            headers.append(f"name: {name}")
        headers.append(f"scheme: {key.scheme}")
        headers.append(f"public: {base64.b64encode(spki).decode()}")
        body = base64.encodebytes(der).decode().strip().splitlines()
        pem = (
            "\n".join(
                [
                    "-----BEGIN ENCRYPTED PRIVATE KEY-----",
                    *headers,
                    "",
                    *body,
                    "-----END ENCRYPTED PRIVATE KEY-----",
                ]
            )
            + "\n"
        )
        path = self.directory / f"{key.keyid}.key"
        _write_private(self.directory, path, pem.encode())
        logger.debug("stored %s key %s", role, key.keyid)
        self._signers[key.keyid] = CryptoSigner(private, key)
        return KeyInfo(key.keyid, role, key, path, gun, name)

    def _info(self, path: Path) -> KeyInfo | None:
        try:
            headers, _ = _parse_key_file(path, path.read_bytes())
            spki = base64.b64decode(headers["public"])
            public = serialization.load_der_public_key(spki)
            key = SSlibKey.from_crypto(public, scheme=headers.get("scheme") or scheme_for(public))
        except (OSError, KeyError, ValueError, UsageError) as e:
            logger.warning("ignoring unreadable key file %s: %s", path, e)
            return None
        if key.keyid != path.stem:
            logger.warning("ignoring key file %s: it holds key %s", path, key.keyid)
            return None
        return KeyInfo(
            key.keyid,
            headers.get("role", "delegation"),
            key,
            path,
            headers.get("gun") or None,
            headers.get("name") or None,
        )


def key_file_params(path: Path) -> Pbes2Params | None:
    """The PBES2 parameters of a key file trustctl wrote (None if unreadable or other)."""
    from trustctl.kdf import pbes2_params

    try:
        return pbes2_params(pem_body(path.read_bytes()))
    except (OSError, ValueError):
        return None


def pem_body(data: bytes) -> bytes:
    """The DER inside a key file's PEM block (after its header lines)."""
    lines = data.decode("ascii").splitlines()
    body = []
    in_body = False
    for line in lines[1:]:
        if line.startswith("-----END"):
            break
        if in_body:
            body.append(line.strip())
        elif not line.strip():
            in_body = True
        elif not _HEADER_RE.match(line):
            in_body = True  # no headers: the body starts right away
            body.append(line.strip())
    return base64.b64decode("".join(body), validate=True)


def _write_private(directory: Path, path: Path, data: bytes) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    write_atomic(path, data, mode=0o600)
