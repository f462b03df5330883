"""SQL for one request, shaped like PostgREST's QueryBuilder output.

Every value is a bound parameter (``$n``, sent as text and cast server-side to
the column's type, so a bad literal is PostgreSQL's 22P02 as with PostgREST's
``unknown`` parameters); every identifier comes from the schema cache and is
quoted; JSON is built by PostgreSQL (``json_agg``/``row_to_json``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .parser import (
    FTS,
    IS_VALUES,
    OPERATORS,
    FieldRef,
    Filter,
    LogicTree,
    NodeParams,
    SelectField,
    SelectItem,
    Star,
)
from .plan import Writer, plan_tree
from .schema import Column, Function, SchemaCache, Table, quote_ident, quote_literal


def column_missing(display: str, name: str, columns: list[str] | None = None) -> ApiError:
    """PostgreSQL's own error for an unknown column, named as the query references the table, with its
    hint for a near miss (``parse_relation.c``: Levenshtein distance at most 3 and at most half the
    name's length; one closest column, or two tied, else none)."""
    from .fuzzy import levenshtein

    best, first, second = 4, None, None
    for column in columns or []:
        distance = levenshtein(column, name)
        if distance > len(name.encode()) // 2:
            continue
        if distance < best:
            best, first, second = distance, column, None
        elif distance == best and first is not None:
            if second is None:
                second = column
            else:
                first = second = None
    hint = None
    if first is not None and second is None:
        hint = f'Perhaps you meant to reference the column "{display}.{first}".'
    elif first is not None:
        hint = f'Perhaps you meant to reference the column "{display}.{first}" or the column "{display}.{second}".'
    return ApiError(400, "42703", f"column {display}.{name} does not exist", None, hint)


def table_missing(cache: SchemaCache, schema: str, name: str) -> ApiError:
    """PGRST205, with PostgREST's hint: the closest table name (fuzzy, score >= 0.75; schemas
    with fewer than 500 tables)."""
    from .fuzzy import FuzzySet

    names = [t for s, t in cache.tables if s == schema]
    best = FuzzySet(names).get_one(name, 0.75) if len(names) < 500 else None
    return ApiError(
        404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache", None,
        f"Perhaps you meant the table '{schema}.{best}'" if best else None,
    )


@dataclass
class Builder:
    """Binds values as parameters and writes column expressions and filters for one statement."""

    cache: SchemaCache
    schema: str
    params: list[Any] = field(default_factory=list)
    aggregates: bool = False
    max_rows: int | None = None
    count_statement: tuple[str, list[Any]] | None = None

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    # expressions -----------------------------------------------------------
    def field_expr(self, table: Table, ref_sql: str, display: str, ref: FieldRef) -> tuple[str, str]:
        """SQL for a column, or a JSON path into it, and its type.

        JSON paths apply to json/jsonb columns directly, to any other column through
        ``to_jsonb()`` (``Plan.resolveTypeOrUnknown``); keys and indexes are bound.
        ``count`` that is not a column is PostgreSQL's ``table.count`` = ``count(table)``.
        """
        col = table.columns.get(ref.name)
        if col is None:
            if ref.name == "count" and not ref.json_path:
                return f"{ref_sql}.{quote_ident('count')}", "bigint"
            raise column_missing(display, ref.name, list(table.columns))
        expr = f"{ref_sql}.{quote_ident(col.name)}"
        typ = col.type
        if not ref.json_path:
            return expr, typ
        if typ not in ("json", "jsonb"):
            expr, typ = f"to_jsonb({expr})", "jsonb"
        for op, key, is_index in ref.json_path:
            operand = f"{self.param(int(key))}::int" if is_index else f"{self.param(key)}::text"
            expr = f"{expr}{op}{operand}"
            typ = "text" if op == "->>" else typ
        return expr, typ

    def typed_param(self, value: str, typ: str) -> str:
        placeholder = self.param(value)
        return f"{placeholder}::text" if typ == "text" else f"{placeholder}::text::{typ}"

    def filter_sql(self, table: Table, ref_sql: str, display: str, flt: Filter) -> str:
        expr, typ = self.field_expr(table, ref_sql, display, flt.ref)
        op = flt.op
        if op == "is":
            sql = f"{expr} IS {IS_VALUES[str(flt.value)]}"
        elif op == "in":
            values = list(flt.value)
            sql = f"{expr} = ANY({self.param(values)}::text[]::{_array_of(typ)})"
        elif op in FTS:
            target = expr if typ == "tsvector" else f"to_tsvector({expr})"
            if flt.lang:
                lang = self.param(flt.lang)
                target = expr if typ == "tsvector" else f"to_tsvector({lang}::text::regconfig, {expr})"
                sql = f"{target} @@ {FTS[op]}({lang}::text::regconfig, {self.param(flt.value)}::text)"
            else:
                sql = f"{target} @@ {FTS[op]}({self.param(flt.value)}::text)"
        elif flt.quant:
            values = [v.replace("*", "%") if op in ("like", "ilike") else v for v in flt.value]
            elem = "text" if op in ("like", "ilike", "match", "imatch") else typ
            sql = f"{expr} {OPERATORS[op]} {flt.quant.upper()}({self.param(values)}::text[]::{_array_of(elem)})"
        elif op in ("like", "ilike"):
            sql = f"{expr} {OPERATORS[op]} {self.param(str(flt.value).replace('*', '%'))}::text"
        elif op in ("match", "imatch"):
            sql = f"{expr} {OPERATORS[op]} {self.param(flt.value)}::text"
        else:
            sql = f"{expr} {OPERATORS[op]} {self.typed_param(str(flt.value), typ)}"
        return f"NOT {sql}" if flt.negated else sql

    def tree_sql(self, table: Table, ref_sql: str, node: Filter | LogicTree) -> str:
        """A filter or logic tree on a mutation's own table (no embeds there)."""
        if isinstance(node, Filter):
            return self.filter_sql(table, ref_sql, table.name, node)
        parts = [self.tree_sql(table, ref_sql, child) for child in node.children]
        sql = "(" + f" {node.op} ".join(parts) + ")" if parts else ("TRUE" if node.op == "AND" else "FALSE")
        return f"NOT {sql}" if node.negated else sql

    # reads -----------------------------------------------------------------
    def read_source(
        self,
        table: Table,
        ref_sql: str,
        from_sql: str,
        items: list[SelectItem],
        nodes: dict[tuple[str, ...], NodeParams],
        limit: int | None,
        offset: int | None,
        count: str | None,
        star_columns: bool = False,
        mutation: bool = False,
    ) -> tuple[str, str | None]:
        """(the read's SELECT, the count query the statement includes or None) for ``Prefer: count=``
        ``count``: exact and estimated count in the statement; planned and estimated EXPLAIN the count
        on its own (``count_statement``). PostgreSQL meets the main query's names first."""
        if star_columns:  # a mutation's CTE has an extra column: `*` is the table's own
            items = [i for it in items for i in ([SelectField(FieldRef(c)) for c in table.columns]
                                                  if isinstance(it, Star) else [it])]
        display = ref_sql.strip('"') if ref_sql.startswith('"') and '"."' not in ref_sql else table.name
        root = plan_tree(
            self.cache, self.schema, table, ref_sql, from_sql, items, nodes,
            aggregates=self.aggregates, max_rows=None if mutation else self.max_rows, display=display,
        )
        root.limit, root.offset = limit, offset or 0
        bound_before = list(self.params)  # what from_sql already refers to (an RPC's arguments)
        writer = Writer(self)
        sql = writer.query(root)
        count_sql = writer.count_query(root) if count in ("exact", "estimated") else None
        if count in ("planned", "estimated"):
            # the count on its own, for EXPLAIN (count=planned|estimated): its own parameter numbering
            alone = Builder(self.cache, self.schema, list(bound_before), aggregates=self.aggregates,
                            max_rows=self.max_rows)
            self.count_statement = (Writer(alone).count_query(root), alone.params)
        return sql, count_sql


def _array_of(typ: str) -> str:
    return typ if typ.endswith("[]") else f"{typ}[]"


# mutations -------------------------------------------------------------------
def insert_source(
    b: Builder,
    table: Table,
    body_text: str,
    columns: list[str],
    missing_default: bool,
    on_conflict: list[str] | None,
    resolution: str | None,
) -> str:
    payload = b.param(body_text)
    target = table.qualified
    uniform = (
        f"(SELECT CASE WHEN json_typeof(pgrst_payload.json_data) = 'array' THEN pgrst_payload.json_data "
        f"ELSE json_build_array(pgrst_payload.json_data) END AS val FROM (SELECT {payload}::json AS json_data) pgrst_payload)"
    )
    cols_sql = ", ".join(quote_ident(c) for c in columns)
    if missing_default:
        exprs = []
        for name in columns:
            col: Column = table.columns[name]
            default = col.default if col.default is not None else "NULL"
            exprs.append(
                f"CASE WHEN pgrst_elem.e::jsonb ? {quote_literal(name)} THEN pgrst_rec.{quote_ident(name)} ELSE {default} END"
            )
        select = (
            f"SELECT {', '.join(exprs)} FROM json_array_elements((SELECT val FROM {uniform} u)) AS pgrst_elem(e), "
            f"LATERAL json_populate_record(null::{target}, pgrst_elem.e) AS pgrst_rec"
        )
    else:
        select = (
            f"SELECT {', '.join('pgrst_body.' + quote_ident(c) for c in columns)} "
            f"FROM json_populate_recordset(null::{target}, (SELECT val FROM {uniform} u)) AS pgrst_body"
        )
    sql = f"INSERT INTO {target}({cols_sql}) {select}" if columns else f"INSERT INTO {target} {select}"
    if resolution is not None:
        conflict = on_conflict or list(table.pk)
        if not conflict:
            raise ApiError(400, "PGRST100", "on_conflict is required: the table has no primary key")
        conflict_sql = ", ".join(quote_ident(c) for c in conflict)
        updates = [c for c in columns if c not in conflict] if resolution == "merge-duplicates" else []
        if updates:
            sets = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in updates)
            sql += f" ON CONFLICT({conflict_sql}) DO UPDATE SET {sets}"
        else:
            sql += f" ON CONFLICT({conflict_sql}) DO NOTHING"
    return f"{sql} RETURNING {target}.*, (xmax = 0) AS pgrst_inserted"


def update_source(b: Builder, table: Table, body_text: str, columns: list[str], where: list[str]) -> str:
    target = table.qualified
    if not columns:
        cond = " AND ".join(["FALSE", *where])
        return f"SELECT {target}.*, false AS pgrst_inserted FROM {target} WHERE {cond}"
    payload = b.param(body_text)
    sets = ", ".join(f"{quote_ident(c)} = pgrst_body.{quote_ident(c)}" for c in columns)
    sql = (
        f"UPDATE {target} SET {sets} FROM (SELECT * FROM json_populate_record(null::{target}, {payload}::json)) AS pgrst_body"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} RETURNING {target}.*, false AS pgrst_inserted"


def delete_source(table: Table, where: list[str]) -> str:
    target = table.qualified
    sql = f"DELETE FROM {target}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return f"{sql} RETURNING {target}.*, false AS pgrst_inserted"


def find_function(cache: SchemaCache, schema: str, name: str, keys: set[str], post: bool = True) -> Function:
    """The overload taking exactly these named arguments (all required ones, any optional ones), or
    PGRST202 worded as PostgREST's ``NoRpc`` with its fuzzy hint."""
    candidates = cache.functions.get((schema, name), [])
    for fn in candidates:
        names = {a.name for a in fn.args}
        required = {a.name for a in fn.args if not a.has_default}
        if keys <= names and required <= keys:
            return fn
    args = ", ".join(sorted(keys))
    params = (f" with parameter{'s' if len(keys) > 1 else ''} {args}") if keys else " without parameters"
    details = (
        f"Searched for the function {schema}.{name}{params}"
        + (" or with a single unnamed json/jsonb parameter" if post else "")
        + ", but no matches were found in the schema cache."
    )
    message = f"Could not find the function {schema}.{name}" + (f"({args})" if keys else " without parameters")
    raise ApiError(404, "PGRST202", message + " in the schema cache", details, _no_rpc_hint(cache, schema, name, keys))


def _no_rpc_hint(cache: SchemaCache, schema: str, name: str, keys: set[str]) -> str | None:
    """``Error.noRpcHint``: a close function name (score >= 0.75), or, when the name exists, the
    closest parameter list."""
    from .fuzzy import FuzzySet

    overloads = cache.functions.get((schema, name), [])
    if not overloads:
        best = FuzzySet([n for s, n in cache.functions if s == schema]).get_one(name, 0.75)
        return f"Perhaps you meant to call the function {schema}.{best}" if best else None

    def listed(names: list[str]) -> str:
        return "(" + ", ".join(sorted(names)) + ")"

    best = FuzzySet([listed([a.name for a in fn.args]) for fn in overloads]).get_one(listed(list(keys)))
    return f"Perhaps you meant to call the function {schema}.{name}{best}" if best else None


def rpc_call(b: Builder, fn: Function, args_json: str, keys: list[str]) -> tuple[str, str | None]:
    """(the call with named arguments, the FROM item reading them from one json parameter)."""
    if not keys:
        return f"{fn.qualified}()", None
    by_name = {a.name: a for a in fn.args}
    payload = b.param(args_json)
    defs = ", ".join(f"{quote_ident(k)} {by_name[k].type}" for k in keys)
    call_args = ", ".join(f"{quote_ident(k)} := pgrst_args.{quote_ident(k)}" for k in keys)
    return f"{fn.qualified}({call_args})", f"json_to_record({payload}::json) AS pgrst_args({defs})"
