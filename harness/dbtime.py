"""Database time over the measured window: ``pg_stat_statements`` before and after, connections in between.

When ``DATABASE_URL`` is set, the master (or the local runner) snapshots
``pg_stat_statements`` as the warm-up ends and again when the test stops, and
samples the database's connections every few seconds in between
(reports.diagnose.pgstat).  psycopg blocks, so every call runs in gevent's
thread pool: the users never wait for it.  The record goes into the artifact as
``metadata.database``: per statement the window's calls and execution times,
per target the execution time per lookup (the report's "of which database"),
the connection samples (``pool_saturation``) and, when the run has steps, one
more snapshot at each step change: per step its statements (how execution time
grows with the load, ``transaction_growth``).  Without ``DATABASE_URL``,
or without the extension or the privilege, the record says why in one line and
the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gevent

log = logging.getLogger("harness")

SAMPLE_EVERY_S = 2.0


def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    return gevent.get_hub().threadpool.spawn(fn, *args).get()


class DatabaseWindow:
    """One run's database window; ``record()`` is ``metadata.database``."""

    def __init__(self, database_url: str | None, step_of: Callable[[], int | None] = lambda: None) -> None:
        self.database_url = database_url
        self.step_of = step_of  # the step running now (the recorder's)
        self.step_marks: list[tuple[int, dict[str, Any]]] = []  # (step index, snapshot as it started)
        self.before: dict[str, Any] | None = None
        self.after: dict[str, Any] | None = None
        self.activity: list[dict[str, Any]] = []
        self.problem: str | None = None if database_url else "DATABASE_URL is not set"
        self._greenlets: list[gevent.Greenlet] = []

    def start(self, warmup_s: float) -> None:
        """Schedule the first snapshot at the end of the warm-up, then the connection samples."""
        if self.database_url is None:
            return
        self._greenlets.append(gevent.spawn_later(warmup_s, self._open))

    def _open(self) -> None:
        from reports.diagnose import pgstat

        assert self.database_url is not None
        try:
            self.before = _in_thread(pgstat.snapshot, self.database_url)
        except pgstat.StatsUnavailable as e:
            self.problem = str(e)
            log.warning(f"database time not measured: {e}")
            return
        step = self.step_of()
        if step is not None:
            self.step_marks.append((step, self.before))
        self._greenlets.append(gevent.spawn(self._sample))

    def mark_step(self, index: int) -> None:
        """A new step starts: snapshot now (a step changed during the warm-up starts at its end)."""
        if self.before is not None and self.after is None:
            self._greenlets.append(gevent.spawn(self._mark, index))

    def _mark(self, index: int) -> None:
        from reports.diagnose import pgstat

        assert self.database_url is not None
        try:
            self.step_marks.append((index, _in_thread(pgstat.snapshot, self.database_url)))
        except pgstat.StatsUnavailable as e:
            log.info(f"step {index}: no database snapshot ({e})")

    def _sample(self) -> None:
        from reports.diagnose import pgstat

        assert self.database_url is not None
        try:
            conn = _in_thread(pgstat.connect, self.database_url)
        except pgstat.StatsUnavailable:
            return
        try:
            while True:
                self.activity.append(_in_thread(pgstat.activity_sample, conn))
                gevent.sleep(SAMPLE_EVERY_S)
        except Exception as e:  # a dropped connection ends the sampling, not the run
            log.info(f"database connection samples stopped: {type(e).__name__}")
        finally:
            _in_thread(conn.close)

    def stop(self) -> None:
        """The second snapshot (when the first was taken)."""
        for g in self._greenlets:
            g.kill(block=False)
        self._greenlets = []
        if self.before is None or self.database_url is None:
            return
        from reports.diagnose import pgstat

        try:
            self.after = _in_thread(pgstat.snapshot, self.database_url)
        except pgstat.StatsUnavailable as e:
            self.problem = str(e)

    def record(self, lookups: dict[str, int]) -> dict[str, Any]:
        from reports.diagnose import pgstat

        if self.before is None or self.after is None:
            reason = self.problem or "the run ended before its warm-up did"
            return pgstat.unavailable_record(reason)
        record = {**pgstat.window_record(self.before, self.after, lookups), "activity": self.activity}
        marks = [*sorted(self.step_marks, key=lambda m: float(m[1]["t"])), (-1, self.after)]
        steps = [{"index": index, "statements": pgstat.delta(snap, marks[i + 1][1])}
                 for i, (index, snap) in enumerate(marks[:-1])]
        if steps:
            record["steps"] = steps
        return record
