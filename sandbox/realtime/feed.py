"""The database side: row changes from NOTIFY, table facts, and per-subscriber visibility.

Changes arrive on the ``realtime_sandbox`` channel (see schema.sql) in commit
order and are handled one at a time. For each, the subscribers whose binding
(schema, table, event, filters) matches are grouped by role; each role sees
only the columns it may SELECT, the old row only as far as the table's
replica identity goes (only the primary key for a DELETE under RLS), and,
when the table has RLS, only rows its claims can read — one query decides
that for every distinct set of claims (``realtime.sandbox_visible``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson

log = logging.getLogger("sandbox.realtime")

CHANNEL = "realtime_sandbox"
PUBLICATION = "supabase_realtime"

TABLES_SQL = """
select n.nspname as schema, c.relname as name, c.oid::regclass::text as entity, c.relrowsecurity as rls,
       c.relreplident::text as replident,
       (select coalesce(json_agg(json_build_object(
                 'name', a.attname, 'type', t.typname, 'regtype', a.atttypid::regtype::text,
                 'pk', coalesce(a.attnum = any(pk.indkey), false),
                 'identity', coalesce(a.attnum = any(ri.indkey), false)) order by a.attnum), '[]')
          from pg_catalog.pg_attribute a
          join pg_catalog.pg_type t on t.oid = a.atttypid
          left join pg_catalog.pg_index pk on pk.indrelid = c.oid and pk.indisprimary
          left join pg_catalog.pg_index ri on ri.indrelid = c.oid and ri.indisreplident
         where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) as columns
  from pg_catalog.pg_publication_tables p
  join pg_catalog.pg_namespace n on n.nspname = p.schemaname
  join pg_catalog.pg_class c on c.relnamespace = n.oid and c.relname = p.tablename
 where p.pubname = $1
"""


@dataclass
class TableInfo:
    schema: str
    name: str
    entity: str  # regclass text, for SQL
    rls: bool
    replident: str  # d(efault: primary key), f(ull), i(ndex), n(othing)
    columns: list[dict[str, Any]]
    selectable: dict[str, set[str]] = field(default_factory=dict)  # role → columns it may SELECT

    @property
    def pk(self) -> list[str]:
        return [c["name"] for c in self.columns if c["pk"]]

    def identity_columns(self) -> set[str]:
        if self.replident == "f":
            return {c["name"] for c in self.columns}
        if self.replident == "i":
            return {c["name"] for c in self.columns if c["identity"]}
        if self.replident == "d":
            return set(self.pk)
        return set()

    def column(self, name: str) -> dict[str, Any] | None:
        return next((c for c in self.columns if c["name"] == name), None)


@dataclass
class Change:
    schema: str
    table: str
    type: str  # INSERT, UPDATE, DELETE
    commit_timestamp: str
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None


class Feed:
    """Listens for changes and asks the database what each subscriber may see.

    ``on_change`` is awaited for every change, in commit order.
    """

    def __init__(self, db_uri: str, on_change: Callable[[Change], Awaitable[None]]) -> None:
        self.db_uri = db_uri
        self.on_change = on_change
        self.tables: dict[tuple[str, str], TableInfo] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._conn: asyncpg.Connection | None = None  # queries
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Event()
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._listen()), asyncio.ensure_future(self._consume())]
        await asyncio.wait_for(self._ready.wait(), timeout=30)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for conn in (self._listener, self._conn):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=2)

    # ------------------------------------------------------------------ connections
    async def _listen(self) -> None:
        def on_notify(_conn: Any, _pid: int, channel: str, payload: str) -> None:
            if channel == CHANNEL:
                self._queue.put_nowait(payload)
            elif payload in ("", "reload schema"):
                self.tables = {}  # table facts and privileges are read again when next needed

        while True:
            try:
                self._listener = await asyncpg.connect(self.db_uri)
                await self._listener.add_listener(CHANNEL, on_notify)
                await self._listener.add_listener("pgrst", on_notify)
                self.tables = {}
                self._ready.set()
                while not self._listener.is_closed():
                    await asyncio.sleep(1.0)
                log.warning("realtime: lost the database connection; changes made until it is back are not delivered")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("realtime: cannot listen for changes (%s); retrying", exc)
            await asyncio.sleep(1.0)

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._lock:
            for attempt in (1, 2):
                try:
                    if self._conn is None or self._conn.is_closed():
                        self._conn = await asyncpg.connect(self.db_uri, statement_cache_size=256)
                    return list(await self._conn.fetch(sql, *args))
                except (asyncpg.PostgresConnectionError, ConnectionError, OSError):
                    self._conn = None
                    if attempt == 2:
                        raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ table facts
    async def _load_tables(self) -> dict[tuple[str, str], TableInfo]:
        if not self.tables:
            rows = await self.query(TABLES_SQL, PUBLICATION)
            self.tables = {
                (r["schema"], r["name"]): TableInfo(r["schema"], r["name"], r["entity"], r["rls"], r["replident"],
                                                    orjson.loads(r["columns"]))
                for r in rows
            }
        return self.tables

    async def table(self, schema: str, name: str) -> TableInfo | None:
        """A published table's facts (None when it is not in the publication)."""
        return (await self._load_tables()).get((schema, name))

    async def published(self, schema: str, table: str) -> list[TableInfo]:
        """The published tables a binding names (``*`` for any schema or table)."""
        tables = await self._load_tables()
        return [t for (s, n), t in tables.items() if schema in ("*", s) and table in ("*", n)]

    async def selectable(self, info: TableInfo, role: str) -> set[str]:
        cols = info.selectable.get(role)
        if cols is None:
            rows = await self.query(
                "select a.attname from pg_catalog.pg_attribute a where a.attrelid = $1::regclass and a.attnum > 0 "
                "and not a.attisdropped and has_column_privilege($2, a.attrelid, a.attnum, 'SELECT')",
                info.entity, role,
            )
            cols = info.selectable[role] = {r["attname"] for r in rows}
        return cols

    async def typed_values(self, info: TableInfo, column: str, texts: list[str]) -> list[Any]:
        """The filter values cast to the column's type, as to_jsonb renders them; raises on bad input."""
        col = info.column(column)
        if col is None:
            raise ValueError(f"invalid column for filter {column}")
        rows = await self.query(f"select to_jsonb(v::{col['regtype']}) as v from unnest($1::text[]) as v", texts)
        return [orjson.loads(r["v"]) for r in rows]

    async def visible(self, info: TableInfo, pk: dict[str, Any], claims: list[dict[str, Any]]) -> list[bool]:
        """For each set of claims, whether that subscriber's RLS lets it read the row."""
        rows = await self.query(
            "select realtime.sandbox_visible($1::regclass, $2::jsonb, $3::jsonb[]) as v",
            info.entity, orjson.dumps(pk).decode(), [orjson.dumps(c).decode() for c in claims],
        )
        return list(rows[0]["v"])

    async def role_exists(self, role: str) -> bool:
        rows = await self.query("select to_regrole($1) is not null as ok", role)
        return bool(rows[0]["ok"])

    # ------------------------------------------------------------------ changes
    async def _consume(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                change = await self._parse(payload)
                if change is not None:
                    await self.on_change(change)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("realtime: a change could not be delivered")

    async def _parse(self, payload: str) -> Change | None:
        data = orjson.loads(payload)
        if "ref" in data:
            rows = await self.query("delete from realtime.sandbox_changes where id = $1 returning payload", data["ref"])
            if not rows:
                return None
            data = orjson.loads(rows[0]["payload"])
        return Change(data["schema"], data["table"], data["type"], data["commit_timestamp"], data.get("record"),
                      data.get("old_record"))
