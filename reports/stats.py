"""Percentiles and confidence intervals over latency distributions.

Standard library only: the load harness imports this (through
:mod:`reports.rules`) inside Locust processes, where pandas/numpy are not wanted.

A :class:`Distribution` is a histogram: distinct latency values in ms with
their counts, as decoded from an HDR histogram or built from raw samples.

Bootstrap of a quantile from a histogram
----------------------------------------
Resampling *n* values with replacement from the empirical distribution F and
taking the k-th smallest is the same, in distribution, as drawing the k-th
order statistic of *n* uniforms, ``U(k) ~ Beta(k, n - k + 1)``, and mapping it
through F's inverse (F⁻¹ is non-decreasing, so it preserves order).  Each
bootstrap replicate of the P95 therefore costs one Beta draw and one binary
search, whatever *n* is, instead of *n* multinomial draws.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any


def rank(q: float, n: int) -> int:
    """1-based rank of quantile ``q`` among ``n`` values (HdrHistogram's convention)."""
    return min(n, max(1, int(q * n + 0.5)))


@dataclass(frozen=True)
class Distribution:
    """Distinct values (ms, ascending) and how many samples had each."""

    values: tuple[float, ...]
    counts: tuple[int, ...]
    _cumulative: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.values) != len(self.counts):
            raise ValueError("values and counts differ in length")
        if any(b <= a for a, b in zip(self.values, self.values[1:], strict=False)):
            raise ValueError("values must be strictly ascending")
        if any(c <= 0 for c in self.counts):
            raise ValueError("counts must be positive")
        cumulative: list[int] = []
        total = 0
        for c in self.counts:
            total += c
            cumulative.append(total)
        object.__setattr__(self, "_cumulative", tuple(cumulative))

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[float, int]]) -> Distribution:
        merged: dict[float, int] = {}
        for value, count in pairs:
            if count > 0:
                merged[float(value)] = merged.get(float(value), 0) + int(count)
        items = sorted(merged.items())
        return cls(tuple(v for v, _ in items), tuple(c for _, c in items))

    @classmethod
    def from_samples(cls, samples_ms: Iterable[float]) -> Distribution:
        counts: dict[float, int] = {}
        for s in samples_ms:
            counts[float(s)] = counts.get(float(s), 0) + 1
        return cls.from_pairs(counts.items())

    @property
    def total(self) -> int:
        return self._cumulative[-1] if self._cumulative else 0

    def value_at_rank(self, k: int) -> float:
        """The k-th smallest sample (1-based)."""
        if not self.values:
            raise ValueError("empty distribution")
        k = min(max(k, 1), self.total)
        return self.values[bisect_left(self._cumulative, k)]

    def quantile(self, q: float) -> float:
        return self.value_at_rank(rank(q, self.total))

    def inverse_cdf(self, u: float) -> float:
        """Smallest value v with F(v) >= u, for u in (0, 1]."""
        index = bisect_left(self._cumulative, u * self.total)
        return self.values[min(index, len(self.values) - 1)]

    def merged(self, other: Distribution) -> Distribution:
        return Distribution.from_pairs([*zip(self.values, self.counts, strict=True),
                                        *zip(other.values, other.counts, strict=True)])


def distribution_from_histogram(histogram: Any, unit_per_ms: float = 1000.0) -> Distribution:
    """Distinct recorded values of an ``hdrh`` histogram, converted to ms.

    Each bucket is represented by its highest equivalent value, which is what
    ``HdrHistogram.get_value_at_percentile`` returns, so percentiles computed
    here match the library's.
    """
    pairs: list[tuple[float, int]] = []
    counts = getattr(histogram, "counts", None)
    if counts is not None and hasattr(histogram, "get_value_from_index"):
        for index, count in enumerate(counts):
            if count:
                value = histogram.get_highest_equivalent_value(histogram.get_value_from_index(index))
                pairs.append((value / unit_per_ms, int(count)))
    else:
        for item in histogram.get_recorded_iterator():
            pairs.append((item.value_iterated_to / unit_per_ms, int(item.count_added_in_this_iter_step)))
    return Distribution.from_pairs(pairs)


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence (or quantisation) interval."""

    estimate: float
    low: float
    high: float
    method: str  # "bootstrap", "order statistics", "bucket bounds"

    def to_dict(self) -> dict[str, Any]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "method": self.method}


def quantile_interval(dist: Distribution, q: float, confidence: float = 0.95) -> Interval:
    """Distribution-free CI of a quantile from order statistics (normal approximation of the binomial)."""
    n = dist.total
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    spread = z * math.sqrt(n * q * (1 - q))
    low_rank = math.floor(n * q - spread)
    high_rank = math.ceil(n * q + spread)
    return Interval(
        estimate=dist.quantile(q),
        low=dist.value_at_rank(max(low_rank, 1)),
        # past the largest sample there is no upper bound: report the maximum
        high=dist.value_at_rank(min(high_rank, n)),
        method="order statistics",
    )


def bootstrap_quantile(dist: Distribution, q: float, resamples: int, rng: random.Random) -> list[float]:
    """Bootstrap replicates of the ``q`` quantile of ``dist`` (see the module docstring)."""
    n = dist.total
    k = rank(q, n)
    return [dist.inverse_cdf(rng.betavariate(k, n - k + 1)) for _ in range(resamples)]


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    position = p * (len(sorted_values) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower)


def ratio_interval(
    numerator: Distribution,
    denominator: Distribution,
    q: float = 0.95,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Percentile-bootstrap CI of ``quantile(numerator) / quantile(denominator)``, independent samples."""
    rng = random.Random(seed)
    top = bootstrap_quantile(numerator, q, resamples, rng)
    bottom = bootstrap_quantile(denominator, q, resamples, rng)
    ratios = sorted(a / b if b > 0 else math.inf for a, b in zip(top, bottom, strict=True))
    alpha = (1 - confidence) / 2
    estimate_bottom = denominator.quantile(q)
    return Interval(
        estimate=numerator.quantile(q) / estimate_bottom if estimate_bottom > 0 else math.inf,
        low=_percentile(ratios, alpha),
        high=_percentile(ratios, 1 - alpha),
        method="bootstrap",
    )


def locust_bucket_bounds(value_ms: float) -> tuple[float, float]:
    """Range of true latencies that Locust reports as ``value_ms``.

    Locust rounds a response time to 1 ms below 100 ms, 10 ms below 1 s, 100 ms
    below 10 s and 1 s above, so a reported bucket stands for ± half a step.
    """
    if value_ms < 100:
        half = 0.5
    elif value_ms < 1000:
        half = 5.0
    elif value_ms < 10000:
        half = 50.0
    else:
        half = 500.0
    return max(value_ms - half, 0.0), value_ms + half


def bucket_ratio_interval(numerator_ms: float, denominator_ms: float) -> Interval:
    """Ratio bounds implied by Locust's bucketing alone (no sampling error)."""
    n_low, n_high = locust_bucket_bounds(numerator_ms)
    d_low, d_high = locust_bucket_bounds(denominator_ms)
    return Interval(
        estimate=numerator_ms / denominator_ms if denominator_ms > 0 else math.inf,
        low=n_low / d_high if d_high > 0 else math.inf,
        high=n_high / d_low if d_low > 0 else math.inf,
        method="bucket bounds",
    )
