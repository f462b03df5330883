"""Row counts of the six tables on both backends, for the workspaces a run draws from.

The load harness calls :func:`count_parity` before a run (master only): a
verdict comparing two databases that hold different data would not measure the
same lookup. Load-test messages are left out on both sides, since the write
task adds them to each backend separately. Supabase counts with
``Prefer: count=exact`` (one request per table); Convex with
``migrate:countRows`` page by page (it reads every document it counts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .convex_client import ConvexClient
from .errors import SeedError
from .loadtest import MESSAGE_TYPE
from .supabase_rest import SupabaseRest
from .tables import TABLES, Table

CONVEX_PAGE = 8192


@dataclass(frozen=True)
class TableCounts:
    table: str  # Supabase name
    supabase: int
    convex: int

    @property
    def ok(self) -> bool:
        return self.supabase == self.convex


@dataclass
class CountParity:
    workspaces: list[str]
    tables: list[TableCounts] = field(default_factory=list)
    checked_at: str = ""

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tables)

    def differences(self) -> list[str]:
        return [f"{t.table} {t.supabase:,} vs {t.convex:,}" for t in self.tables if not t.ok]

    def to_dict(self) -> dict[str, object]:
        return {
            "method": "counts",
            "status": "ok" if self.ok else "mismatch",
            "checked_at": self.checked_at,
            "workspaces": list(self.workspaces),
            "tables": {t.table: {"supabase": t.supabase, "convex": t.convex} for t in self.tables},
        }


def supabase_count(rest: SupabaseRest, table: Table, workspace_ids: list[str]) -> int:
    params = {"select": "id", "limit": "1"}
    members = "in.(" + ",".join(workspace_ids) + ")"
    params["id" if table.name == "workspaces" else "workspace_id"] = members
    if table.name == "messages":
        params["message_type"] = f"neq.{MESSAGE_TYPE}"
    resp = rest.request("GET", f"/{table.name}", params=params, headers={"Prefer": "count=exact"})
    try:
        return int(resp.headers.get("content-range", "").split("/")[1])
    except (IndexError, ValueError):
        raise SeedError(f"Supabase at {rest.host} sent no row count for {table.name}") from None


def convex_count(convex: ConvexClient, table: Table, workspace_ids: list[str]) -> int:
    total = 0
    cursor: str | None = None
    while True:
        page = convex.query(
            "migrate:countRows",
            {"table": table.convex, "workspaceIds": workspace_ids, "cursor": cursor, "numItems": CONVEX_PAGE},
        )
        total += int(page["count"])
        if page.get("isDone"):
            return total
        cursor = page["cursor"]


def count_parity(rest: SupabaseRest, convex: ConvexClient, workspace_ids: Iterable[str]) -> CountParity:
    ids = sorted(set(workspace_ids))
    result = CountParity(ids, checked_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"))
    for t in TABLES:
        result.tables.append(TableCounts(t.name, supabase_count(rest, t, ids), convex_count(convex, t, ids)))
    return result
