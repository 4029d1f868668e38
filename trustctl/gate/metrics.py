"""Prometheus metrics for the gate, in the text exposition format (no dependency)."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustctl.gate.review import Verdict

__all__ = ["Metrics"]

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 8.0)


class Metrics:
    """Decisions by webhook, outcome and reason; latency; seconds to expiry per role."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.decisions: Counter[tuple[str, str, str]] = Counter()
        self._buckets: Counter[tuple[str, float]] = Counter()
        self._sum: dict[str, float] = defaultdict(float)
        self._count: Counter[str] = Counter()
        self._expiry: dict[tuple[str, str], datetime] = {}
        #: Offline mode: () -> (sequence, not_after) of the bundle in force, or None.
        self.bundle: Callable[[], tuple[int, datetime] | None] | None = None

    def decided(self, webhook: str, verdict: Verdict, seconds: float) -> None:
        outcome = "allow" if verdict.allowed else "deny"
        with self._lock:
            self.decisions[(webhook, outcome, verdict.reason)] += 1
            for b in BUCKETS:
                if seconds <= b:
                    self._buckets[(webhook, b)] += 1
            self._sum[webhook] += seconds
            self._count[webhook] += 1

    def expiries(self, gun: str, expires: Mapping[str, datetime]) -> None:
        with self._lock:
            for role, moment in expires.items():
                self._expiry[(gun, role)] = moment
            if len(self._expiry) > 10_000:  # bounded: forget the oldest entries
                for key in list(self._expiry)[:1000]:
                    del self._expiry[key]

    def render(self) -> str:
        now = datetime.now(UTC)
        lines = [
            "# HELP trustctl_gate_decisions_total Admission decisions by webhook, outcome and reason.",
            "# TYPE trustctl_gate_decisions_total counter",
        ]
        with self._lock:
            for (hook, outcome, reason), n in sorted(self.decisions.items()):
                lines.append(
                    f'trustctl_gate_decisions_total{{webhook="{hook}",outcome="{outcome}",reason="{reason}"}} {n}'
                )
            lines += [
                "# HELP trustctl_gate_decision_seconds Time to answer an AdmissionReview.",
                "# TYPE trustctl_gate_decision_seconds histogram",
            ]
            for hook in sorted(self._count):
                for b in BUCKETS:
                    lines.append(
                        f'trustctl_gate_decision_seconds_bucket{{webhook="{hook}",le="{b}"}} {self._buckets[(hook, b)]}'
                    )
                lines.append(
                    f'trustctl_gate_decision_seconds_bucket{{webhook="{hook}",le="+Inf"}} {self._count[hook]}'
                )
                lines.append(
                    f'trustctl_gate_decision_seconds_sum{{webhook="{hook}"}} {self._sum[hook]:.6f}'
                )
                lines.append(
                    f'trustctl_gate_decision_seconds_count{{webhook="{hook}"}} {self._count[hook]}'
                )
            lines += [
                "# HELP trustctl_gate_trust_seconds_to_expiry Seconds until a trusted role expires.",
                "# TYPE trustctl_gate_trust_seconds_to_expiry gauge",
            ]
            for (gun, role), moment in sorted(self._expiry.items()):
                left = (moment - now).total_seconds()
                lines.append(
                    f'trustctl_gate_trust_seconds_to_expiry{{gun="{gun}",role="{role}"}} {left:.0f}'
                )
        current = self.bundle() if self.bundle is not None else None
        if current is not None:
            sequence, not_after = current
            lines += [
                "# HELP trustctl_gate_bundle_sequence Sequence of the offline bundle in force.",
                "# TYPE trustctl_gate_bundle_sequence gauge",
                f"trustctl_gate_bundle_sequence {sequence}",
                "# HELP trustctl_gate_bundle_seconds_to_stale Seconds until the offline bundle goes stale.",
                "# TYPE trustctl_gate_bundle_seconds_to_stale gauge",
                f"trustctl_gate_bundle_seconds_to_stale {(not_after - now).total_seconds():.0f}",
            ]
        return "\n".join(lines) + "\n"
