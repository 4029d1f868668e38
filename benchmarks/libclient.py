"""A minimal publishing and verifying client for the benchmark ("library client").

Run as its own process, as a user's command would be: it does what ``trustctl sign``
and ``trustctl verify`` do on the wire, with python-tuf only (Metadata API to sign,
``ngclient.Updater`` to verify), so that the benchmark does not depend on the CLI.
Only ``warm-api`` imports trustctl: it measures trustctl's library API.

State directory of one repository (made by ``benchmarks/repos.py``)::

    root.json          the pinned root (trust anchor)
    targets-key.pem    the targets key, encrypted PKCS#8 (passphrase in
                       TRUSTCTL_TARGETS_PASSPHRASE, like trustctl)
    cache/             ngclient's metadata cache (delete all but root.json = cold)
    trustctl/          warm-api's trust dir (root pinned from root.json at each start)

Commands (exit 0 on success, 1 on a trust failure, 3 on a network/server error)::

    libclient.py publish URL CA GUN STATE TAG SHA256HEX SIZE
    libclient.py verify  URL CA GUN STATE TAG
    libclient.py list    URL CA GUN STATE
    libclient.py warm-api URL CA GUN STATE TAG REPS       (prints JSON seconds per verify)
    libclient.py warm-ngclient URL CA GUN STATE TAG REPS  (the same, python-tuf's Updater)

``warm-api`` is the "warm process, library API" row: trustctl's library API
(:class:`trustctl.api.Verifier`, trusted state kept in memory, one timestamp fetch
per verify), with the root pinned in ``STATE/trustctl``. ``warm-ngclient`` makes a
new ``ngclient.Updater`` on the warm cache for each verify, for comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import urllib3
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api import exceptions
from tuf.api.metadata import Metadata, TargetFile, Targets
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# python-tuf's default (5 MB) is below a flat 100,000-tag targets file (~20 MB).
CONFIG = UpdaterConfig(targets_max_length=512 * 1024 * 1024, snapshot_max_length=64 * 1024 * 1024)


class Fetcher(FetcherInterface):
    """HTTPS with exactly one trusted CA (never the environment's bundles)."""

    def __init__(self, pool: urllib3.PoolManager) -> None:
        self.pool = pool

    def _fetch(self, url: str) -> Iterator[bytes]:
        resp = self.pool.request("GET", url, timeout=60, retries=False)
        if resp.status >= 400:
            raise exceptions.DownloadHTTPError(f"HTTP {resp.status} for {url}", resp.status)
        return iter([resp.data])


def _updater(url: str, gun: str, state: Path, pool: urllib3.PoolManager) -> Updater:
    cache = state / "cache"
    if not (cache / "root.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(state / "root.json", cache / "root.json")
    return Updater(
        str(cache),
        f"{url}/v2/{gun}/_trust/tuf/",
        fetcher=Fetcher(pool),
        config=CONFIG,
        bootstrap=None,
    )


def publish(url: str, ca: str, gun: str, state: Path, tag: str, digest: str, size: int) -> int:
    pool = urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED")
    passphrase = os.environ["TRUSTCTL_TARGETS_PASSPHRASE"].encode()
    signer = CryptoSigner(
        load_pem_private_key((state / "targets-key.pem").read_bytes(), passphrase)
    )
    for _attempt in range(20):
        up = _updater(url, gun, state, pool)
        up.refresh()  # verify the current state before editing it, as a client must
        md = Metadata[Targets].from_file(str(state / "cache" / "targets.json"))
        signed = md.signed
        signed.targets[tag] = TargetFile(
            length=size,
            hashes={"sha256": digest},
            path=tag,
            unrecognized_fields={"custom": {"mediaType": MEDIA_TYPE}},
        )
        signed.version += 1
        signed.expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
        md.sign(signer, append=False)
        resp = pool.request(
            "POST",
            f"{url}/v2/{gun}/_trust/tuf/",
            fields=[("files", ("targets", md.to_bytes(), "application/json"))],
            timeout=300,
            retries=False,
        )
        if resp.status == 200:
            return 0
        if resp.status != 409:
            print(f"publish failed: HTTP {resp.status}: {resp.data[:500]!r}", file=sys.stderr)
            return 3
    return 3


def verify(
    url: str, ca: str, gun: str, state: Path, tag: str, pool: urllib3.PoolManager | None = None
) -> int:
    pool = pool or urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED")
    up = _updater(url, gun, state, pool)
    up.refresh()
    info = up.get_targetinfo(tag)
    if info is None:
        print(f"{tag}: not signed", file=sys.stderr)
        return 1
    print(f"{tag} sha256:{info.hashes['sha256']} {info.length}")
    return 0


def list_tags(url: str, ca: str, gun: str, state: Path) -> int:
    pool = urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED")
    up = _updater(url, gun, state, pool)
    up.refresh()
    md = Metadata[Targets].from_file(str(state / "cache" / "targets.json"))
    out = [
        f"{name}\t{t.hashes['sha256']}\t{t.length}" for name, t in sorted(md.signed.targets.items())
    ]
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def warm_api(url: str, ca: str, gun: str, state: Path, tag: str, reps: int) -> int:
    """Verify ``tag`` ``reps`` times in this process through trustctl's library API."""
    from trustctl.api import Verifier
    from trustctl.errors import TrustctlError
    from trustctl.truststore import TrustStore

    trust_dir = state / "trustctl"
    TrustStore(trust_dir).pin(gun, (state / "root.json").read_bytes(), source="benchmark")
    try:
        verifier = Verifier(url, trust_dir=trust_dir, tls_ca=ca, timeout=300)
        verifier.verify(f"{gun}:{tag}")  # warm-up: the full TUF workflow, once
        times = []
        deadline = time.monotonic() + 120
        for _ in range(reps):
            t0 = time.perf_counter()
            verifier.verify(f"{gun}:{tag}")
            times.append(time.perf_counter() - t0)
            if time.monotonic() > deadline:
                break
    except TrustctlError as e:
        print(f"{e.code}: {e.message}", file=sys.stderr)
        return 1 if e.exit_code == 1 else 3
    print(json.dumps(times))
    return 0


def warm_ngclient(url: str, ca: str, gun: str, state: Path, tag: str, reps: int) -> int:
    """Verify ``tag`` ``reps`` times in this process, a new ``Updater`` each time (TLS pool
    and metadata cache warm)."""
    pool = urllib3.PoolManager(ca_certs=ca, cert_reqs="CERT_REQUIRED")
    devnull = open(os.devnull, "w")  # noqa: SIM115
    real_stdout, sys.stdout = sys.stdout, devnull
    times = []
    try:
        verify(url, ca, gun, state, tag, pool)  # warm-up
        deadline = time.monotonic() + 120
        for _ in range(reps):
            t0 = time.perf_counter()
            if verify(url, ca, gun, state, tag, pool) != 0:
                return 1
            times.append(time.perf_counter() - t0)
            if time.monotonic() > deadline:
                break
    finally:
        sys.stdout = real_stdout
    print(json.dumps(times))
    return 0


def main(argv: list[str]) -> int:
    cmd, rest = argv[0], argv[1:]
    try:
        if cmd == "publish":
            url, ca, gun, state, tag, digest, size = rest
            return publish(url, ca, gun, Path(state), tag, digest, int(size))
        if cmd == "verify":
            url, ca, gun, state, tag = rest
            return verify(url, ca, gun, Path(state), tag)
        if cmd == "list":
            url, ca, gun, state = rest
            return list_tags(url, ca, gun, Path(state))
        if cmd in ("warm-api", "warm-ngclient"):
            url, ca, gun, state, tag, reps = rest
            run = warm_api if cmd == "warm-api" else warm_ngclient
            return run(url, ca, gun, Path(state), tag, int(reps))
    except exceptions.RepositoryError as e:
        print(f"trust failure: {e}", file=sys.stderr)
        return 1
    except (exceptions.DownloadError, urllib3.exceptions.HTTPError) as e:
        print(f"network failure: {e}", file=sys.stderr)
        return 3
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
