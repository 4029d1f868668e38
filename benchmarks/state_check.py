"""What the trusted-state check costs before each refresh from disk.

    .venv/bin/python benchmarks/state_check.py [--runs 200]

Writes a TUF 1.0 trusted state (root, timestamp, and a snapshot listing 0, 256 or
4,096 hash bins) with the marker of a verified repository, then times
:func:`trustctl.trustedstate.tuf_problem` (what ``verify``, ``pull``, the library's
refresh and the gate run before python-tuf reads the state). Prints the median per
layout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Timestamp

from trustctl.trustedstate import record_verified, tuf_problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    key = CryptoSigner.generate_ecdsa()
    root = Root(expires=expires)
    for role in ("root", "timestamp", "snapshot", "targets"):
        root.add_key(key.public_key, role)
    root_md = Metadata(root)
    root_md.sign(key)
    pin = root_md.to_bytes()
    print("| hash bins | snapshot.json bytes | check, median ms |")
    print("|---|---|---|")
    for bins in (0, 256, 4096):
        with tempfile.TemporaryDirectory() as tmp:
            gun_dir = Path(tmp)
            metadata = gun_dir / "metadata"
            (metadata / "root_history").mkdir(parents=True)
            (metadata / "root_history" / "1.root.json").write_bytes(pin)
            snapshot = Snapshot(expires=expires)
            for i in range(bins):
                snapshot.meta[f"bins-{i:03x}.json"] = MetaFile(version=2)
            for md in (Metadata(snapshot), Metadata(Timestamp(expires=expires))):
                md.sign(key)
                (metadata / f"{md.signed.type}.json").write_bytes(md.to_bytes())
            record_verified(gun_dir, pin, root=1, timestamp=1, snapshot=1)
            assert tuf_problem(gun_dir, metadata, pin) is None
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                tuf_problem(gun_dir, metadata, pin)
                times.append(time.perf_counter() - started)
            size = (metadata / "snapshot.json").stat().st_size
            print(f"| {bins} | {size} | {statistics.median(times) * 1000:.2f} |")


if __name__ == "__main__":
    main()
