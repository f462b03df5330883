"""Quantiles and intervals over histograms."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from reports.stats import (
    Distribution,
    bootstrap_quantile,
    bucket_ratio_interval,
    distribution_from_histogram,
    locust_bucket_bounds,
    quantile_interval,
    rank,
    ratio_interval,
)


def test_quantile_nearest_rank() -> None:
    d = Distribution.from_samples(range(1, 101))
    assert d.total == 100
    assert d.quantile(0.95) == 95 and d.quantile(0.5) == 50 and d.quantile(1.0) == 100
    assert rank(0.95, 1) == 1


def test_distribution_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Distribution((2.0, 1.0), (1, 1))
    with pytest.raises(ValueError):
        Distribution((1.0,), (0,))


def test_beta_order_statistic_bootstrap_matches_resampling() -> None:
    """One Beta draw per replicate has the same distribution as resampling n values."""
    rng = random.Random(3)
    samples = [round(rng.lognormvariate(math.log(100), 0.5)) for _ in range(800)]
    dist = Distribution.from_samples(samples)
    fast = np.array(bootstrap_quantile(dist, 0.95, 4000, random.Random(1)))
    gen = np.random.default_rng(2)
    arr = np.array(samples)
    k = rank(0.95, len(arr))
    brute = np.sort(gen.choice(arr, size=(4000, len(arr)), replace=True), axis=1)[:, k - 1]
    for q in (0.025, 0.25, 0.5, 0.75, 0.975):
        assert np.quantile(fast, q) == pytest.approx(np.quantile(brute, q), rel=0.03)


def test_quantile_interval_covers_true_p95() -> None:
    """Order-statistics CI: coverage close to 95 % on lognormal data."""
    true_p95 = math.exp(math.log(300) + 1.6448536 * 0.35)
    rng = random.Random(11)
    hits = 0
    trials = 200
    for _ in range(trials):
        d = Distribution.from_samples(rng.lognormvariate(math.log(300), 0.35) for _ in range(1000))
        iv = quantile_interval(d, 0.95)
        hits += iv.low <= true_p95 <= iv.high
    assert 0.88 <= hits / trials <= 0.99


def test_ratio_interval_brackets_the_estimate_and_is_seeded() -> None:
    rng = random.Random(4)
    a = Distribution.from_samples(rng.lognormvariate(math.log(100), 0.4) for _ in range(3000))
    b = Distribution.from_samples(rng.lognormvariate(math.log(250), 0.4) for _ in range(3000))
    iv = ratio_interval(a, b, seed=9)
    assert iv.low < iv.estimate < iv.high
    assert 0.3 < iv.estimate < 0.5
    assert iv == ratio_interval(a, b, seed=9)


def test_distribution_from_hdr_histogram_matches_library_percentiles() -> None:
    from hdrh.histogram import HdrHistogram

    h = HdrHistogram(1, 3_600_000_000, 3)
    rng = random.Random(8)
    for _ in range(20000):
        h.record_value(int(rng.lognormvariate(math.log(50_000), 0.8)))
    d = distribution_from_histogram(h)
    assert d.total == 20000
    for p in (50, 90, 95, 99, 99.9):
        assert d.quantile(p / 100) == pytest.approx(h.get_value_at_percentile(p) / 1000)
    decoded = distribution_from_histogram(HdrHistogram.decode(h.encode()))
    assert decoded == d


def test_locust_buckets() -> None:
    assert locust_bucket_bounds(42) == (41.5, 42.5)
    assert locust_bucket_bounds(500) == (495, 505)
    assert locust_bucket_bounds(2000) == (1950, 2050)
    assert locust_bucket_bounds(12000) == (11500, 12500)
    iv = bucket_ratio_interval(490, 1000)
    assert iv.low == pytest.approx(485 / 1050) and iv.high == pytest.approx(495 / 950)
