"""The realtime targets in a report: how fast an agent's inbox sees a new message, and what it never saw.

Informs the inbox step that follows a GO; it does not change the lookup verdict
or the exit code.  Latency is from the write's commit on the server to the
update's arrival at the subscriber (harness.realtime), with the percentile's
order-statistics interval; deliveries come from the artifact's
``metadata.realtime``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.contracts import REALTIME, REALTIME_TARGETS, TARGETS
from reports.load import Run
from reports.stats import Interval, quantile_interval

NOTE = (
    "Informs the inbox step (Convex subscriptions after a GO); it does not change the lookup verdict or the exit "
    "code. Latency: from the write's commit on the server (Convex: the update's commit timestamp; Supabase: "
    "commit_timestamp) to the update's arrival; on one machine (the sandbox) the clocks agree, against a deployment "
    "the offset between its clock and this machine's is in the numbers. Convex delivers states: writes committed "
    "within one refresh arrive as one update. Missed: writes to a subscriber's workspace, after it subscribed and "
    "3 s before the end, that it never saw."
)


@dataclass(frozen=True)
class RealtimeStats:
    target: str
    updates: int
    failures: int
    p50: Interval | None
    p95: Interval | None
    p99: Interval | None
    writes: int | None
    expected: int | None
    missed: int | None
    out_of_order: int | None
    subscribers: int | None

    def to_dict(self) -> dict[str, Any]:
        def iv(i: Interval | None) -> dict[str, Any] | None:
            return i.to_dict() if i is not None else None

        return {"target": self.target, "label": TARGETS[self.target].label, "updates": self.updates,
                "failures": self.failures, "p50_ms": iv(self.p50), "p95_ms": iv(self.p95), "p99_ms": iv(self.p99),
                "writes": self.writes, "expected": self.expected, "missed": self.missed,
                "out_of_order": self.out_of_order, "subscribers": self.subscribers}


def realtime_stats(run: Run, confidence: float = 0.95) -> list[RealtimeStats]:
    delivery = ((run.metadata.get("realtime") or {}).get("delivery") or {}) if isinstance(run.metadata, dict) else {}
    out = []
    for target in REALTIME_TARGETS:
        entry = next((e for e in run.hdr_entries or [] if e.step is None and e.type == REALTIME and e.name == target), None)
        d = delivery.get(target) if isinstance(delivery, dict) else None
        if entry is None and not d:
            continue
        dist = entry.distribution if entry is not None and entry.count else None

        def q(p: float, dist: Any = dist) -> Interval | None:
            return quantile_interval(dist, p, confidence) if dist is not None else None

        def n(key: str, d: Any = d) -> int | None:
            return int(d[key]) if isinstance(d, dict) and isinstance(d.get(key), int) else None

        out.append(RealtimeStats(target, entry.count if entry else 0, entry.failures if entry else 0,
                                 q(0.50), q(0.95), q(0.99), n("writes"), n("expected"), n("missed"),
                                 n("out_of_order"), n("subscribers")))
    return out


COLUMNS = ["target", "what", "updates", "P50 ms [95% CI]", "P95 ms [95% CI]", "P99 ms", "writes", "owed", "missed",
           "out of order", "subscribers"]


def _iv(i: Interval | None) -> str:
    if i is None:
        return "n/a"
    return f"{i.estimate:.1f} [{i.low:.1f}, {i.high:.1f}]"


def rows(stats: list[RealtimeStats]) -> list[list[str]]:
    def num(v: int | None) -> str:
        return "n/a" if v is None else f"{v:,}"

    return [[s.target, TARGETS[s.target].label, f"{s.updates:,}", _iv(s.p50), _iv(s.p95),
             "n/a" if s.p99 is None else f"{s.p99.estimate:.1f}", num(s.writes), num(s.expected), num(s.missed),
             num(s.out_of_order), num(s.subscribers)] for s in stats]
