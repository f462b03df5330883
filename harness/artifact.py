"""The run's metadata and histograms, as the HDR artifact ``PREFIX_hdr.json`` (harness.contracts, docs/formats.md)."""

from __future__ import annotations

import locust

import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import targets as T
from harness.contracts import TARGET_IDS, TARGETS, write_artifact

if TYPE_CHECKING:
    from harness.runtime import Harness


def _iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def metadata(h: Harness) -> dict[str, Any]:
    parsed = h.environment.parsed_options
    o = h.options
    return {
        "started_at": _iso(h.started_at),
        "ended_at": _iso(h.ended_at),
        "locust_version": locust.__version__,
        "python_version": platform.python_version(),
        "targets": T.describe(h.endpoints, o.targets),  # hosts only, never keys
        "sandbox": h.sandbox,
        "settings": {
            "users": getattr(parsed, "num_users", None),
            "spawn_rate": getattr(parsed, "spawn_rate", None),
            "run_time": getattr(parsed, "run_time", None),
            "open_model_rate": o.open_rate or None,
            "distinct_keys": o.distinct_keys,
            "weights": {"known": o.known_weight, "unknown": o.unknown_weight,
                        "write": o.effective_write_weight(h.sandbox)},
            "think_time": o.think_time,
            "max_late_s": o.max_late if o.open_rate else None,
            "workload": h.workload.source if h.workload else None,
            "known_keys": len(h.workload.known) if h.workload else None,
        },
        "warmup_s": o.warmup,
        "steps": list(h.steps),
        "workers": h.worker_count,
        "open_model": h.pacer_summary() if o.open_rate else None,
        # what was checked before the first user started (docs/formats.md)
        "preflight": h.preflight or {"status": "not run"},
        "data_parity": h.data_parity or {"status": "not checked", "reason": "not run"},
        "connections": o.connections,
        # the sandbox's network profile (docs/network.md), null against deployments
        "network": h.network,
        # the load generator's own CPU, per process: [unix time, percent of one core] each second
        "generator_cpu": {"interval_s": h.cpu.interval_s, "processes": h.cpu_summary()},
        # the realtime targets: writes, deliveries owed and seen, missed, out of order (harness.realtime)
        "realtime": _realtime(h),
        # pg_stat_statements over the measured window, when DATABASE_URL is set (reports.diagnose.pgstat)
        "database": h.database_record(),
    }


def _realtime(h: Harness) -> dict[str, Any] | None:
    if not any(TARGETS[t].level == "realtime" for t in h.options.targets) or h.started_at is None:
        return None
    end = h.ended_at.timestamp() if h.ended_at is not None else h.started_at.timestamp()
    return {"subscribers_per_workspace": h.options.subscribers_per_workspace, "rate_per_workspace": h.options.realtime_rate,
            "delivery": h.realtime.summary(h.started_at.timestamp() + h.options.warmup, end)}


def write(path: Path, h: Harness) -> None:
    # entries: transactions ("lookup", "lookup-miss", "write" / "<target>") and HTTP calls ("GET" / "<target> <what>")
    write_artifact(path, metadata(h), h.recorder.artifact_entries(set(TARGET_IDS)))
