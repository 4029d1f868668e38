"""How long does canonical JSON of a large targets document take?

    .venv/bin/python benchmarks/canonical.py [--targets 20000] [--runs 5]

Builds a python-tuf ``Targets`` with ``--targets`` entries (sha256 and sha512 hashes,
a small ``custom`` object each) and times, best of ``--runs``, the canonical JSON of
its ``to_dict()`` through :func:`notary_signer.canonical.canonical_json` (the C
encoder; clean output and output with one escaped character, which falls back to
securesystemslib) and through securesystemslib's ``encode_canonical`` alone. Pure
CPU in this process: no server, no network.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from securesystemslib.formats import encode_canonical
from tuf.api.metadata import TargetFile, Targets

from notary_signer.canonical import canonical_json


def targets_doc(n: int, *, escaped: bool = False) -> dict[str, Any]:
    targets = Targets(version=7)
    for i in range(n):
        data = f"manifest {i}".encode()
        path = f"app/v{i // 100}.{i % 100}"
        targets.targets[path] = TargetFile(
            len(data),
            {
                "sha256": hashlib.sha256(data).hexdigest(),
                "sha512": hashlib.sha512(data).hexdigest(),
            },
            path,
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "tag": f"v{i}"},
        )
    if escaped:  # one string with a quote: the encoders escape it differently
        targets.unrecognized_fields["note"] = 'say "hi"'
    return targets.to_dict()


def best(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--targets", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    clean, escaped = targets_doc(args.targets), targets_doc(args.targets, escaped=True)
    size = len(canonical_json(clean))
    rows = [
        ("canonical_json (C encoder)", best(lambda: canonical_json(clean), args.runs)),
        ("canonical_json, one escape (fallback)", best(lambda: canonical_json(escaped), args.runs)),
        ("securesystemslib encode_canonical", best(lambda: encode_canonical(clean), args.runs)),
    ]
    print(
        f"targets document: {args.targets} targets, {size / 1e6:.1f} MB canonical; best of {args.runs}"
    )
    print(f"| {'encoder':<40} | {'ms':>8} | {'MB/s':>7} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 9}|")
    for name, seconds in rows:
        print(f"| {name:<40} | {seconds * 1000:8.1f} | {size / 1e6 / seconds:7.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
