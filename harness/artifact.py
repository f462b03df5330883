"""The HDR artifact ``PREFIX_hdr.json`` (format ``crm-latency-hdr/2``, docs/formats.md)."""

from __future__ import annotations

import locust

import json
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import targets as T

if TYPE_CHECKING:
    from harness.runtime import Harness

FORMAT = "crm-latency-hdr/2"


def _iso(dt: Any) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def document(h: Harness) -> dict[str, Any]:
    parsed = h.environment.parsed_options
    o = h.options
    return {
        "format": FORMAT,
        "metadata": {
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
            # the load generator's own CPU, per process: [unix time, percent of one core] each second
            "generator_cpu": {"interval_s": h.cpu.interval_s, "processes": h.cpu_summary()},
            "hdr": {"unit": "us", "lowest": 1, "highest": 3_600_000_000, "significant_digits": 3},
        },
        # transactions ("lookup", "lookup-miss", "write" / "<target>") and HTTP calls ("GET" / "<target> <what>")
        "entries": h.recorder.artifact_entries(set(T.TARGET_IDS)),
    }


def write(path: Path, h: Harness) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document(h), indent=1), encoding="utf-8")
    tmp.replace(path)
