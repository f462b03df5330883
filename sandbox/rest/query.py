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
    OrderTerm,
    SelectEmbed,
    SelectField,
    SelectItem,
    Star,
)
from .schema import Column, Function, Relationship, SchemaCache, Table, quote_ident, quote_literal

_CARDINALITY = {"m2o": "many-to-one", "o2m": "one-to-many", "o2o": "one-to-one"}


def column_missing(table: Table, name: str) -> ApiError:
    return ApiError(400, "42703", f"column {table.name}.{name} does not exist")


def table_missing(schema: str, name: str) -> ApiError:
    return ApiError(404, "PGRST205", f"Could not find the table '{schema}.{name}' in the schema cache")


@dataclass
class Built:
    sql: str
    params: list[Any]


@dataclass
class Builder:
    cache: SchemaCache
    schema: str
    params: list[Any] = field(default_factory=list)
    counter: int = 0
    used_paths: set[tuple[str, ...]] = field(default_factory=set)
    count_params: int = 0

    def param(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}"

    def alias(self, base: str) -> str:
        self.counter += 1
        return quote_ident(f"{base}_{self.counter}")

    def table(self, name: str) -> Table:
        table = self.cache.tables.get((self.schema, name))
        if table is None:
            raise table_missing(self.schema, name)
        return table

    # expressions -----------------------------------------------------------
    def column_expr(self, table: Table, ref_sql: str, ref: FieldRef) -> tuple[str, str]:
        """SQL for a (json-path) field and its type."""
        col = table.columns.get(ref.name)
        if col is None:
            raise column_missing(table, ref.name)
        expr = f"{ref_sql}.{quote_ident(col.name)}"
        typ = col.type
        for op, key in ref.json_path:
            key_sql = key if _is_int(key) else quote_literal(key)
            expr = f"{expr}{op}{key_sql}"
            typ = "text" if op == "->>" else ("jsonb" if typ == "jsonb" else "json")
        return expr, typ

    def typed_param(self, value: str, typ: str) -> str:
        placeholder = self.param(value)
        return f"{placeholder}::text" if typ == "text" else f"{placeholder}::text::{typ}"

    def filter_sql(self, table: Table, ref_sql: str, flt: Filter, embeds: dict[str, str] | None = None) -> str:
        if embeds and flt.ref.name in embeds and flt.ref.name not in table.columns and not flt.ref.json_path:
            if flt.op != "is" or flt.value not in ("null", "not_null"):
                raise ApiError(400, "PGRST100", f'"failed to parse filter ({flt.op})"', "only is.null / not.is.null apply to an embedded resource")
            is_null = (flt.value == "null") != flt.negated
            return f"{embeds[flt.ref.name]} IS {'NULL' if is_null else 'NOT NULL'}"
        expr, typ = self.column_expr(table, ref_sql, flt.ref)
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

    def tree_sql(self, table: Table, ref_sql: str, node: Filter | LogicTree, embeds: dict[str, str] | None) -> str:
        if isinstance(node, Filter):
            return self.filter_sql(table, ref_sql, node, embeds)
        parts = [self.tree_sql(table, ref_sql, child, embeds) for child in node.children]
        sql = "(" + f" {node.op} ".join(parts) + ")" if parts else ("TRUE" if node.op == "AND" else "FALSE")
        return f"NOT {sql}" if node.negated else sql

    def order_sql(
        self, table: Table, ref_sql: str, terms: list[OrderTerm], items: list[SelectItem] | None = None
    ) -> str:
        out = []
        for term in terms:
            if term.relation is not None:
                expr = self.related_order_expr(table, ref_sql, term, items or [])
            else:
                expr, _ = self.column_expr(table, ref_sql, term.ref)
            if term.direction:
                expr += " " + term.direction.upper()
            if term.nulls:
                expr += " NULLS FIRST" if term.nulls == "nullsfirst" else " NULLS LAST"
            out.append(expr)
        return ", ".join(out)

    def related_order_expr(self, table: Table, ref_sql: str, term: OrderTerm, items: list[SelectItem]) -> str:
        """``order=rel(col)``: a column of an embedded to-one resource, read by its foreign key."""
        name = term.relation or ""
        embed = next(
            (i for i in items if isinstance(i, SelectEmbed) and (i.alias or i.name) == name),
            None,
        )
        if embed is None:
            raise ApiError(
                400, "PGRST108", f"'{name}' is not an embedded resource in this request", None,
                f"Verify that '{name}' is included in the 'select' query parameter.",
            )
        rel, target = self.relationship(table, embed)
        if not rel.to_one:
            raise ApiError(
                400, "PGRST118", f"A related order on '{name}' is not possible",
                f"'{table.name}' and '{embed.name}' do not form a many-to-one or one-to-one relationship",
            )
        alias = self.alias(target.name)
        col, _ = self.column_expr(target, alias, term.ref)
        cond = " AND ".join(f"{alias}.{quote_ident(b)} = {ref_sql}.{quote_ident(a)}" for a, b in rel.columns)
        return f"(SELECT {col} FROM {target.qualified} AS {alias} WHERE {cond})"

    # relationships ---------------------------------------------------------
    def relationship(self, table: Table, embed: SelectEmbed) -> tuple[Relationship, Table]:
        rels = self.cache.relationships.get((table.schema, table.name), [])
        found = [
            r
            for r in rels
            if r.foreign == (self.schema, embed.name)
            or r.constraint == embed.name
            or (r.cardinality in ("m2o", "o2o") and len(r.columns) == 1 and r.columns[0][0] == embed.name)
        ]
        if embed.hint is not None:
            hint = embed.hint
            found = [
                r
                for r in found
                if r.constraint == hint
                or any(hint in pair for pair in r.columns)
                or r.foreign[1] == hint
            ]
        if not found:
            target = embed.name
            raise ApiError(
                400,
                "PGRST200",
                f"Could not find a relationship between '{table.name}' and '{target}' in the schema cache",
                f"Searched for a foreign key relationship between '{table.name}' and '{target}'"
                + (f" using the hint '{embed.hint}'" if embed.hint else "")
                + f" in the schema '{self.schema}', but no matches were found.",
                None,
            )
        if len(found) > 1:
            # PostgREST sends the candidates as a JSON array in `details`
            err = ApiError(
                300,
                "PGRST201",
                f"Could not embed because more than one relationship was found for '{table.name}' and '{embed.name}'",
                None,
                f"Try changing '{embed.name}' to one of the following: "
                + ", ".join(f"'{embed.name}!{r.constraint}'" for r in found)
                + ". Find the desired relationship in the 'details' key.",
            )
            err.details = [  # type: ignore[assignment]
                {
                    "cardinality": _CARDINALITY[r.cardinality],
                    "embedding": f"{table.name} with {r.foreign[1]}",
                    "relationship": f"{r.constraint} using "
                    + f"{r.table[1]}({', '.join(a for a, _ in r.columns)}) and "
                    + f"{r.foreign[1]}({', '.join(b for _, b in r.columns)})",
                }
                for r in found
            ]
            raise err
        rel = found[0]
        return rel, self.cache.tables[rel.foreign]

    # reads -----------------------------------------------------------------
    def select_list(
        self,
        table: Table,
        ref_sql: str,
        items: list[SelectItem],
        path: tuple[str, ...],
        nodes: dict[tuple[str, ...], NodeParams],
        joins: list[str],
        embed_refs: dict[str, str],
        star_columns: bool = False,
    ) -> list[str]:
        cols: list[str] = []
        for item in items:
            if isinstance(item, Star):
                if star_columns:
                    cols.extend(f"{ref_sql}.{quote_ident(c)}" for c in table.columns)
                else:
                    cols.append(f"{ref_sql}.*")
            elif isinstance(item, SelectField):
                expr, _ = self.column_expr(table, ref_sql, item.ref)
                if item.cast:
                    expr = f"CAST({expr} AS {item.cast})"
                name = item.alias or item.ref.output_name
                if item.alias or item.cast or item.ref.json_path:
                    expr = f"{expr} AS {quote_ident(name)}"
                cols.append(expr)
            else:
                cols.extend(self.embed(table, ref_sql, item, path, nodes, joins, embed_refs))
        return cols

    def embed(
        self,
        table: Table,
        parent_ref: str,
        embed: SelectEmbed,
        path: tuple[str, ...],
        nodes: dict[tuple[str, ...], NodeParams],
        joins: list[str],
        embed_refs: dict[str, str],
    ) -> list[str]:
        rel, target = self.relationship(table, embed)
        key = embed.alias or embed.name
        child_path = (*path, key)
        self.used_paths.add(child_path)
        params = nodes.get(child_path) or NodeParams()
        t_alias = self.alias(target.name)
        lat = self.alias(f"{table.name}_{key}")
        child_joins: list[str] = []
        child_embeds: dict[str, str] = {}
        items = embed.items or []
        cols = self.select_list(target, t_alias, items, child_path, nodes, child_joins, child_embeds) if items else []
        conds = [f"{t_alias}.{quote_ident(b)} = {parent_ref}.{quote_ident(a)}" for a, b in rel.columns]
        conds.extend(self.tree_sql(target, t_alias, f, child_embeds) for f in params.filters)
        sql = f"SELECT {', '.join(cols) if cols else 'NULL'} FROM {target.qualified} AS {t_alias}"
        if child_joins:
            sql += " " + " ".join(child_joins)
        sql += " WHERE " + " AND ".join(conds)
        if params.order:
            sql += " ORDER BY " + self.order_sql(target, t_alias, params.order, items)
        if params.limit is not None:
            sql += f" LIMIT {self.param(params.limit)}::bigint"
        if params.offset is not None:
            sql += f" OFFSET {self.param(params.offset)}::bigint"
        join = "INNER JOIN LATERAL" if embed.inner else "LEFT JOIN LATERAL"
        if rel.to_one:
            joins.append(f"{join} ({sql}) AS {lat} ON TRUE")
            embed_refs[key] = f"row_to_json({lat}.*)"
            if embed.spread:
                return [f"{lat}.{quote_ident(n)}" for n in _output_names(target, items)]
            if not items:
                return []
            return [f"row_to_json({lat}.*)::jsonb AS {quote_ident(key)}"]
        if embed.spread:
            raise ApiError(
                400,
                "PGRST119",
                f"A spread operation on '{embed.name}' is not possible",
                f"'{table.name}' and '{embed.name}' do not form a many-to-one or one-to-one relationship",
            )
        agg = f"SELECT json_agg({lat})::jsonb AS {lat} FROM ({sql}) AS {lat}"
        on = f"{lat}.{lat} IS NOT NULL" if embed.inner else "TRUE"
        joins.append(f"{join} ({agg}) AS {lat} ON {on}")
        embed_refs[key] = f"{lat}.{lat}"
        if not items:
            return []
        return [f"COALESCE({lat}.{lat}, '[]') AS {quote_ident(key)}"]

    def read_source(
        self,
        table: Table,
        ref_sql: str,
        from_sql: str,
        items: list[SelectItem],
        nodes: dict[tuple[str, ...], NodeParams],
        limit: int | None,
        offset: int | None,
        with_count: bool,
        star_columns: bool = False,
        extra_where: list[str] | None = None,
    ) -> tuple[str, str | None]:
        """(source query, count query or None) for the root level."""
        root = nodes.get(()) or NodeParams()
        joins: list[str] = []
        embed_refs: dict[str, str] = {}
        cols = self.select_list(table, ref_sql, items, (), nodes, joins, embed_refs, star_columns)
        where = list(extra_where or [])
        where.extend(self.tree_sql(table, ref_sql, f, embed_refs) for f in root.filters)
        for path in nodes:
            if path and path not in self.used_paths:
                name = path[-1]
                raise ApiError(
                    400,
                    "PGRST108",
                    f"'{name}' is not an embedded resource in this request",
                    None,
                    f"Verify that '{name}' is included in the 'select' query parameter.",
                )
        body = f"FROM {from_sql}"
        if joins:
            body += " " + " ".join(joins)
        if where:
            body += " WHERE " + " AND ".join(where)
        count_sql = f"SELECT 1 {body}" if with_count else None
        self.count_params = len(self.params)  # the count query uses only the parameters bound so far
        sql = f"SELECT {', '.join(cols) if cols else ''} {body}"
        if root.order:
            sql += " ORDER BY " + self.order_sql(table, ref_sql, root.order, items)
        if limit is not None:
            sql += f" LIMIT {self.param(limit)}::bigint"
        if offset:
            sql += f" OFFSET {self.param(offset)}::bigint"
        return sql, count_sql


def _output_names(table: Table, items: list[SelectItem]) -> list[str]:
    names: list[str] = []
    for item in items:
        if isinstance(item, Star):
            names.extend(table.columns)
        elif isinstance(item, SelectField):
            names.append(item.alias or item.ref.output_name)
        elif not item.spread:
            names.append(item.alias or item.name)
    return names


def _array_of(typ: str) -> str:
    return typ if typ.endswith("[]") else f"{typ}[]"


def _is_int(text: str) -> bool:
    return text.isdigit() or (text.startswith("-") and text[1:].isdigit())


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


def find_function(cache: SchemaCache, schema: str, name: str, keys: set[str]) -> Function:
    candidates = cache.functions.get((schema, name), [])
    for fn in candidates:
        names = {a.name for a in fn.args}
        required = {a.name for a in fn.args if not a.has_default}
        if keys <= names and required <= keys:
            return fn
    args = ", ".join(sorted(keys))
    details = (
        f"Searched for the function {schema}.{name}"
        + (f" with parameters {args}" if keys else " without parameters")
        + " or with a single unnamed json/jsonb parameter, but no matches were found in the schema cache."
    )
    raise ApiError(404, "PGRST202", f"Could not find the function {schema}.{name}({args}) in the schema cache", details)


def rpc_call(b: Builder, fn: Function, args_json: str, keys: list[str]) -> tuple[str, str | None]:
    """(the call with named arguments, the FROM item reading them from one json parameter)."""
    if not keys:
        return f"{fn.qualified}()", None
    by_name = {a.name: a for a in fn.args}
    payload = b.param(args_json)
    defs = ", ".join(f"{quote_ident(k)} {by_name[k].type}" for k in keys)
    call_args = ", ".join(f"{quote_ident(k)} := pgrst_args.{quote_ident(k)}" for k in keys)
    return f"{fn.qualified}({call_args})", f"json_to_record({payload}::json) AS pgrst_args({defs})"
