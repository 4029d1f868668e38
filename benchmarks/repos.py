"""Build repositories of N tags quickly, on our server and on notary 0.7.0.

* ours: the owner's root and targets are built and signed directly with python-tuf's
  Metadata API (``tests.tufrepo.Owner``) and uploaded in one publish; the state
  directory the library client needs (pinned root, encrypted targets key) is written
  beside it.
* notary: ``notary init GUN -p``, then the N additions are written as change files in
  the CLI's own changelist format (exactly what ``notary addhash GUN TAG SIZE
  --sha256 HEX`` writes, without starting N processes), then one ``notary publish``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import time
import uuid
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import TargetFile

from benchmarks.stacks import NotaryStack, OurStack
from tests.e2e.remote import Remote
from tests.tufrepo import MEDIA_TYPE, Owner

TARGETS_PASSPHRASE = "bench targets passphrase"


def manifest(tag: str) -> tuple[str, int]:
    """(sha256 hex, size) of the made-up manifest a tag points at."""
    content = f"manifest of {tag}".encode()
    return hashlib.sha256(content).hexdigest(), len(content)


def bulk_tag(i: int) -> str:
    return f"bulk-{i:06d}"


def build_ours(stack: OurStack, gun: str, n_tags: int, state: Path, timeout: float = 600) -> None:
    state.mkdir(parents=True, exist_ok=True)
    remote = Remote(stack.url, gun, str(stack.ca))
    key = ec.generate_private_key(ec.SECP256R1())
    owner = Owner(
        timestamp_key=remote.server_key("timestamp"),
        snapshot_key=remote.server_key("snapshot"),
        targets_signer=CryptoSigner(key),
    )
    targets = owner.targets.targets
    for i in range(n_tags):
        tag = bulk_tag(i)
        digest, size = manifest(tag)
        targets[tag] = TargetFile(
            length=size,
            hashes={"sha256": digest},
            path=tag,
            unrecognized_fields={"custom": {"mediaType": MEDIA_TYPE}},
        )
    root = owner.root_bytes()
    resp = remote.publish({"root": root, "targets": owner.targets_bytes()}, timeout=timeout)
    if resp.status != 200:
        raise RuntimeError(
            f"building {gun} ({n_tags} tags) failed: HTTP {resp.status} {resp.data[:500]!r}"
        )
    (state / "root.json").write_bytes(root)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(TARGETS_PASSPHRASE.encode()),
    )
    (state / "targets-key.pem").write_bytes(pem)
    (state / "targets-key.pem").chmod(0o600)


def _run(argv: list[str], env: dict[str, str], timeout: float) -> None:
    result = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.decode()[-2000:]}"
        )


def build_notary(stack: NotaryStack, gun: str, n_tags: int, timeout: float = 900) -> None:
    env = stack.client_env()
    _run(stack.cli("init", gun, "-p"), env, 120)
    if n_tags == 0:
        return
    changelist = stack.trust_dir / "tuf" / gun / "changelist"
    changelist.mkdir(parents=True, exist_ok=True)
    start = time.time_ns()
    for i in range(n_tags):
        tag = bulk_tag(i)
        digest, size = manifest(tag)
        meta = {
            "length": size,
            "hashes": {"sha256": base64.b64encode(bytes.fromhex(digest)).decode()},
        }
        change = {
            "action": "create",
            "role": "targets",
            "type": "target",
            "path": tag,
            "data": base64.b64encode(json.dumps(meta, separators=(",", ":")).encode()).decode(),
        }
        (changelist / f"{start + i:020d}_{uuid.uuid4()}.change").write_text(json.dumps(change))
    _run(stack.cli("publish", gun), env, timeout)
