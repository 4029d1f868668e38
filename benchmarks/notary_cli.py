"""The notary CLI 0.7.0's own publish and lookup against our server (Notary dialect)
and against Debian's notary-server + notary-signer 0.7.0, in the same run.

    .venv/bin/python benchmarks/notary_cli.py [--rounds 15]

Each round times, per server, one ``notary addhash … -p`` (a tag published: pull,
sign, POST, server-made timestamp) and one ``notary lookup`` from a trust directory
with an empty cache (fetches root, timestamp, snapshot and targets). The servers run
on this machine with the same PKI, in two pairs: our embedded default (SQLite)
against notary-server's (memory, which keeps nothing across a restart), and both on
one PostgreSQL (``--backend`` picks one pair). Rounds alternate between all servers.
Prints a Markdown table of medians and the ratio ours / theirs (below 1.0: ours is
faster).
"""

from __future__ import annotations

import argparse
import contextlib
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
from tests.pg import PostgresCluster

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


def _rounds(
    sides: dict[str, tuple[str, Path]], work: Path, rounds: int
) -> dict[str, dict[str, list[float]]]:
    """Times ``rounds`` publishes and fresh lookups on every server, alternating."""
    publisher = {}
    for name, (url, ca) in sides.items():
        d = work / name
        d.mkdir(exist_ok=True)
        publisher[name] = _config(d / "publisher.json", url, ca, d / "trust")
        _timed([NOTARY_BIN, "-c", str(publisher[name]), "init", GUN, "-p"])
    times: dict[str, dict[str, list[float]]] = {n: {"publish": [], "lookup": []} for n in sides}
    for i in range(rounds):
        for name, (url, ca) in sides.items():
            tag = f"v{i}"
            times[name]["publish"].append(
                _timed(
                    [NOTARY_BIN, "-c", str(publisher[name]), "addhash", GUN, tag, "10",
                     "--sha256", f"{i:064x}", "-p"]
                )
            )  # fmt: skip
            reader = work / name / f"reader-{i}"
            times[name]["lookup"].append(
                _timed(
                    [NOTARY_BIN, "-d", str(reader), "-s", url, "--tlscacert", str(ca),
                     "lookup", GUN, tag]
                )
            )  # fmt: skip
            shutil.rmtree(reader, ignore_errors=True)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--backend", choices=("both", "sqlite", "postgres"), default="both")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="notary-cli-bench-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, work, ignore_errors=True)
        pairs: list[tuple[str, str, str]] = []  # (storage, ours, theirs)
        sides: dict[str, tuple[str, Path]] = {}
        if args.backend in ("both", "sqlite"):
            ours = start_ours("ours", work / "ours", None)
            stack.callback(ours.stop)
            theirs = start_notary("theirs", work / "theirs")
            stack.callback(theirs.stop)
            sides.update({"ours": (ours.url, ours.ca), "theirs": (theirs.url, theirs.ca)})
            pairs.append(("ours SQLite / notary memory", "ours", "theirs"))
        if args.backend in ("both", "postgres"):
            pg = stack.enter_context(PostgresCluster.started())
            ours_pg = start_ours("ours-pg", work / "ours-pg", pg.create_database("ours"))
            stack.callback(ours_pg.stop)
            theirs_pg = start_notary("theirs-pg", work / "theirs-pg", pg_port=pg.port)
            stack.callback(theirs_pg.stop)
            sides.update(
                {"ours-pg": (ours_pg.url, ours_pg.ca), "theirs-pg": (theirs_pg.url, theirs_pg.ca)}
            )
            pairs.append(("both PostgreSQL", "ours-pg", "theirs-pg"))
        times = _rounds(sides, work, args.rounds)
        print(f"notary CLI 0.7.0 against each server, median of {args.rounds} rounds (ms)\n")
        print("| operation | storage | ours | notary-server 0.7.0 | ours / theirs |")
        print("|---|---|---:|---:|---:|")
        for op in ("publish", "lookup"):
            label = "publish (`addhash -p`)" if op == "publish" else "lookup (fresh trust dir)"
            for storage, ours_name, theirs_name in pairs:
                a = statistics.median(times[ours_name][op]) * 1000
                b = statistics.median(times[theirs_name][op]) * 1000
                print(f"| {label} | {storage} | {a:.0f} | {b:.0f} | {a / b:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
