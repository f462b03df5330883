"""Where each target's lookup time goes: connect, server, database and the rest, at P50 and P95.

The split of a percentile comes from the run's sample of whole lookups
(``split`` in the artifact, :mod:`harness.split`): the lookups whose total lies
within two percentile points of P50 (or P95) are averaged part by part, so the
parts add up to that band's total.  The parts:

* **connect**: opening new connections (TCP, TLS), from the generator's side;
* **server**: what the backend says it spent (``Server-Timing``); a backend that
  sends none has no server part and the report says "no server timing": the
  rest of its time is not split further, never estimated;
* **database**: inside the server part, the execution time of one lookup that
  finds its contact (each of its statements' mean, once), from
  ``pg_stat_statements`` over the measured window (``metadata.database``), when
  ``DATABASE_URL`` was set;
* **rest**: lookup − connect − server: the network both ways and any queueing,
  the load generator's own included.

Also here: whether the load generator itself was saturated (its CPU samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from harness.contracts import TARGETS, epoch_s
from reports.load import HdrEntry, Run

BAND = 0.02  # ± percentile points around P50 / P95
SATURATED_CPU = 90.0  # % of one core
SATURATED_SHARE = 0.10  # of the measured window


@dataclass(frozen=True)
class Split:
    """The lookups around one percentile, split into parts that add up to their mean total."""

    percentile: float
    lookup_ms: float  # mean total of the band
    connect_ms: float
    server_ms: float | None  # None: no server timing
    database_ms: float | None  # inside server_ms; None: not measured
    rest_ms: float | None
    samples: int

    @property
    def server_other_ms(self) -> float | None:
        """The server's time outside the database (gateway phases, function runtime)."""
        if self.server_ms is None:
            return None
        return max(self.server_ms - (self.database_ms or 0.0), 0.0)


@dataclass(frozen=True)
class CallTiming:
    name: str  # "<target> <what>"
    calls: int
    new_connections: int
    p50_ms: dict[str, float]  # phase -> P50 (connect over the calls that opened one)
    server_metrics: dict[str, float]  # mean ms of each Server-Timing metric
    server_timed: int


@dataclass(frozen=True)
class TargetTiming:
    target: str
    lookups: int
    server_timing: str  # "all", "some" (some calls or lookups without), "none"
    new_connections_per_lookup: float
    splits: tuple[Split, ...]
    calls: tuple[CallTiming, ...] = field(default=())

    def at(self, percentile: float) -> Split | None:
        return next((s for s in self.splits if s.percentile == percentile), None)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def split_at(samples: tuple[tuple[float, float, float | None], ...], q: float,
             database_ms: float | None) -> Split | None:
    if not samples:
        return None
    ordered = sorted(samples, key=lambda s: s[0])
    n = len(ordered)
    lo = max(0, min(n - 1, math.floor((q - BAND) * n)))
    hi = max(lo + 1, min(n, math.ceil((q + BAND) * n)))
    band = ordered[lo:hi]
    total = _mean([s[0] for s in band])
    connect = _mean([s[1] for s in band])
    servers = [s[2] for s in band]
    if any(v is None for v in servers):
        return Split(q, total, connect, None, None, None, len(band))
    server = _mean([v for v in servers if v is not None])
    db = None if database_ms is None else min(database_ms, server)
    return Split(q, total, connect, server, db, max(total - connect - server, 0.0), len(band))


def _call_timing(e: HdrEntry) -> CallTiming:
    p50 = {phase: d.quantile(0.5) for phase, d in e.phases.items() if d.total}
    return CallTiming(e.name, e.count, e.new_connections, p50, dict(e.server_metrics), e.server_timed)


# a target whose statements another target sends (pgstat.classify counts them there)
STATEMENTS_OF = {"api_supabase": "supabase_rest"}


def database_ms_per_lookup(run: Run, target: str) -> float | None:
    """Database execution time of one lookup of ``target`` that finds its contact, when measured.

    From ``metadata.database`` (pg_stat_statements over the measured window):
    each call's mean execution time, once per call of the lookup.  Artifacts
    written before ``ms_per_found_lookup`` existed give the mean over all lookups.
    """
    db = run.metadata.get("database")
    if not isinstance(db, dict) or db.get("status") != "ok":
        return None
    per = (db.get("per_target") or {}).get(STATEMENTS_OF.get(target, target))
    if not isinstance(per, dict):
        return None
    value = per.get("ms_per_found_lookup", per.get("mean_ms_per_lookup"))
    return float(value) if isinstance(value, int | float) else None


def target_timings(run: Run) -> list[TargetTiming]:
    """Per measured target (registry order), from the artifact; empty without one or before format /2."""
    entries = [e for e in run.hdr_entries or [] if e.step is None]
    out = []
    for target in TARGETS:
        lookup = next((e for e in entries if e.type == "lookup" and e.name == target), None)
        if lookup is None or not lookup.split:
            continue
        calls = tuple(_call_timing(e) for e in entries if e.name.startswith(target + " ") and e.phases)
        timed = sum(1 for s in lookup.split if s[2] is not None)
        server_timing = "all" if timed == len(lookup.split) else "none" if timed == 0 else "some"
        db = database_ms_per_lookup(run, target)
        splits = tuple(s for q in (0.5, 0.95) if (s := split_at(lookup.split, q, db)) is not None)
        conns = lookup.new_connections / lookup.count if lookup.count else 0.0
        out.append(TargetTiming(target, lookup.count, server_timing, conns, splits, calls))
    return out


# --------------------------------------------------------------------------- the generator itself


@dataclass(frozen=True)
class GeneratorCpu:
    process: str
    samples: int
    mean: float
    peak: float
    saturated_share: float  # of the measured window's samples above SATURATED_CPU

    @property
    def saturated(self) -> bool:
        return self.samples > 0 and self.saturated_share > SATURATED_SHARE


def generator_cpu(run: Run) -> list[GeneratorCpu]:
    """Each Locust process's CPU over the measured window (after the warm-up), from the artifact."""
    doc = run.metadata.get("generator_cpu")
    if not isinstance(doc, dict):
        return []
    start, end = epoch_s(run.metadata.get("started_at")), epoch_s(run.metadata.get("ended_at"))
    return cpu_in_window(doc.get("processes") or {}, (start or 0.0) + run.warmup_s, end if end is not None else math.inf)


def cpu_in_window(processes: dict[str, Any], lo: float, hi: float) -> list[GeneratorCpu]:
    """Per process: its ``[unix time, percent]`` samples between ``lo`` and ``hi`` summarised."""
    out = []
    for process, samples in sorted(processes.items()):
        try:
            values = [float(p) for t, p in samples if lo <= float(t) <= hi]
        except (TypeError, ValueError):
            continue
        if not values:
            out.append(GeneratorCpu(str(process), 0, 0.0, 0.0, 0.0))
            continue
        hot = sum(1 for v in values if v > SATURATED_CPU)
        out.append(GeneratorCpu(str(process), len(values), _mean(values), max(values), hot / len(values)))
    return out


def saturation_problems(run: Run) -> list[str]:
    return saturation_lines(generator_cpu(run))


def saturation_lines(cpus: list[GeneratorCpu]) -> list[str]:
    return [
        f"generator saturated: Locust process {c.process} was above {SATURATED_CPU:g} % CPU for "
        f"{c.saturated_share:.0%} of the measured window (its latencies include its own queueing)"
        for c in cpus if c.saturated
    ]


def database_line(run: Run) -> str | None:
    """Where the "of which database" column comes from, or why it is empty; None when no Supabase target ran."""
    db = run.metadata.get("database")
    if not isinstance(db, dict):
        return None
    if db.get("status") != "ok":
        return f"database: not measured: {db.get('reason') or 'unknown reason'}"
    return (f"database: pg_stat_statements over the measured window ({float(db.get('window_s') or 0):.0f} s, "
            f"{db.get('database')}); Convex's database time is inside its exec and is not split out.")


def cpu_line(run: Run) -> str:
    cpus = generator_cpu(run)
    if not cpus:
        return "generator CPU: not recorded"
    parts = [f"{c.process} mean {c.mean:.0f} %, peak {c.peak:.0f} %" + (" (SATURATED)" if c.saturated else "")
             for c in cpus if c.samples]
    return "generator CPU: " + ("; ".join(parts) if parts else "no samples in the measured window")
