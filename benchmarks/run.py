"""Side-by-side benchmark: our trust server against notary 0.7.0, in one run.

    .venv/bin/python benchmarks/run.py [--quick] [--out benchmarks/results/latest.md]

Starts, on 127.0.0.1 with TLS everywhere and a throwaway PostgreSQL cluster:
ours (signer + server) on SQLite and on PostgreSQL, notary-signer + notary-server
0.7.0 on memory and on PostgreSQL; measures reads (wrk), publishing and verifying one
tag in fresh client processes, repositories of many tags, granian against gunicorn,
and peak memory; prints one markdown table and writes it to --out. Method and
results: docs/performance.md. Every load loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import clients, repos, stacks
from benchmarks.clients import (
    CLIENT_DEFAULT,
    LibraryClient,
    NotaryClient,
    OurClient,
    TrustctlClient,
    our_env,
    trustctl_usable,
)
from benchmarks.measure import (
    CommandTimedOut,
    MemorySampler,
    Timing,
    WrkResult,
    timed_runs,
    wrk,
)
from benchmarks.stacks import (
    NotaryStack,
    OurStack,
    ReplicaServer,
    notary_available,
    rmtree,
    start_notary,
    start_ours,
    wsgi_server_of,
)
from tests.pg import PostgresCluster

SMALL_TAGS = 10
SERVER_PROFILES: dict[str, dict[str, str]] = {
    "configured": {},
    "2x8": {"workers": "2", "threads": "8"},  # tests.procs.start_stack: NOTARY_SERVER_<KEY>
    "1x16": {"workers": "1", "threads": "16"},
}


def _granian_version() -> str:
    try:
        from importlib.metadata import version

        return version("granian")
    except Exception:  # noqa: BLE001 - informational only
        return "not installed"


GRANIAN_VERSION = _granian_version()
WSGI_LABEL = {
    "front": "front 2 workers x 8 threads",
    "granian": "granian 2 workers x 8 blocking threads",
    "gunicorn": "gunicorn gthread 2x8",
}


@dataclass
class Settings:
    quick: bool
    duration: int  # wrk seconds per run
    reps: int  # fresh-process runs for the one-tag rows
    scale_reps: dict[int, int]  # runs per repository size
    sizes: list[int]
    api_reps: int
    budget_s: float  # whole run
    notary_build_cap_s: float  # longest we let notary take to build one repository

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 2, 5, {100: 3, 1000: 3}, [100, 1000], 10, 170, 30)
        return cls(
            False, 10, 10, {1000: 5, 10000: 5, 100000: 3}, [1000, 10000, 100000], 20, 840, 240
        )


@dataclass
class Row:
    metric: str
    better: str  # "higher" or "lower"
    ours: float | str | None
    theirs: float | str | None
    fmt: str = "{:,.0f}"

    def cells(self) -> list[str]:
        def show(v: float | str | None) -> str:
            if v is None:
                return "n/a"
            return v if isinstance(v, str) else self.fmt.format(v)

        ratio = "n/a"
        if (
            isinstance(self.ours, (int, float))
            and isinstance(self.theirs, (int, float))
            and self.theirs
        ):
            ratio = f"{self.ours / self.theirs:.2f}x"
        return [self.metric, show(self.ours), show(self.theirs), ratio, f"{self.better} is better"]


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, *a: object, **k: object) -> None:
        self.rows.append(Row(*a, **k))  # type: ignore[arg-type]
        r = self.rows[-1]
        log("  " + " | ".join(r.cells()))

    def table(self) -> str:
        head = ["metric", "ours", "notary 0.7.0", "ratio ours/notary", "better"]
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
        lines += ["| " + " | ".join(r.cells()) + " |" for r in self.rows]
        return "\n".join(lines)


T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def safe(report: Report, what: str, fn: Callable[[], None]) -> None:
    """Run one measurement; a failure becomes a note, the run goes on."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - report and continue
        log(f"FAILED {what}: {e}")
        traceback.print_exc(file=sys.stderr)
        report.notes.append(f"{what}: failed ({str(e).splitlines()[0][:200]})")


def tuf_url(url: str, gun: str, name: str) -> str:
    return f"{url}/v2/{gun}/_trust/tuf/{name}"


def run_wrk(url: str, conns: int, duration: int) -> WrkResult:
    r = wrk(url, conns, duration)
    if not r.ok():
        raise RuntimeError(f"{url}: {r.errors} errors in {r.requests} requests")
    return r


# --- phases ----------------------------------------------------------------------------


@dataclass
class Pair:
    name: str  # "SQLite / memory"
    ours: OurStack
    theirs: NotaryStack | None


# trustctl's repositories: its default hash-bin layout; the python-tuf-only library
# client edits `targets` directly, so its repositories are flat.
LAYOUT = {"trustctl": "bins", "auto": "bins", "library": "flat"}


def make_client(kind: str, url: str, ca: str, gun: str) -> OurClient:
    return TrustctlClient(url, ca, gun) if kind == "trustctl" else LibraryClient(url, ca, gun)


def digest_check(tag: str) -> Callable[[int, str], None]:
    """A verify/lookup run must print the digest the tag was signed with."""

    def check(_i: int, out: str) -> None:
        if repos.manifest(tag)[0] not in out:
            raise RuntimeError(f"no digest for {tag} in {out[:300]!r}")

    return check


def reads(report: Report, s: Settings, pair: Pair, gun: str) -> dict[str, WrkResult]:
    """wrk GET timestamp.json and targets.json at 16 and 64 connections."""
    ours_wrk: dict[str, WrkResult] = {}
    for url in [tuf_url(pair.ours.url, gun, "timestamp.json")] + (
        [tuf_url(pair.theirs.url, gun, "timestamp.json")] if pair.theirs else []
    ):
        wrk(url, 16, 2)  # warm-up: worker threads, database connections, caches
    for name in ("timestamp.json", "targets.json"):
        for conns in (16, 64):
            o = run_wrk(tuf_url(pair.ours.url, gun, name), conns, s.duration)
            t = (
                run_wrk(tuf_url(pair.theirs.url, gun, name), conns, s.duration)
                if pair.theirs
                else None
            )
            ours_wrk[f"{name}/{conns}"] = o
            report.add(
                f"GET {name}, {conns} conns, req/s [{pair.name}]",
                "higher",
                o.rps,
                t.rps if t else None,
            )
            report.add(
                f"GET {name}, {conns} conns, p99 ms [{pair.name}]",
                "lower",
                o.p99_ms,
                t.p99_ms if t else None,
                fmt="{:.1f}",
            )
    return ours_wrk


def one_tag(
    report: Report,
    s: Settings,
    pair: Pair,
    client: OurClient,
    pub: Path,
    ver: Path,
    nc: NotaryClient | None,
) -> None:
    """Publish one tag end to end, verify cold and warm, each in a fresh process."""
    env = our_env()
    where = f"{pair.name}, {SMALL_TAGS} tags"
    prefix = f"pub-{pair.ours.label}"

    def tag(i: int) -> str:
        return f"{prefix}-{i}"

    p_o = timed_runs(
        lambda i: client.publish(pub, tag(i), *repos.manifest(tag(i))), env, s.reps, budget_s=120
    )
    p_n = (
        timed_runs(
            lambda i: nc.publish(tag(i), *repos.manifest(tag(i))), nc.env(), s.reps, budget_s=120
        )
        if nc
        else None
    )
    report.add(
        f"publish 1 tag, fresh process ({client.label} / notary addhash -p), median ms [{where}]",
        "lower",
        p_o.median_ms,
        p_n.median_ms if p_n else None,
    )

    t = tag(0)
    cold = timed_runs(
        lambda i: client.verify(ver, t),
        env,
        s.reps,
        prepare=lambda i: client.reset_cache(ver),
        check=digest_check(t),
        budget_s=120,
    )
    warm = timed_runs(
        lambda i: client.verify(ver, t), env, s.reps, check=digest_check(t), budget_s=120
    )
    cold_n = warm_n = None
    cfg: Path | None = None
    if nc:
        cfg = nc.verifier(f"small-{pair.ours.label}")
        cold_n = timed_runs(
            lambda i: nc.lookup(cfg, t),
            nc.env(),
            s.reps,
            prepare=lambda i: nc.reset_cache(cfg),
            check=digest_check(t),
            budget_s=120,
        )
        warm_n = timed_runs(
            lambda i: nc.lookup(cfg, t), nc.env(), s.reps, check=digest_check(t), budget_s=120
        )
    report.add(
        f"verify 1 tag, fresh process, cold cache ({client.label} verify / notary lookup), median ms"
        f" [{where}]",
        "lower",
        cold.median_ms,
        cold_n.median_ms if cold_n else None,
    )
    report.add(
        f"verify 1 tag, fresh process, warm cache, median ms [{where}]",
        "lower",
        warm.median_ms,
        warm_n.median_ms if warm_n else None,
    )
    batch_rows(report, client, pub, ver, nc, cfg if nc else None, where, prefix, pub.parent)


BATCH = 100  # tags per batch command
BATCH_REPS = 3


def batch_rows(
    report: Report,
    client: OurClient,
    pub: Path,
    ver: Path,
    nc: NotaryClient | None,
    cfg: Path | None,
    where: str,
    prefix: str,
    work: Path,
) -> None:
    """Sign BATCH new tags in one ``trustctl sign`` against BATCH ``notary addhash`` and
    one ``notary publish``; verify them in one ``trustctl verify`` against BATCH
    ``notary lookup`` runs (warm caches on both sides)."""
    if not isinstance(client, TrustctlClient):
        return
    env = our_env()

    def tags(i: int) -> list[str]:
        return [f"{prefix}-batch{i}-{j}" for j in range(BATCH)]

    def triples(i: int) -> list[tuple[str, str, int]]:
        return [(t, *repos.manifest(t)) for t in tags(i)]

    listing = work / f"{prefix}-batch.txt"
    p_o = timed_runs(lambda i: client.publish_many(pub, listing, triples(i)), env, BATCH_REPS,
                     budget_s=300)  # fmt: skip
    p_n = None
    if nc:
        p_n = timed_runs(lambda i: [*(nc.stage(*x) for x in triples(i)), nc.publish_staged()],
                         nc.env(), BATCH_REPS, budget_s=600)  # fmt: skip
    report.add(f"sign {BATCH} tags: one `trustctl sign` / {BATCH} `notary addhash` + one `notary publish`,"
               f" median ms [{where}]", "lower", p_o.median_ms, p_n.median_ms if p_n else None)  # fmt: skip

    signed = tags(0)

    def check(_i: int, out: str) -> None:
        missing = [t for t in signed if repos.manifest(t)[0] not in out]
        if missing:
            raise RuntimeError(f"no digest for {missing[:3]} in {out[:300]!r}")

    v_o = timed_runs(lambda i: client.verify_many(ver, signed), env, BATCH_REPS, check=check,
                     budget_s=300)  # fmt: skip
    v_n = None
    if nc and cfg:
        v_n = timed_runs(lambda i: [nc.lookup(cfg, t) for t in signed], nc.env(), BATCH_REPS,
                         check=check, budget_s=600)  # fmt: skip
    report.add(f"verify {BATCH} tags: one `trustctl verify` / {BATCH} `notary lookup`, warm cache,"
               f" median ms [{where}]", "lower", v_o.median_ms, v_n.median_ms if v_n else None)  # fmt: skip


def warm_api_ms(
    url: str, ca: str, gun: str, owner_state: Path, home: Path, tag: str, reps: int
) -> float:
    """Median of ``reps`` verifications in one warm process (trustctl.api.Verifier, state kept in memory)."""
    lib = LibraryClient(url, ca, gun)
    lib.verifier(owner_state, home)
    out = subprocess.run(
        lib.warm_api(home, tag, reps),
        env=our_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"warm-api exited {out.returncode}: {out.stderr[-500:]}")
    times = sorted(json.loads(out.stdout.strip().splitlines()[-1]))
    return times[len(times) // 2] * 1000


@dataclass
class SizeCase:
    """One repository size on both sides."""

    n: int
    gun: str
    owner: Path  # our owner's state (pinned root, targets key)
    client: OurClient
    pub: Path
    ver: Path
    nc: NotaryClient | None
    n_notary: int

    @property
    def label(self) -> str:
        return f"{self.n:,} tags" + (
            f"; notary {self.n_notary:,}" if self.n_notary != self.n else ""
        )


def timed_or_note(fn: Callable[[], Timing]) -> float | str:
    """Median ms, or "> T s" when one run hit its time limit."""
    try:
        return fn().median_ms
    except CommandTimedOut as e:
        return f"> {e.timeout * 1000:,.0f} (timed out)"


def scale_size(
    report: Report,
    s: Settings,
    ours: OurStack,
    theirs: NotaryStack | None,
    c: SizeCase,
    work: Path,
    list_limit_s: float | None,
) -> bool:
    """Publish one more, verify one (cold, warm), list, GET targets.json, warm API.

    Returns False when our list timed out (the caller skips it for larger sizes).
    """
    env = our_env()
    reps = s.scale_reps.get(c.n, 3)
    mid, mid_n = repos.bulk_tag(c.n // 2), repos.bulk_tag(c.n_notary // 2)
    client, nc = c.client, c.nc

    def more(i: int) -> str:
        return f"more-{i}"

    p_o = timed_runs(
        lambda i: client.publish(c.pub, more(i), *repos.manifest(more(i))), env, reps, budget_s=150
    )
    p_n = None
    if nc:
        p_n = timed_runs(
            lambda i: nc.publish(more(i), *repos.manifest(more(i))), nc.env(), reps, budget_s=150
        )
    report.add(f"publish 1 more tag, fresh process, median ms [{c.label}]", "lower",
               p_o.median_ms, p_n.median_ms if p_n else None)  # fmt: skip

    cold = timed_runs(lambda i: client.verify(c.ver, mid), env, reps,
                      prepare=lambda i: client.reset_cache(c.ver), check=digest_check(mid), budget_s=150)  # fmt: skip
    warm = timed_runs(
        lambda i: client.verify(c.ver, mid), env, reps, check=digest_check(mid), budget_s=100
    )
    cold_n = warm_n = lst_n = None
    cfg: Path | None = None
    if nc:
        cfg = nc.verifier(f"scale-{c.n_notary}")
        cold_n = timed_runs(lambda i: nc.lookup(cfg, mid_n), nc.env(), reps,
                            prepare=lambda i: nc.reset_cache(cfg), check=digest_check(mid_n), budget_s=150)  # fmt: skip
        warm_n = timed_runs(lambda i: nc.lookup(cfg, mid_n), nc.env(), reps, check=digest_check(mid_n),
                            budget_s=100)  # fmt: skip
        lst_n = timed_runs(
            lambda i: nc.list(cfg), nc.env(), reps, check=digest_check(mid_n), budget_s=60
        )
    report.add(f"verify 1 tag, fresh process, cold cache, median ms [{c.label}]", "lower",
               cold.median_ms, cold_n.median_ms if cold_n else None)  # fmt: skip
    report.add(f"verify 1 tag, fresh process, warm cache, median ms [{c.label}]", "lower",
               warm.median_ms, warm_n.median_ms if warm_n else None)  # fmt: skip
    batch_rows(report, client, c.pub, c.ver, nc, cfg, c.label, f"scale-{c.n}", work)

    listed = True
    if list_limit_s is None:
        lst: float | str = "skipped (timed out at a smaller size)"
    else:
        lst = timed_or_note(lambda: timed_runs(
            lambda i: client.list(c.ver), env, reps, check=digest_check(mid), budget_s=30,
            timeout=list_limit_s, min_reps=1))  # fmt: skip
        listed = not isinstance(lst, str)
    report.add(f"list all tags, fresh process, warm cache, median ms [{c.label}]", "lower",
               lst, lst_n.median_ms if lst_n else None)  # fmt: skip

    dur = min(5, s.duration)
    o = run_wrk(tuf_url(ours.url, c.gun, "targets.json"), 16, dur)
    t = run_wrk(tuf_url(theirs.url, nc.gun, "targets.json"), 16, dur) if theirs and nc else None
    report.add(
        f"GET targets.json, 16 conns, req/s [{c.label}]", "higher", o.rps, t.rps if t else None
    )

    api = warm_api_ms(ours.url, str(ours.ca), c.gun, c.owner, work / f"api-scale-{c.n}", mid,
                      s.api_reps)  # fmt: skip
    report.add(f"verify 1 tag, warm process, `trustctl.api.Verifier`, median ms [{c.n:,} tags]", "lower",
               api, None, fmt="{:.1f}")  # fmt: skip
    return listed


def scale(report: Report, s: Settings, pair: Pair, kind: str, work: Path, deadline: float) -> None:
    """Repositories of N tags on the SQLite / memory pair."""
    notary_cap: int | None = None
    notary_secs_per_tag: float | None = None
    list_limit_s: float | None = 60.0 if not s.quick else 15.0
    for n in s.sizes:
        if time.monotonic() > deadline:
            report.notes.append(f"{n:,} tags: skipped, the run's time budget was spent")
            break
        gun = f"bench.example/scale/app-{n}"
        owner = work / f"owner-scale-{n}"
        t0 = time.monotonic()
        repos.build_ours(pair.ours, gun, n, owner, layout=LAYOUT[kind])
        log(f"built ours {n:,} tags in {time.monotonic() - t0:.1f}s")
        client = make_client(kind, pair.ours.url, str(pair.ours.ca), gun)
        pub = client.publisher(owner, work / f"pub-scale-{n}")
        ver = client.verifier(owner, work / f"ver-scale-{n}")
        nc: NotaryClient | None = None
        n_notary = n
        if pair.theirs is not None:
            if notary_secs_per_tag is not None and notary_secs_per_tag * n > s.notary_build_cap_s:
                n_notary = max(int(s.notary_build_cap_s / notary_secs_per_tag), 1)
                n_notary = int(str(n_notary)[0]) * 10 ** (len(str(n_notary)) - 1)  # 1 digit, down
                notary_cap = n_notary
            ngun = f"bench.example/scale/app-{n_notary}" if n_notary != n else gun
            t0 = time.monotonic()
            repos.build_notary(
                pair.theirs, ngun, n_notary, timeout=max(s.notary_build_cap_s * 2, 60)
            )
            took = time.monotonic() - t0
            notary_secs_per_tag = took / n_notary
            log(f"built notary {n_notary:,} tags in {took:.1f}s")
            nc = NotaryClient(pair.theirs, ngun)
        case = SizeCase(n, gun, owner, client, pub, ver, nc, n_notary)
        if not scale_size(report, s, pair.ours, pair.theirs, case, work, list_limit_s):
            report.notes.append(
                f"our `list` ({client.label}) took longer than {list_limit_s:.0f} s at {n:,} tags;"
                " not run at larger sizes"
            )
            list_limit_s = None
    if notary_cap is not None and notary_secs_per_tag is not None:
        report.notes.append(
            f"notary's large repository was capped at {notary_cap:,} tags: building more would exceed"
            f" {s.notary_build_cap_s:.0f} s at the rate measured ({notary_secs_per_tag * 1000:.2f} ms/tag)."
        )


def wsgi_servers(report: Report, s: Settings, pair: Pair, gun: str) -> None:
    """GET timestamp.json at 16 connections: our default WSGI server against the other one
    (a replica on the same database and signer), runs interleaved."""
    main = wsgi_server_of(pair.ours)
    other = "gunicorn" if main == "granian" else "granian"
    rounds = 1 if s.quick else 2
    replica = ReplicaServer(pair.ours, other).start()
    runs: dict[str, list[WrkResult]] = {main: [], other: []}
    try:
        urls = {
            main: tuf_url(pair.ours.url, gun, "timestamp.json"),
            other: tuf_url(replica.url, gun, "timestamp.json"),
        }
        wrk(urls[other], 16, 2)  # warm-up
        for _ in range(rounds):
            for name in (other, main):
                runs[name].append(run_wrk(urls[name], 16, s.duration))
    finally:
        replica.stop()
    t = None
    if pair.theirs is not None:
        t = run_wrk(tuf_url(pair.theirs.url, gun, "timestamp.json"), 16, s.duration)

    def mean(name: str, attr: str) -> float:
        return sum(getattr(r, attr) for r in runs[name]) / len(runs[name])

    where = f"{pair.name}, mean of {rounds} interleaved runs"
    for name in (main, other):
        what = f"{WSGI_LABEL[name]}{' (our default)' if name == main else ''}"
        report.add(f"GET timestamp.json, 16 conns, req/s, ours under {what} [{where}]",
                   "higher", mean(name, "rps"), t.rps if t else None)  # fmt: skip
        report.add(f"GET timestamp.json, 16 conns, p99 ms, ours under {what} [{where}]",
                   "lower", mean(name, "p99_ms"), t.p99_ms if t else None, fmt="{:.1f}")  # fmt: skip
    per_round = ", ".join(
        f"{a.rps:,.0f}/{b.rps:,.0f}" for a, b in zip(runs[main], runs[other], strict=True)
    )
    report.notes.append(
        f"WSGI servers (GET timestamp.json, 16 conns, {pair.name}; granian {GRANIAN_VERSION}):"
        f" {main}/{other} req/s per round {per_round};"
        f" {main}/{other} = {mean(main, 'rps') / mean(other, 'rps'):.2f}x."
    )


def memory_rows(report: Report, sampler: MemorySampler, pairs: list[Pair], when: str) -> None:
    for pair in pairs:
        for role in ("server", "signer"):
            for kind, peak in (("RSS", sampler.peak_mib), ("PSS", sampler.peak_pss_mib)):
                o = peak(f"{pair.ours.label}/{role}")
                t = peak(f"{pair.theirs.label}/{role}") if pair.theirs else None
                report.add(
                    f"{role} peak {kind} MiB, process tree, {when} [{pair.name}]",
                    "lower",
                    o,
                    t,
                    fmt="{:.0f}",
                )


# --- main ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="~2-minute smoke run: small sizes, short durations"
    )
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "latest.md"))
    ap.add_argument(
        "--client",
        choices=("auto", "library", "trustctl"),
        default=CLIENT_DEFAULT,
        help="our client for the one-tag rows (see benchmarks/clients.py)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    ap.add_argument(
        "--sizes", type=int, nargs="+", metavar="N", help="repository sizes of the scale rows"
    )
    ap.add_argument(
        "--server-profile",
        choices=sorted(SERVER_PROFILES),
        default="configured",
        help="our server's workers x threads: its configured default, or one of the documented profiles",
    )
    ap.add_argument(
        "--notary-build-cap", type=float, metavar="S",
        help="longest notary may take to build one large repository (default: 30 s quick, 240 s full)",
    )  # fmt: skip
    ap.add_argument("--budget", type=float, metavar="S", help="time budget of the whole run (s)")
    args = ap.parse_args(argv)
    s = Settings.make(args.quick)
    if args.budget:
        s.budget_s = args.budget
    if args.sizes:
        s.sizes = [n for n in args.sizes if n > 0]  # --sizes 0: no scale rows
    if args.notary_build_cap:
        s.notary_build_cap_s = args.notary_build_cap
    stacks.SERVER_ENV.update(SERVER_PROFILES[args.server_profile])
    if stacks.SERVER_ENV:
        w, t = stacks.SERVER_ENV["workers"], stacks.SERVER_ENV["threads"]
        WSGI_LABEL.update(front=f"front {w} workers x {t} threads",
                          granian=f"granian {w} workers x {t} blocking threads",
                          gunicorn=f"gunicorn gthread {w}x{t}")  # fmt: skip
    deadline = T0 + s.budget_s
    work = Path(tempfile.mkdtemp(prefix="notary-bench-"))
    report = Report()
    load_before = os.getloadavg()
    log(f"work directory {work}; {'quick' if s.quick else 'full'} run; load average {load_before}")
    clients.PYCACHE_PREFIX = work / "pycache"
    have_notary = notary_available()
    if not have_notary:
        report.notes.append(
            "notary 0.7.0 is not installed: its columns are n/a (apt-get install notary)"
        )
    sampler = MemorySampler().start()
    pairs: list[Pair] = []
    main_wsgi = "?"
    gun = "bench.example/small/app"
    try:
        with ExitStack() as stack:
            pg = stack.enter_context(PostgresCluster.started())
            log(f"PostgreSQL on 127.0.0.1:{pg.port}")
            ours_sqlite = start_ours("ours-sqlite", work / "ours-sqlite", None)
            stack.callback(ours_sqlite.stop)
            ours_pg = start_ours("ours-pg", work / "ours-pg", pg.create_database("ours"))
            stack.callback(ours_pg.stop)
            n_mem = n_pg = None
            if have_notary:
                n_mem = start_notary("notary-mem", work / "notary-mem")
                stack.callback(n_mem.stop)
                n_pg = start_notary("notary-pg", work / "notary-pg", pg_port=pg.port)
                stack.callback(n_pg.stop)
            pairs = [Pair("SQLite / memory", ours_sqlite, n_mem), Pair("PostgreSQL", ours_pg, n_pg)]
            for st in (ours_sqlite, ours_pg, n_mem, n_pg):
                if st is not None:
                    for role, pid in st.pids().items():
                        sampler.watch(f"{st.label}/{role}", pid)
            main_wsgi = wsgi_server_of(ours_sqlite)
            log(f"all servers up; our server runs under {main_wsgi}")

            # Small repositories (SMALL_TAGS tags) on every server.
            owners: dict[str, Path] = {}
            ncs: dict[str, NotaryClient | None] = {}
            for pair in pairs:
                owners[pair.ours.label] = work / f"owner-{pair.ours.label}-small"
                layout = LAYOUT.get(args.client, "bins")
                repos.build_ours(pair.ours, gun, SMALL_TAGS, owners[pair.ours.label], layout=layout)
                ncs[pair.ours.label] = None
                if pair.theirs is not None:
                    repos.build_notary(pair.theirs, gun, SMALL_TAGS)
                    ncs[pair.ours.label] = NotaryClient(pair.theirs, gun)
                    if pair.theirs.pg is not None and not pair.theirs.stored_files():
                        raise RuntimeError(
                            "notary-server on PostgreSQL stored nothing in tuf_files"
                        )

            kind = args.client
            if kind in ("auto", "trustctl"):
                ok, why = trustctl_usable(
                    owners["ours-sqlite"], work, ours_sqlite.url, str(ours_sqlite.ca), gun
                )
                log(f"trustctl usable: {ok} ({why})")
                if not ok:
                    if kind == "trustctl":
                        raise SystemExit(f"--client trustctl: trustctl is not usable: {why}")
                    report.notes.append(f"our client: library client (trustctl not usable: {why})")
                kind = "trustctl" if ok else "library"
            client_label = (
                "trustctl" if kind == "trustctl" else "library client (benchmarks/libclient.py)"
            )
            report.notes.insert(
                0, f"our client processes: {client_label}; notary's: the notary 0.7.0 CLI"
            )

            for pair in pairs:
                log(f"== {pair.name}: reads, one tag")

                def do_reads(pair: Pair = pair) -> None:
                    reads(report, s, pair, gun)

                def do_one_tag(pair: Pair = pair) -> None:
                    owner = owners[pair.ours.label]
                    client = make_client(kind, pair.ours.url, str(pair.ours.ca), gun)
                    pub = client.publisher(owner, work / f"pub-{pair.ours.label}-small")
                    ver = client.verifier(owner, work / f"ver-{pair.ours.label}-small")
                    one_tag(report, s, pair, client, pub, ver, ncs[pair.ours.label])

                safe(report, f"reads [{pair.name}]", do_reads)
                safe(report, f"one tag [{pair.name}]", do_one_tag)
                if time.monotonic() > deadline:
                    break
            sampler.sample()
            memory_rows(report, sampler, pairs, "reads + one-tag phase")

            log("== WSGI servers")
            safe(report, "WSGI servers", lambda: wsgi_servers(report, s, pairs[0], gun))

            log("== warm process, trustctl library API, small repository")
            safe(
                report,
                "warm API",
                lambda: report.add(
                    f"verify 1 tag, warm process, `trustctl.api.Verifier`, median ms [{SMALL_TAGS} tags]",
                    "lower",
                    warm_api_ms(
                        ours_sqlite.url,
                        str(ours_sqlite.ca),
                        gun,
                        owners["ours-sqlite"],
                        work / "api-small",
                        repos.bulk_tag(1),
                        s.api_reps,
                    ),
                    None,
                    fmt="{:.1f}",
                ),
            )

            log("== scale")
            safe(report, "scale", lambda: scale(report, s, pairs[0], kind, work, deadline))
            sampler.sample()
            memory_rows(report, sampler, pairs[:1], "whole run incl. large repositories")
    finally:
        sampler.stop()
        if not args.keep:
            rmtree(work)
    runtime = time.monotonic() - T0
    load_after = os.getloadavg()
    header = [
        f"# Benchmark: ours vs notary 0.7.0 ({'quick' if s.quick else 'full'} run)",
        "",
        (
            f"- date: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; runtime {runtime:.0f} s;"
            f" machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()};"
            f" load average (1/5/15 min) before {'/'.join(f'{x:.1f}' for x in load_before)},"
            f" after {'/'.join(f'{x:.1f}' for x in load_after)} (other work on the machine adds noise)"
        ),
        f"- command: `.venv/bin/python benchmarks/run.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
        (
            f"- wrk: 2 threads, {s.duration} s per run, keep-alive, TLS; fresh-process rows: median of"
            f" {s.reps} runs (scale rows: {', '.join(f'{n:,}: {r}' for n, r in s.scale_reps.items())})"
        ),
        (
            f"- ours: notary-server under {WSGI_LABEL.get(main_wsgi, main_wsgi)} (server profile"
            f" {args.server_profile}: {stacks.SERVER_ENV or 'its configured default'}),"
            " notary-signer under the front, 1 worker x 8 threads; notary: notary-server +"
            " notary-signer 0.7.0 (Debian), log level warn; PostgreSQL: one throwaway cluster (fsync off) for both"
        ),
        "",
    ]
    text = "\n".join(header) + "\n" + report.table() + "\n"
    if report.notes:
        text += "\nNotes:\n\n" + "\n".join(f"- {n}" for n in report.notes) + "\n"
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    log(f"wrote {out} in {runtime:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
