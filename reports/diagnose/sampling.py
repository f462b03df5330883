"""Getting each statement's plan as PostgREST runs it, for sampled workload phones.

Two ways, said per statement in ``diagnosis.json`` (``via``):

``postgrest``
    the request itself, sent again with PostgREST's plan media type
    (``Accept: application/vnd.pgrst.plan+json; for="application/json"; options=analyze|buffers``,
    what supabase-py / supabase-js ``.explain()`` send) and a member's token, so the
    role, the JWT claims and RLS are the real ones.  Needs ``db-plan-enabled``
    (hosted Supabase: ``alter role authenticator set pgrst.db_plan_enabled to 'true'``).
``database_url``
    when plans are off (406 PGRST107): the statement PostgREST would run
    (:mod:`reports.diagnose.pgrst`), run and explained through ``DATABASE_URL`` in
    a read-only transaction that is rolled back, after PostgREST's own
    ``set_config`` of the role (``authenticated``) and the member's
    ``request.jwt.claims``.

Each lookup path is driven by the harness's own request builders
(:class:`harness.paths.Paths`): the answer of one call feeds the next, as in a run.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from harness.paths import Call, Paths, outcome
from harness.targets import Request
from reports.diagnose import pgrst
from reports.diagnose.plans import PlanError

PLAN_ACCEPT = 'application/vnd.pgrst.plan+json; for="application/json"; options=analyze|buffers'
PLAN_CONTENT_TYPE = "application/vnd.pgrst.plan+json"
LOOKUP_TARGETS = ("supabase_rest", "supabase_nested", "supabase_rpc")
VIA_POSTGREST = "postgrest"
VIA_DATABASE = "database_url"


class PlansDisabled(Exception):
    """The deployment answered 406 PGRST107 to the plan media type."""


class CallFailed(Exception):
    """One call of a path failed: the message is one line (status and PostgREST's message)."""


@dataclass
class Sample:
    """One call of one path for one phone: the plan, how it was obtained, and the SQL when written here."""

    name: str  # "<target> <call>", as Locust names the call
    target: str
    call: str
    via: str
    plan: Any
    sql: str | None = None


@dataclass
class Identity:
    """Who the lookups run as: a token for PostgREST, claims for the database."""

    token: str | None
    claims: dict[str, Any] = field(default_factory=dict)


def claims_of(token: str) -> dict[str, Any]:
    """A JWT's payload, unverified: the ``request.jwt.claims`` PostgREST would set for it."""
    import jwt

    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return payload if isinstance(payload, dict) else {}


class PostgrestPlanner:
    """Data and plans over HTTP, from the deployment's PostgREST."""

    via = VIA_POSTGREST

    def __init__(self, client: Any) -> None:
        self.client = client

    def _send(self, req: Request, accept: str | None = None) -> Any:
        import httpx

        headers = dict(req.headers)
        if accept is not None:
            headers = {k: v for k, v in headers.items() if k.lower() != "accept"}
            headers["Accept"] = accept
        try:
            return self.client.request(req.method, req.url, headers=headers, content=req.body)
        except httpx.HTTPError as exc:
            raise CallFailed(f"{req.what}: connection error ({type(exc).__name__})") from None

    def run(self, call: Call, identity: Identity) -> tuple[Any, Any, str | None]:
        resp = self._send(call.request)
        answer, failure = outcome(call, resp.status_code, resp.content)
        if failure is not None:
            raise CallFailed(f"{call.request.what}: {failure}")
        plan_resp = self._send(call.request, PLAN_ACCEPT)
        if plan_resp.status_code == 406 and _code(plan_resp.content) == "PGRST107":
            raise PlansDisabled()
        ctype = plan_resp.headers.get("content-type", "")
        if plan_resp.status_code != 200 or not ctype.startswith(PLAN_CONTENT_TYPE):
            raise CallFailed(f"{call.request.what}: the plan request answered HTTP {plan_resp.status_code} "
                             f"({ctype.split(';')[0] or 'no content type'}){_message(plan_resp.content)}")
        try:
            plan = json.loads(plan_resp.content)
        except ValueError:
            raise PlanError(f"{call.request.what}: the plan is not JSON") from None
        return answer, plan, None


class DatabasePlanner:
    """Data and plans through DATABASE_URL, with the statements PostgREST would run."""

    via = VIA_DATABASE

    def __init__(self, conn: Any, catalog: pgrst.Catalog, max_rows: int | None = pgrst.DEFAULT_MAX_ROWS,
                 role: str = "authenticated") -> None:
        self.conn = conn
        self.catalog = catalog
        self.max_rows = max_rows
        self.role = role

    def statement(self, req: Request) -> pgrst.Statement:
        return pgrst.statement_for(self.catalog, req.method, req.url, req.body, self.max_rows)

    def execute(self, statement: pgrst.Statement, identity: Identity, what: str) -> tuple[Any, Any]:
        """(the statement's first row, its EXPLAIN ANALYZE) in one transaction, rolled back."""
        import psycopg

        params = [_adapt(p) for p in statement.params]
        settings_sql, settings_params = pgrst.tx_settings(statement, self.role, identity.claims, self.catalog)
        try:
            with self.conn.transaction(force_rollback=True):
                if statement.read_only:
                    self.conn.execute("set transaction isolation level read committed, read only")
                self.conn.execute(_placeholders(settings_sql), settings_params)
                row = self.conn.execute(_placeholders(statement.sql), params).fetchone()
                plan = self.conn.execute(_placeholders(statement.explain()), params).fetchone()[0]
        except psycopg.errors.InsufficientPrivilege as exc:
            raise CallFailed(f"{what}: {_first_line(exc)} (the DATABASE_URL role needs `grant {self.role} to <it>` "
                             "to run the lookups as PostgREST does)") from None
        except psycopg.Error as exc:
            raise CallFailed(f"{what}: {_first_line(exc)}") from None
        return row, plan

    def run(self, call: Call, identity: Identity) -> tuple[Any, Any, str | None]:
        statement = self.statement(call.request)
        row, plan = self.execute(statement, identity, call.request.what)
        body = row[2] if row is not None else None  # PostgREST's main statement: (total, page_total, body, …)
        answer = body if not isinstance(body, str) else json.loads(body)
        if call.check is not None:
            problem = call.check(answer)
            if problem is not None:
                raise CallFailed(f"{call.request.what}: {problem}")
        return answer, plan, statement.sql


Planner = PostgrestPlanner | DatabasePlanner


def drive(paths: Paths, target: str, key: Any, identity: Identity, planner: Planner) -> tuple[list[Sample], bool]:
    """Each call of ``target``'s lookup for ``key`` with its plan (the answers feed the next call),
    and whether the contact was found: as the member, a phone outside their workspaces is not."""
    path = paths.lookup(target, key)
    samples: list[Sample] = []
    try:
        call = next(path)
        while True:
            answer, plan, sql = planner.run(call, identity)
            what = call.request.what
            samples.append(Sample(f"{target} {what}", target, what, planner.via, plan, sql))
            call = path.send(answer)  # as parsed: the RPC's null is its "not found"
    except StopIteration as done:
        return samples, bool(done.value)


# ------------------------------------------------------------------------------ the RPC's body


def function_body_statement(conn: Any, catalog: pgrst.Catalog, name: str, body: bytes | None) -> pgrst.Statement | None:
    """The SELECT inside a ``language sql`` function, its arguments bound from the RPC's JSON body.

    PostgREST's plan of an RPC shows the call, not what the function runs; this
    is the function's own statement, as the function runs it (its ``search_path``
    setting applies).  None when the function is not a one-statement SQL function.
    """
    fn = catalog.functions.get(name)
    if fn is None:
        return None
    row = conn.execute(
        "select p.prosrc, l.lanname from pg_proc p join pg_language l on l.oid = p.prolang "
        "join pg_namespace n on n.oid = p.pronamespace where n.nspname = %s and p.proname = %s",
        (catalog.schema, name),
    ).fetchone()
    if row is None or row[1] != "sql":
        return None
    src = _strip_sql_comments(str(row[0])).strip().rstrip(";").strip()
    if ";" in src or not src.lower().startswith(("select", "with")):
        return None
    args = json.loads(body or b"{}")
    types = dict(fn.params)
    if set(types) - set(args):
        return None
    values: list[Any] = []

    def bind(m: re.Match[str]) -> str:
        # one parameter per occurrence, numbered in the order they appear
        value = args[m.group(0)]
        values.append(None if value is None else str(value))
        return f"(${len(values)}::{types[m.group(0)]})"

    names = "|".join(re.escape(n) for n in sorted(types, key=len, reverse=True))
    text = re.sub(rf"(?<![\w$.\"])(?:{names})(?![\w$])", bind, src) if names else src
    return pgrst.Statement(text, values, fn.volatility in ("i", "s"), "POST", f"/rpc/{name}", fn.settings)


def _strip_sql_comments(src: str) -> str:
    """Line comments out (a ``--`` inside a string literal would be cut too: not in the lookup's function)."""
    return re.sub(r"--[^\n]*", "", src)


# ------------------------------------------------------------------------------ helpers


def _placeholders(sql: str) -> str:
    """``$n`` → psycopg's ``%s`` (the parameters are numbered in order of appearance)."""
    return re.sub(r"\$\d+", "%s", sql.replace("%", "%%"))


def _adapt(value: Any) -> Any:
    if isinstance(value, pgrst.JsonParam):
        from psycopg.types.json import Json

        return Json(json.loads(value.text))
    return value


def _code(content: bytes) -> str | None:
    try:
        doc = json.loads(content)
    except ValueError:
        return None
    return doc.get("code") if isinstance(doc, dict) else None


def _message(content: bytes) -> str:
    try:
        doc = json.loads(content)
    except ValueError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        return f": {doc['message'][:120]}"
    return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

