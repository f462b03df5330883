"""Apply supabase/sandbox/bootstrap.sql, sandbox/realtime/schema.sql and supabase/migrations/*.sql, idempotently.

Bootstrap runs every time (it is written to be re-run); each migration runs
once, recorded in ``supabase_migrations.schema_migrations`` as the Supabase CLI
does. Ends with ``NOTIFY pgrst, 'reload schema'``.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "supabase" / "sandbox" / "bootstrap.sql"
MIGRATIONS = ROOT / "supabase" / "migrations"
REALTIME = ROOT / "sandbox" / "realtime" / "schema.sql"  # the sandbox Realtime's capture triggers


def apply_all(database_url: str, authenticator_password: str | None = None) -> list[str]:
    """Returns the names of the migrations applied now."""
    applied: list[str] = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        # one session at a time: concurrent `up`s must not race on DDL
        conn.execute("select pg_advisory_lock(54321)")
        conn.execute(BOOTSTRAP.read_text())
        conn.execute(REALTIME.read_text())
        if authenticator_password is not None:
            conn.execute(
                sql.SQL("alter role authenticator with login password {}").format(sql.Literal(authenticator_password))
            )
        done = {r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")}
        for path in sorted(MIGRATIONS.glob("*.sql")):
            version, _, name = path.stem.partition("_")
            if version in done:
                continue
            text = path.read_text()
            with conn.transaction():
                conn.execute(text)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, statements, name) values (%s, %s, %s)",
                    (version, [text], name),
                )
            applied.append(path.name)
        conn.execute("notify pgrst, 'reload schema'")
        conn.execute("select pg_advisory_unlock(54321)")
    return applied
