"""Exact latency: HDR histograms per (type, name, step), shipped and merged losslessly.

Every process records the samples it sees (``events.request``) into
histograms of microseconds with 3 significant digits (1 µs to 1 h); workers
hand the master their histograms since the last report (``drain``), the master
adds them (``merge``).  Percentiles are never averaged.

Samples that complete within the warm-up window (seconds since the test
started in that process) are left out; failures are counted, not recorded.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # 1 h
SIGNIFICANT_DIGITS = 3
TRANSACTION_TYPES = ("lookup", "lookup-miss", "write")

Key = tuple[str, str, int | None]  # (type, name, step)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def to_us(response_time_ms: float) -> int:
    us = round(response_time_ms * 1000.0)
    return min(max(us, LOWEST_US), HIGHEST_US)


@dataclass
class Entry:
    hist: HdrHistogram = field(default_factory=new_histogram)
    failures: int = 0
    min_us: int | None = None
    max_us: int | None = None
    round_trips: Counter[int] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)  # HTTP status per call (0: no response)

    @property
    def count(self) -> int:
        return int(self.hist.get_total_count())

    def record(self, us: int) -> None:
        self.hist.record_value(us)
        if self.min_us is None or us < self.min_us:
            self.min_us = us
        if self.max_us is None or us > self.max_us:
            self.max_us = us

    def add(self, other: Entry) -> None:
        if other.count:
            self.hist.add(other.hist)
        self.failures += other.failures
        for v in (other.min_us, other.max_us):
            if v is not None:
                self.min_us = v if self.min_us is None else min(self.min_us, v)
                self.max_us = v if self.max_us is None else max(self.max_us, v)
        self.round_trips.update(other.round_trips)
        self.statuses.update(other.statuses)

    def encode(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "failures": self.failures,
            "min": self.min_us,
            "max": self.max_us,
            "hdr": self.hist.encode().decode("ascii"),
            "round_trips": {str(k): v for k, v in sorted(self.round_trips.items())},
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }

    @classmethod
    def decode(cls, doc: dict[str, Any]) -> Entry:
        e = cls(
            hist=HdrHistogram.decode(doc["hdr"].encode("ascii")),
            failures=int(doc.get("failures", 0)),
            min_us=doc.get("min"),
            max_us=doc.get("max"),
        )
        e.round_trips.update({int(k): int(v) for k, v in (doc.get("round_trips") or {}).items()})
        e.statuses.update({int(k): int(v) for k, v in (doc.get("statuses") or {}).items()})
        return e


class Recorder:
    """Histograms of one process (or, on the master, of the whole run)."""

    def __init__(self, warmup_s: float = 0.0, clock: Any = time.monotonic) -> None:
        self.warmup_s = warmup_s
        self.clock = clock
        self.started: float | None = None
        self.step: int | None = None
        self.entries: dict[Key, Entry] = {}
        self.warmup_dropped = 0
        self.raw: list[tuple[float, str, str, int | None, int, int, int]] | None = None

    def start(self, warmup_s: float | None = None) -> None:
        if warmup_s is not None:
            self.warmup_s = warmup_s
        self.started = self.clock()
        self.entries = {}
        self.warmup_dropped = 0
        if self.raw is not None:
            self.raw = []

    def in_warmup(self) -> bool:
        return self.started is None or self.clock() - self.started < self.warmup_s

    def _entry(self, key: Key) -> Entry:
        e = self.entries.get(key)
        if e is None:
            e = self.entries[key] = Entry()
        return e

    def record(
        self, rtype: str, name: str, response_time_ms: float, failed: bool, round_trips: int | None = None,
        status: int | None = None,
    ) -> None:
        warm = self.in_warmup()
        us = to_us(response_time_ms)
        if self.raw is not None:
            self.raw.append((time.time(), rtype, name, self.step, us, int(failed), int(warm)))
        if warm:
            self.warmup_dropped += 1
            return
        keys: tuple[Key, ...] = ((rtype, name, None),) if self.step is None else ((rtype, name, None), (rtype, name, self.step))
        for key in keys:
            e = self._entry(key)
            if failed:
                e.failures += 1
            else:
                e.record(us)
            if round_trips is not None:
                e.round_trips[round_trips] += 1
            if status is not None:
                e.statuses[status] += 1

    # ------------------------------------------------------------ shipping
    def drain(self) -> list[dict[str, Any]]:
        """Everything recorded since the last drain, encoded; the recorder starts afresh."""
        out = [{"type": k[0], "name": k[1], "step": k[2], **e.encode()} for k, e in self.entries.items()]
        self.entries = {}
        return out

    def drain_raw(self) -> list[tuple[float, str, str, int | None, int, int, int]]:
        rows = self.raw or []
        if self.raw is not None:
            self.raw = []
        return rows

    def merge(self, encoded: list[dict[str, Any]]) -> None:
        for doc in encoded:
            key = (doc["type"], doc["name"], doc["step"])
            self._entry(key).add(Entry.decode(doc))

    def merge_recorder(self, other: Recorder) -> None:
        for key, e in other.entries.items():
            self._entry(key).add(e)

    # ------------------------------------------------------------ reading
    def get(self, rtype: str, name: str, step: int | None = None) -> Entry | None:
        return self.entries.get((rtype, name, step))

    def artifact_entries(self, targets: set[str] | None = None) -> list[dict[str, Any]]:
        """Entries for the artifact, sorted (type, name, step None first): rows whose name starts with a
        target id (transactions ``<target>``, calls ``<target> <what>``); others (e.g. a plain user) are left out."""

        def order(k: Key) -> tuple[str, str, int]:
            return (k[0], k[1], -1 if k[2] is None else k[2])

        out: list[dict[str, Any]] = []
        for key in sorted(self.entries, key=order):
            if targets is not None and key[1].split(" ", 1)[0] not in targets:
                continue
            e = self.entries[key]
            doc = {"type": key[0], "name": key[1], "step": key[2], "count": e.count, "failures": e.failures,
                   "unit": "us", "min": e.min_us, "max": e.max_us, "hdr": e.hist.encode().decode("ascii")}
            if e.round_trips:
                doc["round_trips"] = {str(k): v for k, v in sorted(e.round_trips.items())}
            if e.statuses:
                doc["statuses"] = {str(k): v for k, v in sorted(e.statuses.items())}
            out.append(doc)
        return out
