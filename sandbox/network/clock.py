"""Callbacks at absolute monotonic deadlines, accurate to tens of microseconds.

asyncio's (and uvloop's) timers wake on a millisecond grid: ``epoll_wait`` takes
its timeout in whole milliseconds, so ``loop.call_at`` fires up to a millisecond
late (or, with uvloop's rounding, early). A relay that plants a delay "within
0.2 ms" cannot use them. On Linux this scheduler arms one ``timerfd`` (CLOCK_MONOTONIC,
absolute, nanosecond resolution) at the earliest deadline, slightly ahead of it
by the process's measured wake-up latency (at most 100 us), and spins the last
few microseconds inside the callback; the loop watches the fd like any socket.
The spinning has a budget of 2 % of a core: beyond it (a very busy relay), a
callback due within the lead runs when the process wakes, up to 100 us early,
rather than burning the CPU the rest of the machine needs. Elsewhere it falls
back to ``loop.call_at`` (millisecond accuracy, said at start).

Deadlines are ``time.monotonic_ns()`` values (CLOCK_MONOTONIC on Linux, the
timerfd's clock).
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import ctypes.util
import heapq
import itertools
import os
import sys
import time
from collections.abc import Callable
from typing import Any

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = getattr(os, "O_CLOEXEC", 0o2000000)
_TFD_TIMER_ABSTIME = 1
_PR_SET_TIMERSLACK = 29

# Bounds of the wake-up lead: the scheduler wakes this much before a deadline and spins the rest.
MIN_LEAD_NS = 10_000
MAX_LEAD_NS = 100_000
INITIAL_LEAD_NS = 50_000
# Busy-waiting allowed, as a share of one core (a token bucket holding at most this much of a second).
SPIN_SHARE = 0.02


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc() -> Any | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        libc.timerfd_create  # noqa: B018 - probe the symbol
        libc.timerfd_settime  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


class Scheduler:
    """``call_at(deadline_ns, fn, *args)`` in deadline order (ties: submission order)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._heap: list[tuple[int, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._armed_ns: int | None = None  # when the timer is set to fire (deadline - lead)
        self._lead_ns = INITIAL_LEAD_NS
        self._late_ewma_ns = INITIAL_LEAD_NS / 2
        self._spin_tokens_ns = SPIN_SHARE * 1e9
        self._spin_refill_at = time.monotonic_ns()
        self.spun_ns = 0  # total busy-waiting, for the relay's report
        self._libc = _libc()
        self._fd = -1
        self._handle: asyncio.TimerHandle | None = None
        # how late callbacks ran (ns), the last 100k: the relay reports it when it stops
        self.lateness: collections.deque[int] = collections.deque(maxlen=100_000)
        if self._libc is not None:
            fd = self._libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                # the default 50 us slack would blur every wake-up of this process
                self._libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)
                loop.add_reader(fd, self._on_timerfd)
        self.precise = self._fd >= 0

    # public -------------------------------------------------------------------
    def call_at(self, deadline_ns: int, fn: Callable[..., Any], *args: Any) -> None:
        heapq.heappush(self._heap, (deadline_ns, next(self._seq), fn, args))
        if self._heap[0][0] == deadline_ns:
            self._arm(deadline_ns)

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def lead_us(self) -> float:
        return self._lead_ns / 1e3

    def lateness_us(self, q: float) -> float | None:
        """The ``q`` quantile of how late callbacks ran, in microseconds (None before any)."""
        if not self.lateness:
            return None
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        if self._handle is not None:
            self._handle.cancel()
        self._heap.clear()

    # internals ----------------------------------------------------------------
    def _arm(self, deadline_ns: int) -> None:
        fire_ns = deadline_ns - self._lead_ns
        if self._armed_ns is not None and self._armed_ns <= fire_ns:
            return
        self._armed_ns = fire_ns
        if self._fd >= 0:
            fire_ns = max(fire_ns, 1)
            spec = _Itimerspec(_Timespec(0, 0), _Timespec(fire_ns // 1_000_000_000, fire_ns % 1_000_000_000))
            self._libc.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)  # type: ignore[union-attr]
        else:
            if self._handle is not None:
                self._handle.cancel()
            delay = max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9)
            self._handle = self._loop.call_at(self._loop.time() + delay, self._run_due)

    def _on_timerfd(self) -> None:
        try:
            os.read(self._fd, 8)
        except (BlockingIOError, InterruptedError):
            return
        now = time.monotonic_ns()
        if self._armed_ns is not None and now >= self._armed_ns:
            # learn this process's wake-up latency; wake that much (and a margin) before deadlines
            late = now - self._armed_ns
            self._late_ewma_ns += (late - self._late_ewma_ns) / 16
            self._lead_ns = int(min(MAX_LEAD_NS, max(MIN_LEAD_NS, self._late_ewma_ns + 10_000)))
        self._run_due()

    def _run_due(self) -> None:
        self._armed_ns = None
        self._handle = None
        heap = self._heap
        now = time.monotonic_ns()
        horizon = now + (self._lead_ns if self.precise else 0)
        self._spin_tokens_ns = min(SPIN_SHARE * 1e9, self._spin_tokens_ns + (now - self._spin_refill_at) * SPIN_SHARE)
        self._spin_refill_at = now
        while heap and heap[0][0] <= horizon:
            deadline, _, fn, args = heapq.heappop(heap)
            now = time.monotonic_ns()
            if now < deadline and self._spin_tokens_ns > 0:
                start = now
                while now < deadline:  # at most the lead: tens of microseconds
                    now = time.monotonic_ns()
                self._spin_tokens_ns -= now - start
                self.spun_ns += now - start
            self.lateness.append(now - deadline)
            try:
                fn(*args)
            except Exception as exc:  # a callback's bug must not stop every other connection
                self._loop.call_exception_handler({"message": "relay callback failed", "exception": exc})
        if heap:
            self._arm(heap[0][0])
