"""Database diagnosis for the Supabase paths: ``pg_stat_statements`` over a run's window, and
``python -m reports diagnose`` (plans as PostgREST runs them, findings with fixes; docs/diagnosis.md).

What the load harness calls (no Locust import here; psycopg, blocking: call it from a thread):

- :func:`snapshot` at the start and at the end of the measured window, then
  :func:`window_record` of the two for the artifact's ``metadata.database``
  (:func:`unavailable_record` with the one-line reason of :class:`StatsUnavailable`);
- :func:`activity_sample` every few seconds on a :func:`connect`-ed connection,
  appended to ``metadata.database["activity"]``.
"""

from reports.diagnose.pgstat import (
    StatsUnavailable,
    activity_sample,
    classify,
    connect,
    delta,
    snapshot,
    unavailable_record,
    window_record,
)

__all__ = [
    "StatsUnavailable",
    "activity_sample",
    "classify",
    "connect",
    "delta",
    "snapshot",
    "unavailable_record",
    "window_record",
]
