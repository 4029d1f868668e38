"""Measuring helpers: ``wrk`` runs and timed client processes."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
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
    make_argv: Callable[[int], list[str]],
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

    ``prepare(i)`` runs before run i, outside the timing. Stops early (after at least
    ``min_reps`` runs) when ``budget_s`` seconds are spent.
    """
    samples: list[float] = []
    started = time.monotonic()
    for i in range(reps):
        if prepare:
            prepare(i)
        argv = make_argv(i)
        t0 = time.perf_counter()
        try:
            result = subprocess.run(
                argv, env=env, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            raise CommandTimedOut(argv, timeout) from None
        elapsed = time.perf_counter() - t0
        if result.returncode != 0:
            raise CommandFailed(
                f"{' '.join(argv)} exited {result.returncode}: {result.stderr.decode(errors='replace')[-1500:]}"
            )
        if check:
            check(i, result.stdout.decode(errors="replace"))
        samples.append(elapsed)
        if len(samples) >= min_reps and time.monotonic() - started > budget_s:
            break
    return Timing(samples)
