"""The decision rules of the spike: the one place that holds them.

Used by ``python -m reports decide`` and by the load harness's live web-UI tab,
so this module imports nothing heavier than :mod:`reports.stats` (standard
library only): no pandas, numpy or matplotlib.

Verdict, per level (``direct`` backends; ``api`` routes when measured), against
the baseline (``supabase_rest``, the app today; ``api_supabase`` for routes):

* **GO** (migrate to Convex): Convex's P95 is under ``p95_target_ms``, its
  queries per lookup are under ``max_queries``, and its P95 is at least
  ``min_speedup`` below the baseline's: ``P95_convex / P95_baseline <= 1 - min_speedup``.
* **OPTIMISE SUPABASE**: the two differ by less than ``equivalence`` or Convex
  is the slower: ``P95_convex / P95_baseline > 1 - equivalence``.
* **INCONCLUSIVE** otherwise, with the reason.

"Supported by the interval": with histograms, the ratio test uses a bootstrap
95 % CI of the P95 ratio (GO needs its upper bound <= 1 - min_speedup,
OPTIMISE its lower bound > 1 - equivalence), and the target test uses the
order-statistics CI of Convex's P95 (upper bound < target).  With Locust's CSV
percentiles only, the bounds are those of Locust's bucketing (no sampling CI).

Evidence, per target: at least ``min_samples`` successful samples and a failure
ratio at most ``max_failure_ratio``.  A target that fails either is left out;
if the baseline or every Convex variant is left out, the verdict is INCONCLUSIVE
and says what is missing.

Which Convex: both Convex variants (``convex_http``, ``convex_query``) are
evaluated and shown; the verdict is decided on the one with the lowest P95
point estimate among those with enough evidence (a team would ship the faster
interface).  The second finding compares that Convex variant with the best
optimised Supabase variant (``supabase_nested`` or ``supabase_rpc``, lowest
P95 with enough evidence).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

from harness.contracts import LEVELS, TARGETS, levels_measured, targets_of
from reports.stats import (
    Distribution,
    Interval,
    bucket_ratio_interval,
    distribution_from_histogram,
    locust_bucket_bounds,
    quantile_interval,
    ratio_interval,
)


class Verdict(StrEnum):
    GO = "GO"
    OPTIMISE_SUPABASE = "OPTIMISE SUPABASE"
    INCONCLUSIVE = "INCONCLUSIVE"


#: Process exit codes of ``python -m reports decide`` (for CI gating).
EXIT_CODES: dict[Verdict, int] = {Verdict.GO: 0, Verdict.OPTIMISE_SUPABASE: 10, Verdict.INCONCLUSIVE: 11}
EXIT_BAD_INPUT = 2
EXIT_RUN_CANNOT_DECIDE = 3  # `decide --strict`: the run did not measure what it claims
EXIT_INTERNAL_ERROR = 1


@dataclass(frozen=True)
class Thresholds:
    p95_target_ms: float = 500.0
    min_speedup: float = 0.5
    equivalence: float = 0.2
    min_samples: int = 1000
    max_failure_ratio: float = 0.01
    max_queries: int = 2  # the spike's "query count < 2"
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    require_ci: bool = False  # refuse GO/OPTIMISE on CSV-only bucket bounds

    def validate(self) -> None:
        """Raise ValueError naming the option when a threshold makes no sense."""
        if not self.p95_target_ms > 0:
            raise ValueError(f"--p95-target-ms must be > 0, got {self.p95_target_ms}")
        if not 0 < self.min_speedup < 1:
            raise ValueError(f"--min-speedup must be in (0, 1), got {self.min_speedup}")
        if not 0 <= self.equivalence < 1:
            raise ValueError(f"--equivalence must be in [0, 1), got {self.equivalence}")
        if self.equivalence > self.min_speedup:
            raise ValueError(
                f"--equivalence ({self.equivalence}) must not exceed --min-speedup ({self.min_speedup}):"
                " GO and OPTIMISE SUPABASE would overlap"
            )
        if self.min_samples < 1:
            raise ValueError(f"--min-samples must be >= 1, got {self.min_samples}")
        if not 0 <= self.max_failure_ratio < 1:
            raise ValueError(f"--max-failure-ratio must be in [0, 1), got {self.max_failure_ratio}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if self.resamples < 100:
            raise ValueError(f"resamples must be >= 100, got {self.resamples}")

    @property
    def go_ratio(self) -> float:
        return 1 - self.min_speedup

    @property
    def equivalent_ratio(self) -> float:
        return 1 - self.equivalence

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: The decision's command-line options, one place for ``python -m reports`` and the Locust harness:
#: (flag, Thresholds field, type, help).
THRESHOLD_OPTIONS: tuple[tuple[str, str, type, str], ...] = (
    ("--p95-target-ms", "p95_target_ms", float, "GO needs Convex's P95 under this many ms"),
    ("--min-speedup", "min_speedup", float, "GO needs Convex's P95 at least this fraction below Supabase's"),
    ("--equivalence", "equivalence", float,
     "OPTIMISE SUPABASE when the P95s differ by less than this fraction, or Convex is slower"),
    ("--min-samples", "min_samples", int, "successful lookups needed per target"),
    ("--max-failure-ratio", "max_failure_ratio", float,
     "a target failing more than this share of its requests leaves the run undecided"),
)


def add_threshold_arguments(add_argument: Callable[..., Any], *, prefix: str = "", suffix: str = "") -> None:
    """Add THRESHOLD_OPTIONS through ``add_argument`` (a parser's or a Locust group's), defaults from Thresholds."""
    defaults = Thresholds()
    for flag, field_name, kind, text in THRESHOLD_OPTIONS:
        add_argument(flag, type=kind, default=getattr(defaults, field_name), help=f"{prefix}{text}{suffix}")

@dataclass(frozen=True)
class TargetStats:
    """What the rules need to know about one target's lookups.

    ``count`` is successful samples (after warm-up); ``failures`` failed ones.
    ``other_requests`` / ``other_failures`` are the target's other transactions
    (lookups of unknown phones, writes), so the failure ratio counts every
    request of the target.  Latencies in ms; ``None`` when there were no
    successes.  ``distribution`` (from an HDR histogram or raw samples) enables
    confidence intervals; without it, the percentiles are taken to be Locust's
    bucketed values.
    """

    target: str
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    count: int
    failures: int = 0
    rps: float | None = None
    level: str | None = None
    round_trips: int | None = None
    queries: int | None = None
    distribution: Distribution | None = None
    source: str = "csv"  # "hdr", "samples" or "csv"
    other_requests: int = 0
    other_failures: int = 0

    def __post_init__(self) -> None:
        info = TARGETS.get(self.target)
        if info is not None:
            if self.level is None:
                object.__setattr__(self, "level", info.level)
            if self.round_trips is None:
                object.__setattr__(self, "round_trips", info.round_trips)
            if self.queries is None:
                object.__setattr__(self, "queries", info.queries)

    @property
    def requests(self) -> int:
        """Every transaction of the target: lookups, lookups of unknown phones, writes."""
        return self.count + self.failures + self.other_requests

    @property
    def failure_ratio(self) -> float:
        total = self.requests
        return (self.failures + self.other_failures) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "distribution"}
        out["requests"] = self.requests
        out["failure_ratio"] = self.failure_ratio
        return out


def target_from_distribution(
    target: str,
    distribution: Distribution,
    failures: int = 0,
    rps: float | None = None,
    source: str = "samples",
    **overrides: Any,
) -> TargetStats:
    """Build :class:`TargetStats` with exact percentiles from a histogram/sample distribution."""
    has = distribution.total > 0
    return TargetStats(
        target=target,
        p50_ms=distribution.quantile(0.50) if has else None,
        p95_ms=distribution.quantile(0.95) if has else None,
        p99_ms=distribution.quantile(0.99) if has else None,
        count=distribution.total,
        failures=failures,
        rps=rps,
        distribution=distribution if has else None,
        source=source,
        **overrides,
    )


def target_from_histogram(
    target: str,
    histogram: Any,
    failures: int = 0,
    rps: float | None = None,
    unit_per_ms: float = 1000.0,
    **overrides: Any,
) -> TargetStats:
    """For the live tab: ``hdrh.histogram.HdrHistogram`` (µs by default) → :class:`TargetStats`."""
    dist = distribution_from_histogram(histogram, unit_per_ms=unit_per_ms)
    return target_from_distribution(target, dist, failures=failures, rps=rps, source="hdr", **overrides)


def target_from_locust_entry(target: str, entry: Any, **overrides: Any) -> TargetStats:
    """For the live tab before any histogram exists: a ``locust.stats.StatsEntry``.

    Its percentiles are Locust's bucketed values and include failed requests'
    times, so they are treated like the CSV's: bucket bounds, no sampling CI.
    """
    requests, failures = int(entry.num_requests), int(entry.num_failures)
    has = requests > failures

    def pct(q: float) -> float | None:
        return float(entry.get_response_time_percentile(q)) if has else None

    return TargetStats(target, pct(0.50), pct(0.95), pct(0.99), count=requests - failures, failures=failures,
                       rps=float(entry.total_rps), source="locust", **overrides)


class Check(StrEnum):
    """The tests of the spike's criteria, by what they test (not by their labels)."""

    TARGET = "p95_under_target"
    QUERIES = "queries_per_lookup"
    SPEEDUP = "speedup"
    EQUIVALENCE = "equivalence"


class Outcome(StrEnum):
    """The second finding: Convex against the best optimised Supabase variant."""

    CONVEX_STILL_FASTER = "convex still faster"
    COMPARABLE = "comparable"
    BETWEEN = "between"
    UNDETERMINED = "undetermined"
    NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class Criterion:
    """One row of the spike's criteria table.  ``passed`` is None when the evidence cannot tell.

    ``check`` says which test it is; ``name`` is only its label.
    """

    check: Check
    name: str
    subject: str
    value: str
    threshold: str
    passed: bool | None
    note: str = ""

    @property
    def status(self) -> str:
        return {True: "pass", False: "fail", None: "undetermined"}[self.passed]


@dataclass(frozen=True)
class Finding:
    """The second finding: best optimised Supabase variant against Convex."""

    optimised: str | None
    convex: str | None
    text: str
    ratio: Interval | None = None  # P95 Convex / P95 optimised Supabase
    optimised_p95_ms: float | None = None
    criteria: tuple[Criterion, ...] = ()
    outcome: Outcome = Outcome.NOT_MEASURED

    def to_dict(self) -> dict[str, Any]:
        return {
            "optimised": self.optimised,
            "convex": self.convex,
            "text": self.text,
            "outcome": self.outcome,
            "optimised_p95_ms": self.optimised_p95_ms,
            "ratio": self.ratio.to_dict() if self.ratio else None,
            "criteria": [asdict(c) | {"status": c.status} for c in self.criteria],
        }


@dataclass(frozen=True)
class Decision:
    level: str
    verdict: Verdict
    reason: str
    baseline: str
    convex: str | None
    ratio: Interval | None
    criteria: tuple[Criterion, ...]
    second_finding: Finding | None
    thresholds: Thresholds
    targets: tuple[TargetStats, ...]
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # target -> problems
    notes: tuple[str, ...] = ()
    run_problems: tuple[str, ...] = ()  # why the run cannot decide (the verdict is then INCONCLUSIVE)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "reason": self.reason,
            "baseline": self.baseline,
            "convex": self.convex,
            "ratio": self.ratio.to_dict() if self.ratio else None,
            "criteria": [asdict(c) | {"status": c.status} for c in self.criteria],
            "second_finding": self.second_finding.to_dict() if self.second_finding else None,
            "thresholds": self.thresholds.to_dict(),
            "targets": [t.to_dict() for t in self.targets],
            "evidence": {k: list(v) for k, v in self.evidence.items()},
            "notes": list(self.notes),
            "run_problems": list(self.run_problems),
        }


# --------------------------------------------------------------------------- helpers


def evidence_problems(t: TargetStats, th: Thresholds) -> list[str]:
    """Why ``t`` cannot be used for a verdict (empty when it can)."""
    problems: list[str] = []
    total = t.count + t.failures
    if total == 0:
        return [f"{t.target}: no requests"]
    if t.count == 0 or t.p95_ms is None:
        return [f"{t.target}: all {total} requests failed"]
    if t.count < th.min_samples:
        problems.append(f"{t.target}: {t.count} samples (< {th.min_samples} needed for P95)")
    if t.failure_ratio > th.max_failure_ratio:
        problems.append(
            f"{t.target}: failure ratio {t.failure_ratio:.2%} (> {th.max_failure_ratio:.2%} ceiling)"
        )
    return problems


def failing_targets(targets: Iterable[TargetStats], th: Thresholds) -> list[str]:
    """One line per target whose requests (lookups, misses and writes) failed beyond the ceiling."""
    return [
        f"{t.target} failed {t.failure_ratio:.2%} of its {t.requests} requests (> {th.max_failure_ratio:.2%})"
        for t in sorted(targets, key=lambda t: t.target)
        if t.requests and t.failure_ratio > th.max_failure_ratio
    ]


def p95_interval(t: TargetStats, th: Thresholds) -> Interval:
    assert t.p95_ms is not None
    if t.distribution is not None:
        return quantile_interval(t.distribution, 0.95, th.confidence)
    low, high = locust_bucket_bounds(t.p95_ms)
    return Interval(t.p95_ms, low, high, "bucket bounds")


def p95_ratio(numerator: TargetStats, denominator: TargetStats, th: Thresholds) -> Interval:
    """P95 ratio with a bootstrap CI when both have distributions, else Locust's bucket bounds."""
    assert numerator.p95_ms is not None and denominator.p95_ms is not None
    if numerator.distribution is not None and denominator.distribution is not None:
        return ratio_interval(
            numerator.distribution, denominator.distribution, 0.95, th.confidence, th.resamples, th.seed
        )
    return bucket_ratio_interval(numerator.p95_ms, denominator.p95_ms)


def _tri(low_ok: bool, high_ok: bool) -> bool | None:
    """True if the whole interval satisfies, False if none of it does, None if it straddles."""
    if low_ok and high_ok:
        return True
    if not low_ok and not high_ok:
        return False
    return None


def _fmt_ms(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def _fmt_interval_ms(iv: Interval) -> str:
    return f"{_fmt_ms(iv.estimate)} [{_fmt_ms(iv.low)}, {_fmt_ms(iv.high)}]"


def _fmt_ratio(iv: Interval) -> str:
    return f"{iv.estimate:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def target_criterion(t: TargetStats, th: Thresholds) -> Criterion:
    iv = p95_interval(t, th)
    passed = _tri(iv.low < th.p95_target_ms, iv.high < th.p95_target_ms)
    return Criterion(Check.TARGET, "P95 < target", t.target, _fmt_interval_ms(iv), f"< {th.p95_target_ms:g} ms", passed,
                     iv.method)


def queries_criterion(t: TargetStats, th: Thresholds) -> Criterion:
    q = t.queries if t.queries is not None else t.round_trips
    passed = None if q is None else q < th.max_queries
    return Criterion(Check.QUERIES, "queries per lookup", t.target, "n/a" if q is None else str(q), f"< {th.max_queries}",
                     passed)


def speedup_criterion(convex: TargetStats, base: TargetStats, iv: Interval, th: Thresholds) -> Criterion:
    limit = th.go_ratio
    passed = _tri(iv.low <= limit, iv.high <= limit)
    return Criterion(
        Check.SPEEDUP,
        f"≥ {th.min_speedup:.0%} faster than {base.target}",
        convex.target,
        f"P95 ratio {_fmt_ratio(iv)}",
        f"ratio ≤ {limit:g}",
        passed,
        iv.method,
    )


def equivalence_criterion(convex: TargetStats, base: TargetStats, iv: Interval, th: Thresholds) -> Criterion:
    limit = th.equivalent_ratio
    passed = _tri(iv.low > limit, iv.high > limit)
    return Criterion(
        Check.EQUIVALENCE,
        f"within {th.equivalence:.0%} of {base.target}, or slower",
        convex.target,
        f"P95 ratio {_fmt_ratio(iv)}",
        f"ratio > {limit:g}",
        passed,
        iv.method,
    )


@dataclass(frozen=True)
class CriteriaSet:
    """The four tests of one candidate against one reference, by name."""

    target: Criterion
    queries: Criterion
    speedup: Criterion
    equivalence: Criterion

    @classmethod
    def of(cls, candidate: TargetStats, reference: TargetStats, iv: Interval, th: Thresholds) -> CriteriaSet:
        return cls(target_criterion(candidate, th), queries_criterion(candidate, th),
                   speedup_criterion(candidate, reference, iv, th), equivalence_criterion(candidate, reference, iv, th))

    def rows(self) -> list[Criterion]:
        return [self.target, self.queries, self.speedup, self.equivalence]


def _as_mapping(targets: Iterable[TargetStats] | Mapping[str, TargetStats]) -> dict[str, TargetStats]:
    if isinstance(targets, Mapping):
        return dict(targets)
    return {t.target: t for t in targets}


def _best(candidates: list[TargetStats]) -> TargetStats | None:
    usable = [t for t in candidates if t.p95_ms is not None]
    return min(usable, key=lambda t: (t.p95_ms, t.target)) if usable else None


# --------------------------------------------------------------------------- the rules


def second_finding(
    convex: TargetStats | None, optimised: list[TargetStats], baseline: TargetStats | None, th: Thresholds
) -> Finding:
    """"Optimising Supabase reaches P95 X ms, within Y % of Convex" — the spike's alternative path."""
    best = _best(optimised)
    if best is None or convex is None:
        missing = "no optimised Supabase variant with enough evidence" if best is None else "no usable Convex variant"
        return Finding(best.target if best else None, convex.target if convex else None, missing)
    assert best.p95_ms is not None and convex.p95_ms is not None
    iv = p95_ratio(convex, best, th)
    # the optimised variant's own target and queries; Convex's speed-up and equivalence against it
    crit = CriteriaSet(target_criterion(best, th), queries_criterion(best, th),
                       speedup_criterion(convex, best, iv, th), equivalence_criterion(convex, best, iv, th))
    faster = convex.p95_ms <= best.p95_ms
    gap = abs(1 - iv.estimate)
    relation = (
        f"Convex ({convex.target}) is {gap:.0%} faster" if faster else f"Convex ({convex.target}) is {gap:.0%} slower"
    )
    text = (
        f"Optimising Supabase ({best.target}) reaches P95 {_fmt_ms(best.p95_ms)}; {relation} "
        f"(P95 ratio Convex/optimised {_fmt_ratio(iv)}, {iv.method})"
    )
    if baseline is not None and baseline.p95_ms:
        change = 1 - best.p95_ms / baseline.p95_ms
        text += (f"; {best.target} cuts Supabase today's P95 ({_fmt_ms(baseline.p95_ms)}) by {change:.0%}" if change >= 0
                 else f"; {best.target} is {-change:.0%} slower than Supabase today ({_fmt_ms(baseline.p95_ms)})")
    if crit.speedup.passed:
        outcome = Outcome.CONVEX_STILL_FASTER
    elif crit.equivalence.passed:
        outcome = Outcome.COMPARABLE
    elif crit.speedup.passed is None or crit.equivalence.passed is None:
        outcome = Outcome.UNDETERMINED
    else:
        outcome = Outcome.BETWEEN
    target_note = {True: "meets", False: "misses", None: "may or may not meet"}[crit.target.passed]
    text += f". Optimised Supabase {target_note} the {th.p95_target_ms:g} ms target. " + {
        Outcome.CONVEX_STILL_FASTER: f"Convex stays at least {th.min_speedup:.0%} faster than optimised Supabase.",
        Outcome.COMPARABLE: f"Optimised Supabase is within {th.equivalence:.0%} of Convex, or faster: "
                            "the spike's alternative path holds.",
        Outcome.BETWEEN: f"Convex is faster by between {th.equivalence:.0%} and {th.min_speedup:.0%}.",
        Outcome.UNDETERMINED: "The ratio interval straddles a boundary; more samples needed.",
    }[outcome]
    criteria = crit.rows()
    return Finding(best.target, convex.target, text, iv, best.p95_ms, tuple(criteria), outcome)


def decide(
    targets: Iterable[TargetStats] | Mapping[str, TargetStats],
    thresholds: Thresholds | None = None,
    level: str = "direct",
    run_problems: Iterable[str] = (),
) -> Decision:
    """Apply the spike's rules to one level's targets.  Pure: no I/O, deterministic for a seed.

    ``run_problems`` (the run could not measure what it claims: data that
    differs between the backends, a failing target, a saturated load
    generator) turn any verdict into INCONCLUSIVE, with those problems as its reason.
    """
    decision = _decide(targets, thresholds, level)
    problems = list(run_problems)
    if not problems:
        return decision
    would = (f"Without these problems the rules would give {decision.verdict.value}: {decision.reason}",)
    return replace(
        decision, verdict=Verdict.INCONCLUSIVE, reason="The run cannot decide: " + "; ".join(problems) + ".",
        notes=decision.notes + would, run_problems=tuple(problems),
    )


def _decide(
    targets: Iterable[TargetStats] | Mapping[str, TargetStats],
    thresholds: Thresholds | None,
    level: str,
) -> Decision:
    th = thresholds or Thresholds()
    th.validate()
    if level not in LEVELS:
        raise ValueError(f"unknown level {level!r}; expected one of {', '.join(LEVELS)}")
    by_id = _as_mapping(targets)
    # the registry decides a known target's level; an unknown id counts where its own level says
    level_targets = tuple(
        t for t in by_id.values() if (TARGETS[t.target].level if t.target in TARGETS else t.level) == level
    )
    (baseline_id,) = targets_of(level, "baseline")
    convex_ids = targets_of(level, "convex")
    optimised_ids = targets_of(level, "optimised")

    evidence = {t.target: tuple(evidence_problems(t, th)) for t in level_targets}
    notes: list[str] = []
    if any(t.distribution is None for t in level_targets if t.count):
        notes.append(
            "Some percentiles are Locust's bucketed CSV values (±0.5 ms <100 ms, ±5 ms <1 s, ±50 ms <10 s): "
            "intervals are bucket bounds, not sampling confidence intervals."
        )

    def usable(tid: str) -> TargetStats | None:
        t = by_id.get(tid)
        return t if t is not None and not evidence.get(tid) else None

    base = usable(baseline_id)
    convex_ok = [t for tid in convex_ids if (t := usable(tid)) is not None]
    optimised_ok = [t for tid in optimised_ids if (t := usable(tid)) is not None]
    chosen = _best(convex_ok)

    criteria: list[Criterion] = []
    sets: dict[str, CriteriaSet] = {}
    ratios: dict[str, Interval] = {}
    if base is not None:
        for c in convex_ok:
            iv = p95_ratio(c, base, th)
            ratios[c.target] = iv
            sets[c.target] = CriteriaSet.of(c, base, iv, th)
            criteria += sets[c.target].rows()
        criteria.append(target_criterion(base, th))
        criteria.append(queries_criterion(base, th))

    finding = (
        second_finding(chosen, optimised_ok, base, th)
        if optimised_ids
        else None
    )

    def result(verdict: Verdict, reason: str) -> Decision:
        return Decision(
            level=level,
            verdict=verdict,
            reason=reason,
            baseline=baseline_id,
            convex=chosen.target if chosen else None,
            ratio=ratios.get(chosen.target) if chosen else None,
            criteria=tuple(criteria),
            second_finding=finding,
            thresholds=th,
            targets=level_targets,
            evidence=evidence,
            notes=tuple(notes),
        )

    missing: list[str] = []
    if baseline_id not in by_id:
        missing.append(f"{baseline_id} was not measured")
    else:
        missing += evidence[baseline_id]
    if not convex_ok:
        measured = [tid for tid in convex_ids if tid in by_id]
        if not measured:
            missing.append(f"no Convex target measured ({', '.join(convex_ids)})")
        for tid in measured:
            missing += evidence[tid]
    if missing or base is None or chosen is None:
        return result(Verdict.INCONCLUSIVE, "Not enough evidence: " + "; ".join(missing) + ".")

    return result(*_verdict(chosen, base, ratios[chosen.target], sets[chosen.target], th))


def _verdict(chosen: TargetStats, base: TargetStats, iv: Interval, crit: CriteriaSet, th: Thresholds) -> tuple[Verdict, str]:
    """The verdict of the deciding Convex variant against the baseline, and its reason."""
    tag = (f"{chosen.target} vs {base.target}: P95 {_fmt_ms(chosen.p95_ms)} vs {_fmt_ms(base.p95_ms)}, "
           f"ratio {_fmt_ratio(iv)} ({iv.method})")
    if th.require_ci and iv.method != "bootstrap":
        return Verdict.INCONCLUSIVE, f"{tag}. A bootstrap CI is required (--require-ci) but only CSV percentiles are available."
    if crit.target.passed and crit.queries.passed and crit.speedup.passed:
        return (Verdict.GO,
                f"{tag}: Convex's P95 is under {th.p95_target_ms:g} ms and at least {th.min_speedup:.0%} below Supabase's.")
    if crit.equivalence.passed:
        slower = chosen.p95_ms is not None and base.p95_ms is not None and chosen.p95_ms >= base.p95_ms
        how = "Convex is the slower" if slower else f"they differ by less than {th.equivalence:.0%}"
        return Verdict.OPTIMISE_SUPABASE, f"{tag}: {how}."
    return Verdict.INCONCLUSIVE, f"{tag}: " + "; ".join(_unsettled(crit, th)) + "."


def _unsettled(crit: CriteriaSet, th: Thresholds) -> list[str]:
    """Why neither GO nor OPTIMISE SUPABASE holds: which test could not be settled."""
    target_c, queries_c, speed_c, equiv_c = crit.target, crit.queries, crit.speedup, crit.equivalence
    why: list[str] = []
    if speed_c.passed and target_c.passed is False:
        why.append(f"Convex is ≥ {th.min_speedup:.0%} faster but its P95 is not under {th.p95_target_ms:g} ms")
    elif speed_c.passed and target_c.passed is None:
        why.append(f"Convex's P95 interval straddles the {th.p95_target_ms:g} ms target; more samples needed")
    elif speed_c.passed and queries_c.passed is False:
        why.append(f"Convex needs {queries_c.value} queries per lookup (not < {th.max_queries})")
    elif speed_c.passed and queries_c.passed is None:
        why.append("Convex's queries per lookup are unknown")
    if speed_c.passed is None:
        why.append(f"the ratio interval straddles {th.go_ratio:g} (the {th.min_speedup:.0%} speed-up boundary); "
                   "more samples needed")
    if equiv_c.passed is None:
        why.append(f"the ratio interval straddles {th.equivalent_ratio:g} (the {th.equivalence:.0%} equivalence boundary); "
                   "more samples needed")
    if speed_c.passed is False and equiv_c.passed is False:
        why.append(
            f"Convex is faster by between {th.equivalence:.0%} and {th.min_speedup:.0%}: neither GO nor OPTIMISE SUPABASE"
        )
    if not why:
        why.append("the criteria do not settle it")
    return why


def decide_all(
    targets: Iterable[TargetStats] | Mapping[str, TargetStats],
    thresholds: Thresholds | None = None,
    run_problems: Iterable[str] = (),
) -> dict[str, Decision]:
    """A decision per level that was measured: "direct" (always, unless the run was API routes only), then "api".

    A target failing beyond the ceiling, at any level, leaves every level INCONCLUSIVE: the run did not
    measure what it claims.
    """
    th = thresholds or Thresholds()
    by_id = _as_mapping(targets)
    problems = [*run_problems, *failing_targets(by_id.values(), th)]
    levels = levels_measured(by_id) or ["direct"]
    return {level: decide(by_id, th, level, problems) for level in levels}


def primary(decisions: Mapping[str, Decision]) -> Decision:
    """The decision that gives the run its verdict and exit code (harness.contracts.decision_level)."""
    return decisions["direct"] if "direct" in decisions else next(iter(decisions.values()))

