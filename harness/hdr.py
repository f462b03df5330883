"""Exact latency: HDR histograms per (type, name, step), shipped and merged losslessly.

Every process records the samples it sees (``events.request``) into
histograms of microseconds with 3 significant digits (1 µs to 1 h); workers
hand the master their histograms since the last report (``drain``), the master
adds them (``merge``).  Percentiles are never averaged.

Samples that complete within the warm-up window (seconds since the test
started in that process) are left out; failures are counted, not recorded.

Besides its own latency, an entry keeps where the time went
(:mod:`harness.phases`): a histogram per phase (``connect``, ``ttfb``,
``download``, ``server`` for an HTTP call; ``connect``, ``server``, ``rest``
for a lookup), running sums of the server's named metrics (PostgREST's
``jwt``, ``parse``, ``plan``, ``transaction``, ``response``; Convex's
``exec``) for their means, the new connections opened, and how many samples
carried server timing at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.contracts import HDR_HIGHEST_US, HDR_LOWEST_US, HDR_SIGNIFICANT_DIGITS, target_of
from harness.split import Reservoir

Key = tuple[str, str, int | None]  # (type, name, step)


def new_histogram() -> HdrHistogram:
    return HdrHistogram(HDR_LOWEST_US, HDR_HIGHEST_US, HDR_SIGNIFICANT_DIGITS)


def to_us(response_time_ms: float) -> int:
    us = round(response_time_ms * 1000.0)
    return min(max(us, HDR_LOWEST_US), HDR_HIGHEST_US)


FOLD_IN_PYTHON = 32  # below this many pending values a plain loop beats numpy's set-up


class Histogram:
    """An HdrHistogram of µs that takes its values in batches.

    ``record`` only appends to a list (the users' hot path); the values are
    folded into the histogram's counts, vectorised with numpy, when it is read
    (``hdr``), shipped or merged.  The counts are exactly those of
    ``HdrHistogram.record_value`` for each value (tests check it).
    """

    __slots__ = ("_h", "max_us", "min_us", "pending")

    def __init__(self, h: HdrHistogram | None = None) -> None:
        self._h = h if h is not None else new_histogram()
        self.pending: list[float] = []  # ms, as measured: made µs when folded (append to record)
        # the exact extremes of the values folded here (hdrh's own become bucket values after add())
        self.min_us: int | None = None
        self.max_us: int | None = None

    def record_ms(self, ms: float) -> None:
        self.pending.append(ms)

    @property
    def total(self) -> int:
        return int(self._h.total_count) + len(self.pending)

    @property
    def hdr(self) -> HdrHistogram:
        if self.pending:
            self._fold()
        return self._h

    def _fold(self) -> None:
        h, values = self._h, self.pending
        self.pending = []
        if len(values) < FOLD_IN_PYTHON:
            us = [to_us(ms) for ms in values]
            for v in us:
                h.record_value(v)
            self._extremes(min(us), max(us))
            return
        # to_us, vectorised: rint rounds half to even, as round() does
        arr = np.clip(np.rint(np.asarray(values, dtype=np.float64) * 1000.0), HDR_LOWEST_US, HDR_HIGHEST_US).astype(np.int64)
        # hdrh's _counts_index_for, vectorised: 64 - clz(v | mask) is the bit length, exact via frexp
        _, bits = np.frexp((arr | h.sub_bucket_mask).astype(np.float64))
        bucket = bits.astype(np.int64) - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
        sub = arr >> (bucket + h.unit_magnitude)
        index = ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub - h.sub_bucket_half_count
        np.add.at(np.frombuffer(h.counts, dtype=np.uint64), index, 1)
        h.total_count += len(values)
        low, high = int(arr.min()), int(arr.max())
        h.min_value = min(h.min_value, low)
        h.max_value = max(h.max_value, high)
        self._extremes(low, high)

    def _extremes(self, low: int, high: int) -> None:
        self.min_us = low if self.min_us is None else min(self.min_us, low)
        self.max_us = high if self.max_us is None else max(self.max_us, high)

    def add(self, other: Histogram) -> None:
        if other.total:
            self.hdr.add(other.hdr)

    def encode(self) -> str:
        return str(self.hdr.encode().decode("ascii"))

    @classmethod
    def decode(cls, text: str) -> Histogram:
        return cls(HdrHistogram.decode(text.encode("ascii")))


@dataclass
class Entry:
    values: Histogram = field(default_factory=Histogram)
    failures: int = 0
    min_us: int | None = None
    max_us: int | None = None
    # plain dicts, not Counters: a Counter's item access costs twice a dict's, on every sample
    round_trips: dict[int, int] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status per call (0: no response)
    phases: dict[str, Histogram] = field(default_factory=dict)  # phase -> µs histogram (successes)
    metric_sums: dict[str, list[float]] = field(default_factory=dict)  # server metric -> [sum ms, samples]
    new_connections: int = 0
    server_timed: int = 0  # successful samples whose server time is known
    split: Reservoir | None = None  # lookups (whole run): a uniform sample of (total, connect, server)

    def settle(self) -> HdrHistogram:
        """Fold every recorded value into the histogram (µs), and its exact extremes into min and max."""
        h = self.values.hdr
        for v in (self.values.min_us, self.values.max_us):
            if v is not None:
                self.min_us = v if self.min_us is None else min(self.min_us, v)
                self.max_us = v if self.max_us is None else max(self.max_us, v)
        return h

    @property
    def hist(self) -> HdrHistogram:
        return self.settle()

    @property
    def count(self) -> int:
        return self.values.total

    def record_ms(self, ms: float) -> None:
        self.values.pending.append(ms)

    def add_metrics(self, metrics: dict[str, float]) -> None:
        for name, ms in metrics.items():
            acc = self.metric_sums.get(name)
            if acc is None:
                self.metric_sums[name] = [ms, 1]
            else:
                acc[0] += ms
                acc[1] += 1

    def add(self, other: Entry) -> None:
        other.settle()
        self.values.add(other.values)
        for name, h in other.phases.items():
            mine = self.phases.get(name)
            if mine is None:
                mine = self.phases[name] = Histogram()
            mine.add(h)
        for name, (total, n) in other.metric_sums.items():
            acc = self.metric_sums.setdefault(name, [0.0, 0])
            acc[0] += total
            acc[1] += n
        self.new_connections += other.new_connections
        self.server_timed += other.server_timed
        if other.split is not None and other.split.n:
            if self.split is None:
                self.split = Reservoir()
            self.split.merge(other.split.items, other.split.n)
        self.failures += other.failures
        for v in (other.min_us, other.max_us):
            if v is not None:
                self.min_us = v if self.min_us is None else min(self.min_us, v)
                self.max_us = v if self.max_us is None else max(self.max_us, v)
        for counts, more in ((self.round_trips, other.round_trips), (self.statuses, other.statuses)):
            for k, n in more.items():
                counts[k] = counts.get(k, 0) + n

    def encode(self) -> dict[str, Any]:
        hdr = self.settle().encode().decode("ascii")  # first: it settles min and max
        return {
            "count": self.count,
            "failures": self.failures,
            "min": self.min_us,
            "max": self.max_us,
            "hdr": hdr,
            "round_trips": {str(k): v for k, v in sorted(self.round_trips.items())},
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            **self.encode_phases(),
        }

    def encode_phases(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.phases:
            out["phases"] = {name: {"count": h.total, "hdr": h.encode()} for name, h in sorted(self.phases.items())}
        if self.metric_sums:
            out["server_metrics"] = {name: {"sum_ms": round(total, 3), "count": int(n)}
                                     for name, (total, n) in sorted(self.metric_sums.items())}
        if self.new_connections:
            out["new_connections"] = self.new_connections
        if self.server_timed:
            out["server_timed"] = self.server_timed
        if self.split is not None and self.split.n:
            out["split"] = self.split.encode()
        return out

    @classmethod
    def decode(cls, doc: dict[str, Any]) -> Entry:
        e = cls(
            values=Histogram.decode(doc["hdr"]),
            failures=int(doc.get("failures", 0)),
            min_us=doc.get("min"),
            max_us=doc.get("max"),
        )
        e.round_trips = {int(k): int(v) for k, v in (doc.get("round_trips") or {}).items()}
        e.statuses = {int(k): int(v) for k, v in (doc.get("statuses") or {}).items()}
        e.phases = {name: Histogram.decode(p["hdr"]) for name, p in (doc.get("phases") or {}).items()}
        e.metric_sums = {name: [float(m["sum_ms"]), int(m["count"])] for name, m in (doc.get("server_metrics") or {}).items()}
        e.new_connections = int(doc.get("new_connections", 0))
        e.server_timed = int(doc.get("server_timed", 0))
        if doc.get("split"):
            items, n = Reservoir.decode(doc["split"])
            e.split = Reservoir()
            e.split.merge(items, n)
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
        status: int | None = None, phases: dict[str, float] | None = None, metrics: dict[str, float] | None = None,
        new_connections: int = 0,
    ) -> None:
        started = self.started  # in_warmup(), inlined: this runs for every sample
        warm = started is None or self.clock() - started < self.warmup_s
        if self.raw is not None:
            self.raw.append((time.time(), rtype, name, self.step, to_us(response_time_ms), int(failed), int(warm)))
        if warm:
            self.warmup_dropped += 1
            return
        whole = (rtype, name, None)
        step = self.step
        entries = self.entries
        for key in (whole,) if step is None else (whole, (rtype, name, step)):
            e = entries.get(key) or self._entry(key)
            if failed:
                e.failures += 1
            else:
                e.values.pending.append(response_time_ms)
                if phases:
                    mine = e.phases
                    for phase, ms in phases.items():
                        h = mine.get(phase)
                        if h is None:
                            h = mine[phase] = Histogram()
                        h.pending.append(ms)
                    if "server" in phases:
                        e.server_timed += 1
                    if rtype == "lookup" and key[2] is None:
                        if e.split is None:
                            e.split = Reservoir()
                        e.split.add(response_time_ms, phases)
                if metrics:
                    e.add_metrics(metrics)
            if round_trips is not None:
                counts = e.round_trips
                counts[round_trips] = counts.get(round_trips, 0) + 1
            if status is not None:
                counts = e.statuses
                counts[status] = counts.get(status, 0) + 1
            if new_connections:
                e.new_connections += new_connections

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
            if targets is not None and target_of(key[1]) not in targets:
                continue
            e = self.entries[key]
            hdr = e.settle().encode().decode("ascii")  # first: it settles min and max
            doc = {"type": key[0], "name": key[1], "step": key[2], "count": e.count, "failures": e.failures,
                   "unit": "us", "min": e.min_us, "max": e.max_us, "hdr": hdr}
            if e.round_trips:
                doc["round_trips"] = {str(k): v for k, v in sorted(e.round_trips.items())}
            if e.statuses:
                doc["statuses"] = {str(k): v for k, v in sorted(e.statuses.items())}
            doc.update(e.encode_phases())
            out.append(doc)
        return out
