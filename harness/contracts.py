"""What the load harness and the reports share, in one place, with no Locust import.

* the target registry: ids, levels (direct backend or Next.js route), roles in
  the decision, round trips and queries per lookup, the setting holding each
  one's URL, which ones have a write path;
* the decision level rule: a run is decided on the direct backends when it
  measured any, else on the API routes;
* the transaction row types;
* the HDR artifact (``PREFIX_hdr.json``, docs/formats.md): its format names,
  the histograms' limits, and its writer and reader side by side, as pyperf's
  ``Benchmark.dump`` / ``load``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TargetInfo:
    target: str
    level: str  # "direct", "api" (both decide), or "realtime" (reported beside the verdict)
    role: str  # "baseline", "optimised", "convex"; "subscriber" for realtime
    round_trips: int  # client-visible requests per lookup
    queries: int  # data-layer queries per lookup (behind the route for "api")
    label: str
    url_setting: str  # the setting holding its base URL
    writes: bool  # has a write path (docs/formats.md "The write path")


TARGETS: dict[str, TargetInfo] = {
    t.target: t
    for t in (
        TargetInfo("supabase_rest", "direct", "baseline", 4, 4, "Supabase REST, today (4 queries)", "SUPABASE_URL", True),
        TargetInfo("supabase_nested", "direct", "optimised", 1, 1, "Supabase nested select", "SUPABASE_URL", True),
        TargetInfo("supabase_rpc", "direct", "optimised", 1, 1, "Supabase RPC", "SUPABASE_URL", True),
        TargetInfo("convex_http", "direct", "convex", 1, 1, "Convex HTTP action", "CONVEX_SITE_URL", True),
        TargetInfo("convex_query", "direct", "convex", 1, 1, "Convex query", "CONVEX_URL", True),
        TargetInfo("api_supabase", "api", "baseline", 1, 4, "API route, Supabase", "APP_URL", False),
        TargetInfo("api_convex", "api", "convex", 1, 1, "API route, Convex", "APP_URL", False),
        # the inbox's update latency (harness.realtime): reported beside the verdict, never deciding it
        TargetInfo("convex_sub", "realtime", "subscriber", 0, 0, "Convex reactive query (inbox)", "CONVEX_URL", True),
        TargetInfo("supabase_realtime", "realtime", "subscriber", 0, 0, "Supabase Realtime (inbox)", "SUPABASE_URL",
                   True),
    )
}
TARGET_IDS = tuple(TARGETS)
LEVELS = ("direct", "api")
API_TARGETS = tuple(t for t in TARGET_IDS if TARGETS[t].level == "api")
REALTIME_TARGETS = tuple(t for t in TARGET_IDS if TARGETS[t].level == "realtime")
WRITE_TARGETS = tuple(t for t in TARGET_IDS if TARGETS[t].writes)
URL_SETTING: dict[str, str] = {t: info.url_setting for t, info in TARGETS.items()}


def targets_of(level: str, role: str) -> list[str]:
    return [t.target for t in TARGETS.values() if t.level == level and t.role == role]


def levels_measured(targets: Iterable[str]) -> list[str]:
    """The levels the given target ids belong to, in decision order."""
    measured = {TARGETS[t].level for t in targets if t in TARGETS}
    return [level for level in LEVELS if level in measured]


def decision_level(targets: Iterable[str]) -> str:
    """The level that gives a run its verdict and exit code: the direct backends when any was measured,
    else the API routes (a run of the routes only)."""
    return "api" if levels_measured(targets) == ["api"] else "direct"


# --------------------------------------------------------------------------- rows

TRANSACTION = "lookup"  # the row the decision is made on
TRANSACTION_TYPES = ("lookup", "lookup-miss", "write")
REALTIME = "realtime"  # an update's latency, named by its realtime target


def epoch_s(iso_time: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time (``…Z`` or with an offset), as the artifact and the
    backends write them; None for anything else."""
    if not isinstance(iso_time, str):
        return None
    try:
        return datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def target_of(row_name: str) -> str:
    """The target id a row name starts with (transactions: ``<target>``; calls: ``<target> <what>``)."""
    return row_name.split(" ", 1)[0]


# --------------------------------------------------------------------------- the HDR artifact

HDR_FORMAT = "crm-latency-hdr/2"
HDR_FORMATS_READ = ("crm-latency-hdr/1", HDR_FORMAT)  # /1: no statuses, phases, preflight, parity or CPU
HDR_UNIT = "us"
HDR_LOWEST_US = 1
HDR_HIGHEST_US = 3_600_000_000  # 1 h
HDR_SIGNIFICANT_DIGITS = 3


class ArtifactError(ValueError):
    """An unreadable artifact; the message is one line naming the file (and entry)."""


def write_artifact(path: Path, metadata: dict[str, Any], entries: list[dict[str, Any]]) -> None:
    """Write atomically (a reader never sees half a file)."""
    metadata = {**metadata, "hdr": {"unit": HDR_UNIT, "lowest": HDR_LOWEST_US, "highest": HDR_HIGHEST_US,
                                    "significant_digits": HDR_SIGNIFICANT_DIGITS}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"format": HDR_FORMAT, "metadata": metadata, "entries": entries}, indent=1),
                   encoding="utf-8")
    tmp.replace(path)


def read_artifact(path: Path) -> tuple[str, dict[str, Any], list[dict[str, Any]]]:
    """(format, metadata, entries) of an artifact, its structure checked; entries' contents are the
    reader's to decode (reports.load)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}; truncated file?)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: cannot read ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") not in HDR_FORMATS_READ:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ArtifactError(f"{path}: format is {found!r}, expected {' or '.join(repr(f) for f in HDR_FORMATS_READ)}")
    metadata, entries = doc.get("metadata"), doc.get("entries")
    if not isinstance(metadata, dict) or not isinstance(entries, list):
        raise ArtifactError(f"{path}: needs an object 'metadata' and a list 'entries'")
    for i, e in enumerate(entries):
        where = f"{path} entries[{i}]"
        if not isinstance(e, dict):
            raise ArtifactError(f"{where}: not an object")
        name, etype = e.get("name"), e.get("type")
        if not isinstance(name, str) or not isinstance(etype, str):
            raise ArtifactError(f"{where}: 'type' and 'name' must be strings")
        # same naming as the CSV rows: transactions are "<target id>", HTTP calls "<target id> <what>"
        if target_of(name) not in TARGETS or (etype in TRANSACTION_TYPES and name not in TARGETS):
            raise ArtifactError(f"{where}: unknown name {name!r} for type {etype!r}; names start with a target id "
                                f"({', '.join(TARGETS)})")
    return str(doc["format"]), metadata, entries
