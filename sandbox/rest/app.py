"""The gateway: a plain ASGI app answering like Supabase's Kong + PostgREST v14.

One pooled asyncpg connection and one transaction per request (READ ONLY for
GET/HEAD and for STABLE/IMMUTABLE functions), with ``set_config('role', …)`` and
``set_config('request.jwt.claims', …)`` first, so RLS applies.

Optional, as in PostgREST (off by default): ``Server-Timing`` on successful
responses (``server-timing-enabled``), the execution-plan media type
``application/vnd.pgrst.plan`` (``db-plan-enabled``) and aggregate functions in
``select`` (``db-aggregates-enabled``). Each is a flag / ``PGRST_*`` variable,
overridden by the login role's in-database setting (``alter role authenticator
set pgrst.db_plan_enabled = 'true'``) read at start and on
``NOTIFY pgrst, 'reload config'``, unless ``db-config`` is off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import signal
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import orjson

from .auth import JwtVerifier
from .errors import ApiError, PlainError, from_pg
from .media import JSON_MEDIA, MediaType, negotiate
from .parser import Filter, NodeParams, ParsedQuery, SelectItem, Star, parse_query
from .query import (
    Builder,
    delete_source,
    find_function,
    insert_source,
    rpc_call,
    table_missing,
    update_source,
)
from .schema import Column, Function, SchemaCache, Table, quote_ident
from .shapes import ShapeCache, Statements, learn, shape_of
from .timing import ServerTiming

log = logging.getLogger("sandbox.rest")

JSON_CT = b"application/json; charset=utf-8"
SET_CONFIG_SQL = (
    "SELECT set_config('search_path', $1, true), set_config('role', $2, true), "
    "set_config('request.jwt.claims', $3, true), set_config('request.method', $4, true), "
    "set_config('request.path', $5, true), set_config('request.headers', $6, true)"
)
BEGIN_RO = "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"
BEGIN_RW = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
_TAIL = (
    "nullif(current_setting('response.headers', true), '') AS response_headers, "
    "nullif(current_setting('response.status', true), '') AS response_status"
)
_HEADERS_SKIPPED = frozenset({"cookie"})
_PLAN_CACHE_MAX = 4096
_HEADER_SETS_MAX = 256  # distinct request header sets kept decoded (a client repeats its own)
_BEARERS_MAX = 10_000
_KNOWN_PREFERENCES = frozenset(
    {
        "return=minimal", "return=representation", "return=headers-only",
        "count=exact", "count=planned", "count=estimated",
        "resolution=merge-duplicates", "resolution=ignore-duplicates",
        "missing=default", "missing=null", "handling=strict", "handling=lenient",
        "tx=commit", "tx=rollback", "params=single-object",
    }
)
_RANGE = re.compile(r"^(?:items=)?(\d+)-(\d*)$")
_INTEGER = re.compile(r"^\s*-?[0-9]+\s*$")


@dataclass
class Config:
    db_uri: str
    schemas: list[str] = field(default_factory=lambda: ["public"])
    anon_role: str | None = "anon"
    jwt_secret: str | None = None
    jwks: list[dict[str, Any]] = field(default_factory=list)
    max_rows: int | None = 1000
    pool_size: int = 10
    extra_search_path: list[str] = field(default_factory=lambda: ["public"])
    # Kong-like apikey check (hosted Supabase's gateway); off when empty.
    api_keys: dict[str, str] = field(default_factory=dict)
    public_jwks: dict[str, Any] | None = None
    server_timing_enabled: bool = False
    db_plan_enabled: bool = False
    db_aggregates_enabled: bool = False
    # read the login role's `pgrst.*` settings from the database (they win over the above)
    db_config: bool = True


# PostgREST's in-database settings the gateway honours (Config/Database.hs::dbSettingsNames)
IN_DB_SETTINGS = ("server_timing_enabled", "db_plan_enabled", "db_aggregates_enabled")
# Config/Database.hs::queryDbSettings: the login role's settings, the database-specific ones first
DB_SETTINGS_SQL = """
with role_setting as (
  select setdatabase as database, unnest(setconfig) as setting
  from pg_catalog.pg_db_role_setting
  where setrole = quote_ident(current_user)::regrole::oid
    and setdatabase in (0, (select oid from pg_catalog.pg_database where datname = current_catalog))
), kv_settings as (
  select database, substr(setting, 1, strpos(setting, '=') - 1) as k, substr(setting, strpos(setting, '=') + 1) as v
  from role_setting
)
select distinct on (key) replace(k, 'pgrst.', '') as key, v as value
from kv_settings
where k = any($1::text[]) and v is not null
order by key, database desc nulls last
"""


def coerce_bool(text: str) -> bool | None:
    """PostgREST's ``coerceBool``: true/TRUE/"true", or an integer > 0; anything else is None."""
    letters = "".join(ch for ch in text if ch.isalpha()).lower()
    if letters in ("true", "false"):
        return letters == "true"
    if _INTEGER.match(text):
        return int(text) > 0
    return None


@dataclass
class Toggles:
    """The effective switches (flags / environment, overridden by in-database settings)."""

    server_timing_enabled: bool
    db_plan_enabled: bool
    db_aggregates_enabled: bool


class Pool:
    """A minimal FIFO connection pool: acquisition waits, never fails while the DB is up.

    A released connection goes straight to the longest waiter (no barging), so
    queueing under load is fair, as in PostgREST's pool. No reset query on
    release: every setting the gateway makes is transaction-local.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: list[asyncpg.Connection] = []
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        self._created = 0

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, statement_cache_size=1024, command_timeout=None)

    async def acquire(self) -> asyncpg.Connection:
        while self._idle and not self._waiters:
            conn = self._idle.pop()
            if not conn.is_closed():
                return conn
            self._created -= 1
        if self._created >= self.size:
            waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    given = waiter.result()
                    if given is None:  # a reserved slot nobody will use
                        self._created -= 1
                    self._hand_back(given)
                else:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
            if handed is not None:
                return handed
            # handed a slot (already counted) freed by a broken connection
        else:
            self._created += 1
        try:
            return await self._connect()
        except BaseException:
            self._created -= 1
            self._hand_back(None)
            raise

    def _hand_back(self, conn: asyncpg.Connection | None) -> None:
        """Give ``conn`` (or, if None, the right to open one) to the next waiter."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                if conn is None:
                    if self._created < self.size:
                        self._created += 1
                        waiter.set_result(None)
                    else:
                        self._waiters.appendleft(waiter)
                    return
                waiter.set_result(conn)
                return
        if conn is not None:
            self._idle.append(conn)

    async def release(self, conn: asyncpg.Connection, broken: bool = False) -> None:
        if broken or conn.is_closed():
            self._created -= 1
            if not conn.is_closed():
                conn.terminate()
            self._hand_back(None)
        else:
            self._hand_back(conn)

    def discard_idle(self) -> None:
        while self._idle:
            conn = self._idle.pop()
            conn.terminate()
            self._created -= 1
            self._hand_back(None)

    async def close(self) -> None:
        for conn in self._idle:
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
        self._idle.clear()


@dataclass
class RpcPlan:
    fn: Function
    read_only: bool
    singular: bool
    count: str | None
    offset: int
    result_table: Table | None
    prefs: dict[str, str]


@dataclass
class ReadPlan:
    singular: bool
    prefs: dict[str, str]
    count: str | None
    offset: int
    media: MediaType = JSON_MEDIA


class Request:
    """One HTTP request; the query string is parsed only when needed (a plan-cache hit does not)."""

    __slots__ = ("_query", "body", "headers", "headers_json", "media", "method", "path", "raw_query", "timing")

    def __init__(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        query: list[tuple[str, str]] | None,
        body: bytes,
        raw_query: bytes = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.raw_query = raw_query
        self._query = query
        self.timing: ServerTiming | None = None
        self.media: MediaType = JSON_MEDIA
        self.headers_json: str | None = None  # ``request.headers`` as set_config gets it, when known

    @property
    def query(self) -> list[tuple[str, str]]:
        if self._query is None:
            self._query = query_pairs(self.raw_query)
        return self._query


def query_pairs(raw: bytes) -> list[tuple[str, str]]:
    """``parse_qsl(..., keep_blank_values=True)``; a query with no ``%`` or ``+`` has nothing to
    decode, so it is split directly (the same pairs)."""
    if not raw:
        return []
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True, encoding="utf-8")
    pairs = []
    for part in text.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def headers_setting(headers: dict[str, str]) -> str:
    """``request.headers`` for set_config: the headers as a JSON object, cookie left out."""
    return orjson.dumps({k: v for k, v in headers.items() if k not in _HEADERS_SKIPPED}).decode()


def _prefer(headers: dict[str, str]) -> dict[str, str]:
    prefs: dict[str, str] = {}
    raw = headers.get("prefer")
    if raw:
        for part in raw.split(","):
            key, _, value = part.strip().partition("=")
            if key and key not in prefs:
                prefs[key] = value.strip()
        if prefs.get("handling") == "strict":
            unknown = [
                part.strip()
                for part in raw.split(",")
                if part.strip() and part.strip() not in _KNOWN_PREFERENCES
                and not part.strip().startswith(("max-affected=", "timezone="))
            ]
            if unknown:
                raise ApiError(
                    400, "PGRST122", "Invalid preferences given with handling=strict",
                    "Invalid preferences: " + ", ".join(unknown),
                )
    return prefs


def _error_response(err: ApiError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    headers = [(b"content-type", JSON_CT), (b"proxy-status", f"PostgREST; error={err.code}".encode()), *err.headers]
    return err.status, headers, orjson.dumps(err.body())


class Gateway:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.pool = Pool(config.db_uri, config.pool_size)
        self.cache = SchemaCache()
        self.verifier = JwtVerifier(config.jwt_secret, config.jwks)
        self._listener: asyncpg.Connection | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ready = False
        self._plans: dict[tuple[Any, ...], tuple[list[tuple[str, list[Any]]], ReadPlan]] = {}
        self._shapes = ShapeCache()
        self._search_paths: dict[str, str] = {}
        # decoded request headers and their `request.headers` JSON, by the raw header list
        self._header_sets: dict[tuple[tuple[bytes, bytes], ...], tuple[dict[str, str], str]] = {}
        # per bearer token: (the verifier's claims object it was derived from, role, claims JSON, authenticated)
        self._bearers: dict[str, tuple[dict[str, Any], str, str, bool]] = {}
        self._role_sql: dict[str, tuple[str, list[str]]] = {}
        self.toggles = self._configured_toggles()

    def _configured_toggles(self) -> Toggles:
        return Toggles(
            self.config.server_timing_enabled, self.config.db_plan_enabled, self.config.db_aggregates_enabled
        )

    # lifecycle -----------------------------------------------------------
    async def startup(self) -> None:
        await self.reload_config()
        await self.reload_schema()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGUSR1, self._schedule_reload)
            loop.add_signal_handler(signal.SIGUSR2, self._schedule_config_reload)
        self._spawn(self._listen())
        self.ready = True

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        await self.pool.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_reload(self) -> None:
        self._spawn(self.reload_schema())

    def _schedule_config_reload(self) -> None:
        self._spawn(self.reload_config())

    async def reload_config(self) -> None:
        """The switches from flags / environment, then the login role's ``pgrst.*`` settings.

        As PostgREST: an in-database value wins even when it does not parse (then
        the setting takes its default, off); a failed read keeps the configured values.
        """
        toggles = self._configured_toggles()
        if self.config.db_config:
            try:
                conn = await self.pool.acquire()
            except Exception as exc:
                log.warning("in-database settings not read: %s", exc)
                self.toggles = toggles
                return
            try:
                rows = await conn.fetch(DB_SETTINGS_SQL, [f"pgrst.{name}" for name in IN_DB_SETTINGS])
            except asyncpg.PostgresError as exc:
                await self.pool.release(conn)
                log.warning("in-database settings not read: %s", exc)
                rows = []
            except BaseException:
                await self.pool.release(conn, broken=True)
                raise
            else:
                await self.pool.release(conn)
            for row in rows:
                setattr(toggles, row["key"], coerce_bool(row["value"]) or False)
        self.toggles = toggles
        self._plans = {}
        self._shapes.clear()
        log.info(
            "settings: server-timing-enabled=%s db-plan-enabled=%s db-aggregates-enabled=%s",
            *(str(getattr(toggles, n)).lower() for n in IN_DB_SETTINGS),
        )

    async def reload_schema(self) -> None:
        conn = await self.pool.acquire()
        try:
            self.cache = await SchemaCache.load(conn, self.config.schemas, self.config.extra_search_path)
            self._plans = {}
            self._shapes.clear()
            self._role_sql = {}
        except BaseException:
            await self.pool.release(conn, broken=True)
            raise
        await self.pool.release(conn)
        log.info("schema cache loaded: %d tables, %d functions", len(self.cache.tables), len(self.cache.functions))

    async def _listen(self) -> None:
        """LISTEN pgrst: 'reload schema' (or an empty payload) reloads the cache, 'reload config' the settings."""

        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            if payload in ("", "reload schema"):
                self._schedule_reload()
            elif payload == "reload config":
                self._schedule_config_reload()

        while True:
            try:
                self._listener = await asyncpg.connect(self.config.db_uri)
                await self._listener.add_listener("pgrst", on_notify)
                while not self._listener.is_closed():
                    await asyncio.sleep(1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # the DB went away: retry, and reload once back
                await asyncio.sleep(1.0)
                continue
            await asyncio.sleep(1.0)
            self._schedule_config_reload()
            self._schedule_reload()

    # ASGI ------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    try:
                        await self.startup()
                    except Exception as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if kind != "http":
            return
        body = b""
        if scope["method"] in ("POST", "PATCH", "PUT", "DELETE"):
            more = True
            chunks = []
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
        headers, headers_json = self._request_headers(scope["headers"])
        req = Request(scope["method"], scope["path"], headers, None, body, scope["query_string"])
        req.headers_json = headers_json
        try:
            status, out_headers, out_body = await self.handle(req)
            if req.timing is not None:
                req.timing.lap("response")
                out_headers.append((b"server-timing", req.timing.header()))
        except ApiError as err:
            status, out_headers, out_body = _error_response(err)
        except PlainError as err:
            status, out_headers, out_body = err.status, [(b"content-type", JSON_CT)], orjson.dumps(err.body)
        except Exception:
            log.exception("unhandled error on %s %s", req.method, req.path)
            status, out_headers, out_body = _error_response(ApiError(500, "PGRST000", "Internal gateway error"))
        out_headers.append((b"content-length", str(len(out_body)).encode()))
        if req.method == "HEAD":
            out_body = b""
        await send({"type": "http.response.start", "status": status, "headers": out_headers})
        await send({"type": "http.response.body", "body": out_body})

    # routing ---------------------------------------------------------------
    async def handle(self, req: Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        path = req.path
        if path == "/health":
            return 200, [(b"content-type", JSON_CT)], b'{"status":"ok"}' if self.ready else b'{"status":"starting"}'
        if path in ("/auth/v1/.well-known/jwks.json", "/auth/v1/jwks"):
            jwks = self.config.public_jwks or {"keys": []}
            return 200, [(b"content-type", JSON_CT)], orjson.dumps(jwks)
        if path.startswith("/rest/v1"):
            path = path[len("/rest/v1") :] or "/"
        elif self.config.api_keys:
            raise PlainError(404, {"message": "no Route matched with those values"})
        if req.method == "OPTIONS":
            return 200, self._cors(req), b""
        token = self._check_key(req)  # Kong's part: not PostgREST's, so not timed
        if self.toggles.server_timing_enabled:
            req.timing = ServerTiming()
        role, claims, authenticated = self._authenticate(req, token)  # claims: the JSON set_config gets
        if req.timing is not None:
            req.timing.lap("jwt")
        segments = [s for s in path.split("/") if s]
        if not segments:
            if req.timing is not None:
                req.timing.lap("parse")
                req.timing.lap("plan")
                req.timing.lap("transaction")
            return 200, [(b"content-type", JSON_CT)], self._root()
        method = req.method
        schema, profile_header = self._schema(req)
        if len(segments) == 2 and segments[0] == "rpc":
            return await self._rpc(req, segments[1], schema, profile_header, role, claims, authenticated)
        if len(segments) != 1:
            raise ApiError(404, "PGRST125", f"Invalid path specified in request URL: {req.path}")
        table = self.cache.tables.get((schema, segments[0]))
        if table is None:
            raise table_missing(self.cache, schema, segments[0])
        if method in ("GET", "HEAD"):
            return await self._read(req, table, schema, profile_header, role, claims, authenticated)
        if method in ("POST", "PATCH", "DELETE", "PUT"):
            return await self._mutate(req, table, schema, profile_header, role, claims, authenticated)
        raise ApiError(405, "PGRST117", f"Unsupported HTTP method: {method}")

    def _request_headers(self, raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], str]:
        """The request's headers by lower-case name, and the ``request.headers`` JSON (cookie left out);
        decoded once per distinct header list (the returned dict is shared: never mutated)."""
        key = tuple(raw)
        known = self._header_sets.get(key)
        if known is None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in raw}
            known = (headers, headers_setting(headers))
            if len(self._header_sets) >= _HEADER_SETS_MAX:
                self._header_sets.clear()
            self._header_sets[key] = known
        return known

    def _authenticate(self, req: Request, token: str | None) -> tuple[str, str, bool]:
        """(role, claims JSON, authenticated) from the Bearer token (or Kong's key standing for it), as
        PostgREST's auth middleware; no token is the anonymous role.

        The verifier keeps a verified token for up to 5 minutes, never past its expiry (PostgREST's JWT
        cache); what is derived from its claims is kept beside it while the verifier returns the same claims."""
        if token is None:
            auth = req.headers.get("authorization", "")
            if auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
            elif auth.strip().lower() == "bearer":
                token = ""
        anon = self.config.anon_role
        if token is None:
            if not anon:
                raise ApiError(401, "PGRST302", "Anonymous access is disabled", headers=[(b"www-authenticate", b"Bearer")])
            return anon, orjson.dumps({"role": anon}).decode(), False
        verified = self.verifier.claims(token)
        known = self._bearers.get(token)
        if known is not None and known[0] is verified:
            return known[1], known[2], known[3]
        claims = dict(verified)
        role = claims.get("role") or anon
        claims.setdefault("role", role)
        if not role:
            raise ApiError(401, "PGRST302", "Anonymous access is disabled", headers=[(b"www-authenticate", b"Bearer")])
        # PostgREST: 42501 is 401 for the anon role, 403 for any other
        derived = (verified, str(role), orjson.dumps(claims).decode(), role != anon)
        if len(self._bearers) >= _BEARERS_MAX:
            self._bearers.clear()
        self._bearers[token] = derived
        return derived[1], derived[2], derived[3]

    def _cors(self, req: Request) -> list[tuple[bytes, bytes]]:
        return [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", b"GET, POST, PATCH, PUT, DELETE, OPTIONS, HEAD"),
            (
                b"access-control-allow-headers",
                req.headers.get("access-control-request-headers", "authorization, apikey, content-type").encode(),
            ),
            (b"access-control-max-age", b"86400"),
        ]

    def _root(self) -> bytes:
        paths: dict[str, dict[str, Any]] = {
            f"/{name}": {} for (schema, name) in self.cache.tables if schema == self.config.schemas[0]
        }
        return orjson.dumps({"swagger": "2.0", "info": {"title": "sandbox PostgREST-compatible gateway"}, "paths": paths})

    def _check_key(self, req: Request) -> str | None:
        """Kong key-auth: ``apikey`` header or query param must be a known key.

        Returns the key as the Bearer token when no Authorization header is
        sent (what Supabase's gateway forwards for legacy JWT keys).
        """
        if not self.config.api_keys:
            return None
        key = req.headers.get("apikey")
        if b"apikey" in req.raw_query:
            for name, value in req.query:
                if name == "apikey" and key is None:
                    key = value
            req.query[:] = [(k, v) for k, v in req.query if k != "apikey"]
        if not key:
            raise PlainError(
                401, {"message": "No API key found in request", "hint": "No `apikey` request header or url param was found."}
            )
        if key not in self.config.api_keys:
            raise PlainError(
                401, {"message": "Invalid API key", "hint": "Double check your Supabase `anon` or `service_role` API key."}
            )
        if "authorization" in req.headers:
            return None
        return key

    def _schema(self, req: Request) -> tuple[str, bool]:
        name = "accept-profile" if req.method in ("GET", "HEAD") else "content-profile"
        wanted = req.headers.get(name)
        schemas = self.config.schemas
        if wanted is None:
            return schemas[0], len(schemas) > 1
        if wanted not in schemas:
            raise ApiError(
                406,
                "PGRST106",
                f"Invalid schema: {wanted}",
                None,
                f"Only the following schemas are exposed: {', '.join(schemas)}",
            )
        return wanted, True

    def _builder(self, schema: str) -> Builder:
        return Builder(self.cache, schema, aggregates=self.toggles.db_aggregates_enabled, max_rows=self.config.max_rows)

    def _negotiate(self, req: Request) -> MediaType:
        """The response's media type from ``Accept`` (406 PGRST107 when none can be produced)."""
        req.media = negotiate(req.headers.get("accept"), self.toggles.db_plan_enabled)
        return req.media

    # execution -----------------------------------------------------------
    async def _run(
        self,
        req: Request,
        read_only: bool,
        schema: str,
        role: str,
        claims: str,
        authenticated: bool,
        statements: list[tuple[str, list[Any]]],
        check: Any = None,
        fetch_all: bool = False,
    ) -> list[Any]:
        """Run ``statements`` in one transaction; ``check(rows)`` may raise to roll back.

        The time spent here, pool checkout included, is the ``transaction`` phase.
        """
        search_path = self._search_path(schema)
        headers_json = req.headers_json or headers_setting(req.headers)
        for attempt in (0, 1):
            try:
                conn = await self.pool.acquire()
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
                raise ApiError(503, "PGRST001", "Database client error. Retrying the connection.", str(exc)) from None
            began = False
            try:
                await conn.execute(BEGIN_RO if read_only else BEGIN_RW)
                began = True
                set_sql, set_params = self._set_config(role)
                await conn.fetchrow(set_sql, search_path, role, claims, req.method, req.path, headers_json, *set_params)
                rows: list[Any] = [await conn.fetchrow(sql, *params) for sql, params in statements[:-1]]
                last_sql, last_params = statements[-1]
                if fetch_all:
                    rows.append(await conn.fetch(last_sql, *last_params))
                else:
                    rows.append(await conn.fetchrow(last_sql, *last_params))
                if check is not None:
                    check(rows)
                await conn.execute("COMMIT")
            except asyncpg.PostgresError as exc:
                await self._rollback(conn)
                if attempt == 0 and isinstance(exc, asyncpg.InvalidCachedStatementError | asyncpg.OutdatedSchemaCacheError):
                    continue  # DDL changed a prepared statement's result: asyncpg re-prepares on the retry
                state = getattr(exc, "sqlstate", "") or ""
                if attempt == 0 and (state.startswith("08") or state in ("57P01", "57P02", "57P03")):
                    self.pool.discard_idle()  # the server restarted under us: once more on a fresh connection
                    continue
                raise from_pg(exc, authenticated) from None
            except (OSError, asyncpg.InterfaceError, ConnectionError) as exc:
                if not (conn.is_closed() or isinstance(exc, OSError | ConnectionError | asyncpg.ConnectionDoesNotExistError)):
                    await self._rollback(conn)
                    raise  # a gateway bug, answered as 500 (never a 503 while the database is up)
                await self.pool.release(conn, broken=True)
                self.pool.discard_idle()  # the server restarted: the other idle ones are dead too
                if attempt == 0:
                    continue  # a connection the server dropped: once more on a fresh one
                raise ApiError(503, "PGRST001", "Database client error. Retrying the connection.") from None
            except BaseException:
                if began:
                    await self._rollback(conn)
                else:
                    await self.pool.release(conn, broken=True)
                raise
            await self.pool.release(conn)
            if req.timing is not None:
                req.timing.lap("transaction")
            return rows
        raise AssertionError("unreachable")

    def _search_path(self, schema: str) -> str:
        """The request's ``search_path``: its schema, then ``db-extra-search-path`` (built once per schema)."""
        search_path = self._search_paths.get(schema)
        if search_path is None:
            search_path = ", ".join(quote_ident(s) for s in [schema, *self.config.extra_search_path])
            self._search_paths[schema] = search_path
        return search_path

    async def _explain(
        self,
        req: Request,
        read_only: bool,
        schema: str,
        role: str,
        claims: str,
        authenticated: bool,
        statement: tuple[str, list[Any]],
        profile: bool,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """``Accept: application/vnd.pgrst.plan``: EXPLAIN the request's own main statement, in its
        own transaction context (role, claims, RLS, read/write mode), as ``MainTx`` does."""
        media = req.media
        options = ["FORMAT JSON" if media.plan_format == "json" else "FORMAT TEXT"]
        options += [o.upper() for o in media.plan_options]
        sql, params = statement
        explain = f"EXPLAIN ({', '.join(options)}) {sql}"
        rows = await self._run(req, read_only, schema, role, claims, authenticated, [(explain, params)], fetch_all=True)
        headers = [(b"content-type", media.content_type())]
        if profile:
            headers.append((b"content-profile", schema.encode()))
        # MainTx.planRow: the rows (one per line in text format), each followed by a newline
        return 200, headers, "".join(row[0] + "\n" for row in rows[-1]).encode()

    def _set_config(self, role: str) -> tuple[str, list[str]]:
        """SET_CONFIG_SQL plus the role's own settings (e.g. anon's statement_timeout), all bound."""
        cached = self._role_sql.get(role)
        if cached is None:
            settings = self.cache.role_settings.get(role, {})
            sql = SET_CONFIG_SQL
            params: list[str] = []
            for name, value in settings.items():
                n = 7 + len(params)
                sql += f", set_config(${n}, ${n + 1}, true)"
                params += [name, value]
            cached = self._role_sql[role] = (sql, params)
        return cached

    async def _rollback(self, conn: asyncpg.Connection) -> None:
        try:
            await conn.execute("ROLLBACK")
        except Exception:
            await self.pool.release(conn, broken=True)
            return
        await self.pool.release(conn)

    # reads -------------------------------------------------------------------
    def _parse(self, req: Request, rpc_read: bool = False) -> ParsedQuery:
        return parse_query(req.query, rpc_read)

    def _range(self, req: Request, parsed: ParsedQuery) -> tuple[int, int | None]:
        root = parsed.nodes.get(()) or NodeParams()
        offset = root.offset or 0
        limit = root.limit
        rng = req.headers.get("range")
        match = _RANGE.match(rng.strip()) if rng and req.method in ("GET", "HEAD") else None
        if match:  # an unparsable Range header is ignored, as PostgREST does
            r_lo = int(match.group(1))
            r_hi = int(match.group(2)) if match.group(2) else None
            if r_hi is not None and r_hi < r_lo:
                raise ApiError(
                    416,
                    "PGRST103",
                    "Requested range not satisfiable",
                    "The lower boundary must be lower than or equal to the upper boundary in the Range header.",
                )
            # the header range intersected with limit/offset
            start = max(offset, r_lo)
            ends = [e for e in (r_hi, offset + limit - 1 if limit is not None else None) if e is not None]
            offset = start
            limit = max(min(ends) - start + 1, 0) if ends else None
        if self.config.max_rows is not None:
            limit = self.config.max_rows if limit is None else min(limit, self.config.max_rows)
        return offset, limit

    def plan_read(self, req: Request, table: Table, schema: str) -> tuple[list[tuple[str, list[Any]]], ReadPlan]:
        """The statements a read runs (also used by bench/ to run the same SQL directly)."""
        parsed = self._parse(req)
        media = self._negotiate(req)
        prefs = _prefer(req.headers)
        count = prefs.get("count")
        if count not in ("exact", "planned", "estimated"):
            count = None
        offset, limit = self._range(req, parsed)
        if req.timing is not None:
            req.timing.lap("parse")
        b = self._builder(schema)
        items: list[SelectItem] = parsed.select if parsed.select is not None else [Star()]
        source, count_sql = b.read_source(
            table, table.qualified, table.qualified, items, parsed.nodes, limit, offset, count
        )
        _, statements = self._wrap_read(b, source, count_sql, count, media, req.method == "HEAD")
        if req.timing is not None:
            req.timing.lap("plan")
        return statements, ReadPlan(media.singular, prefs, count, offset, media)

    async def _read(
        self, req: Request, table: Table, schema: str, profile: bool, role: str, claims: str, authed: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        # identical reads (a hot contact) reuse their statements: parsing and building are skipped
        context = (req.method, schema, table.name, req.headers.get("accept"), req.headers.get("prefer"),
                   req.headers.get("range"))
        key = (*context, req.raw_query)
        cached = self._plans.get(key)
        if cached is None:
            cached = self.plan_read_by_shape(req, table, schema, context)
            if len(self._plans) >= _PLAN_CACHE_MAX:
                self._plans.clear()
            self._plans[key] = cached
        elif req.timing is not None:
            req.timing.lap("parse")
            req.timing.lap("plan")
        statements, plan = cached
        req.media = plan.media
        if plan.media.kind == "plan":
            return await self._explain(req, True, schema, role, claims, authed, statements[-1], profile)
        rows = await self._run(req, True, schema, role, claims, authed, statements)
        return self._read_response(
            req, rows, plan.count, plan.singular, plan.offset, profile, schema, table.name, plan.prefs
        )

    def plan_read_by_shape(
        self, req: Request, table: Table, schema: str, context: tuple[Any, ...]
    ) -> tuple[Statements, ReadPlan]:
        """``plan_read``, or the statements of an earlier read of the same shape with this request's
        filter values bound (see ``shapes``)."""
        shape, values = shape_of(req.query)
        key = (*context, shape)
        template = self._shapes.get(key)
        if template is not None:
            try:
                statements = template.bind(values)
            except ApiError:
                pass  # a value that does not parse: the full path answers with its error
            else:
                if req.timing is not None:
                    req.timing.lap("parse")
                    req.timing.lap("plan")
                return statements, template.plan
        statements, plan = self.plan_read(req, table, schema)
        if not self._shapes.known(key):

            def plan_with(pairs: list[tuple[str, str]]) -> tuple[Statements, ReadPlan]:
                return self.plan_read(Request(req.method, req.path, req.headers, pairs, b"", req.raw_query), table, schema)

            self._shapes.put(key, learn(shape, values, statements, plan, plan_with))
            if req.timing is not None:
                req.timing.lap("plan")
        return statements, plan

    def _wrap_read(
        self, b: Builder, source: str, count_sql: str | None, count: str | None, media: MediaType, head: bool,
        single_row: bool = False,
    ) -> tuple[str, list[tuple[str, list[Any]]]]:
        statements: list[tuple[str, list[Any]]] = []
        if count in ("planned", "estimated") and b.count_statement is not None and media.kind != "plan":
            alone, alone_params = b.count_statement
            statements.append((f"EXPLAIN (FORMAT JSON) {alone}", alone_params))
        ctes = f"WITH pgrst_source AS ({source})"
        total = "NULL::bigint"
        if count_sql is not None:
            ctes += f", pgrst_source_count AS ({count_sql})"
            total = "(SELECT pg_catalog.count(*) FROM pgrst_source_count)"
        body = "''" if head else body_sql(media, "_postgrest_t", many=not single_row)
        sql = (
            f"{ctes} SELECT {total} AS total_result_set, pg_catalog.count(_postgrest_t) AS page_total, "
            f"{body} AS body, {_TAIL} FROM (SELECT * FROM pgrst_source) _postgrest_t"
        )
        statements.append((sql, b.params))
        return sql, statements

    def _total(self, rows: list[asyncpg.Record | None], count: str | None) -> int | None:
        main = rows[-1]
        assert main is not None
        exact = main["total_result_set"]
        if count == "exact":
            return int(exact)
        if count in ("planned", "estimated"):
            plan = orjson.loads(rows[0]["QUERY PLAN"]) if rows[0] is not None else None
            planned = int(plan[0]["Plan"]["Plan Rows"]) if plan else 0
            if count == "estimated" and exact is not None and (self.config.max_rows is None or exact <= self.config.max_rows):
                return int(exact)
            return planned
        return None

    def _read_response(
        self,
        req: Request,
        rows: list[asyncpg.Record | None],
        count: str | None,
        singular: bool,
        offset: int,
        profile: bool,
        schema: str,
        name: str,
        prefs: dict[str, str],
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        main = rows[-1]
        assert main is not None
        page = int(main["page_total"])
        total = self._total(rows, count)
        if singular and page != 1:
            raise ApiError(
                406, "PGRST116", "Cannot coerce the result to a single JSON object", f"The result contains {page} rows"
            )
        if total is not None and offset > total:
            raise ApiError(
                416,
                "PGRST103",
                "Requested range not satisfiable",
                f"An offset of {offset} was requested, but there are only {total} rows.",
                headers=[(b"content-range", f"*/{total}".encode())],
            )
        status = 200
        if total is not None and page < total:
            status = 206
        headers = [
            (b"content-type", _content_type(req.media)),
            (b"content-range", _content_range(offset, page, total).encode()),
        ]
        if req.method in ("GET", "HEAD"):
            headers.append((b"content-location", _content_location(name, req.raw_query)))
        if profile:
            headers.append((b"content-profile", schema.encode()))
        if count is not None:
            headers.append((b"preference-applied", f"count={count}".encode()))
        status, headers = _apply_guc_response(main, status, headers)
        return status, headers, main["body"].encode()

    # mutations -------------------------------------------------------------
    def _payload(self, req: Request) -> Any:
        try:
            return orjson.loads(req.body) if req.body.strip() else None
        except orjson.JSONDecodeError:
            raise ApiError(400, "PGRST102", "Empty or invalid json") from None

    async def _mutate(
        self, req: Request, table: Table, schema: str, profile: bool, role: str, claims: str, authed: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        parsed = self._parse(req)
        media = self._negotiate(req)
        singular = media.singular
        prefs = _prefer(req.headers)
        method = req.method
        payload = self._payload(req) if method != "DELETE" else None
        if req.timing is not None:
            req.timing.lap("parse")
        ret_pref = prefs.get("return")
        ret = ret_pref if ret_pref in ("minimal", "representation", "headers-only") else "minimal"
        count = prefs.get("count") if prefs.get("count") in ("exact", "planned", "estimated") else None
        b = self._builder(schema)
        root = parsed.nodes.get(()) or NodeParams()
        applied: list[str] = []
        resolution = None
        if method == "POST":
            dml, resolution = _insert_dml(req, b, table, parsed, payload, prefs, applied)
        elif method == "PUT":
            dml, resolution = _put_dml(b, table, root, payload), "merge-duplicates"
        elif method == "PATCH":
            dml = _patch_dml(req, b, table, parsed, root, payload, prefs, applied)
        else:
            dml = delete_source(table, _where(b, table, root))
        if ret_pref == ret:
            applied.append(f"return={ret}")
        if count:
            applied.append(f"count={count}")
        rep = ret == "representation"
        nodes = dict(parsed.nodes)
        nodes[()] = NodeParams()
        items: list[SelectItem] = parsed.select if parsed.select is not None else [Star()]
        if rep:
            outer, _ = b.read_source(
                table, quote_ident(table.name), f'"pgrst_source" AS {quote_ident(table.name)}', items, nodes,
                None, None, None, star_columns=True, mutation=True,
            )
        else:
            outer = "SELECT 1 FROM pgrst_source"
        body = body_sql(media, "_postgrest_t") if rep else "''"
        total = "(SELECT pg_catalog.count(*) FROM pgrst_source)" if count else "NULL::bigint"
        sql = (
            f"WITH pgrst_source AS ({dml}) SELECT {total} AS total_result_set, "
            f"pg_catalog.count(_postgrest_t) AS page_total, {body} AS body, "
            f"(SELECT pg_catalog.count(*) FROM pgrst_source WHERE pgrst_inserted) AS inserted, {_TAIL} "
            f"FROM ({outer}) _postgrest_t"
        )
        if req.timing is not None:
            req.timing.lap("plan")
        if media.kind == "plan":
            return await self._explain(req, False, schema, role, claims, authed, (sql, b.params), profile)

        def check(rows: list[asyncpg.Record | None]) -> None:
            main = rows[-1]
            assert main is not None
            if singular and main["page_total"] != 1:
                raise ApiError(
                    406,
                    "PGRST116",
                    "Cannot coerce the result to a single JSON object",
                    f"The result contains {main['page_total']} rows",
                )

        rows = await self._run(req, False, schema, role, claims, authed, [(sql, b.params)], check)
        main = rows[-1]
        assert main is not None
        status, content_range = _mutation_status(method, rep, resolution, main, count is not None)
        headers = [(b"content-type", _content_type(media)), (b"content-range", content_range.encode())]
        if profile:
            headers.append((b"content-profile", schema.encode()))
        if applied:
            headers.append((b"preference-applied", ", ".join(applied).encode()))
        out = main["body"].encode() if rep else b""
        if not rep:
            headers = [h for h in headers if h[0] != b"content-type"]
        status, headers = _apply_guc_response(main, status, headers)
        return status, headers, out

    # rpc -------------------------------------------------------------------
    def plan_rpc(self, req: Request, name: str, schema: str) -> tuple[list[tuple[str, list[Any]]], RpcPlan]:
        """The statements an RPC call runs (also used by bench/ to run the same SQL directly)."""
        candidates = self.cache.functions.get((schema, name), [])
        method = req.method
        if method in ("GET", "HEAD"):
            parsed = self._parse(req, rpc_read=True)
            args: dict[str, Any] = dict(parsed.rpc_args)
        elif method == "POST":
            parsed = self._parse(req)
            payload = self._payload(req)
            if payload is None:
                payload = {}
            if not isinstance(payload, dict):
                raise ApiError(400, "PGRST102", "Empty or invalid json")
            args = payload
        else:
            raise ApiError(405, "PGRST101", "Cannot use the " + method + " method on RPC")
        prefs = _prefer(req.headers)
        media = self._negotiate(req)
        singular = media.singular
        if req.timing is not None:
            req.timing.lap("parse")
        # one json/jsonb parameter taking the whole body: unnamed, or asked for with params=single-object
        single = next(
            (
                f for f in candidates
                if method == "POST" and len(f.args) == 1 and f.args[0].type in ("json", "jsonb")
                and (f.args[0].name == "" or prefs.get("params") == "single-object")
            ),
            None,
        )
        fn = single or find_function(self.cache, schema, name, set(args), post=method == "POST")
        count = prefs.get("count") if prefs.get("count") in ("exact", "planned", "estimated") else None
        read_only = method in ("GET", "HEAD") or fn.volatility in ("s", "i")
        b = self._builder(schema)
        keys = list(args)
        if single is not None:
            call, args_from = f"{fn.qualified}({b.param(req.body.decode() or '{}')}::{fn.args[0].type})", None
        else:
            call, args_from = rpc_call(b, fn, orjson.dumps(args).decode() if keys else "{}", keys)
        offset, limit = (0, None)
        result_table = self._result_table(fn)
        if result_table is not None:
            offset, limit = self._range(req, parsed)
            if not fn.retset:
                limit = None
            from_sql = (
                f"{args_from}, LATERAL {call} AS {quote_ident(fn.name)}" if args_from else f"{call} AS {quote_ident(fn.name)}"
            )
            items: list[SelectItem] = parsed.select if parsed.select is not None else [Star()]
            source, count_sql = b.read_source(
                result_table, quote_ident(fn.name), from_sql, items, parsed.nodes, limit if fn.retset else None,
                offset if fn.retset else 0, count,
            )
            _, statements = self._wrap_read(
                b, source, count_sql, count, media, method == "HEAD", single_row=not fn.retset
            )
        else:
            source = f"SELECT {call} AS pgrst_scalar" + (f" FROM {args_from}" if args_from else "")
            body = "''" if method == "HEAD" or fn.is_void else body_sql(media, "_postgrest_t.pgrst_scalar", many=fn.retset)
            total = "pg_catalog.count(_postgrest_t)" if count else "NULL::bigint"
            sql = (
                f"WITH pgrst_source AS ({source}) SELECT {total} AS total_result_set, "
                f"pg_catalog.count(_postgrest_t) AS page_total, {body} AS body, {_TAIL} "
                f"FROM (SELECT * FROM pgrst_source) _postgrest_t"
            )
            statements = [(sql, b.params)]
        if req.timing is not None:
            req.timing.lap("plan")
        return statements, RpcPlan(fn, read_only, singular, count, offset, result_table, prefs)

    async def _rpc(
        self, req: Request, name: str, schema: str, profile: bool, role: str, claims: str, authed: bool
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        statements, plan = self.plan_rpc(req, name, schema)
        fn, read_only, singular, count, offset, result_table, prefs = (
            plan.fn, plan.read_only, plan.singular, plan.count, plan.offset, plan.result_table, plan.prefs,
        )
        if req.media.kind == "plan":
            return await self._explain(req, read_only, schema, role, claims, authed, statements[-1], profile)
        rows = await self._run(req, read_only, schema, role, claims, authed, statements)
        main = rows[-1]
        assert main is not None
        if fn.is_void:
            headers: list[tuple[bytes, bytes]] = []
            if profile:
                headers.append((b"content-profile", schema.encode()))
            status, headers = _apply_guc_response(main, 204, headers)
            return status, headers, b""
        if not fn.retset and result_table is None:
            page = int(main["page_total"])
            headers = [(b"content-type", _content_type(req.media)), (b"content-range", _content_range(0, page, None).encode())]
            if profile:
                headers.append((b"content-profile", schema.encode()))
            status, headers = _apply_guc_response(main, 200, headers)
            return status, headers, main["body"].encode()
        status, headers, out = self._read_response(
            req, rows, count, singular and fn.retset, offset, profile, schema, f"rpc/{name}", prefs
        )
        headers = [h for h in headers if h[0] != b"content-location"]
        return status, headers, out

    def _result_table(self, fn: Any) -> Table | None:
        if fn.ret_table is not None:
            return self.cache.tables.get(fn.ret_table) or Table(fn.ret_table[0], fn.ret_table[1], {})
        if fn.out_columns:
            cols = {n: Column(n, t, True, None) for n, t in fn.out_columns}
            return Table(fn.schema, fn.name, cols)
        return None


def body_sql(media: MediaType, row: str, many: bool = True) -> str:
    """The response body as text (``SqlFragment.handlerF``): an array, or the first row for a
    singular media type or a function returning one row; ``nulls=stripped`` drops null keys."""
    target = media.target or media
    if target.kind == "object" or not many:
        agg = f"json_agg({row})->0"
        agg = f"json_strip_nulls({agg})" if target.stripped else agg
        return f"coalesce(({agg})::text, 'null')"
    agg = f"json_agg({row})"
    agg = f"json_strip_nulls({agg})" if target.stripped else agg
    return f"coalesce({agg}, '[]')::text"


def _content_type(media: MediaType) -> bytes:
    """A JSON response's ``Content-Type``: ``*/*`` answers as ``application/json``."""
    return JSON_CT if media.kind == "any" else media.content_type()


def _where(b: Builder, table: Table, root: NodeParams) -> list[str]:
    return [b.tree_sql(table, table.qualified, f) for f in root.filters]


def _content_range(offset: int, page: int, total: int | None) -> str:
    total_s = "*" if total is None else str(total)
    if page == 0:
        return f"*/{total_s}"
    return f"{offset}-{offset + page - 1}/{total_s}"


def _content_location(name: str, raw_query: bytes) -> bytes:
    """``/table?`` + the query's parameters sorted (apikey left out)."""
    parts = sorted(p for p in raw_query.split(b"&") if p and not p.startswith(b"apikey="))
    return b"/" + name.encode() + (b"?" + b"&".join(parts) if parts else b"")


def _apply_guc_response(
    row: asyncpg.Record, status: int, headers: list[tuple[bytes, bytes]]
) -> tuple[int, list[tuple[bytes, bytes]]]:
    """``response.status`` / ``response.headers`` set by SQL (PostgREST's GUC responses)."""
    raw_status = row["response_status"]
    raw_headers = row["response_headers"]
    if raw_status:
        try:
            status = int(raw_status)
        except ValueError:
            raise ApiError(500, "PGRST112", "The status code must be a positive integer") from None
    if raw_headers:
        try:
            extra = orjson.loads(raw_headers)
            for obj in extra:
                for k, v in obj.items():
                    headers = [h for h in headers if h[0] != k.lower().encode()]
                    headers.append((k.lower().encode(), str(v).encode()))
        except (orjson.JSONDecodeError, AttributeError, TypeError):
            raise ApiError(500, "PGRST111", "Response headers must be an array of objects") from None
    return status, headers


def _unknown_columns(table: Table, columns: list[str]) -> None:
    for c in columns:
        if c not in table.columns:
            raise ApiError(400, "PGRST204", f"Could not find the '{c}' column of '{table.name}' in the schema cache")


def _insert_dml(req: Request, b: Any, table: Table, parsed: Any, payload: Any, prefs: dict[str, str],
                applied: list[str]) -> tuple[str, str | None]:
    """POST: the INSERT (an upsert with ``Prefer: resolution``) and its resolution."""
    if payload is None:
        payload = {}
    if isinstance(payload, dict):
        rows_in = [payload]
    elif isinstance(payload, list) and all(isinstance(r, dict) for r in payload):
        rows_in = payload
    else:
        raise ApiError(400, "PGRST102", "Empty or invalid json")
    if parsed.columns is not None:
        columns = parsed.columns
    else:
        columns = list(rows_in[0]) if rows_in else []
        keyset = set(columns)
        if any(set(r) != keyset for r in rows_in[1:]):
            raise ApiError(400, "PGRST102", "All object keys must match")
    _unknown_columns(table, columns)
    for c in parsed.on_conflict or []:
        if c not in table.columns:
            raise ApiError(400, "42703", f"column {table.name}.{c} does not exist")
    resolution = None
    res = prefs.get("resolution")
    if res in ("merge-duplicates", "ignore-duplicates"):
        resolution = res
        applied.append(f"resolution={res}")
    missing_default = prefs.get("missing") == "default"
    if missing_default:
        applied.append("missing=default")
    body_text = req.body.decode() if req.body.strip() else "{}"
    return insert_source(b, table, body_text, columns, missing_default, parsed.on_conflict, resolution), resolution


def _put_dml(b: Any, table: Table, root: NodeParams, payload: Any) -> str:
    """PUT: a single-row upsert addressed by the whole primary key."""
    if isinstance(payload, list) and len(payload) == 1:
        payload = payload[0]
    if not isinstance(payload, dict):
        raise ApiError(400, "PGRST102", "Empty or invalid json")
    pk_filters = {
        f.ref.name: f.value for f in root.filters
        if isinstance(f, Filter) and f.op == "eq" and not f.negated and not f.ref.json_path
    }
    if not table.pk or len(root.filters) != len(table.pk) or set(pk_filters) != set(table.pk):
        raise ApiError(400, "PGRST105", "Filters must include all and only primary key columns with 'eq' operators")
    if any(str(payload.get(c)) != str(pk_filters[c]) for c in table.pk):
        raise ApiError(400, "PGRST115", "Payload values do not match URL in primary key column(s)")
    columns = list(payload)
    _unknown_columns(table, columns)
    return insert_source(b, table, orjson.dumps(payload).decode(), columns, False, list(table.pk), "merge-duplicates")


def _patch_dml(req: Request, b: Any, table: Table, parsed: Any, root: NodeParams, payload: Any,
               prefs: dict[str, str], applied: list[str]) -> str:
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ApiError(400, "PGRST102", "Empty or invalid json")
    columns = parsed.columns if parsed.columns is not None else list(payload)
    _unknown_columns(table, columns)
    if prefs.get("missing") == "default":
        applied.append("missing=default")
    return update_source(b, table, req.body.decode() or "{}", columns, _where(b, table, root))


def _mutation_status(method: str, rep: bool, resolution: str | None, main: Any, counted: bool) -> tuple[int, str]:
    """The status and Content-Range of a write, as PostgREST answers them."""
    page = int(main["page_total"])
    total_n = page if counted else None
    whole = f"*/{total_n}" if total_n is not None else "*/*"
    if method == "POST":
        return (200 if resolution is not None and int(main["inserted"]) == 0 else 201), whole
    if method == "PATCH":
        return (200 if rep else 204), _content_range(0, page, total_n)
    return (200 if rep else 204), whole
