"""A small, known CRM data set written straight into the sandbox's PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest

from sandbox.services import ROOT
from tests.ports import listening_port

PHONE = "6281234567890"
BASE = datetime(2026, 1, 21, 10, 0, 0, 123456, tzinfo=UTC)


@dataclass
class Crm:
    database_url: str
    workspaces: dict[str, str] = field(default_factory=dict)  # label -> id
    members: dict[str, str] = field(default_factory=dict)  # label -> user id
    contacts: dict[str, str] = field(default_factory=dict)
    conversations: list[str] = field(default_factory=list)

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return list(cur.fetchall()) if cur.description is not None else []


def _build(conn: psycopg.Connection, crm: Crm) -> None:
    tag = uuid.uuid4().hex[:8]
    for label, name in (("a", "Eagle Overseas"), ("b", "Falcon Trading")):
        ws = str(uuid.uuid4())
        user = str(uuid.uuid4())
        crm.workspaces[label] = ws
        crm.members[label] = user
        conn.execute(
            "insert into workspaces (id, name, slug, created_at) values (%s, %s, %s, %s)",
            (ws, name, f"{name.lower().replace(' ', '-')}-{tag}", BASE),
        )
        conn.execute(
            "insert into workspace_members (workspace_id, user_id, role) values (%s, %s, 'agent')", (ws, user)
        )
    a, b = crm.workspaces["a"], crm.workspaces["b"]
    main = str(uuid.uuid4())
    crm.contacts["main"] = main
    conn.execute(
        """insert into contacts (id, workspace_id, phone, name, email, tags, lead_status, lead_score, metadata,
                                 created_at, updated_at)
           values (%s, %s, %s, 'Budi Santoso', 'budi@example.com', %s, 'hot', 87, %s, %s, %s)""",
        (main, a, PHONE, ["vip", "jakarta"], psycopg.types.json.Jsonb({"source": "ads", "n": 1}), BASE, BASE),
    )
    for i in range(5):
        conv = str(uuid.uuid4())
        crm.conversations.append(conv)
        last = None if i == 4 else BASE + timedelta(hours=i)
        conn.execute(
            """insert into conversations (id, workspace_id, contact_id, status, last_message_at, last_message_preview,
                                          unread_count, created_at)
               values (%s, %s, %s, %s, %s, %s, %s, %s)""",
            (conv, a, main, ("open", "pending", "closed")[i % 3], last, f"preview {i}", i, BASE),
        )
        for j in range(25):
            conn.execute(
                """insert into messages (workspace_id, conversation_id, direction, sender_type, content, created_at)
                   values (%s, %s, %s, %s, %s, %s)""",
                (a, conv, ("inbound", "outbound")[j % 2], ("contact", "agent", "ai")[j % 3], f"c{i} m{j}",
                 BASE + timedelta(hours=i, seconds=j, microseconds=j * 7)),
            )
    for k in range(12):
        conn.execute(
            "insert into contact_notes (workspace_id, contact_id, author_id, content, created_at) values (%s, %s, %s, %s, %s)",
            (a, main, None if k % 2 else crm.members["a"], f"note {k}", BASE + timedelta(minutes=k)),
        )
    quiet = str(uuid.uuid4())
    crm.contacts["quiet"] = quiet
    conn.execute(
        "insert into contacts (id, workspace_id, phone, name) values (%s, %s, %s, NULL)", (quiet, a, "6289999000001")
    )
    other = str(uuid.uuid4())
    crm.contacts["other"] = other
    conn.execute(
        "insert into contacts (id, workspace_id, phone, name) values (%s, %s, %s, 'Other')", (other, b, PHONE)
    )


@pytest.fixture(scope="session")
def crm(sandbox_env: dict[str, str]) -> Iterator[Crm]:
    crm = Crm(sandbox_env["DATABASE_URL"])
    with psycopg.connect(crm.database_url, autocommit=True) as conn, conn.transaction():
        _build(conn, crm)
    try:
        yield crm
    finally:
        with psycopg.connect(crm.database_url, autocommit=True) as conn:
            conn.execute("delete from workspaces where id = any(%s)", (list(crm.workspaces.values()),))


@contextlib.contextmanager
def standalone_gateway(env: dict[str, str], *args: str) -> Iterator[str]:
    """``python -m sandbox rest`` on a port of its choosing (port 0) with ``env`` added; yields its base
    URL, stops it after."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "rest", "--port", "0", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{listening_port(proc, timeout=60)}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/health").json()["status"] == "ok":
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError("the standalone gateway did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(10)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll ``check`` (e.g. for a NOTIFY-driven reload) until it holds or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


GRAMMAR_FIXTURES = Path(__file__).parent / "fixtures" / "grammar.sql"


def grammar_gateway(sandbox_env: dict[str, str], *args: str) -> contextlib.AbstractContextManager[str]:
    """A standalone gateway exposing only the test-only ``grammar`` schema (in-database settings ignored)."""
    env = {"PGRST_DB_URI": sandbox_env["DATABASE_URL"], "PGRST_JWT_SECRET": sandbox_env["SUPABASE_JWT_SECRET"]}
    return standalone_gateway(env, "--db-schemas", "grammar", "--no-db-config", *args)


@pytest.fixture(scope="session")
def grammar_db(crm: Crm) -> Iterator[Crm]:
    """The sandbox database with fixtures/grammar.sql applied (schemas grammar, grammar_private)."""
    with psycopg.connect(crm.database_url, autocommit=True) as conn:
        conn.execute(GRAMMAR_FIXTURES.read_text().encode())  # no parameters: `%` in the SQL is literal
    try:
        yield crm
    finally:
        crm.sql("drop schema if exists grammar cascade; drop schema if exists grammar_private cascade")


@pytest.fixture(scope="session")
def grammar_base(sandbox_env: dict[str, str], grammar_db: Crm) -> Iterator[str]:
    """Base URL of a gateway over the grammar fixtures, aggregates enabled."""
    with grammar_gateway(sandbox_env, "--db-aggregates-enabled") as url:
        yield url
