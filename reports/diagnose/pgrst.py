"""The statements PostgREST v14 runs for the lookup paths' requests, for EXPLAIN through ``DATABASE_URL``.

When a deployment does not serve the plan media type (406 PGRST107), ``diagnose``
explains the statement itself. It must be the statement PostgREST would run, so
it is written here the way PostgREST v14.5 writes it: ``Query/QueryBuilder.hs``
(``readPlanToQuery``, ``callPlanToQuery``), ``Query/SqlFragment.hs``
(``pgFmtFilter``, ``limitOffsetF``, ``fromJsonBodyF``), ``Query/Statements.hs``
(``mainRead``, ``mainCall``) and ``Plan.hs`` (aliases ``<table>_<depth>`` and
``<parent>_<name>_<depth>``, ``db-max-rows`` applied to every level), with the
transaction settings of ``Query/PreQuery.hs::txVarQuery``.

Values are ``$n`` parameters of PostgreSQL type ``unknown``, as hasql's
``HE.unknown`` sends them (psycopg sends a Python ``str`` the same way), except
the RPC body, a ``json`` parameter.  The grammar covered is what the harness's
requests use: a select list of columns and embedded resources (aliased or not,
to-one and to-many, nested), ``eq neq gt gte lt lte like ilike is in`` filters
(``not.`` too), ``order`` with direction and nulls, ``limit``/``offset`` at any
level, and ``POST /rpc/<fn>`` with a JSON object.  Anything else raises
:class:`Unsupported` rather than guessing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

SCHEMA = "public"
DEFAULT_MAX_ROWS = 1000  # hosted Supabase's default "Max rows" (PGRST_DB_MAX_ROWS)

_OPERATORS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "like": "like", "ilike": "ilike"}
_IS = {"null": "NULL", "not_null": "NOT NULL", "true": "TRUE", "false": "FALSE", "unknown": "UNKNOWN"}
_RESERVED = {"select", "order", "limit", "offset", "columns", "on_conflict", "and", "or"}
_MARK = re.compile(r"\x00(\d+)\x00")


class Unsupported(ValueError):
    """A request outside the grammar this module writes; the message names what."""


def ident(name: str) -> str:
    """``pgFmtIdent``: always double-quoted."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, name: str) -> str:
    return f"{ident(schema)}.{ident(name)}"


# ------------------------------------------------------------------------------ schema facts


@dataclass(frozen=True)
class ForeignKey:
    """``table(columns) -> foreign(fcolumns)`` in one schema, as ``pg_constraint`` holds it."""

    name: str
    table: str
    columns: tuple[str, ...]
    foreign: str
    fcolumns: tuple[str, ...]


@dataclass(frozen=True)
class Function:
    name: str
    params: tuple[tuple[str, str], ...]  # (name, type) in declaration order, IN arguments only
    returns_scalar: bool
    returns_set: bool
    volatility: str  # "i", "s" or "v"
    settings: tuple[tuple[str, str], ...] = ()  # proconfig: applied per transaction by PostgREST


@dataclass(frozen=True)
class Relationship:
    table: str
    foreign: str
    pairs: tuple[tuple[str, str], ...]  # (column of table, column of foreign)
    constraint: str
    to_one: bool


@dataclass
class Catalog:
    """What PostgREST's schema cache would hold for the statements written here."""

    foreign_keys: list[ForeignKey] = field(default_factory=list)
    functions: dict[str, Function] = field(default_factory=dict)
    role_settings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    schema: str = SCHEMA

    def relationships(self, origin: str) -> list[Relationship]:
        out = []
        for fk in self.foreign_keys:
            if fk.table == origin:  # many-to-one
                out.append(Relationship(origin, fk.foreign, tuple(zip(fk.columns, fk.fcolumns, strict=True)), fk.name, True))
            if fk.foreign == origin:  # one-to-many (the inverse)
                out.append(Relationship(origin, fk.table, tuple(zip(fk.fcolumns, fk.columns, strict=True)), fk.name, False))
        return out

    def find(self, origin: str, target: str, hint: str | None) -> Relationship:
        """``Plan.findRel``: by the target's name, the constraint's name, or a to-one's column."""
        found = [
            r for r in self.relationships(origin)
            if r.foreign == target or r.constraint == target
            or (r.to_one and len(r.pairs) == 1 and r.pairs[0][0] == target)
        ]
        if hint is not None:
            found = [r for r in found if hint in (r.constraint, r.foreign) or any(hint in p for p in r.pairs)]
        if len(found) != 1:
            why = "no" if not found else "more than one"
            raise Unsupported(f"{why} relationship between '{origin}' and '{target}'")
        return found[0]


# ------------------------------------------------------------------------------ the request


@dataclass
class Node:
    """One level of the read (``ReadPlan``): a table, its columns, filters, order, range, embeds."""

    table: str
    depth: int
    columns: list[str] = field(default_factory=list)  # "*" or column names
    embeds: list[tuple[str, str | None, str | None, Node]] = field(default_factory=list)  # (name, alias, hint, node)
    filters: list[tuple[str, str, bool, Any]] = field(default_factory=list)  # (column, op, negated, value)
    order: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (column, ASC/DESC, NULLS …)
    limit: int | None = None
    offset: int | None = None
    alias: str | None = None  # fromAlias: "<table>_<depth>" below the root
    agg_alias: str | None = None  # "<parent>_<name>_<depth>"
    rel: Relationship | None = None
    parent_ref: str | None = None  # how the parent is named in SQL


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and double quotes."""
    parts: list[str] = []
    cur: list[str] = []
    depth, quoted = 0, False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        if ch == "," and depth == 0 and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth != 0 or quoted:
        raise Unsupported(f"unbalanced select list: {text!r}")
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


_ITEM = re.compile(
    r"^(?:(?P<alias>[A-Za-z_][\w]*):)?"  # alias:
    r"(?P<name>\*|[A-Za-z_][\w]*)"  # column, relation or *
    r"(?:!(?P<hint>[A-Za-z_][\w]*))?"  # !hint
    r"(?:\((?P<sub>.*)\))?$",  # (embedded select)
    re.S,
)


def _parse_select(text: str, node: Node) -> None:
    for item in _split_top(text):
        m = _ITEM.match(item)
        if m is None:
            raise Unsupported(f"select item {item!r} (casts, JSON paths, spreads and aggregates are not written here)")
        if m.group("sub") is None:
            if m.group("alias") or m.group("hint"):
                raise Unsupported(f"select item {item!r}: aliased columns are not written here")
            node.columns.append(m.group("name"))
        else:
            child = Node(table=m.group("name"), depth=node.depth + 1)
            _parse_select(m.group("sub"), child)
            node.embeds.append((m.group("name"), m.group("alias"), m.group("hint"), child))


def _in_values(raw: str) -> list[str]:
    if not (raw.startswith("(") and raw.endswith(")")):
        raise Unsupported(f"in filter {raw!r}")
    values: list[str] = []
    cur: list[str] = []
    quoted, escaped, was_quoted = False, False, False
    for ch in raw[1:-1]:
        if escaped:
            cur.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
            was_quoted = True
        elif ch == "," and not quoted:
            values.append("".join(cur) if was_quoted else "".join(cur).strip())
            cur, was_quoted = [], False
        else:
            cur.append(ch)
    values.append("".join(cur) if was_quoted else "".join(cur).strip())
    return values


def _parse_filter(value: str) -> tuple[str, bool, Any]:
    negated = value.startswith("not.")
    if negated:
        value = value[4:]
    op, _, rest = value.partition(".")
    if op in _OPERATORS:
        return op, negated, rest
    if op == "in":
        return op, negated, _in_values(rest)
    if op == "is" and rest.lower() in _IS:
        return op, negated, rest.lower()
    raise Unsupported(f"filter operator {op!r}")


def _parse_order(value: str) -> list[tuple[str, str | None, str | None]]:
    terms = []
    for term in value.split(","):
        parts = term.strip().split(".")
        col, direction, nulls = parts[0], None, None
        for p in parts[1:]:
            if p in ("asc", "desc"):
                direction = p.upper()
            elif p in ("nullsfirst", "nullslast"):
                nulls = "NULLS FIRST" if p == "nullsfirst" else "NULLS LAST"
            else:
                raise Unsupported(f"order term {term!r}")
        terms.append((col, direction, nulls))
    return terms


def _node_at(root: Node, path: list[str]) -> Node:
    node = root
    for name in path:
        for emb_name, alias, _hint, child in node.embeds:
            if (alias or emb_name) == name:
                node = child
                break
        else:
            raise Unsupported(f"'{name}' is not an embedded resource in this request")
    return node


def parse_read(table: str, query: str) -> Node:
    """The read tree of ``GET /<table>?<query>``."""
    root = Node(table=table, depth=0)
    pairs = parse_qsl(query, keep_blank_values=True)
    selects = [v for k, v in pairs if k == "select"]
    if selects:
        _parse_select(selects[-1], root)
    else:
        root.columns.append("*")
    for key, value in pairs:
        if key == "select":
            continue
        *path, last = key.split(".")
        node = _node_at(root, path)
        if last == "order":
            node.order = _parse_order(value)
        elif last in ("limit", "offset"):
            try:
                setattr(node, last, int(value))
            except ValueError:
                raise Unsupported(f"{key}={value!r}") from None
        elif last in _RESERVED:
            raise Unsupported(f"query parameter {key!r}")
        else:
            node.filters.append((last, *_parse_filter(value)))
    return root


# ------------------------------------------------------------------------------ writing SQL


@dataclass
class Statement:
    """One main statement as PostgREST sends it, plus the transaction it runs in."""

    sql: str  # with $n placeholders
    params: list[Any]  # str (unknown), or JsonParam for the RPC body
    read_only: bool
    method: str
    path: str
    function_settings: tuple[tuple[str, str], ...] = ()

    def explain(self, options: str = "FORMAT JSON, ANALYZE, BUFFERS") -> str:
        """``SqlFragment.explainF``: the format first, then the options in PostgREST's order."""
        return f"EXPLAIN ({options}) {self.sql}"


@dataclass(frozen=True)
class JsonParam:
    """The RPC body: a ``json`` parameter (``HE.jsonLazyBytes``)."""

    text: str


class _Writer:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def param(self, value: Any) -> str:
        self.values.append(value)
        return f"\x00{len(self.values) - 1}\x00"

    def finish(self, sql: str) -> tuple[str, list[Any]]:
        """Number the parameters in the order they appear, as hasql's snippets do."""
        ordered: list[Any] = []

        def number(m: re.Match[str]) -> str:
            ordered.append(self.values[int(m.group(1))])
            return f"${len(ordered)}"

        return _MARK.sub(number, sql), ordered


def _bind(catalog: Catalog, node: Node, parent: Node | None, max_rows: int | None) -> None:
    """``Plan.addRels`` aliases and join conditions, ``treeRestrictRange`` on every level."""
    if max_rows is not None:
        upper = max_rows if node.limit is None else min(node.limit, max_rows)
        node.limit = node.limit if node.limit == 0 else upper
        node.offset = node.offset or 0
    for name, alias, hint, child in node.embeds:
        child.rel = catalog.find(node.table, name, hint)
        child.table = child.rel.foreign
        child.alias = f"{child.table}_{child.depth}"
        child.agg_alias = f"{node.table}_{alias or name}_{child.depth}"
        child.parent_ref = ident(node.alias) if node.alias else qualified(catalog.schema, node.table)
        _bind(catalog, child, node, max_rows)


def _ref(catalog: Catalog, node: Node) -> str:
    return ident(node.alias) if node.alias else qualified(catalog.schema, node.table)


def _filter(w: _Writer, ref: str, col: str, op: str, negated: bool, value: Any) -> str:
    """``pgFmtFilter``: ``<not> <field> <op> <unknown literal>`` (the leading space is PostgREST's)."""
    field_sql = f"{ref}.{ident(col)}"
    notop = "NOT" if negated else ""
    if op == "is":
        return f"{notop} {field_sql} IS {_IS[value]}"
    if op == "in":
        if value == [""]:
            return f"{notop} {field_sql} = ANY('{{}}') "
        literal = "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in value) + "}"
        return f"{notop} {field_sql} = ANY ({w.param(literal)}) "
    if op in ("like", "ilike"):
        value = value.replace("*", "%")
    return f"{notop} {field_sql} {_OPERATORS[op]} {w.param(value)}"


def _limit_offset(w: _Writer, node: Node) -> str:
    if node.limit is None and not node.offset:
        return ""
    limit = "ALL" if node.limit is None else w.param(str(node.limit))
    return f"LIMIT {limit} OFFSET {w.param(str(node.offset or 0))}"


def _read_query(w: _Writer, catalog: Catalog, node: Node, from_sql: str | None = None) -> str:
    """``readPlanToQuery``, spacing included."""
    ref = _ref(catalog, node)
    selects = [f"{ref}.*" if c == "*" else f"{ref}.{ident(c)}" for c in node.columns]
    joins = []
    for name, alias, _hint, child in node.embeds:
        agg = ident(child.agg_alias or "")
        sub = _read_query(w, catalog, child)
        if child.rel is not None and child.rel.to_one:
            selects.append(f"row_to_json({agg}.*)::jsonb AS {ident(alias or name)}")
            joins.append(f" LEFT JOIN LATERAL ( {sub} ) AS {agg} ON TRUE")
        else:
            selects.append(f"COALESCE( {agg}.{agg}, '[]') AS {ident(alias or name)}")
            joins.append(f" LEFT JOIN LATERAL ( SELECT json_agg({agg})::jsonb AS {agg} FROM ({sub} ) AS {agg} ) AS {agg} ON TRUE")
    if from_sql is None:
        from_sql = f" FROM {qualified(catalog.schema, node.table)}" + (f" AS {ident(node.alias)}" if node.alias else "")
    conds = [_filter(w, ref, *f) for f in node.filters]
    if node.rel is not None:
        conds += [f"{ref}.{ident(fcol)} = {node.parent_ref}.{ident(col)}" for col, fcol in node.rel.pairs]
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    order = ""
    if node.order:
        # pgFmtOrderTerm: "<field> " <> unwords [direction, nulls], empty words included
        terms = [f"{ref}.{ident(c)} " + " ".join((d or "", n or "")) for c, d, n in node.order]
        order = "ORDER BY " + ", ".join(terms)
    return f"SELECT {', '.join(selects)}{from_sql}{' '.join(joins)}{where}  {order} {_limit_offset(w, node)}"


_TAIL = (
    "nullif(current_setting('response.headers', true), '') AS response_headers, "
    "nullif(current_setting('response.status', true), '') AS response_status, "
    "'' AS response_inserted"
)


def read_statement(catalog: Catalog, table: str, query: str, max_rows: int | None = DEFAULT_MAX_ROWS) -> Statement:
    """``Statements.mainRead`` for ``GET /<table>?<query>`` with ``Accept: application/json``."""
    root = parse_read(table, query)
    _bind(catalog, root, None, max_rows)
    w = _Writer()
    source = _read_query(w, catalog, root)
    sql = (
        f"WITH pgrst_source AS ( {source} )  SELECT null::bigint AS total_result_set, "
        "pg_catalog.count(_postgrest_t) AS page_total, coalesce(json_agg(_postgrest_t), '[]') AS body, "
        f"{_TAIL} FROM ( SELECT * FROM pgrst_source ) _postgrest_t"
    )
    text, params = w.finish(sql)
    return Statement(text, params, True, "GET", f"/{table}")


def rpc_statement(catalog: Catalog, name: str, body: bytes | None, max_rows: int | None = DEFAULT_MAX_ROWS) -> Statement:
    """``Statements.mainCall`` for ``POST /rpc/<name>`` with a JSON object (named arguments)."""
    fn = catalog.functions.get(name)
    if fn is None:
        raise Unsupported(f"function {catalog.schema}.{name} is not in the database")
    if not fn.returns_scalar or fn.returns_set:
        raise Unsupported(f"function {name}: only functions returning one scalar are written here")
    try:
        args = json.loads(body or b"{}")
    except ValueError:
        raise Unsupported(f"rpc/{name}: the body is not JSON") from None
    if not isinstance(args, dict):
        raise Unsupported(f"rpc/{name}: the body is not a JSON object")
    params = [(p, t) for p, t in fn.params if p in args]
    w = _Writer()
    payload = w.param(JsonParam((body or b"{}").decode()))
    fq = qualified(catalog.schema, name)
    if params:
        names = ", ".join(ident(p) for p, _ in params)
        typed = ", ".join(f"{ident(p)} {t}" for p, t in params)
        assigns = ", ".join(f"{ident(p)} := pgrst_body.{ident(p)}" for p, _ in params)
        call = (
            f"FROM (SELECT {payload} AS json_data) pgrst_payload, "
            f"LATERAL (SELECT {names} FROM json_to_record(pgrst_payload.json_data) AS _({typed}) LIMIT 1) pgrst_body , "
            f"LATERAL (SELECT {fq}({assigns}) pgrst_scalar) pgrst_call"
        )
    else:
        call = f"FROM (SELECT {fq}() pgrst_scalar) pgrst_call"
    root = Node(table=name, depth=0, columns=["*"], alias=name)
    if max_rows is not None:
        root.limit, root.offset = max_rows, 0
    select = _read_query(w, catalog, root, from_sql=f" FROM {ident('pgrst_source')} AS {ident(name)}")
    sql = (
        f"WITH pgrst_source AS (SELECT pgrst_call.pgrst_scalar {call}) SELECT null::bigint AS total_result_set, "
        "1 AS page_total, coalesce(json_agg(_postgrest_t.pgrst_scalar)->0, 'null') AS body, "
        f"{_TAIL} FROM ({select}) _postgrest_t"
    )
    text, values = w.finish(sql)
    return Statement(text, values, fn.volatility in ("i", "s"), "POST", f"/rpc/{name}", fn.settings)


def statement_for(catalog: Catalog, method: str, url: str, body: bytes | None,
                  max_rows: int | None = DEFAULT_MAX_ROWS) -> Statement:
    """The main statement of one harness request (``GET /rest/v1/<table>?…`` or ``POST /rest/v1/rpc/<fn>``)."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    marker = "/rest/v1/"
    if marker not in path:
        raise Unsupported(f"{path}: not a /rest/v1/ path")
    resource = path.split(marker, 1)[1].strip("/")
    if method == "GET" and "/" not in resource:
        return read_statement(catalog, resource, parts.query, max_rows)
    if method == "POST" and resource.startswith("rpc/") and resource.count("/") == 1:
        return rpc_statement(catalog, resource[4:], body, max_rows)
    raise Unsupported(f"{method} {path}")


def tx_settings(statement: Statement, role: str, claims: Mapping[str, Any], catalog: Catalog,
                extra_search_path: tuple[str, ...] = ("public",)) -> tuple[str, list[str]]:
    """``PreQuery.txVarQuery``: the ``select set_config(…)`` PostgREST runs first in the transaction."""
    w = _Writer()
    schemas = ", ".join(ident(s) for s in (catalog.schema, *extra_search_path))
    items = [f"set_config('search_path', {w.param(schemas)}, true)"]
    items += [f"set_config({w.param(k)}, {w.param(v)}, true)" for k, v in catalog.role_settings.get(role, [])]
    with_role = {**claims, "role": role}
    items += [
        f"set_config('role', {w.param(role)}, true)",
        f"set_config('request.jwt.claims', {w.param(json.dumps(with_role, separators=(',', ':')))}, true)",
        f"set_config('request.method', {w.param(statement.method)}, true)",
        f"set_config('request.path', {w.param(statement.path)}, true)",
        f"set_config('request.headers', {w.param('{}')}, true)",
        f"set_config('request.cookies', {w.param('{}')}, true)",
    ]
    items += [f"set_config({w.param(k)}, {w.param(v)}, true)" for k, v in statement.function_settings]
    return w.finish("select " + ", ".join(items))
