"""Measuring helpers: ``wrk`` runs, timed client processes and process-tree memory."""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WRK = shutil.which("wrk") or "/usr/bin/wrk"

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses plus socket errors

    def ok(self) -> bool:
        return self.errors == 0 and self.requests > 0


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot parse wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, connections: int, duration_s: int, threads: int = 2) -> WrkResult:
    """``wrk -tT -cC -dDs --latency URL`` (keep-alive, TLS without verification)."""
    threads = min(threads, connections)
    argv = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    out = subprocess.run(
        argv, capture_output=True, text=True, timeout=duration_s + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.MULTILINE).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(g) for g in m.groups())
    return WrkResult(rps, p50, p99, requests, errors)


@dataclass
class Timing:
    samples: list[float]  # seconds

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def n(self) -> int:
        return len(self.samples)


class CommandFailed(RuntimeError):
    pass


class CommandTimedOut(CommandFailed):
    def __init__(self, argv: list[str], timeout: float) -> None:
        super().__init__(f"{' '.join(argv[:6])} ... took longer than {timeout:.0f} s")
        self.timeout = timeout


def timed_runs(
    make_argv: Callable[[int], list[str]] | Callable[[int], list[list[str]]],
    env: dict[str, str],
    reps: int,
    *,
    prepare: Callable[[int], None] | None = None,
    check: Callable[[int, str], None] | None = None,
    timeout: float = 600,
    budget_s: float = 300,
    min_reps: int = 3,
) -> Timing:
    """Run a command ``reps`` times in fresh processes; wall time of each run.

    ``make_argv(i)`` gives one argv, or a list of argvs run one after another (one
    run: their total time, their stdout joined). ``prepare(i)`` runs before run i,
    outside the timing. Stops early (after at least ``min_reps`` runs) when
    ``budget_s`` seconds are spent.
    """
    samples: list[float] = []
    started = time.monotonic()
    for i in range(reps):
        if prepare:
            prepare(i)
        made = make_argv(i)
        argvs: list[list[str]] = made if made and isinstance(made[0], list) else [made]  # type: ignore[list-item]
        out: list[str] = []
        t0 = time.perf_counter()
        for argv in argvs:
            try:
                result = subprocess.run(  # stdin not a terminal: as in a pipeline
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    timeout=timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise CommandTimedOut(argv, timeout) from None
            if result.returncode != 0:
                raise CommandFailed(
                    f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode(errors='replace')[-1500:]}"
                )
            out.append(result.stdout.decode(errors="replace"))
        elapsed = time.perf_counter() - t0
        if check:
            check(i, "".join(out))
        samples.append(elapsed)
        if len(samples) >= min_reps and time.monotonic() - started > budget_s:
            break
    return Timing(samples)


# --- memory ----------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(pid: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    """``pid`` and all its descendants."""
    kids = kids if kids is not None else _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def process_memory_kb(pid: int) -> dict[str, int]:
    """``Rss``, ``Pss``, ``Private_*``, ... of one process in kB (/proc/PID/smaps_rollup).

    PSS (proportional set size) divides each page among the processes that map it:
    a page a gunicorn or granian parent shares with its two forked workers counts a
    third in each, once in their sum, where VmRSS counts it three times. Empty when
    the process is gone or not ours to read.
    """
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    out[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return out


def _vmrss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class MemorySampler:
    """Samples process trees every ``interval`` seconds; keeps the peak of each sum.

    ``watch(label, pid)`` adds a tree (the pid and its descendants: a granian or
    gunicorn parent and its workers). Two sums per tree, taken at the same instants:
    VmRSS (what ``ps`` shows; counts pages shared by forked workers once per process)
    and PSS (counts every page once: the memory the tree really holds).
    ``peak_mib(label)`` and ``peak_pss_mib(label)`` are the largest sums seen.
    """

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.roots: dict[str, int] = {}
        self.peak: dict[str, int] = {}
        self.peak_pss: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def watch(self, label: str, pid: int) -> None:
        self.roots[label] = pid

    def unwatch(self, label: str) -> None:
        self.sample()
        self.roots.pop(label, None)

    def sample(self) -> None:
        kids = _children()
        for label, pid in list(self.roots.items()):
            pids = process_tree(pid, kids)
            rss = sum(_vmrss_kb(p) for p in pids)
            pss = sum(process_memory_kb(p).get("Pss", 0) for p in pids)
            self.peak[label] = max(self.peak.get(label, 0), rss)
            if pss:
                self.peak_pss[label] = max(self.peak_pss.get(label, 0), pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> MemorySampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def peak_mib(self, label: str) -> float | None:
        return self.peak[label] / 1024 if label in self.peak else None

    def peak_pss_mib(self, label: str) -> float | None:
        return self.peak_pss[label] / 1024 if label in self.peak_pss else None
