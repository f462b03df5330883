"""Where one HTTP call's time goes, as the load generator sees it: connect, time to first byte, download,
and the server's own account of it (``Server-Timing``).

geventhttpclient (Locust's FastHttpUser) has no per-phase timings, so:

* **connect**: :func:`install` wraps ``ConnectionPool._create_socket`` (DNS + TCP + TLS), which runs
  only when no live pooled connection exists; the time is credited to the greenlet that asked for it
  (each Locust user is one greenlet).  A hidden reconnect inside one request is counted too.
* **headers**: :func:`time_headers` wraps a user's ``_urlopen`` (connect + send + wait + header parse);
  ``ttfb = headers - connect``, ``download = Locust's response_time - headers`` (the body read).
* **server**: :func:`parse_server_timing` reads a ``Server-Timing`` header (PostgREST's
  ``jwt, parse, plan, transaction, response``, the sandbox Convex runtime's ``exec``, a team's proxy).
  The server's time is its ``total`` metric when it sends one, else the sum of its durations.  A
  response without the header has no server time: nothing is guessed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import gevent
from geventhttpclient.connectionpool import ConnectionPool

_connects: dict[Any, list[float]] = {}  # greenlet -> [seconds connecting, new connections]
_installed = False


def install() -> None:
    """Time every new connection of this process (idempotent)."""
    global _installed
    if _installed:
        return
    original = ConnectionPool._create_socket

    def _create_socket(self: ConnectionPool) -> Any:
        t0 = time.perf_counter()
        sock = original(self)
        acc = _connects.setdefault(gevent.getcurrent(), [0.0, 0])
        acc[0] += time.perf_counter() - t0
        acc[1] += 1
        return sock

    ConnectionPool._create_socket = _create_socket  # type: ignore[method-assign]
    _installed = True


def take_connects() -> tuple[float, int]:
    """(seconds, count) of the connections the current greenlet opened since it last asked."""
    acc = _connects.pop(gevent.getcurrent(), None)
    return (acc[0], int(acc[1])) if acc else (0.0, 0)


class HeaderClock:
    """The duration of the last ``_urlopen`` of one user agent: connect + send + wait + header parse."""

    __slots__ = ("last_s",)

    def __init__(self) -> None:
        self.last_s = 0.0


def time_headers(user_agent: Any) -> HeaderClock:
    """Wrap one user agent's ``_urlopen`` (an instance attribute: other agents are untouched)."""
    clock = HeaderClock()
    original: Callable[[Any], Any] = user_agent._urlopen

    def _urlopen(request: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(request)
        finally:
            clock.last_s = time.perf_counter() - t0

    user_agent._urlopen = _urlopen
    return clock


def parse_server_timing(value: str | list[str] | None) -> dict[str, float]:
    """``Server-Timing`` metrics with a ``dur`` (ms), by name; repeated names add up; others are ignored.

    A header sent on several lines (geventhttpclient gives a list) is one comma-separated list.
    """
    out: dict[str, float] = {}
    if not value:
        return out
    if isinstance(value, list):
        value = ", ".join(value)
    for item in value.split(","):
        name, _, params = item.partition(";")
        name = name.strip()
        if not name or not params:
            continue
        for param in params.split(";"):
            key, _, raw = param.partition("=")
            if key.strip().lower() != "dur":
                continue
            with contextlib.suppress(ValueError):  # a malformed value is not a measurement
                out[name] = out.get(name, 0.0) + float(raw.strip().strip('"'))
    return out


def server_total(metrics: dict[str, float]) -> float | None:
    """The server's time for the call: its ``total`` metric, else the sum of its metrics; None without any."""
    if not metrics:
        return None
    total = metrics.get("total")
    return total if total is not None else sum(metrics.values())
