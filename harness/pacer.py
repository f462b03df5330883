"""Open-model pacing: a fixed arrival rate with intended start times (as wrk2 / k6 arrival-rate).

The users of a target are its pool of executors.  Each free user claims the
next slot of the schedule ``t0 + k / rate`` and sleeps until then; a slot
claimed after its time is a *late* start (every executor was busy: the backend
is holding them), and a slot more than ``max_late_s`` overdue is *dropped*
(counted, not sent) so a stall cannot turn into a burst.  The transaction's
latency is measured from the intended start, so the time a request waited for
a free executor is not hidden (coordinated omission).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gevent

LATE_TOLERANCE_S = 0.005  # gevent's timer granularity is ~1 ms; beyond 5 ms a start is late


@dataclass
class PacerCounts:
    scheduled: int = 0  # slots whose time has come (started + dropped)
    started: int = 0
    late: int = 0
    dropped: int = 0
    max_late_ms: float = 0.0

    def add(self, other: PacerCounts | dict[str, Any]) -> None:
        o = other if isinstance(other, PacerCounts) else PacerCounts(**other)
        self.scheduled += o.scheduled
        self.started += o.started
        self.late += o.late
        self.dropped += o.dropped
        self.max_late_ms = max(self.max_late_ms, o.max_late_ms)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Pacer:
    def __init__(
        self,
        rate_per_s: float,
        max_late_s: float = 1.0,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], Any] = gevent.sleep,
    ) -> None:
        if rate_per_s <= 0:
            raise ValueError("rate must be > 0")
        self.interval = 1.0 / rate_per_s
        self.max_late_s = max_late_s
        self.clock = clock
        self.sleep = sleep
        self.t0: float | None = None
        self.next_k = 0
        self.counts = PacerCounts()  # since the last drain

    def acquire(self) -> float:
        """Claim a slot, wait for its time, return the intended start (``clock`` seconds)."""
        now = self.clock()
        if self.t0 is None:
            self.t0 = now
        k = self.next_k
        intended = self.t0 + k * self.interval
        overdue = now - intended
        if overdue > self.max_late_s:
            # skip straight to the first slot still within max_late_s
            first_ok = math.ceil((now - self.max_late_s - self.t0) / self.interval)
            self.counts.dropped += first_ok - k
            self.counts.scheduled += first_ok - k
            k = first_ok
            intended = self.t0 + k * self.interval
            overdue = now - intended
        self.next_k = k + 1
        if overdue < 0:
            self.sleep(-overdue)
        elif overdue > LATE_TOLERANCE_S:
            self.counts.late += 1
            self.counts.max_late_ms = max(self.counts.max_late_ms, overdue * 1000.0)
        self.counts.scheduled += 1
        self.counts.started += 1
        return intended

    def drain(self) -> PacerCounts:
        out, self.counts = self.counts, PacerCounts()
        return out
