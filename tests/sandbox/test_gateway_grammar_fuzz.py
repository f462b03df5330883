"""Property-based fuzz of the embedding / spread / aggregate / JSON-path grammar.

Over HTTP: never a 5xx, every error in PostgREST's shape. In process, on the
gateway's own planner: whatever the request, the SQL it builds contains the
request's text only inside quoted identifiers (names checked against the schema
cache, or aliases) and bound parameters; everything else is the builder's own
vocabulary.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sandbox.rest.app import Config, Gateway, Request
from sandbox.rest.errors import ApiError
from sandbox.rest.plan import SQL_TYPES
from sandbox.rest.schema import SchemaCache
from sandbox.tokens import mint_jwt

from .conftest import Crm

pytestmark = pytest.mark.sandbox

TABLES = ["clients", "projects", "tasks", "users", "factories", "processes", "json_table", "agents", "orders",
          "family_tree", "books", "projects_view", "موارد", "process_supervisor", "departments", "project_invoices"]
RELATIONS = ["clients", "projects", "tasks", "users", "users_tasks", "processes", "process_costs", "supervisors",
             "process_categories", "departments", "agents", "addresses", "family_tree", "parent", "billing",
             "client", "project", "books", "projects_view", "nope", "clients_view", "project_invoices"]
COLUMNS = ["id", "name", "client_id", "project_id", "data", "settings", "numbers", "count", "nope", "هویت"]
# the fixture tables' columns (names outside them keep the 42703 path busy)
COLUMNS_OF: dict[str, list[str]] = {
    "clients": ["id", "name"], "projects": ["id", "name", "client_id"], "tasks": ["id", "name", "project_id"],
    "users": ["id", "name"], "users_tasks": ["user_id", "task_id"],
    "project_invoices": ["id", "invoice_total", "project_id"], "factories": ["id", "name"],
    "processes": ["id", "name", "factory_id", "category_id"], "process_categories": ["id", "name"],
    "process_costs": ["process_id", "cost"], "supervisors": ["id", "name"],
    "process_supervisor": ["process_id", "supervisor_id"], "json_table": ["id", "data", "settings", "numbers"],
    "agents": ["id", "name", "department_id"], "departments": ["id", "name", "head_id"],
    "orders": ["id", "name", "billing_address_id", "shipping_address_id"], "addresses": ["id", "address"],
    "family_tree": ["id", "name", "parent"], "books": ["id", "book_title", "client_id"],
    "projects_view": ["id", "name", "client_id"], "clients_view": ["client_key", "name"], "موارد": ["هویت", "نام"],
}
# what each fixture table can embed: name (with hint) -> target table
EMBEDS: dict[str, dict[str, str]] = {
    "clients": {"projects": "projects", "books": "books", "projects!client": "projects"},
    "projects": {"clients": "clients", "client": "clients", "tasks": "tasks", "project_invoices": "project_invoices",
                 "clients_view": "clients_view", "projects_view": "projects_view"},
    "tasks": {"projects": "projects", "project": "projects", "projects_view!project": "projects_view",
              "users": "users", "users_tasks": "users_tasks"},
    "users": {"tasks": "tasks", "users_tasks": "users_tasks"},
    "users_tasks": {"users": "users", "tasks": "tasks"},
    "factories": {"processes": "processes"},
    "processes": {"factories": "factories", "process_categories": "process_categories",
                  "process_costs": "process_costs", "supervisors": "supervisors",
                  "process_supervisor": "process_supervisor"},
    "process_supervisor": {"processes": "processes", "supervisors": "supervisors"},
    "agents": {"departments!agents_department_id_fkey": "departments", "departments": "departments"},
    "departments": {"agents!agents_department_id_fkey": "agents", "agents!departments_head_id_fkey": "agents"},
    "orders": {"billing": "addresses", "shipping": "addresses", "addresses!billing": "addresses",
               "shipping_address_id": "addresses"},
    "addresses": {"orders!billing": "orders", "orders!shipping": "orders"},
    "family_tree": {"parent": "family_tree", "family_tree!parent": "family_tree"},
    "books": {"clients": "clients"},
    "projects_view": {"clients": "clients", "tasks": "tasks"},
    "project_invoices": {"projects": "projects"},
}
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
# any text can be a name when quoted (the parser unescapes \" and \\): hostile aliases and JSON keys
QUOTED = TEXT.map(lambda t: '"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"')
KEYS = st.one_of(st.sampled_from(["foo", "bar", "id", "0", "-1", "list", "!@#$%^&*_d", "a b", "n"]), QUOTED)
MOSTLY_NOTHING = st.sampled_from(["", "", "", ""])
GOOD_CASTS = ["::text", "::int", "::json", "::double precision", "::integer", "::TEXT"]
CASTS = st.one_of(MOSTLY_NOTHING, st.sampled_from([*GOOD_CASTS, "::nope", "::text where 1"]))
CLEAN_CASTS = st.one_of(MOSTLY_NOTHING, st.sampled_from(["::text", "::TEXT"]))
AGGS = st.one_of(MOSTLY_NOTHING, st.sampled_from([".sum()", ".avg()", ".count()", ".max()", ".min()"]))
ALIASES = st.one_of(MOSTLY_NOTHING, st.sampled_from(["a:", "x y:", "ид:"]), QUOTED.map(lambda q: q + ":"))


def column_of(table: str, clean: bool = False) -> st.SearchStrategy[str]:
    """The table's own columns (``clean``), or mostly."""
    own = st.sampled_from(COLUMNS_OF.get(table) or COLUMNS)
    return own if clean else st.one_of(own, own, own, own, st.sampled_from(COLUMNS))


@st.composite
def json_path(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.tuples(st.sampled_from(["->", "->>"]), KEYS), max_size=3))
    return "".join(op + key for op, key in parts)


@st.composite
def field(draw: st.DrawFn, table: str = "", clean: bool = False) -> str:
    roll = draw(st.integers(0, 9))
    if roll == 0:
        return "*"
    alias = draw(ALIASES)
    casts = CLEAN_CASTS if clean else CASTS
    if roll == 1:
        return alias + "count()" + draw(casts)
    path = draw(json_path()) if roll < 4 else ""
    return alias + draw(column_of(table, clean)) + path + draw(casts) + draw(AGGS)


Nodes = list[tuple[tuple[str, ...], str]]


@st.composite
def select_tree(draw: st.DrawFn, table: str, depth: int = 0, clean: bool = False) -> tuple[str, Nodes]:
    """A select for ``table`` (mostly valid embeds, sometimes not) and the (embed path, table) pairs it names."""
    items: list[str] = []
    nodes: Nodes = []
    for _ in range(draw(st.integers(1, 4))):
        choices = EMBEDS.get(table, {})
        if depth >= 2 or draw(st.integers(0, 2)) or (clean and not choices):
            items.append(draw(field(table, clean)))
            continue
        if choices and (clean or draw(st.integers(0, 5))):
            name = draw(st.sampled_from(sorted(choices)))
            target = choices[name]
        else:
            name, target = draw(st.sampled_from(RELATIONS)), ""
        spread = draw(st.integers(0, 3)) == 0
        alias = "" if spread else draw(ALIASES)
        join = draw(st.sampled_from(["", "", "!inner", "!left"]))
        inner, sub = draw(select_tree(target, depth + 1, clean)) if target else (draw(field()), [])
        items.append(("..." if spread else "") + alias + name + join + f"({inner})")
        if alias.startswith('"'):
            continue  # a quoted alias is not addressable as a path here
        key = alias[:-1] if alias else name.split("!")[0]
        nodes.append(((key,), target))
        nodes += [((key, *p), t) for p, t in sub]
    return ",".join(items), nodes


@st.composite
def query_params(draw: st.DrawFn, nodes: Nodes, clean: bool = False) -> list[tuple[str, str]]:
    """Filters, orders and logic trees on the request's nodes (``clean``), or mostly; hostile text where values go."""
    out = []
    for _ in range(draw(st.integers(0, 3))):
        if not clean and draw(st.integers(0, 5)) == 0:
            path, table = tuple(draw(st.lists(st.sampled_from([*RELATIONS[:8], "a"]), max_size=2))), ""
        else:
            path, table = draw(st.sampled_from(nodes))
        col = draw(column_of(table, clean)) + (draw(json_path()) if draw(st.integers(0, 3)) == 0 else "")
        op = draw(st.sampled_from(["eq", "neq", "gt", "like", "in", "is", "cs", "not.eq", "not.is", "eq(any)"]))
        plain = st.one_of(TEXT, st.sampled_from(["1", "' or 1=1 --", "null", "$1", "\\"]))
        if op.endswith("is"):
            value = draw(st.sampled_from(["null", "true", "false", "unknown", "not_null", "nope"]))
        elif op == "in":
            elements = st.one_of(plain.filter(lambda v: not set(v) & set(',()"')), QUOTED)
            value = "(" + ",".join(draw(st.lists(elements, max_size=3))) + ")"
        elif op in ("cs", "eq(any)"):
            value = "{" + ",".join(draw(st.lists(QUOTED, max_size=3))) + "}"
        else:
            value = draw(plain)
        out.append((".".join([*path, col]), f"{op}.{value}"))
    if draw(st.booleans()):
        path, table = draw(st.sampled_from(nodes))
        cols = COLUMNS_OF.get(table) or COLUMNS
        terms = [f"{cols[-1]}.desc.nullslast", f"{cols[0]},{cols[-1]}.asc"]
        term = draw(st.sampled_from(terms if clean else [*terms, "clients(name).asc", "data->>id.nullsfirst", "x->y"]))
        out.append((".".join([*path, "order"]), term))
    if draw(st.booleans()):
        path, table = draw(st.sampled_from(nodes))
        col = draw(st.sampled_from(COLUMNS_OF.get(table) or COLUMNS))
        value = draw(st.sampled_from(["1", "x", '"a,b"']))
        out.append((".".join([*path, draw(st.sampled_from(["or", "not.and"]))]), f"({col}.eq.{value},{col}.is.null)"))
    return out


@st.composite
def request(draw: st.DrawFn) -> tuple[str, list[tuple[str, str]]]:
    table = draw(st.sampled_from(TABLES))
    clean = draw(st.integers(0, 9)) < 7  # most requests name only what exists; values stay hostile
    select, nodes = draw(select_tree(table, 0, clean))
    return table, [("select", select), *draw(query_params([((), table), *nodes], clean))]


def _check(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text)
    if resp.status_code >= 400:
        assert set(resp.json()) == {"code", "message", "details", "hint"}


@pytest.fixture(scope="module")
def http(grammar_base: str, sandbox_env: dict[str, str]) -> Iterator[httpx.Client]:
    token = mint_jwt(role="service_role", state_dir=Path(sandbox_env["SANDBOX_DIR"]))
    with httpx.Client(base_url=grammar_base, headers={"Authorization": f"Bearer {token}"}, timeout=20) as client:
        yield client


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=request(), prefer=st.sampled_from(["", "count=exact", "count=planned"]))
def test_grammar_over_http_never_500(http: httpx.Client, req: tuple[str, list[tuple[str, str]]], prefer: str) -> None:
    table, pairs = req
    resp = http.get(f"/{table}", params=[*pairs, ("limit", "3")], headers={"Prefer": prefer} if prefer else {})
    event(f"{resp.status_code} {resp.json()['code'] if resp.status_code >= 400 else ''}")
    _check(resp)


# the SQL the planner writes ------------------------------------------------------
@pytest.fixture(scope="module")
def planner(grammar_db: Crm) -> Gateway:
    async def load() -> SchemaCache:
        conn = await asyncpg.connect(grammar_db.database_url)
        try:
            return await SchemaCache.load(conn, ["grammar"], ["public"])
        finally:
            await conn.close()

    gateway = Gateway(Config(db_uri=grammar_db.database_url, schemas=["grammar"], db_aggregates_enabled=True))
    gateway.cache = asyncio.run(load())
    return gateway


# the builder's own words: keywords, functions, internal names
VOCABULARY = frozenset([
    "select", "from", "where", "and", "or", "not", "as", "left", "inner", "join", "lateral", "on", "true",
    "false", "null", "is", "distinct", "order", "by", "asc", "desc", "nulls", "first", "last", "limit",
    "offset", "all", "group", "with", "exists", "coalesce", "cast", "row_to_json", "json_agg", "jsonb", "json",
    "text", "bigint", "int", "pg_catalog", "count", "nullif", "current_setting", "any", "like", "ilike",
    "to_jsonb", "to_tsvector", "regconfig", "to_tsquery", "plainto_tsquery", "phraseto_tsquery",
    "websearch_to_tsquery", "unknown", "sum", "avg", "max", "min", "pgrst_source", "pgrst_source_count",
    "_postgrest_t", "total_result_set", "page_total", "body", "response_headers", "response_status",
    "json_strip_nulls", "explain", "format",
])
_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_LITERALS = {"'[]'", "'null'", "'response.headers'", "'response.status'", "''"}


def _words_outside_identifiers(sql: str) -> list[str]:
    rest = _QUOTED.sub(" ", sql)
    for literal in _LITERALS:
        rest = rest.replace(literal, " ")
    assert "'" not in rest, rest  # no other string literal: values are parameters
    rest = re.sub(r"\$\d+", " ", rest)
    return re.findall(r"[^\W\d][\w$]*", rest)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=request(), prefer=st.sampled_from(["", "count=exact", "count=estimated"]))
def test_no_request_text_in_sql(planner: Gateway, req: tuple[str, list[tuple[str, str]]], prefer: str) -> None:
    table, pairs = req
    target = planner.cache.tables.get(("grammar", table))
    assert target is not None
    req = Request("GET", f"/{table}", {"prefer": prefer} if prefer else {}, None, b"", urlencode(pairs).encode())
    try:
        statements, _plan = planner.plan_read(req, target, "grammar")
    except ApiError as err:
        event(f"refused {err.code}")
        return  # refused before any SQL exists
    event("planned")
    allowed = VOCABULARY | {w for t in planner.cache.type_names for w in t.split()} | {
        w for t in SQL_TYPES for w in t.split()}
    for sql, params in statements:
        for word in _words_outside_identifiers(sql):
            assert word.lower() in allowed, (word, sql)
        # every placeholder has its bound value (a quoted identifier such as the alias "$0" is not one)
        placeholders = re.findall(r"\$(\d+)", _QUOTED.sub(" ", sql))
        assert all(1 <= int(n) <= len(params) for n in placeholders), (sql, params)


# plans reused by shape ----------------------------------------------------------------
_PLAIN_VALUE = re.compile(r"^((?:not\.)?(?:eq|neq|gt|gte|lt|lte|in)\.)(.*)$", re.S)


def _outcome(plan: Any, *args: Any) -> tuple[Any, ...]:
    """What ``plan(*args)`` gives: the statements and response plan, or the error as answered."""
    try:
        statements, read_plan = plan(*args)
    except ApiError as err:
        return ("error", err.status, err.code, err.message, err.details, err.hint)
    return ("planned", statements, read_plan)


@st.composite
def revalued(draw: st.DrawFn, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The same query with other values where a filter binds one (``in`` lists of another length too)."""
    elements = st.one_of(TEXT.filter(lambda v: not set(v) & set(',()"')), QUOTED)
    out = []
    for key, value in pairs:
        m = _PLAIN_VALUE.match(value)
        if m is None:
            out.append((key, value))
        elif m.group(1).endswith("in."):
            lists = st.lists(elements, max_size=4).map(lambda vs: "(" + ",".join(vs) + ")")
            out.append((key, m.group(1) + draw(st.one_of(lists, st.sampled_from(["(", "", '("a)'])))))
        else:
            out.append((key, m.group(1) + draw(st.one_of(TEXT, st.sampled_from(["1", "' or 1=1 --", "$2", "(a,b)"])))))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(req=request(), prefer=st.sampled_from(["", "count=exact", "count=planned"]), data=st.data())
def test_plans_by_shape_are_the_full_plans(
    planner: Gateway, req: tuple[str, list[tuple[str, str]]], prefer: str, data: st.DataObject
) -> None:
    """A request planned from an earlier one of the same shape gets exactly the statements, parameters,
    response plan or error the full planner gives it."""
    table, pairs = req
    target = planner.cache.tables.get(("grammar", table))
    assert target is not None
    headers = {"prefer": prefer} if prefer else {}
    context = ("GET", "grammar", table, None, prefer or None, None)
    planner._shapes.clear()
    for query in (pairs, data.draw(revalued(pairs)), data.draw(revalued(pairs))):
        raw = urlencode(query).encode()
        full = _outcome(planner.plan_read, Request("GET", f"/{table}", headers, None, b"", raw), target, "grammar")
        shaped = _outcome(planner.plan_read_by_shape, Request("GET", f"/{table}", headers, None, b"", raw), target,
                          "grammar", context)
        assert shaped == full
    event("from a template" if any(v is not None for v in planner._shapes._templates.values()) else "no template")


def test_the_lookup_shapes_are_templated(planner: Gateway) -> None:
    """The app's reads (an ``eq`` per key, an ``in`` list) are planned once per shape, then bound."""
    target = planner.cache.tables[("grammar", "tasks")]
    context = ("GET", "grammar", "tasks", None, None, None)
    planner._shapes.clear()
    first = [("select", "id,name,projects(id,name)"), ("project_id", "eq.1"), ("id", "in.(1,2)"), ("order", "id.desc"),
             ("limit", "3")]
    planner.plan_read_by_shape(Request("GET", "/tasks", {}, first, b""), target, "grammar", context)
    (template,) = planner._shapes._templates.values()
    assert template is not None
    second = [("select", "id,name,projects(id,name)"), ("project_id", "eq.7"), ("id", 'in.(3,"4,5",6)'),
              ("order", "id.desc"), ("limit", "3")]
    statements, _plan = planner.plan_read_by_shape(Request("GET", "/tasks", {}, second, b""), target, "grammar", context)
    (sql, params), = statements
    assert sql == template.statements[0][0]
    assert "7" in params and ["3", "4,5", "6"] in params


def test_request_text_holding_a_marker_is_never_templated(planner: Gateway) -> None:
    """A value spelled like a probe marker (NUL inside) keeps its shape on the full planner."""
    target = planner.cache.tables[("grammar", "tasks")]
    context = ("GET", "grammar", "tasks", None, None, None)
    planner._shapes.clear()
    marker = "\x00pgrst-shape-0\x00"
    pairs = [("select", "id"), ("project_id", f"eq.{marker}"), ("name", f"like.{marker}")]
    planner.plan_read_by_shape(Request("GET", "/tasks", {}, pairs, b""), target, "grammar", context)
    assert list(planner._shapes._templates.values()) == [None]
    other = [("select", "id"), ("project_id", "eq.5"), ("name", f"like.{marker}")]
    statements, _plan = planner.plan_read_by_shape(Request("GET", "/tasks", {}, other, b""), target, "grammar", context)
    assert statements == planner.plan_read(Request("GET", "/tasks", {}, other, b""), target, "grammar")[0]
