"""Debian's notary 0.7.0 as a peer in end-to-end tests: its server and signer on
127.0.0.1 (started by ``benchmarks.stacks.start_notary``: HTTPS, gRPC with mutual TLS,
memory storage) and its CLI run by "people" with their own trust directories.

A missing ``notary`` package fails the test with the package to install.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.stacks import NOTARY_BIN, NotaryStack, base_env, notary_available, start_notary
from tests.secrets import remember

__all__ = ["NotaryPerson", "NotaryStack", "require_notary", "start_notary"]


def require_notary() -> None:
    if not notary_available():
        pytest.fail(
            "Debian's notary package (notary, notary-server, notary-signer 0.7.0) is not installed: "
            "run scripts/install-system-deps.sh"
        )


@dataclass
class NotaryPerson:
    """Someone using the real ``notary`` CLI with their own trust directory."""

    name: str
    stack: NotaryStack
    trust_dir: Path

    @property
    def passphrase(self) -> str:
        return remember(f"{self.name} notary passphrase, test only")

    def env(self) -> dict[str, str]:
        p = self.passphrase
        return {
            **base_env(),
            "NOTARY_ROOT_PASSPHRASE": p,
            "NOTARY_TARGETS_PASSPHRASE": p,
            "NOTARY_SNAPSHOT_PASSPHRASE": p,
            "NOTARY_DELEGATION_PASSPHRASE": p,
        }

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [NOTARY_BIN, "-c", str(self.stack.client_config), "-d", str(self.trust_dir), *args]
        proc = subprocess.run(
            argv,
            check=False,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{' '.join(args)}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def lookup(self, gun: str, tag: str) -> tuple[str, int]:
        """``notary lookup``: (sha256:HEX, size)."""
        out = self.run("lookup", gun, tag).stdout.split()
        assert out[0] == tag, out
        return out[1], int(out[2])

    def root_cert_id(self, gun: str) -> str:
        """The root certificate id (what ``docker trust inspect`` shows as the root key)."""
        root = json.loads((self.trust_dir / "tuf" / gun / "metadata" / "root.json").read_text())
        (cert_id,) = root["signed"]["roles"]["root"]["keyids"]
        return str(cert_id)

    def metadata(self, gun: str, role: str) -> dict[str, object]:
        path = self.trust_dir / "tuf" / gun / "metadata" / f"{role}.json"
        doc: dict[str, object] = json.loads(path.read_text())
        return doc

    def generate_signer_key(self, name: str, directory: Path) -> tuple[Path, Path, str]:
        """``notary key generate --role NAME -o``: (public PEM, private key file, key id),
        then the private file placed in this person's trust dir as docker trust keeps
        it (``private/<keyid>.key``, role header = the signer's name)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.run("key", "generate", "ecdsa", "--role", name, "-o", str(directory / name))
        public, private = directory / f"{name}.pem", directory / f"{name}-key.pem"
        body = "".join(
            line
            for line in public.read_text().splitlines()
            if line and ":" not in line and "-----" not in line
        )
        # Notary's key id: SHA-256 of the key's canonical JSON (computed here independently)
        doc = {"keytype": "ecdsa", "keyval": {"private": None, "public": body}}
        keyid = hashlib.sha256(
            json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()
        target = self.trust_dir / "private" / f"{keyid}.key"
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        target.write_bytes(private.read_bytes())
        target.chmod(0o600)
        return public, target, keyid
