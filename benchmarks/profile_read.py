"""Where does a GET of timestamp.json (or any role) spend its time in our server?

    .venv/bin/python benchmarks/profile_read.py [--requests 2000] [--role timestamp.json] [--postgres]

Starts a signer and a server (tests.procs.start_stack) on 127.0.0.1, publishes a
10-tag repository, then builds the same Flask app in this process from the server's
environment and profiles ``--requests`` GETs through Flask's test client with cProfile
(no TLS, no WSGI server: the application's own cost). Prints requests/s of the
in-process loop and the top functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import repos
from benchmarks.stacks import rmtree, start_ours


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--role", default="timestamp.json")
    ap.add_argument("--postgres", action="store_true")
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    n = min(args.requests, 50_000)
    work = Path(tempfile.mkdtemp(prefix="notary-profile-"))
    gun = "bench.example/profile/app"
    try:
        with ExitStack() as stack:
            url = None
            if args.postgres:
                from tests.pg import PostgresCluster

                pg = stack.enter_context(PostgresCluster.started())
                url = pg.create_database("profile")
            ours = start_ours("ours", work / "ours", url)
            stack.callback(ours.stop)
            repos.build_ours(ours, gun, 10, work / "owner")

            from notary_server.app import create_app
            from notary_server.config import load_config

            app = create_app(load_config(None, ours.stack.server.env))
            client = app.test_client()
            path = f"/v2/{gun}/_trust/tuf/{args.role}"
            assert client.get(path).status_code == 200
            for _ in range(50):
                client.get(path)
            t0 = time.perf_counter()
            for _ in range(n):
                client.get(path)
            plain = time.perf_counter() - t0
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(n):
                client.get(path)
            prof.disable()
            print(
                f"{n} GET {args.role} in process: {n / plain:,.0f} req/s ({plain / n * 1e6:.0f} us/request)"
            )
            for key in ("cumulative", "tottime"):
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats(key).print_stats(args.top)
                print(f"--- by {key} ---")
                print(
                    "\n".join(line for line in buf.getvalue().splitlines() if line.strip())[:12000]
                )
    finally:
        rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
