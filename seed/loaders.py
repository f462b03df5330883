"""Write a generated dataset into Supabase.

Two paths, same result:

* ``DATABASE_URL`` set: one PostgreSQL transaction (COPY per table). It either
  commits everything or nothing, so an interrupted run leaves no partial data.
* otherwise: the REST API with the service-role key through supabase-py,
  upserting batches on ``id``. An interrupted run leaves some batches behind;
  rerunning with the same ``--seed`` first deletes the seed's own workspaces
  (cascading to their rows) and writes them again, which repairs it.

Either way only the seed's own workspaces are touched, unless ``reset`` asks for
every row of the six tables to go (the caller has checked the target).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import SeedError
from .generate import WORKSPACE_NAMES, Dataset, slug_suffix
from .tables import JSON, TABLES, TS, Table, from_epoch_ms

REST_BATCH = 1000

Progress = Callable[[str, int], None]


@dataclass
class LoadResult:
    path: str  # "copy" or "rest"
    seconds: float
    rows: int


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


def rest_row(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A generated row as PostgREST JSON (times as ISO strings with milliseconds)."""
    out = dict(row)
    for col in table.columns:
        if col.kind == TS and out.get(col.name) is not None:
            out[col.name] = _iso(out[col.name])
    return out


def _db_error(exc: Exception) -> SeedError:
    import psycopg

    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.errors.UndefinedTable | psycopg.errors.UndefinedColumn):
        return SeedError(f"Supabase schema mismatch (DATABASE_URL): {first}; apply supabase/migrations first")
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return SeedError(
            f"generate would collide with existing rows (DATABASE_URL): {first}; nothing was written"
        )
    if isinstance(exc, psycopg.OperationalError):
        return SeedError(f"cannot use DATABASE_URL: {first}")
    return SeedError(f"DATABASE_URL: {type(exc).__name__}: {first}; nothing was written")


def load_copy(
    database_url: str, data: Dataset, *, reset: bool, progress: Progress | None = None
) -> LoadResult:
    import psycopg
    from psycopg.types.json import Jsonb

    start = time.perf_counter()
    try:
        with (
            psycopg.connect(database_url, connect_timeout=10, autocommit=False) as conn,
            conn.transaction(),
            conn.cursor() as cur,
        ):
            if reset:
                cur.execute("truncate " + ", ".join(f"public.{t.name}" for t in TABLES))
            else:
                # The seed's own workspaces from any earlier run (whatever its --contacts):
                # same ids, or the seed's slug marker. Cascades to their rows.
                cur.execute(
                    "delete from public.workspaces where id = any(%s::uuid[]) or (slug like %s and name = any(%s))",
                    [[w["id"] for w in data.workspaces], "%" + slug_suffix(data.seed), list(WORKSPACE_NAMES)],
                )
            for t in TABLES:
                cols = t.column_names
                ts_cols = [i for i, c in enumerate(t.columns) if c.kind == TS]
                json_cols = [i for i, c in enumerate(t.columns) if c.kind == JSON]
                with cur.copy(f"copy public.{t.name} ({', '.join(cols)}) from stdin") as cp:
                    for n, row in enumerate(data.rows[t.name], 1):
                        values = [row[c] for c in cols]
                        for i in ts_cols:
                            if values[i] is not None:
                                values[i] = from_epoch_ms(values[i])
                        for i in json_cols:
                            if values[i] is not None:
                                values[i] = Jsonb(values[i])
                        cp.write_row(values)
                        if progress and n % 5000 == 0:
                            progress(t.name, 5000)
                if progress:
                    progress(t.name, len(data.rows[t.name]) % 5000)
    except psycopg.Error as exc:
        raise _db_error(exc) from None
    return LoadResult("copy", time.perf_counter() - start, data.total)


def load_rest(
    url: str, key: str, data: Dataset, *, reset: bool, progress: Progress | None = None
) -> LoadResult:
    import httpx
    from postgrest.exceptions import APIError
    from postgrest.types import ReturnMethod

    from supabase import ClientOptions, create_client

    from .supabase_rest import SupabaseRest

    start = time.perf_counter()
    with SupabaseRest(url, key) as rest:
        rest.check_schema()
        if reset:
            rest.truncate_all()
        else:
            rest.delete_in(TABLES[0], "id", [w["id"] for w in data.workspaces])
            names = ",".join(f'"{n}"' for n in WORKSPACE_NAMES)
            rest.request(
                "DELETE",
                "/workspaces",
                params={"slug": f"like.*{slug_suffix(data.seed)}", "name": f"in.({names})"},
                headers={"Prefer": "return=minimal"},
            )
    client = create_client(url, key, options=ClientOptions(postgrest_client_timeout=120))
    hook = os.environ.get("SEED_TEST_KILL", "")
    kill_after = int(hook.split(":")[1]) if hook.startswith("rest:") else -1
    sent = 0
    try:
        for t in TABLES:
            rows = data.rows[t.name]
            for i in range(0, len(rows), REST_BATCH):
                batch = [rest_row(t, r) for r in rows[i : i + REST_BATCH]]
                client.table(t.name).upsert(batch, on_conflict="id", returning=ReturnMethod.minimal).execute()
                if progress:
                    progress(t.name, len(batch))
                sent += 1
                if sent == kill_after:  # test hook: SEED_TEST_KILL=rest:<n> dies after n batches
                    os.kill(os.getpid(), signal.SIGKILL)
    except APIError as exc:
        raise SeedError(
            f"Supabase REST rejected a {t.name} batch: {exc.message} {exc.code or ''}".rstrip()
            + "; rerun generate with the same --seed to repair"
        ) from None
    except httpx.HTTPError as exc:
        raise SeedError(
            f"Supabase REST failed while writing {t.name}: {type(exc).__name__}; rerun generate with the same --seed to repair"
        ) from None
    return LoadResult("rest", time.perf_counter() - start, data.total)
