"""Database time from ``pg_stat_statements``: snapshots, the delta over a measured window, and who ran what.

The harness's master calls :func:`snapshot` at the start and at the end of the
measured window (after the warm-up) and keeps :func:`window_record` of the two
(per statement :func:`delta`, per target the time per lookup) in the run's
artifact; :func:`activity_sample` is taken every few seconds in between
(connections per role and state, for ``pool_saturation``).  No Locust import, no
gevent: psycopg 3, blocking, meant for a thread.

Counters are cumulative in ``pg_stat_statements``: calls, times, rows and
blocks subtract exactly; ``max_exec_time`` does not (the extension keeps one
maximum since the entry was created or last reset), so the delta carries it as
``max_exec_time_ms_since_reset``, an upper bound of the window's maximum.

:func:`classify` names a statement by the lookup call that sends it
(``("supabase_rest", "contacts")`` for Locust's ``supabase_rest contacts`` row),
from the statement's shape: what PostgREST v14 writes
(``WITH pgrst_source AS ( SELECT … FROM "public"."contacts" LEFT JOIN LATERAL …``)
and what the sandbox's gateway writes both classify, after
``pg_stat_statements`` has replaced their constants with ``$n``.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from harness.contracts import TARGETS

ENABLE_HINT = (
    "add pg_stat_statements to shared_preload_libraries (a restart), then run "
    "`create extension pg_stat_statements with schema extensions`"
)
PRIVILEGE_HINT = (
    "other roles' statements show as '<insufficient privilege>'; "
    "`grant pg_read_all_stats to <the DATABASE_URL role>`"
)

# Pseudo-targets: statements several targets share.
WRITE = "supabase_write"  # the write path, sent by whichever Supabase target writes
ANY_SUPABASE = "supabase_any"  # what PostgREST runs before every request's main statement


class StatsUnavailable(Exception):
    """pg_stat_statements cannot be read; the message is one line saying why and what to do."""


def database_label(database_url: str) -> str:
    """``host:port/db`` of a connection string: never the user or the password."""
    try:
        parts = urlsplit(database_url)
    except ValueError:
        return "DATABASE_URL"
    if parts.scheme not in ("postgres", "postgresql"):
        return "DATABASE_URL"
    host = parts.hostname or "local socket"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


def connect(database_url: str, timeout_s: float = 10, application_name: str = "crm-latency-diagnosis") -> Any:
    """An autocommit psycopg connection with ``statement_timeout``; :class:`StatsUnavailable` if it fails."""
    import psycopg

    try:
        conn = psycopg.connect(
            database_url, autocommit=True, connect_timeout=max(1, int(timeout_s)),
            application_name=application_name,
        )
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise StatsUnavailable(f"cannot connect to DATABASE_URL ({database_label(database_url)}): {reason}") from None
    conn.execute("select set_config('statement_timeout', %s, false)", (f"{int(timeout_s * 1000)}ms",))
    return conn


def _extension_schema(conn: Any) -> str:
    row = conn.execute(
        "select n.nspname from pg_extension e join pg_namespace n on n.oid = e.extnamespace "
        "where e.extname = 'pg_stat_statements'"
    ).fetchone()
    if row is None:
        raise StatsUnavailable(f"pg_stat_statements is not installed in this database: {ENABLE_HINT}")
    return str(row[0])


def _check_privilege(conn: Any) -> None:
    row = conn.execute(
        "select rolsuper or pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') "
        "from pg_roles where rolname = current_user"
    ).fetchone()
    if not (row and row[0]):
        raise StatsUnavailable(f"the DATABASE_URL role lacks pg_read_all_stats: {PRIVILEGE_HINT}")


_STATEMENTS = """
select s.queryid::text, r.rolname, s.toplevel, s.query, s.calls, s.total_exec_time, s.mean_exec_time,
       s.max_exec_time, s.rows, s.shared_blks_hit, s.shared_blks_read
from {schema}.pg_stat_statements s
left join pg_roles r on r.oid = s.userid
where s.dbid = (select oid from pg_database where datname = current_database())
"""

_CONNECTIONS = """
select coalesce(usename::text, ''), coalesce(state, ''), count(*)
from pg_stat_activity
where backend_type = 'client backend' and pid <> pg_backend_pid()
group by 1, 2
"""


def _connections(conn: Any) -> dict[str, Any]:
    by_role: dict[str, dict[str, int]] = {}
    for role, state, n in conn.execute(_CONNECTIONS):
        counts = by_role.setdefault(role, {"active": 0, "idle": 0, "idle_in_transaction": 0, "other": 0, "total": 0})
        key = {"active": "active", "idle": "idle", "idle in transaction": "idle_in_transaction"}.get(state, "other")
        counts[key] += int(n)
        counts["total"] += int(n)
    max_conn = int(conn.execute("select current_setting('max_connections')::int").fetchone()[0])
    return {
        "max_connections": max_conn,
        "active": sum(c["active"] for c in by_role.values()),
        "idle": sum(c["idle"] for c in by_role.values()),
        "total": sum(c["total"] for c in by_role.values()),
        "by_role": dict(sorted(by_role.items())),
    }


def activity_sample(conn: Any) -> dict[str, Any]:
    """Client connections now, by login role and state, and ``max_connections``.

    ``{"t": epoch s, "max_connections": 200, "active": 3, "idle": 7, "total": 10,
    "by_role": {"authenticator": {"active": 3, "idle": 7, "idle_in_transaction": 0, "other": 0, "total": 10}}}``.
    PostgREST logs in as ``authenticator``: its connections are PostgREST's pool.
    The sampling connection itself is left out.
    """
    return {"t": round(time.time(), 3), **_connections(conn)}


def snapshot(database_url: str, timeout_s: float = 10) -> dict[str, Any]:
    """Every statement ``pg_stat_statements`` holds for this database, plus connections now.

    Raises :class:`StatsUnavailable` (one line) when the database cannot be reached,
    the extension is missing, or the role cannot read other roles' statements.
    """
    import psycopg

    conn = connect(database_url, timeout_s)
    try:
        schema = _extension_schema(conn)
        _check_privilege(conn)
        quoted = '"' + schema.replace('"', '""') + '"'
        try:
            rows = conn.execute(_STATEMENTS.format(schema=quoted)).fetchall()
        except psycopg.errors.ObjectNotInPrerequisiteState:
            raise StatsUnavailable(f"pg_stat_statements is installed but not loaded: {ENABLE_HINT}") from None
        statements = [
            {
                "queryid": qid, "role": role, "toplevel": bool(top), "query": query,
                "calls": int(calls), "total_exec_time_ms": float(total), "mean_exec_time_ms": float(mean),
                "max_exec_time_ms": float(mx), "rows": int(nrows),
                "shared_blks_hit": int(hit), "shared_blks_read": int(read),
            }
            for qid, role, top, query, calls, total, mean, mx, nrows, hit, read in rows
            if qid is not None
        ]
        version = str(conn.execute("show server_version").fetchone()[0]).split()[0]
        return {
            "taken_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "t": round(time.time(), 3),
            "database": database_label(database_url),
            "server_version": version,
            "extension_schema": schema,
            "statements": statements,
            "connections": _connections(conn),
        }
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StatsUnavailable(f"cannot read pg_stat_statements ({database_label(database_url)}): {first}") from None
    finally:
        conn.close()


def _key(s: dict[str, Any]) -> tuple[str, str, bool]:
    return (str(s["queryid"]), str(s.get("role") or ""), bool(s.get("toplevel", True)))


def delta(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Per statement, what ran between the two snapshots (statements with no new call are left out).

    Each row: ``queryid, role, query, target, call`` (:func:`classify`), ``calls``,
    ``total_exec_time_ms``, ``mean_exec_time_ms`` (over the window), ``rows``,
    ``shared_blks_hit``, ``shared_blks_read``, ``max_exec_time_ms_since_reset``
    (cumulative: see the module doc) and ``reset`` (true when the counters went
    backwards: the statistics were reset, or the entry evicted and re-created,
    during the window; the row then counts from the reset). Sorted by total time.
    """
    old = {_key(s): s for s in before.get("statements", [])}
    out = []
    for s in after.get("statements", []):
        prev = old.get(_key(s))
        reset = prev is not None and s["calls"] < prev["calls"]
        base = prev if prev is not None and not reset else None
        calls = s["calls"] - (base["calls"] if base else 0)
        if calls <= 0:
            continue
        total = s["total_exec_time_ms"] - (base["total_exec_time_ms"] if base else 0.0)
        target = classify(s["query"])
        out.append({
            "queryid": s["queryid"],
            "role": s.get("role"),
            "query": s["query"],
            "target": target[0] if target else None,
            "call": target[1] if target else None,
            "calls": calls,
            "total_exec_time_ms": round(total, 3),
            "mean_exec_time_ms": round(total / calls, 4),
            "max_exec_time_ms_since_reset": s["max_exec_time_ms"],
            "rows": s["rows"] - (base["rows"] if base else 0),
            "shared_blks_hit": s["shared_blks_hit"] - (base["shared_blks_hit"] if base else 0),
            "shared_blks_read": s["shared_blks_read"] - (base["shared_blks_read"] if base else 0),
            "reset": reset,
        })
    out.sort(key=lambda r: r["total_exec_time_ms"], reverse=True)
    return out


def window_record(before: dict[str, Any], after: dict[str, Any],
                  lookups: dict[str, int] | None = None) -> dict[str, Any]:
    """``metadata.database`` of a run's artifact: the window's statements and the time per target.

    Per target: its statements' calls and execution time, and per call (the
    Locust row's name) the mean execution time.  ``ms_per_found_lookup`` is what
    one lookup that finds its contact spends in the database: each of its calls
    once, plus PostgREST's ``set_config`` once per request (``round_trips``).
    It is what the lookup row's time split takes ("of which database"), and it
    does not depend on how many lookups missed.  ``lookups``: the lookups per
    target over the same window (found and missed); with it each target also
    gets ``mean_ms_per_lookup`` = its statements' time / its lookups.
    Statements several targets share (the write path, ``set_config``) are
    totalled apart, under ``shared``; ``api_supabase`` sends ``supabase_rest``'s
    very statements, so both are counted under ``supabase_rest``.
    """
    rows = delta(before, after)
    per_target: dict[str, dict[str, Any]] = {}
    shared: dict[str, dict[str, Any]] = {}
    per_call: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if not r["target"]:
            continue
        group = shared if r["target"] in (WRITE, ANY_SUPABASE) else per_target
        name = f"{r['target']} {r['call']}" if group is shared else r["target"]
        acc = group.setdefault(name, {"calls": 0, "total_exec_time_ms": 0.0})
        acc["calls"] += r["calls"]
        acc["total_exec_time_ms"] = round(acc["total_exec_time_ms"] + r["total_exec_time_ms"], 3)
        if group is per_target:
            sums = per_call.setdefault(name, {}).setdefault(r["call"], [0, 0.0])
            sums[0] += r["calls"]
            sums[1] += r["total_exec_time_ms"]
    settings = shared.get(f"{ANY_SUPABASE} set_config")
    settings_ms = settings["total_exec_time_ms"] / settings["calls"] if settings else 0.0
    for target, acc in per_target.items():
        calls = {c: {"calls": int(n), "mean_exec_time_ms": round(total / n, 4)}
                 for c, (n, total) in sorted(per_call[target].items())}
        acc["statements"] = sorted(calls)
        acc["per_call"] = calls
        requests = TARGETS[target].round_trips if target in TARGETS else 1
        acc["ms_per_found_lookup"] = round(sum(c["mean_exec_time_ms"] for c in calls.values())
                                           + settings_ms * requests, 4)
        n = (lookups or {}).get(target)
        if n:
            acc["lookups"] = n
            acc["mean_ms_per_lookup"] = round(acc["total_exec_time_ms"] / n, 4)
    return {
        "status": "ok",
        "database": after.get("database"),
        "server_version": after.get("server_version"),
        "window_s": round(float(after.get("t", 0)) - float(before.get("t", 0)), 3),
        "per_target": per_target,
        "shared": shared,
        "statements": rows,
        "connections_at_end": after.get("connections"),
    }


def unavailable_record(reason: str) -> dict[str, Any]:
    """``metadata.database`` when it could not be measured (the run goes on)."""
    return {"status": "unavailable", "reason": reason}


# ------------------------------------------------------------------------------ classify

_WS = re.compile(r"\s+")
_QUOTED = r'"((?:[^"]|"")+)"'
_TABLE = re.compile(r'\bFROM\s+(?:' + _QUOTED + r'\.)?' + _QUOTED, re.I)
_INSERT = re.compile(r'\bINSERT\s+INTO\s+(?:' + _QUOTED + r'\.)?' + _QUOTED, re.I)
_UPDATE = re.compile(r'\bUPDATE\s+(?:' + _QUOTED + r'\.)?' + _QUOTED + r'\s+SET\b', re.I)
_CALL = re.compile(r'(?:' + _QUOTED + r'\.)?' + _QUOTED + r'\s*\(', re.I)
_SET_CONFIG = re.compile(r"^select\s+set_config\(", re.I)
_LATERAL = re.compile(r"\bJOIN\s+LATERAL\b", re.I)
_EMBEDDED = re.compile(r'\bFROM\s+(?:' + _QUOTED + r'\.)?' + _QUOTED + r'\s+AS\s+' + _QUOTED, re.I)
_COLUMN = re.compile(_QUOTED + r'\.' + _QUOTED + r'\.' + _QUOTED)


def _root_columns(sql: str, table: str, start: int) -> set[str]:
    """Columns the root SELECT names before its FROM (``"public"."<table>"."<col>"`` or ``"<table>"."<col>"``)."""
    head = sql[:start]
    cols = {m.group(3) for m in _COLUMN.finditer(head) if m.group(2) == table}
    cols |= {m.group(2) for m in re.finditer(_QUOTED + r'\.' + _QUOTED, head) if m.group(1) == table}
    return cols


def classify(query_text: str) -> tuple[str, str] | None:
    """``(target, call)`` of a statement the lookup (or write) paths send, or None.

    Calls are named as the Locust rows name them (``"<target> <call>"``):
    ``("supabase_rest", "contacts" | "conversations" | "messages" | "contact_notes")``,
    ``("supabase_nested", "contacts nested")``, ``("supabase_rpc", "rpc/get_contact_context")``.
    Statements several targets send: ``("supabase_write", "contacts id" | "conversations newest" |
    "messages insert" | "conversations update")`` and ``("supabase_any", "set_config")``, the
    transaction settings PostgREST runs before every main statement.  The API route
    ``api_supabase`` sends the very statements of ``supabase_rest``: they are counted there.
    """
    sql = _WS.sub(" ", query_text).strip()
    if _SET_CONFIG.match(sql):
        # role, claims, method, path, headers…: several settings in one select
        return (ANY_SUPABASE, "set_config") if sql.lower().count("set_config(") >= 3 else None
    if "pgrst_source" not in sql:
        return None
    if re.search(r'"get_contact_context"\s*\(', sql):
        return ("supabase_rpc", "rpc/get_contact_context")
    ins = _INSERT.search(sql)
    if ins:
        return (WRITE, "messages insert") if ins.group(2) == "messages" else None
    upd = _UPDATE.search(sql)
    if upd:
        return (WRITE, "conversations update") if upd.group(2) == "conversations" else None
    body = sql.split("pgrst_source", 1)[1]
    root = _TABLE.search(body)
    if root is None:
        return None
    table = root.group(2)
    embedded = {m.group(2) for m in _EMBEDDED.finditer(body)}
    lateral = bool(_LATERAL.search(body))
    columns = _root_columns(body, table, root.start())
    if table == "contacts":
        if lateral and embedded & {"conversations", "contact_notes", "messages"}:
            return ("supabase_nested", "contacts nested")
        if lateral and "workspaces" in embedded:
            return ("supabase_rest", "contacts")
        if not lateral and columns == {"id"}:
            return (WRITE, "contacts id")
        return None
    if lateral:
        return None
    if table == "conversations":
        return (WRITE, "conversations newest") if columns == {"id"} else ("supabase_rest", "conversations")
    if table in ("messages", "contact_notes"):
        return ("supabase_rest", table)
    return None
