"""Exponential backoff with full jitter, shared by the Supabase and Convex clients.

Only transient failures are retried (HTTP 429 and 503, and network errors):
anything else is a real answer that a retry would only repeat.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

RETRY_STATUS = frozenset({429, 503})


def delays(
    attempts: int, base: float = 0.25, cap: float = 8.0, rng: random.Random | None = None
) -> Iterator[float]:
    """``attempts - 1`` sleeps: uniform in [0, min(cap, base * 2**i)] ("full jitter")."""
    r = rng or random
    for i in range(max(0, attempts - 1)):
        yield r.uniform(0, min(cap, base * (2**i)))


def retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        return max(0.0, min(30.0, float(header)))
    except ValueError:
        return None


def sleep(seconds: float, sleeper: Callable[[float], None] = time.sleep) -> None:
    if seconds > 0:
        sleeper(seconds)
