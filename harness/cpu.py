"""The load generator's own CPU, sampled once a second in every Locust process.

A saturated generator adds its own queueing to every latency it records: a run
whose process was above 90 % CPU for more than 10 % of the measured window
cannot decide (reports: "generator saturated").  ``psutil`` comes with Locust,
which uses it for the same warning.
"""

from __future__ import annotations

import time

import gevent
import psutil

INTERVAL_S = 1.0


class CpuSampler:
    """``(unix time, percent of one core)`` samples of this process, drained by the reports to the master."""

    def __init__(self, interval_s: float = INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, float]] = []
        self._process = psutil.Process()
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        self.stop()
        self.samples = []
        self._process.cpu_percent(None)  # the first call only sets the baseline
        self._greenlet = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _loop(self) -> None:
        while True:
            gevent.sleep(self.interval_s)
            self.samples.append((round(time.time(), 3), round(self._process.cpu_percent(None), 1)))

    def drain(self) -> list[tuple[float, float]]:
        out, self.samples = self.samples, []
        return out
