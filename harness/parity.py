"""Data parity before deciding: do both backends hold the same data for the workspaces the run draws from?

A verdict comparing a Supabase and a Convex that hold different rows does not
measure the same lookup.  The master checks once, before any user starts:
row counts of the six tables (:mod:`seed.parity`, load-test rows left out), or
with ``--verify-data`` the seed's full fingerprints and sampled lookups
(:mod:`seed.verify`).  The result goes into the run's artifact; the report
states what was checked, and a mismatch the user let through
(``--allow-data-mismatch``) cannot produce GO or OPTIMISE SUPABASE.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from harness.settings import Settings, SettingsError
from harness.workload import Workload

SUPABASE_SIDE = ("supabase_rest", "supabase_nested", "supabase_rpc", "api_supabase", "supabase_realtime")
CONVEX_SIDE = ("convex_http", "convex_query", "api_convex", "convex_sub")
VERIFY_SAMPLES = 5


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def not_checked(reason: str) -> dict[str, Any]:
    return {"status": "not checked", "reason": reason}


def check(settings: Settings, targets: Iterable[str], workload: Workload, verify_data: bool = False) -> dict[str, Any]:
    """The parity record for the artifact: ``status`` is "ok", "mismatch", "not checked" or "not applicable"."""
    chosen = set(targets)
    if not chosen & set(SUPABASE_SIDE) or not chosen & set(CONVEX_SIDE):
        return {"status": "not applicable", "reason": "the run measures one backend only"}
    missing = [n for n in ("SUPABASE_SERVICE_ROLE_KEY", "CONVEX_ADMIN_KEY") if not settings.get(n)]
    if missing or not settings.get("CONVEX_URL"):
        return not_checked(f"{' and '.join(missing or ['CONVEX_URL'])} not set (counting rows needs both backends' admin access)")
    from seed.convex_client import ConvexClient
    from seed.errors import SeedError
    from seed.supabase_rest import SupabaseRest

    workspaces = sorted({k.workspace_id for k in workload.known})
    try:
        with SupabaseRest(settings.supabase_url, settings.require("SUPABASE_SERVICE_ROLE_KEY"), attempts=2) as rest, \
                ConvexClient(settings.convex_url, settings.require("CONVEX_ADMIN_KEY"), attempts=2) as convex:
            if verify_data:
                return _fingerprints(rest, convex, settings.require("CONVEX_ADMIN_KEY"))
            from seed.parity import count_parity

            return count_parity(rest, convex, workspaces).to_dict()
    except (SeedError, SettingsError) as e:
        return not_checked(f"the check failed: {e}")


def _fingerprints(rest: Any, convex: Any, admin_key: str) -> dict[str, Any]:
    from seed.verify import verify

    report = verify(rest, convex, admin_key, samples=VERIFY_SAMPLES)
    return {
        "method": "fingerprints",
        "status": "ok" if report.ok and report.empty_side() is None else "mismatch",
        "checked_at": _now(),
        "tables": {t.name: {"supabase": t.supabase_count, "convex": t.convex_count, "same_fingerprint":
                            t.supabase_digest == t.convex_digest} for t in report.tables},
        "differences": report.mismatches()[:10],
    }


def differences(record: dict[str, Any]) -> list[str]:
    """"table N vs M" per differing table (counts), or the verify mismatches."""
    if record.get("differences"):
        return list(record["differences"])
    out = []
    for name, t in (record.get("tables") or {}).items():
        if t.get("supabase") != t.get("convex") or t.get("same_fingerprint") is False:
            out.append(f"{name} {t.get('supabase'):,} vs {t.get('convex'):,}")
    return out


def mismatch_line(record: dict[str, Any]) -> str:
    what = "; ".join(differences(record)) or "fingerprints differ"
    return (f"data differs between Supabase and Convex ({record.get('method', 'counts')}: {what}): "
            "run `python -m seed migrate --clear --restart`, or `python -m seed verify` to see where; "
            "--allow-data-mismatch runs anyway (no GO or OPTIMISE SUPABASE verdict)")


def summary(record: dict[str, Any] | None) -> str:
    """One line for reports: what was checked, and when."""
    if not record:
        return "data parity: not checked"
    status = record.get("status")
    if status == "ok":
        return f"data parity: {record.get('method', 'counts')} OK at {record.get('checked_at', '?')}"
    if status == "mismatch":
        return (f"data parity: DIFFERS ({'; '.join(differences(record)) or 'fingerprints differ'}) "
                f"at {record.get('checked_at', '?')}")
    reason = record.get("reason")
    return f"data parity: {status}" + (f" ({reason})" if reason else "")
