"""A read as PostgREST v14 plans and writes it (``Plan.hs``, ``Query/QueryBuilder.hs``).

The ``select`` tree becomes a tree of nodes, one per embedded resource. The
stages run in PostgREST's order, so the same request fails with the same error
first: query parameters are attached to their node (PGRST108 for a path that is
not embedded), relationships are resolved (PGRST200 / PGRST201), ``*`` is
expanded where aggregates need explicit columns, JSON paths and spread
aggregates get their default aliases, related orders and ``rel=is.null``
filters are bound to their join, aggregates are checked (PGRST123), hoisted out
of to-one spreads, and to-many spreads get their ordering columns (PGRST127).

Each node is one ``SELECT``: its own columns, then one column per embed
(``row_to_json`` for to-one, a ``json_agg`` for to-many, plain columns for a
spread), joined ``LEFT`` (or ``INNER``) ``JOIN LATERAL`` with PostgREST's
aliases (``<table>_<depth>`` for rows, ``<parent>_<name>_<depth>`` for the
join). Every value is a bound parameter; every name comes from the schema cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .parser import (
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
from .schema import Relationship, SchemaCache, Table, quote_ident

_CARDINALITY = {"m2o": "many-to-one", "o2m": "one-to-many", "o2o": "one-to-one", "m2m": "many-to-many"}


def not_embedded(name: str) -> ApiError:
    return ApiError(
        400, "PGRST108", f"'{name}' is not an embedded resource in this request", None,
        f"Verify that '{name}' is included in the 'select' query parameter.",
    )


@dataclass
class Sel:
    """A column of a node (``CoercibleSelectField``)."""

    ref: FieldRef
    alias: str | None = None
    cast: str | None = None
    agg: str | None = None
    agg_cast: str | None = None
    full_row: bool = False

    @property
    def out_name(self) -> str:
        return self.alias or self.ref.name


@dataclass
class SpreadSel:
    """A column a spread embed adds to its parent (``SpreadSelectField``)."""

    name: str
    agg: str | None = None
    agg_cast: str | None = None
    alias: str | None = None


@dataclass
class RelSel:
    """What a child adds to its parent's select (``RelSelectField``)."""

    agg_alias: str
    spread: bool
    name: str = ""
    to_one: bool = False
    empty: bool = False
    sels: list[SpreadSel] = field(default_factory=list)


@dataclass
class NullEmbed:
    """``rel=is.null`` / ``rel=not.is.null`` on an embedded resource."""

    negated: bool
    agg_alias: str


Condition = Filter | LogicTree | NullEmbed


@dataclass
class Node:
    name: str
    alias: str | None = None
    hint: str | None = None
    join: str | None = None
    spread: str | None = None  # "one" | "many"
    depth: int = 0
    items: list[SelectItem] = field(default_factory=list)
    select: list[Sel] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    where: list[Condition] = field(default_factory=list)
    order: list[OrderTerm] = field(default_factory=list)
    offset: int = 0
    limit: int | None = None
    table: Table | None = None
    ref: str = ""  # how columns are referenced
    display: str = ""  # the name PostgreSQL would print for that reference
    from_sql: str = ""
    rel: Relationship | None = None
    agg_alias: str = ""
    join_conds: list[str] = field(default_factory=list)
    rel_select: list[RelSel] = field(default_factory=list)
    many_extra: list[tuple[str | None, Sel]] = field(default_factory=list)
    many_order: list[OrderTerm] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.alias or self.name


# stages ------------------------------------------------------------------------
def _init(node: Node, items: list[SelectItem]) -> None:
    for item in items:
        if isinstance(item, Star):
            node.select.append(Sel(FieldRef("*")))
        elif isinstance(item, SelectField):
            node.select.append(Sel(item.ref, item.alias, item.cast, item.agg, item.agg_cast))
        else:
            assert isinstance(item, SelectEmbed)
            child = Node(item.name, item.alias, item.hint, item.join, "one" if item.spread else None, node.depth + 1)
            node.children.append(child)
            _init(child, item.items)


# the type names PostgreSQL's grammar knows beside pg_type's (SimpleTypename in gram.y)
SQL_TYPES = frozenset({
    "int", "integer", "smallint", "bigint", "real", "float", "double precision", "decimal", "dec", "numeric",
    "boolean", "bit", "bit varying", "character", "character varying", "char", "char varying", "varchar",
    "national character", "national character varying", "national char", "national char varying", "nchar",
    "nchar varying", "timestamp", "timestamp with time zone", "timestamp without time zone", "time",
    "time with time zone", "time without time zone", "interval", "json",
})


def _check_casts(cache: SchemaCache, node: Node) -> None:
    """A ``::cast`` names a type the database knows; anything else is PostgreSQL's 42704 (it never
    reaches the SQL)."""
    for s in node.select:
        for cast in (s.cast, s.agg_cast):
            if cast is None:
                continue
            name = " ".join(cast.lower().split())
            if name not in SQL_TYPES and name not in cache.type_names:
                raise ApiError(400, "42704", f'type "{name}" does not exist')
    for child in node.children:
        _check_casts(cache, child)


def _find(root: Node, path: tuple[str, ...]) -> Node:
    node = root
    for name in path:
        child = next((c for c in node.children if c.name == name or c.alias == name), None)
        if child is None:
            raise not_embedded(name)
        node = child
    return node


def find_rel(cache: SchemaCache, schema: str, origin: str, target: str, hint: str | None) -> Relationship:
    """``Plan.findRel``: the one relationship from ``origin`` to ``target`` (name, FK, column, hint)."""
    rels = [r for r in cache.relationships.get((schema, origin), []) if r.foreign[0] == schema]

    def single_col(r: Relationship, name: str, side: int) -> bool:
        return r.cardinality != "m2m" and len(r.columns) == 1 and r.columns[0][side] == name

    def matches(r: Relationship) -> bool:
        if r.is_self and r.cardinality != "m2m":
            if hint is None:
                # the children by the table's name, the parent by the column's name
                return (target == r.foreign[1] and r.cardinality == "o2m") or (
                    single_col(r, target, 0) and r.cardinality == "m2o"
                )
            return target == r.foreign[1] and r.cardinality == "o2m" and single_col(r, hint, 1)
        if hint is None:
            return (
                target == r.foreign[1]
                or (r.cardinality != "m2m" and r.constraint == target and not r.foreign_is_view)
                or (single_col(r, target, 0) and not r.foreign_is_view)
            )
        return target == r.foreign[1] and (
            (r.cardinality != "m2m" and r.constraint == hint)
            or single_col(r, hint, 0)
            or single_col(r, hint, 1)
            or (r.junction is not None and r.junction.table[1] == hint)
        )

    found = [r for r in rels if matches(r)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise ApiError(
            400, "PGRST200",
            f"Could not find a relationship between '{origin}' and '{target}' in the schema cache",
            f"Searched for a foreign key relationship between '{origin}' and '{target}'"
            + (f" using the hint '{hint}'" if hint else "")
            + f" in the schema '{schema}', but no matches were found.",
            _no_rel_hint(cache, schema, origin, target),
        )
    err = ApiError(
        300, "PGRST201",
        f"Could not embed because more than one relationship was found for '{origin}' and '{target}'",
        None,
        f"Try changing '{target}' to one of the following: "
        + ", ".join(f"'{r.foreign[1]}!{r.junction.table[1] if r.junction else r.constraint}'" for r in found)
        + ". Find the desired relationship in the 'details' key.",
    )
    err.details = [_compressed(r) for r in found]  # type: ignore[assignment]
    raise err


def _compressed(r: Relationship) -> dict[str, str]:
    def cols(names: list[str]) -> str:
        return "(" + ", ".join(names) + ")"

    if r.junction is not None:
        j = r.junction
        rel = (
            f"{j.table[1]} using {j.constraint1}{cols([b for _, b in j.source])} and "
            f"{j.constraint2}{cols([b for _, b in j.target])}"
        )
    else:
        rel = (
            f"{r.constraint} using {r.table[1]}{cols([a for a, _ in r.columns])} and "
            f"{r.foreign[1]}{cols([b for _, b in r.columns])}"
        )
    return {"cardinality": _CARDINALITY[r.cardinality], "embedding": f"{r.table[1]} with {r.foreign[1]}",
            "relationship": rel}


def _no_rel_hint(cache: SchemaCache, schema: str, parent: str, child: str) -> str | None:
    """``Error.noRelBetweenHint``: the closest parent name if the parent has no relationships,
    else the closest child name (none when the child is one of them: the hint was wrong)."""
    from .fuzzy import FuzzySet

    rels = cache.relationships.get((schema, parent))
    if rels is None:
        parents = FuzzySet([t[1] for t, lst in cache.relationships.items() if t[0] == schema and lst])
        best = parents.get_one(parent)
        return f"Perhaps you meant '{best}' instead of '{parent}'." if best else None
    children = FuzzySet([r.foreign[1] for r in rels if r.foreign[0] == schema])
    for score, name in children.get(child):
        if score < 1.0:
            return f"Perhaps you meant '{name}' instead of '{child}'."
        return None
    return None


def _add_rels(cache: SchemaCache, schema: str, parent: Node, origin: str) -> None:
    for child in parent.children:
        rel = find_rel(cache, schema, origin, child.name, child.hint)
        table = cache.tables[rel.foreign]  # relationships only reach exposed relations, all cached
        child.rel, child.table = rel, table
        child.agg_alias = f"{rel.table[1]}_{child.key}_{child.depth}"
        if child.spread and not rel.to_one:
            child.spread = "many"
        if rel.junction is not None:
            # many-to-many: the target and the junction, joined in the FROM list, not aliased
            child.ref = table.qualified
            child.display = table.name
            junction = rel.junction.table
            jref = f"{quote_ident(junction[0])}.{quote_ident(junction[1])}"
            child.from_sql = f"{table.qualified}, {jref}"
            child.join_conds = [f"{jref}.{quote_ident(jc)} = {child.ref}.{quote_ident(fc)}" for fc, jc in rel.junction.target]
            child.join_conds += [f"{jref}.{quote_ident(jc)} = {parent.ref}.{quote_ident(tc)}" for tc, jc in rel.junction.source]
        else:
            alias = f"{table.name}_{child.depth}"
            child.ref = quote_ident(alias)
            child.display = alias
            child.from_sql = f"{table.qualified} AS {child.ref}"
            child.join_conds = [f"{child.ref}.{quote_ident(fc)} = {parent.ref}.{quote_ident(c)}" for c, fc in rel.columns]
        _add_rels(cache, schema, child, table.name)


def _expand_stars(node: Node, has_agg: bool) -> None:
    has_agg = has_agg or any(s.agg for s in node.select) or node.spread == "many"
    assert node.table is not None
    if has_agg and any(s.ref.name == "*" and not s.ref.json_path and (not s.agg or (node.spread and s.agg == "count"))
                       for s in node.select):
        expanded: list[Sel] = []
        for s in node.select:
            if s.ref.name == "*" and not s.ref.json_path and not s.agg:
                expanded.extend(Sel(FieldRef(c)) for c in node.table.columns)
            elif s.ref.name == "*" and not s.ref.json_path and node.spread and s.agg == "count":
                s.full_row = True
                expanded.append(s)
            else:
                expanded.append(s)
        node.select = expanded
    for child in node.children:
        _expand_stars(child, has_agg)


def _add_aliases(node: Node) -> None:
    for s in node.select:
        if s.alias:
            continue
        if s.agg:
            if node.spread:
                s.alias = s.agg
        elif s.ref.json_path:
            s.alias = s.ref.output_name
    for child in node.children:
        _add_aliases(child)


def _related_orders(node: Node) -> None:
    for term in node.order:
        if term.relation is None:
            continue
        child = next((c for c in node.children if c.key == term.relation), None)
        if child is None:
            raise not_embedded(term.relation)
        assert child.rel is not None and node.table is not None
        if not child.rel.to_one:
            raise ApiError(
                400, "PGRST118", f"A related order on '{child.key}' is not possible",
                f"'{node.table.name}' and '{child.key}' do not form a many-to-one or one-to-one relationship",
            )
        term.relation = child.agg_alias
    for child in node.children:
        _related_orders(child)


def _null_embeds(node: Node) -> None:
    def convert(cond: Condition) -> Condition:
        if isinstance(cond, LogicTree):
            return LogicTree(cond.op, cond.negated, [convert(c) for c in cond.children])  # type: ignore[misc]
        if isinstance(cond, Filter) and not cond.ref.json_path and cond.op == "is" and cond.value == "null":
            child = next((c for c in node.children if c.key == cond.ref.name), None)
            if child is not None:
                return NullEmbed(cond.negated, child.agg_alias)
        return cond

    node.where = [convert(c) for c in node.where]
    for child in node.children:
        _null_embeds(child)


def _rel_selects(node: Node) -> None:
    for child in node.children:
        _rel_selects(child)
    node.rel_select = []
    for child in node.children:
        assert child.rel is not None
        if child.spread:
            sels = [SpreadSel(s.out_name) for s in child.select]
            for rs in child.rel_select:
                sels.extend([SpreadSel(rs.name)] if not rs.spread else rs.sels)
            node.rel_select.append(RelSel(child.agg_alias, True, sels=sels))
        else:
            node.rel_select.append(
                RelSel(child.agg_alias, False, child.key, child.rel.to_one, empty=_only_empty(child))
            )


def _only_empty(node: Node) -> bool:
    return not node.select and all(_only_empty(c) for c in node.children)


def _check_aggregates(node: Node, allowed: bool) -> None:
    if not allowed and any(s.agg for s in node.select):
        raise ApiError(400, "PGRST123", "Use of aggregate functions is not allowed")
    for child in node.children:
        _check_aggregates(child, allowed)


HoistedAgg = tuple[tuple[str, str], tuple[str, str | None, str | None]]


def _hoist(node: Node) -> list[HoistedAgg]:
    """``hoistSpreadAggFunctions``: aggregates in a to-one spread are computed by the parent."""
    child_aggs = [agg for child in node.children for agg in _hoist(child)]
    to_one_spread = node.spread == "one"
    hoisted: list[HoistedAgg] = []
    if node.depth > 0 and to_one_spread:
        for s in node.select:
            if s.agg:
                hoisted.append(((node.agg_alias, s.out_name), (s.agg, s.agg_cast, s.alias)))
                s.agg = s.agg_cast = None
        hoisted += [((node.agg_alias, name), func) for (_, name), func in child_aggs]
    elif node.children:
        lookup = dict(child_aggs)
        for rs in node.rel_select:
            if rs.spread:
                for ss in rs.sels:
                    found = lookup.get((rs.agg_alias, ss.name))
                    if found is not None:
                        ss.agg, ss.agg_cast, ss.alias = found
    return hoisted


def _many_order(node: Node) -> None:
    if node.spread == "many":
        if any(s.agg for s in node.select) or any(ss.agg for rs in node.rel_select if rs.spread for ss in rs.sels):
            raise ApiError(400, "PGRST127", "Feature not implemented",
                           "Aggregates are not implemented for one-to-many or many-to-many spreads.")
        extra: list[tuple[str | None, Sel]] = []
        order: list[OrderTerm] = []
        for i, term in enumerate(node.order, start=1):
            name = f"{node.agg_alias}_{term.ref.name}_{i}"
            extra.append((term.relation, Sel(term.ref, name)))
            order.append(OrderTerm(FieldRef(name), term.direction, term.nulls))
        node.many_extra, node.many_order, node.order = extra, order, []
    for child in node.children:
        _many_order(child)


def _restrict(node: Node, max_rows: int | None) -> None:
    for child in node.children:
        if max_rows is not None:
            child.limit = max_rows if child.limit is None else min(child.limit, max_rows)
        _restrict(child, max_rows)


# the plan --------------------------------------------------------------------------
def plan_tree(
    cache: SchemaCache,
    schema: str,
    table: Table,
    ref: str,
    from_sql: str,
    items: list[SelectItem],
    nodes: dict[tuple[str, ...], NodeParams],
    *,
    aggregates: bool,
    max_rows: int | None,
    display: str | None = None,
) -> Node:
    """The read tree for ``items`` over ``table`` read as ``from_sql`` and referenced as ``ref``;
    ``nodes`` are the query string's filters, orders and ranges per embed path."""
    root = Node(table.name, table=table, ref=ref, display=display or table.name, from_sql=from_sql)
    _init(root, items)
    for path, params in nodes.items():
        node = _find(root, path)
        node.where = list(params.filters)
        if params.order is not None:
            node.order = [OrderTerm(t.ref, t.direction, t.nulls, t.relation) for t in params.order]
        if path:
            node.offset = params.offset or 0
            node.limit = params.limit
    _add_rels(cache, schema, root, table.name)
    _check_casts(cache, root)
    _expand_stars(root, False)
    _add_aliases(root)
    _related_orders(root)
    _null_embeds(root)
    _rel_selects(root)
    _check_aggregates(root, aggregates)
    _hoist(root)
    _many_order(root)
    _restrict(root, max_rows)
    return root


# SQL ----------------------------------------------------------------------------
def _apply_cast(cast: str | None, sql: str) -> str:
    return f"CAST( {sql} AS {cast} )" if cast else sql


def _apply_agg(agg: str | None, agg_cast: str | None, sql: str) -> str:
    return _apply_cast(agg_cast, f"{agg.upper()}({sql})") if agg else sql


def _as(alias: str | None) -> str:
    return f" AS {quote_ident(alias)}" if alias else ""


class Writer:
    """Turns a planned tree into SQL, binding values through ``b`` (a query.Builder)."""

    def __init__(self, b: Any) -> None:
        self.b = b

    def field(self, node: Node, s: Sel) -> str:
        if s.full_row:
            return quote_ident(node.display)
        if s.ref.name == "*" and not s.ref.json_path:
            return f"{node.ref}.*"
        assert node.table is not None
        return self.b.field_expr(node.table, node.ref, node.display, s.ref)[0]

    def select_item(self, node: Node, s: Sel) -> str:
        return _apply_agg(s.agg, s.agg_cast, _apply_cast(s.cast, self.field(node, s))) + _as(s.alias)

    def condition(self, node: Node, cond: Condition) -> str:
        assert node.table is not None
        if isinstance(cond, NullEmbed):
            return f"{quote_ident(cond.agg_alias)} IS {'' if cond.negated else 'NOT '}DISTINCT FROM NULL"
        if isinstance(cond, Filter):
            return self.b.filter_sql(node.table, node.ref, node.display, cond)
        parts = [self.condition(node, c) for c in cond.children]
        sql = "(" + f" {cond.op} ".join(parts) + ")" if parts else ("TRUE" if cond.op == "AND" else "FALSE")
        return f"NOT {sql}" if cond.negated else sql

    def order_item(self, node: Node, term: OrderTerm, relation_ref: bool = True) -> str:
        assert node.table is not None
        if term.relation is not None:
            child = next(c for c in node.children if c.agg_alias == term.relation)
            assert child.table is not None
            expr = self.b.field_expr(child.table, quote_ident(child.agg_alias), child.agg_alias, term.ref)[0]
        else:
            expr = self.b.field_expr(node.table, node.ref, node.display, term.ref)[0]
        return _order_suffix(expr, term)

    def limit(self, node: Node) -> str:
        if node.limit is None and not node.offset:
            return ""
        limit = "ALL" if node.limit is None else f"{self.b.param(node.limit)}::bigint"
        return f" LIMIT {limit} OFFSET {self.b.param(node.offset)}::bigint"

    def query(self, node: Node, root_limit: bool = True) -> str:
        """``readPlanToQuery``. Written in the order PostgreSQL analyses it (FROM and its lateral joins,
        then the select list, WHERE, GROUP BY, ORDER BY), so an unknown name is reported first where
        PostgreSQL would report it first."""
        joins = [self.join(rs, next(c for c in node.children if c.agg_alias == rs.agg_alias))
                 for rs in node.rel_select]
        selects = [self.select_item(node, s) for s in node.select]
        if not node.select and not node.children:
            selects = [f"{node.ref}.*"]
        for relation, s in node.many_extra:
            if relation is None:
                selects.append(self.select_item(node, s))
            else:
                child = next(c for c in node.children if c.agg_alias == relation)
                assert child.table is not None
                expr = self.b.field_expr(child.table, quote_ident(relation), relation, s.ref)[0]
                selects.append(expr + _as(s.alias))
        for rs in node.rel_select:
            agg = quote_ident(rs.agg_alias)
            if rs.spread:
                selects += [_apply_agg(ss.agg, ss.agg_cast, _spread_name(agg, ss.name)) + _as(ss.alias) for ss in rs.sels]
            elif not rs.empty:
                selects.append(
                    f"row_to_json({agg}.*)::jsonb AS {quote_ident(rs.name)}" if rs.to_one
                    else f"COALESCE( {agg}.{agg}, '[]') AS {quote_ident(rs.name)}"
                )
        sql = f"SELECT {', '.join(selects)} FROM {node.from_sql}"
        if joins:
            sql += " " + " ".join(joins)
        where = [self.condition(node, c) for c in node.where] + node.join_conds
        if where:
            sql += " WHERE " + " AND ".join(where)
        group = self.group_by(node)
        if group:
            sql += " GROUP BY " + group
        if node.order:
            sql += " ORDER BY " + ", ".join(self.order_item(node, t) for t in node.order)
        if node.depth > 0 or root_limit:
            sql += self.limit(node)
        return sql

    def join(self, rs: RelSel, child: Node) -> str:
        """``getJoin``."""
        agg = quote_ident(rs.agg_alias)
        kind = "INNER" if child.join == "inner" else "LEFT"
        sub = self.query(child)
        cond = f"{agg} IS NOT NULL" if child.join == "inner" else "TRUE"
        if (not rs.spread and rs.to_one) or child.spread == "one":
            return f"{kind} JOIN LATERAL ( {sub} ) AS {agg} ON TRUE"
        if child.spread == "many":
            order = ""
            if child.many_order:
                order = " ORDER BY " + ", ".join(
                    _order_suffix(f"{agg}.{quote_ident(t.ref.name)}", t) for t in child.many_order
                )
            cols = [
                f"COALESCE(json_agg({_spread_name(agg, ss.name)}{order}),'[]')::jsonb AS {quote_ident(ss.alias or ss.name)}"
                for ss in rs.sels
            ]
            head = ", ".join([f"SELECT json_agg({agg})::jsonb AS {agg}", *cols])
            return f"{kind} JOIN LATERAL ( {head} FROM ({sub} ) AS {agg} ) AS {agg} ON {cond}"
        return (
            f"{kind} JOIN LATERAL ( SELECT json_agg({agg})::jsonb AS {agg} FROM ({sub} ) AS {agg} ) AS {agg} ON {cond}"
        )

    def group_by(self, node: Node) -> str:
        """``groupF``: when this node aggregates, every other column it outputs."""
        aggregated = any(s.agg for s in node.select) or any(
            ss.agg for rs in node.rel_select if rs.spread for ss in rs.sels
        )
        if not aggregated:
            return ""
        terms = [quote_ident(s.alias) if s.alias else self.field(node, s) for s in node.select if not s.agg]
        for rs in node.rel_select:
            if not rs.spread:
                terms.append(quote_ident(rs.name))
            else:
                terms += [
                    f"{quote_ident(rs.agg_alias)}.{quote_ident(ss.alias or ss.name)}" for ss in rs.sels if not ss.agg
                ]
        return ", ".join(terms)

    def count_query(self, node: Node) -> str:
        """``readPlanToCountQuery``: the root's rows with its filters, no joins, no range; inner
        embeds and ``rel=is.null`` filters as EXISTS."""
        where: list[str] = []
        for cond in node.where:
            where.append(self._count_condition(node, cond))
        where += node.join_conds
        where += [f"EXISTS ({self.count_query(c)} )" for c in node.children if c.join == "inner"]
        sql = f"SELECT 1 FROM {node.from_sql}"
        return sql + (" WHERE " + " AND ".join(where) if where else "")

    def _count_condition(self, node: Node, cond: Condition) -> str:
        if isinstance(cond, NullEmbed):
            child = next(c for c in node.children if c.agg_alias == cond.agg_alias)
            return f"{'' if cond.negated else 'NOT '}EXISTS ({self.count_query(child)})"
        if isinstance(cond, LogicTree):
            parts = [self._count_condition(node, c) for c in cond.children]
            sql = "(" + f" {cond.op} ".join(parts) + ")" if parts else ("TRUE" if cond.op == "AND" else "FALSE")
            return f"NOT {sql}" if cond.negated else sql
        return self.condition(node, cond)


def _spread_name(agg: str, name: str) -> str:
    return f"{agg}.*" if name == "*" else f"{agg}.{quote_ident(name)}"


def _order_suffix(expr: str, term: OrderTerm) -> str:
    if term.direction:
        expr += " " + term.direction.upper()
    if term.nulls:
        expr += " NULLS FIRST" if term.nulls == "nullsfirst" else " NULLS LAST"
    return expr
