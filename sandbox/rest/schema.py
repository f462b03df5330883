"""The schema cache: tables, columns, keys, foreign keys and functions, from pg_catalog.

Every identifier a request names is checked against this cache before it
reaches SQL, as PostgREST does. It is reloaded on ``NOTIFY pgrst, 'reload schema'``
and on SIGUSR1.

Relationships follow ``SchemaCache.hs``: every foreign key is a many-to-one
(or one-to-one when its columns are a primary or unique key) with its inverse;
views get the relationships of the base-table keys whose columns they expose
(read from the view's stored query tree, following views of views); a table
whose primary key holds foreign keys to two tables makes a many-to-many
between them. Relationships to or through schemas that are not exposed are
dropped, and each table's list is kept in PostgREST's order (the order of the
PGRST201 candidates).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TABLES_SQL = """
select n.nspname as schema, c.relname as name, c.relkind::text as kind,
       coalesce(json_agg(json_build_array(a.attname, format_type(a.atttypid, null),
                                          a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
                         order by a.attnum) filter (where a.attname is not null), '[]')::text as columns
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
left join pg_attrdef d on d.adrelid = c.oid and d.adnum = a.attnum
where n.nspname = any($1::text[]) and c.relkind in ('r', 'v', 'm', 'f', 'p') and not c.relispartition
group by n.nspname, c.relname, c.relkind
"""

# every key of the database: foreign keys may cross into schemas that are only reached through views
KEYS_SQL = """
select con.oid as oid, n.nspname as schema, c.relname as table, con.conrelid as relid, con.conname as name,
       con.contype::text as type,
       array(select a.attname from unnest(con.conkey) with ordinality k(attnum, i)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.i) as columns,
       con.conkey::int[] as attnums,
       fn.nspname as fschema, fc.relname as ftable, con.confrelid as frelid,
       array(select a.attname from unnest(con.confkey) with ordinality k(attnum, i)
             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.i) as fcolumns,
       con.confkey::int[] as fattnums
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_class fc on fc.oid = con.confrelid
left join pg_namespace fn on fn.oid = fc.relnamespace
where con.contype in ('p', 'u', 'f') and con.conparentid = 0
  and n.nspname not in ('pg_catalog', 'information_schema')
order by con.conrelid, con.conname
"""

# the stored query tree of every view and materialized view: where each column comes from
VIEWS_SQL = """
select c.oid as oid, n.nspname as schema, c.relname as name, r.ev_action::text as definition,
       array(select a.attnum::int from pg_attribute a where a.attrelid = c.oid and a.attnum > 0
             and not a.attisdropped order by a.attnum) as attnums,
       array(select a.attname from pg_attribute a where a.attrelid = c.oid and a.attnum > 0
             and not a.attisdropped order by a.attnum) as columns
from pg_class c
join pg_namespace n on n.oid = c.relnamespace
join pg_rewrite r on r.ev_class = c.oid and r.rulename = '_RETURN'
where c.relkind in ('v', 'm') and n.nspname = any($1::text[])
"""

FUNCTIONS_SQL = """
select n.nspname as schema, p.proname as name, p.provolatile::text as volatility, p.proretset as retset,
       format_type(p.prorettype, null) as rettype, t.typtype::text as rettyptype,
       coalesce(rc.relname, '') as rettable, coalesce(rn.nspname, '') as rettable_schema,
       p.pronargs as nargs, p.pronargdefaults as ndefaults,
       coalesce(p.proargnames, '{}') as argnames,
       coalesce(p.proargmodes::text[], '{}') as argmodes,
       array(select format_type(x, null) from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) x) as argtypes
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type t on t.oid = p.prorettype
left join pg_class rc on rc.oid = t.typrelid and t.typtype = 'c'
left join pg_namespace rn on rn.oid = rc.relnamespace
where n.nspname = any($1::text[]) and p.prokind = 'f'
"""


# type names a `::cast` may use: what the search path (the exposed schemas, the extra ones, pg_catalog) resolves
TYPES_SQL = """
select distinct t.typname as name
from pg_type t join pg_namespace n on n.oid = t.typnamespace
where n.nspname = any($1::text[])
"""

ROLE_SETTINGS_SQL = """
select r.rolname as role, s.setdatabase <> 0 as db_specific, s.setconfig as config
from pg_db_role_setting s
join pg_roles r on r.oid = s.setrole
where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
"""
# settings of an impersonated role applied per transaction, as PostgREST does (the
# ones a non-superuser may set)
ROLE_SETTINGS_APPLIED = frozenset({"statement_timeout", "lock_timeout", "work_mem", "plan_cache_mode"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    default: str | None


@dataclass
class Table:
    schema: str
    name: str
    columns: dict[str, Column]
    kind: str = "r"
    pk: tuple[str, ...] = ()
    uniques: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"


@dataclass(frozen=True)
class Junction:
    """The table in the middle of a many-to-many: its two foreign keys and their column pairs
    (``source``: origin column, junction column; ``target``: foreign column, junction column)."""

    table: tuple[str, str]
    constraint1: str
    constraint2: str
    source: tuple[tuple[str, str], ...]
    target: tuple[tuple[str, str], ...]


_CARDINALITY_RANK = {"o2m": 0, "m2o": 1, "o2o": 2, "m2m": 3}


@dataclass(frozen=True)
class Relationship:
    """One direction of a relationship: from ``table`` to ``foreign``.

    ``columns`` pairs ``table``'s column with ``foreign``'s column (empty for
    ``m2m``, whose columns are in ``junction``). cardinality: ``m2o`` (table holds
    the FK), ``o2m`` (foreign holds it), ``o2o`` (``is_parent``: the side the FK
    points to), ``m2m``.
    """

    table: tuple[str, str]
    foreign: tuple[str, str]
    columns: tuple[tuple[str, str], ...]
    constraint: str
    cardinality: str
    is_self: bool = False
    table_is_view: bool = False
    foreign_is_view: bool = False
    is_parent: bool = False
    junction: Junction | None = None

    @property
    def to_one(self) -> bool:
        return self.cardinality in ("m2o", "o2o")

    def sort_key(self) -> tuple[Any, ...]:
        """PostgREST's derived ``Ord Relationship``: tables, self, cardinality and its fields, views."""
        if self.junction is not None:
            j = self.junction
            card: tuple[Any, ...] = (j.table, j.constraint1, j.constraint2, j.source, j.target)
        else:
            card = (self.constraint, self.columns, self.is_parent)
        return (
            self.table, self.foreign, self.is_self, _CARDINALITY_RANK[self.cardinality], card,
            self.table_is_view, self.foreign_is_view,
        )


@dataclass(frozen=True)
class Arg:
    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    schema: str
    name: str
    args: tuple[Arg, ...]
    rettype: str
    retset: bool
    volatility: str
    ret_table: tuple[str, str] | None
    out_columns: tuple[tuple[str, str], ...]
    returns_composite: bool

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def is_void(self) -> bool:
        return self.rettype == "void"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    # standard_conforming_strings is on in every supported PostgreSQL
    return "'" + value.replace("'", "''") + "'"


@dataclass
class SchemaCache:
    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    relationships: dict[tuple[str, str], list[Relationship]] = field(default_factory=dict)
    functions: dict[tuple[str, str], list[Function]] = field(default_factory=dict)
    role_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    type_names: frozenset[str] = frozenset()

    @classmethod
    async def load(cls, conn: Any, schemas: list[str], extra_search_path: list[str] | None = None) -> SchemaCache:
        """``extra_search_path``: schemas whose views are followed to their base tables (as PostgREST)."""
        import orjson

        cache = cls()
        for row in await conn.fetch(TABLES_SQL, schemas):
            columns = {
                name: Column(name, typ, not notnull, default)
                for name, typ, notnull, default in orjson.loads(row["columns"])
            }
            cache.tables[(row["schema"], row["name"])] = Table(row["schema"], row["name"], columns, row["kind"])
        keys = await conn.fetch(KEYS_SQL)
        for row in keys:
            table = cache.tables.get((row["schema"], row["table"]))
            if table is None:
                continue
            if row["type"] == "p":
                table.pk = tuple(sorted(row["columns"]))  # PostgREST keeps them by name
            elif row["type"] == "u":
                table.uniques.append(tuple(row["columns"]))
        views = await conn.fetch(VIEWS_SQL, [*schemas, *(extra_search_path or [])])
        types = await conn.fetch(TYPES_SQL, ["pg_catalog", *schemas, *(extra_search_path or [])])
        cache.type_names = frozenset(r["name"] for r in types)
        cache.relationships = _relationships(cache.tables, keys, views, set(schemas))
        for row in await conn.fetch(FUNCTIONS_SQL, schemas):
            cache._add_function(row)
        # database-specific role settings win over role-wide ones
        for row in sorted(await conn.fetch(ROLE_SETTINGS_SQL), key=lambda r: r["db_specific"]):
            for item in row["config"] or []:
                name, _, value = item.partition("=")
                if name in ROLE_SETTINGS_APPLIED:
                    cache.role_settings.setdefault(row["role"], {})[name] = value
        return cache

    def _add_function(self, row: Any) -> None:
        names = list(row["argnames"])
        modes = list(row["argmodes"]) or ["i"] * len(row["argtypes"])
        types = list(row["argtypes"])
        names += [""] * (len(types) - len(names))
        inputs = [(n, t) for n, t, m in zip(names, types, modes, strict=False) if m in ("i", "b", "v")]
        outs = tuple((n, t) for n, t, m in zip(names, types, modes, strict=False) if m in ("o", "b", "t"))
        first_default = len(inputs) - row["ndefaults"]
        args = tuple(Arg(n, t, i >= first_default) for i, (n, t) in enumerate(inputs))
        ret_table = (row["rettable_schema"], row["rettable"]) if row["rettable"] else None
        fn = Function(
            schema=row["schema"],
            name=row["name"],
            args=args,
            rettype=row["rettype"],
            retset=row["retset"],
            volatility=row["volatility"],
            ret_table=ret_table,
            out_columns=outs if len(outs) > 1 or (ret_table is None and row["rettyptype"] in ("c", "p")) else (),
            returns_composite=row["rettyptype"] == "c" or (row["rettype"] == "record" and len(outs) > 0),
        )
        self.functions.setdefault((fn.schema, fn.name), []).append(fn)


# relationships -----------------------------------------------------------------
def _view_origins(views: list[Any]) -> dict[int, dict[int, tuple[int, int]]]:
    """view oid -> view attnum -> (base relation oid, attnum), following views of views."""
    from .nodetree import view_columns

    direct: dict[int, dict[int, tuple[int, int]]] = {}
    for row in views:
        try:
            origins = view_columns(row["definition"])
        except (IndexError, ValueError, RecursionError):  # a definition this reader cannot follow: no keys through it
            origins = []
        direct[row["oid"]] = {attnum: origin for attnum, origin in zip(row["attnums"], origins, strict=False)}

    def resolve(rel: int, col: int, seen: frozenset[int]) -> tuple[int, int]:
        while rel in direct and rel not in seen:
            seen = seen | {rel}
            rel, col = direct[rel].get(col, (0, 0))
        return (0, 0) if rel in direct else (rel, col)

    return {
        view: {attnum: resolve(rel, col, frozenset({view})) for attnum, (rel, col) in cols.items()}
        for view, cols in direct.items()
    }


class _ViewColumns:
    """Which view columns expose which base-table columns (PostgREST's view key dependencies)."""

    def __init__(self, views: list[Any]) -> None:
        self.rows = {row["oid"]: row for row in views}
        # (base relation oid, attnum) -> [(view oid, view column name)]
        self.exposed_by: dict[tuple[int, int], list[tuple[int, str]]] = {}
        for view, cols in _view_origins(views).items():
            names = dict(zip(self.rows[view]["attnums"], self.rows[view]["columns"], strict=True))
            for attnum, origin in sorted(cols.items()):
                if origin[0]:
                    self.exposed_by.setdefault(origin, []).append((view, names[attnum]))

    def key_deps(self, rel: int, attnums: list[int], names: list[str]) -> dict[int, list[tuple[str, list[str]]]]:
        """Views exposing every column of a key: view oid -> [(table column, [view columns])]."""
        per_view: dict[int, dict[int, list[str]]] = {}
        for attnum in attnums:
            for view, vcol in self.exposed_by.get((rel, attnum), []):
                per_view.setdefault(view, {}).setdefault(attnum, []).append(vcol)
        return {
            view: [(name, cols[attnum]) for attnum, name in zip(attnums, names, strict=True)]
            for view, cols in per_view.items()
            if all(attnum in cols for attnum in attnums)
        }

    def qi(self, view: int) -> tuple[str, str]:
        return (self.rows[view]["schema"], self.rows[view]["name"])

    @staticmethod
    def expand(deps: list[tuple[str, list[str]]]) -> list[list[str]]:
        """Every choice of one view column per key column (a key column may be exposed twice)."""
        choices: list[list[str]] = [[]]
        for _, vcols in deps:
            choices = [[*c, v] for c in choices for v in vcols]
        return choices


def _relationships(
    tables: dict[tuple[str, str], Table], keys: list[Any], views: list[Any], exposed: set[str]
) -> dict[tuple[str, str], list[Relationship]]:
    """PostgREST's relationships: FKs (and their inverses), through views, many-to-many."""
    vc = _ViewColumns(views)
    uniques = _view_primary_keys(tables, keys, vc)
    rels = [rel for row in keys if row["type"] == "f" and row["fschema"] is not None
            for rel in _foreign_key_relationships(row, uniques, vc)]
    rels += _many_to_many(rels, tables)
    inverse = [
        Relationship(r.foreign, r.table, tuple((b, a) for a, b in r.columns), r.constraint,
                     "o2m" if r.cardinality == "m2o" else "o2o", is_self=r.is_self, table_is_view=r.foreign_is_view,
                     foreign_is_view=r.table_is_view, is_parent=not r.is_parent)
        for r in rels if r.cardinality in ("m2o", "o2o")
    ]
    out: dict[tuple[str, str], list[Relationship]] = {}
    for rel in rels + inverse:
        if rel.table[0] not in exposed or rel.foreign[0] not in exposed:
            continue
        if rel.junction is not None and rel.junction.table[0] not in exposed:
            continue
        out.setdefault(rel.table, []).append(rel)
    for lst in out.values():
        lst.sort(key=Relationship.sort_key)
    return out


def _view_primary_keys(
    tables: dict[tuple[str, str], Table], keys: list[Any], vc: _ViewColumns
) -> dict[int, list[frozenset[int]]]:
    """Gives each view the primary key its base table's shows through it (the first view column exposing
    each key column); returns every relation's unique keys (attnum sets)."""
    pk_views: dict[int, list[str]] = {}
    uniques: dict[int, list[frozenset[int]]] = {}
    for row in keys:
        if row["type"] in ("p", "u"):
            uniques.setdefault(row["relid"], []).append(frozenset(row["attnums"]))
        if row["type"] == "p":
            for view, deps in vc.key_deps(row["relid"], list(row["attnums"]), list(row["columns"])).items():
                pk_views.setdefault(view, []).extend(vcols[0] for _, vcols in deps)
    for view, pk in pk_views.items():
        table = tables.get(vc.qi(view))
        if table is not None:
            table.pk = tuple(pk)
    return uniques


def _foreign_key_relationships(row: Any, uniques: dict[int, list[frozenset[int]]], vc: _ViewColumns) -> list[Relationship]:
    """One foreign key's relationship, and the same through every view exposing either side's key."""
    t, ft = (row["schema"], row["table"]), (row["fschema"], row["ftable"])
    pairs = tuple(zip(row["columns"], row["fcolumns"], strict=True))
    card = "o2o" if frozenset(row["attnums"]) in uniques.get(row["relid"], []) else "m2o"
    cons = row["name"]
    rels = [Relationship(t, ft, pairs, cons, card, is_self=row["relid"] == row["frelid"])]
    view_table = vc.key_deps(row["relid"], list(row["attnums"]), list(row["columns"]))
    table_view = vc.key_deps(row["frelid"], list(row["fattnums"]), list(row["fcolumns"]))
    for view, deps in view_table.items():
        for vcols in vc.expand(deps):
            rels.append(Relationship(vc.qi(view), ft, tuple(zip(vcols, row["fcolumns"], strict=True)), cons, card,
                                     table_is_view=True))
    for view, deps in table_view.items():
        for vcols in vc.expand(deps):
            rels.append(Relationship(t, vc.qi(view), tuple(zip(row["columns"], vcols, strict=True)), cons, card,
                                     foreign_is_view=True))
    for view1, deps1 in view_table.items():
        for vcols1 in vc.expand(deps1):
            for view2, deps2 in table_view.items():
                for vcols2 in vc.expand(deps2):
                    rels.append(Relationship(vc.qi(view1), vc.qi(view2), tuple(zip(vcols1, vcols2, strict=True)),
                                             cons, card, is_self=view1 == view2, table_is_view=True,
                                             foreign_is_view=True))
    return rels


def _many_to_many(rels: list[Relationship], tables: dict[tuple[str, str], Table]) -> list[Relationship]:
    """Two different foreign keys of one table whose columns are all in its primary key: a junction."""
    by_table: dict[tuple[str, str], list[Relationship]] = {}
    for rel in rels:
        by_table.setdefault(rel.table, []).append(rel)
    m2m: list[Relationship] = []
    for first in rels:
        if first.cardinality != "m2o":
            continue
        junction = tables.get(first.table)
        junction_pk = set(junction.pk) if junction is not None else set()
        for second in by_table.get(first.table, []):
            if second.cardinality != "m2o" or second.constraint == first.constraint:
                continue
            if {a for a, _ in first.columns} | {a for a, _ in second.columns} <= junction_pk:
                m2m.append(Relationship(
                    first.foreign, second.foreign, (), "", "m2m", is_self=first.foreign == second.foreign,
                    table_is_view=first.foreign_is_view, foreign_is_view=second.foreign_is_view,
                    junction=Junction(first.table, first.constraint, second.constraint,
                                      tuple((b, a) for a, b in first.columns), tuple((b, a) for a, b in second.columns)),
                ))
    return m2m
