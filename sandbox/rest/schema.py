"""The schema cache: tables, columns, keys, foreign keys and functions, from pg_catalog.

Every identifier a request names is checked against this cache before it
reaches SQL, as PostgREST does. It is reloaded on ``NOTIFY pgrst, 'reload schema'``
and on SIGUSR1.
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
where n.nspname = any($1::text[]) and c.relkind in ('r', 'v', 'm', 'f', 'p')
group by n.nspname, c.relname, c.relkind
"""

KEYS_SQL = """
select n.nspname as schema, c.relname as table, con.conname as name, con.contype::text as type,
       array(select a.attname from unnest(con.conkey) with ordinality k(attnum, i)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.i) as columns,
       fn.nspname as fschema, fc.relname as ftable,
       array(select a.attname from unnest(con.confkey) with ordinality k(attnum, i)
             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.i) as fcolumns
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_class fc on fc.oid = con.confrelid
left join pg_namespace fn on fn.oid = fc.relnamespace
where con.contype in ('p', 'u', 'f') and con.conparentid = 0
  and n.nspname = any($1::text[])
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
class Relationship:
    """One direction of a foreign key: from ``table`` to ``foreign``.

    ``columns`` pairs ``table``'s column with ``foreign``'s column.
    cardinality: ``m2o`` (table holds the FK), ``o2m`` (foreign holds it), ``o2o``.
    """

    table: tuple[str, str]
    foreign: tuple[str, str]
    columns: tuple[tuple[str, str], ...]
    constraint: str
    cardinality: str

    @property
    def to_one(self) -> bool:
        return self.cardinality in ("m2o", "o2o")


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

    @classmethod
    async def load(cls, conn: Any, schemas: list[str]) -> SchemaCache:
        import orjson

        cache = cls()
        for row in await conn.fetch(TABLES_SQL, schemas):
            columns = {
                name: Column(name, typ, not notnull, default)
                for name, typ, notnull, default in orjson.loads(row["columns"])
            }
            cache.tables[(row["schema"], row["name"])] = Table(row["schema"], row["name"], columns, row["kind"])
        fks = []
        for row in await conn.fetch(KEYS_SQL, schemas):
            table = cache.tables.get((row["schema"], row["table"]))
            if table is None:
                continue
            key_cols = tuple(row["columns"])
            if row["type"] == "p":
                table.pk = key_cols
            elif row["type"] == "u":
                table.uniques.append(key_cols)
            elif (row["fschema"], row["ftable"]) in cache.tables:
                fks.append((table, cache.tables[(row["fschema"], row["ftable"])], row))
        for table, foreign, row in fks:
            fk_cols = tuple(row["columns"])
            unique_sets = {frozenset(table.pk), *(frozenset(u) for u in table.uniques)}
            one_to_one = frozenset(fk_cols) in unique_sets
            pairs = tuple(zip(fk_cols, row["fcolumns"], strict=True))
            src, dst = (table.schema, table.name), (foreign.schema, foreign.name)
            cache.relationships.setdefault(src, []).append(
                Relationship(src, dst, pairs, row["name"], "o2o" if one_to_one else "m2o")
            )
            cache.relationships.setdefault(dst, []).append(
                Relationship(dst, src, tuple((b, a) for a, b in pairs), row["name"], "o2o" if one_to_one else "o2m")
            )
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
