"""Build repositories of N tags quickly, on our server and on notary 0.7.0.

* ours, as trustctl makes them (the default): ``trustctl init GUN`` (hash-bin layout,
  256 bins), then the N tags written straight into the owner's bins with the owner's
  keys and uploaded in a few large publishes (``tests.trustctl.bulk.fill``: exactly what
  N ``trustctl sign`` runs would leave), then ``trustctl trust export``. The state
  directory holds the owner's trust dir (``trust/``) and the exported ``root.json``.
* ours, flat (``layout="flat"``, for the python-tuf-only library client): root and
  targets signed directly with python-tuf's Metadata API (``tests.tufrepo.Owner``),
  every tag in ``targets``, uploaded in one publish; the state directory holds the
  pinned root and the encrypted targets key.
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


def _bench_target(tag: str) -> TargetFile:
    digest, size = manifest(tag)
    return TargetFile(
        length=size,
        hashes={"sha256": digest},
        path=tag,
        unrecognized_fields={"custom": {"mediaType": MEDIA_TYPE}},
    )


def build_ours(
    stack: OurStack,
    gun: str,
    n_tags: int,
    state: Path,
    timeout: float = 600,
    layout: str = "bins",
) -> None:
    """Make ``gun`` with ``n_tags`` tags on our server (see module docstring)."""
    if layout == "flat":
        _build_flat(stack, gun, n_tags, state, timeout)
        return
    from benchmarks.clients import TRUSTCTL, our_env
    from tests.trustctl.bulk import fill
    from trustctl.client import ServerClient
    from trustctl.transport import HttpTransport

    state.mkdir(parents=True, exist_ok=True)
    trust = state / "trust"
    env = {
        **our_env(),
        "TRUSTCTL_SERVER": stack.url,
        "TRUSTCTL_TLS_CA": str(stack.ca),
        "TRUSTCTL_TRUST_DIR": str(trust),
    }
    _run([TRUSTCTL, "init", gun], env, 120)
    client = ServerClient(stack.url, HttpTransport(ca_file=str(stack.ca), timeout=timeout))
    chunk = 50_000
    for start in range(0, n_tags, chunk):
        count = min(chunk, n_tags - start)
        fill(trust, env, client, gun, count, start=start, name=bulk_tag, make=_bench_target)
    _run([TRUSTCTL, "trust", "export", gun, "-o", str(state / "root.json")], env, 120)


def _build_flat(stack: OurStack, gun: str, n_tags: int, state: Path, timeout: float) -> None:
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
        targets[tag] = _bench_target(tag)
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
