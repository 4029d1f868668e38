"""Prometheus metrics, kept in process without extra dependencies.

Each worker process keeps its own counters (as the Prometheus multi-process
convention does without a shared directory); scrape every worker or sum them.
"""

from __future__ import annotations

import threading
from collections import defaultdict

__all__ = ["Metrics"]


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: defaultdict[tuple[str, str, int], int] = defaultdict(int)
        self._seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        self._count: defaultdict[tuple[str, str], int] = defaultdict(int)

    def observe(self, operation: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(operation, method, status)] += 1
            self._seconds[(operation, method)] += seconds
            self._count[(operation, method)] += 1

    def render(self) -> str:
        lines = [
            "# HELP notary_server_http_requests_total HTTP requests by operation and status.",
            "# TYPE notary_server_http_requests_total counter",
        ]
        with self._lock:
            for (op, method, status), n in sorted(self._requests.items()):
                lines.append(
                    f'notary_server_http_requests_total{{operation="{op}",method="{method}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP notary_server_http_request_duration_seconds Time spent answering requests.",
                "# TYPE notary_server_http_request_duration_seconds summary",
            ]
            for (op, method), total in sorted(self._seconds.items()):
                labels = f'operation="{op}",method="{method}"'
                lines.append(
                    f"notary_server_http_request_duration_seconds_sum{{{labels}}} {total:.6f}"
                )
                lines.append(
                    f"notary_server_http_request_duration_seconds_count{{{labels}}} "
                    f"{self._count[(op, method)]}"
                )
        return "\n".join(lines) + "\n"
