"""The notary CLI 0.7.0's own publish and lookup against our server (Notary dialect)
and against Debian's notary-server + notary-signer 0.7.0, in the same run.

    .venv/bin/python benchmarks/notary_cli.py [--rounds 15]

Each round times, per server, one ``notary addhash … -p`` (a tag published: pull,
sign, POST, server-made timestamp) and one ``notary lookup`` from a trust directory
with an empty cache (fetches root, timestamp, snapshot and targets). Both servers
run on this machine with the same PKI; rounds alternate between them. Prints a
Markdown table of medians and the ratio ours / theirs (below 1.0: ours is faster).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.stacks import NOTARY_BIN, NOTARY_CLIENT_ENV, base_env, start_notary, start_ours

GUN = "127.0.0.1:5000/bench/app"


def _config(path: Path, url: str, ca: Path, trust: Path) -> Path:
    path.write_text(
        json.dumps({"trust_dir": str(trust), "remote_server": {"url": url, "root_ca": str(ca)}})
    )
    return path


def _timed(argv: list[str]) -> float:
    started = time.perf_counter()
    p = subprocess.run(
        argv, env={**base_env(), **NOTARY_CLIENT_ENV}, capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])}…: {p.stderr.strip()[-300:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="notary-cli-bench-"))
    ours = start_ours("ours", work / "ours", None)
    theirs = start_notary("theirs", work / "theirs")
    try:
        sides = {
            "ours": (ours.url, ours.ca),
            "notary-server 0.7.0": (theirs.url, theirs.ca),
        }
        publisher = {}
        for name, (url, ca) in sides.items():
            d = work / name.split()[0]
            d.mkdir(exist_ok=True)
            publisher[name] = _config(d / "publisher.json", url, ca, d / "trust")
            _timed([NOTARY_BIN, "-c", str(publisher[name]), "init", GUN, "-p"])
        times: dict[str, dict[str, list[float]]] = {n: {"publish": [], "lookup": []} for n in sides}
        for i in range(args.rounds):
            for name, (url, ca) in sides.items():
                tag = f"v{i}"
                times[name]["publish"].append(
                    _timed(
                        [
                            NOTARY_BIN,
                            "-c",
                            str(publisher[name]),
                            "addhash",
                            GUN,
                            tag,
                            "10",
                            "--sha256",
                            f"{i:064x}",
                            "-p",
                        ]
                    )
                )
                reader = work / name.split()[0] / f"reader-{i}"
                times[name]["lookup"].append(
                    _timed(
                        [
                            NOTARY_BIN,
                            "-d",
                            str(reader),
                            "-s",
                            url,
                            "--tlscacert",
                            str(ca),
                            "lookup",
                            GUN,
                            tag,
                        ]
                    )
                )
                shutil.rmtree(reader, ignore_errors=True)
        ours_name, theirs_name = list(sides)
        print(f"notary CLI 0.7.0 against each server, median of {args.rounds} rounds (ms)\n")
        print(f"| operation | {ours_name} | {theirs_name} | ours / theirs |")
        print("|---|---:|---:|---:|")
        for op in ("publish", "lookup"):
            a = statistics.median(times[ours_name][op]) * 1000
            b = statistics.median(times[theirs_name][op]) * 1000
            label = "publish (`addhash -p`)" if op == "publish" else "lookup (fresh trust dir)"
            print(f"| {label} | {a:.0f} | {b:.0f} | {a / b:.2f}x |")
    finally:
        theirs.stop()
        ours.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
