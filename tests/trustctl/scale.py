"""Measure trustctl at scale against real server and signer processes.

    .venv/bin/python -m tests.trustctl.scale --tags 10000 100000 --runs 10 [--bins 256 0] [--json FILE]

For each size it starts nothing new: one trust server and signer (HTTPS, mutual TLS,
SQLite; :func:`tests.procs.start_stack`) serve every repository. Each repository is
created with ``trustctl init`` (production key encryption: PBKDF2 600,000 rounds),
filled with N tags written straight into its bins (:mod:`tests.trustctl.bulk`), and
then timed, every run a fresh ``trustctl`` process:

* ``sign``: ``trustctl sign GUN:new-i --digest ... --size ... --media-type ...``
  (publishes one more tag; the owner's metadata cache is warm, as on a CI runner
  that signs often; the passphrase comes from the environment);
* ``verify warm``: ``trustctl verify GUN:tag --no-registry-check`` by a deployer
  whose cache holds the previous state;
* ``verify cold``: the same with the deployer's metadata cache deleted first;
* ``list``: ``trustctl inspect GUN --json`` (reads every bin), once.

``--bins 256 0`` measures several layouts: bin counts, 0 for the flat layout
(``init --hash-bins 0``: every tag in ``targets``), for comparison. Prints a table and, with ``--json``, writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.procs import start_stack
from tests.trustctl.bulk import MEDIA_TYPE, fill, tag_name
from trustctl.client import ServerClient
from trustctl.transport import HttpTransport
from trustctl.trustedstate import clear_marker

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Cli:
    """A trust dir and passphrases; ``run`` starts a fresh ``python -m trustctl``."""

    trust_dir: Path
    server: str
    ca: Path

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("TRUSTCTL_")}
        # an installed CLI runs from cached bytecode: keep a cache (outside the source
        # tree) even where PYTHONDONTWRITEBYTECODE is set, or every start recompiles
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        return {
            **base,
            "PYTHONPYCACHEPREFIX": str(self.trust_dir.parent / "pycache"),
            "TRUSTCTL_SERVER": self.server,
            "TRUSTCTL_TLS_CA": str(self.ca),
            "TRUSTCTL_TRUST_DIR": str(self.trust_dir),
            "TRUSTCTL_ROOT_PASSPHRASE": "scale root passphrase, test only",
            "TRUSTCTL_TARGETS_PASSPHRASE": "scale targets passphrase, test only",
        }

    def run(self, *args: str) -> float:
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "trustctl", *args],
            env=self.env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"trustctl {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return seconds


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 1)


def measure(
    stack_url: str, ca: Path, work: Path, tags: int, runs: int, bins: int
) -> dict[str, object]:
    layout = f"{bins} bins" if bins else "flat"
    work.mkdir(parents=True, exist_ok=True)
    gun = f"127.0.0.1:5000/scale/bins{bins}-{tags}"
    owner = Cli(work / f"owner-{tags}-{bins}", stack_url, ca)
    deployer = Cli(work / f"deployer-{tags}-{bins}", stack_url, ca)
    owner.run("init", gun, "--hash-bins", str(bins))
    client = ServerClient(stack_url, HttpTransport(ca_file=str(ca), timeout=300))
    started = time.perf_counter()
    chunk = 50_000
    for start in range(0, tags, chunk):
        fill(owner.trust_dir, owner.env, client, gun, min(chunk, tags - start), start=start)
    filled = time.perf_counter() - started
    root = work / f"root-{tags}-{bins}.json"
    owner.run("trust", "export", gun, "-o", str(root))
    deployer.run("trust", "pin", gun, str(root))
    owner.run("verify", f"{gun}:{tag_name(0)}", "--no-registry-check")  # warm the owner's cache

    sign = []
    for i in range(runs):
        digest = f"sha256:{i + 1:064x}"
        sign.append(
            owner.run(
                "sign",
                f"{gun}:new-{i}",
                "--digest",
                digest,
                "--size",
                "1234",
                "--media-type",
                MEDIA_TYPE,
            )
        )
    cache = deployer.trust_dir / "tuf" / gun / "metadata"
    cold, warm = [], []
    for i in range(runs):
        tag = tag_name((i * 7919) % tags)
        clear_marker(cache.parent)  # cold: as a fresh pin (a lost cache alone is refused)
        shutil.rmtree(cache, ignore_errors=True)
        cold.append(deployer.run("verify", f"{gun}:{tag}", "--no-registry-check"))
        warm.append(deployer.run("verify", f"{gun}:{tag}", "--no-registry-check"))
    listing = deployer.run("--json", "inspect", gun)
    return {
        "tags": tags,
        "layout": layout,
        "fill_s": round(filled, 1),
        "sign_ms": median_ms(sign),
        "verify_cold_ms": median_ms(cold),
        "verify_warm_ms": median_ms(warm),
        "list_ms": round(listing * 1000, 1),
        "runs": runs,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tags", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--bins",
        type=int,
        nargs="+",
        default=[256],
        help="layouts to measure: bin counts, 0 = flat",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="trustctl-scale-") as tmp:
        work = Path(tmp)
        stack = start_stack(work / "stack")
        try:
            results = []
            for tags in args.tags:
                for bins in args.bins:
                    results.append(
                        measure(stack.url, stack.pki.ca_cert, work / "n", tags, args.runs, bins)
                    )
                    print(json.dumps(results[-1]), flush=True)
        finally:
            stack.stop()
    header = f"{'tags':>8} {'layout':<17} {'sign ms':>9} {'verify cold':>12} {'verify warm':>12} {'list ms':>9}"
    print(header)
    for r in results:
        print(
            f"{r['tags']:>8} {r['layout']:<17} {r['sign_ms']:>9} {r['verify_cold_ms']:>12} "
            f"{r['verify_warm_ms']:>12} {r['list_ms']:>9}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
