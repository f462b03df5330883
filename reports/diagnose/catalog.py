"""What the database says about the lookup tables: indexes, foreign keys, RLS policies, functions.

Read through ``DATABASE_URL`` with catalog views every role may read
(``pg_index``, ``pg_constraint``, ``pg_policies``, ``pg_proc``), so a read-only
role is enough.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from reports.diagnose.pgrst import Catalog, ForeignKey, Function

# The tables a lookup reads: the four of the hot path, plus the two its RLS policies and the
# contact's workspace read.
HOT_TABLES = ("contacts", "conversations", "messages", "contact_notes")
LOOKUP_TABLES = (*HOT_TABLES, "workspaces", "workspace_members")


@dataclass(frozen=True)
class Index:
    name: str
    table: str
    columns: tuple[str | None, ...]  # key columns in order; None for an expression
    desc: tuple[bool, ...]
    nulls_first: tuple[bool, ...]
    unique: bool
    valid: bool
    partial: bool
    method: str
    definition: str

    @property
    def usable(self) -> bool:
        """Serves any query on the table: valid, btree, no predicate."""
        return self.valid and not self.partial and self.method == "btree"


@dataclass(frozen=True)
class Policy:
    table: str
    name: str
    command: str  # SELECT, INSERT, UPDATE, DELETE, ALL
    roles: tuple[str, ...]
    permissive: bool
    qual: str | None
    with_check: str | None


@dataclass
class Database:
    """The catalog facts ``diagnose`` checks, and what :mod:`pgrst` needs to write statements."""

    server_version: str
    pgrst: Catalog
    indexes: list[Index] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    rls_enabled: dict[str, bool] = field(default_factory=dict)
    row_estimates: dict[str, int] = field(default_factory=dict)

    def indexes_of(self, table: str) -> list[Index]:
        return [i for i in self.indexes if i.table == table]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Database:
        """The inverse of :meth:`to_json` (catalog facts saved with captured plans)."""
        cat = doc["pgrst"]
        pgrst = Catalog(
            [ForeignKey(f["name"], f["table"], tuple(f["columns"]), f["foreign"], tuple(f["fcolumns"]))
             for f in cat["foreign_keys"]],
            {n: Function(f["name"], tuple(tuple(p) for p in f["params"]), f["returns_scalar"], f["returns_set"],
                         f["volatility"], tuple(tuple(s) for s in f["settings"]))
             for n, f in cat["functions"].items()},
            {r: [tuple(kv) for kv in v] for r, v in cat["role_settings"].items()},
            cat["schema"],
        )
        indexes = [Index(**{**i, "columns": tuple(i["columns"]), "desc": tuple(i["desc"]),
                            "nulls_first": tuple(i["nulls_first"])}) for i in doc["indexes"]]
        policies = [Policy(**{**p, "roles": tuple(p["roles"])}) for p in doc["policies"]]
        return cls(doc["server_version"], pgrst, indexes, policies, dict(doc["rls_enabled"]),
                   dict(doc["row_estimates"]))


_INDEXES = """
select c.relname, i.relname, ix.indisunique, ix.indisvalid, ix.indpred is not null, am.amname,
       pg_get_indexdef(ix.indexrelid),
       array(select case when k.attnum = 0 then null else a.attname::text end
             from unnest(ix.indkey::int2[]) with ordinality k(attnum, n)
             left join pg_attribute a on a.attrelid = ix.indrelid and a.attnum = k.attnum
             where k.n <= ix.indnkeyatts order by k.n),
       ix.indoption::int2[]
from pg_index ix
join pg_class i on i.oid = ix.indexrelid
join pg_class c on c.oid = ix.indrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_am am on am.oid = i.relam
where n.nspname = %s
"""

_FOREIGN_KEYS = """
select con.conname, c.relname,
       array(select a.attname::text from unnest(con.conkey) with ordinality k(attnum, n)
             join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum order by k.n),
       fc.relname,
       array(select a.attname::text from unnest(con.confkey) with ordinality k(attnum, n)
             join pg_attribute a on a.attrelid = con.confrelid and a.attnum = k.attnum order by k.n)
from pg_constraint con
join pg_class c on c.oid = con.conrelid
join pg_namespace n on n.oid = c.relnamespace
join pg_class fc on fc.oid = con.confrelid
join pg_namespace fn on fn.oid = fc.relnamespace
where con.contype = 'f' and con.conparentid = 0 and n.nspname = %s and fn.nspname = %s
order by c.relname, con.conname
"""

_POLICIES = """
select tablename::text, policyname::text, cmd, roles::text[], permissive = 'PERMISSIVE', qual, with_check
from pg_policies where schemaname = %s order by tablename, policyname
"""

_TABLES = """
select c.relname, c.relrowsecurity, greatest(c.reltuples, 0)::bigint
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'p')
"""

_FUNCTIONS = """
select p.proname, p.provolatile::text, p.proretset, t.typtype::text,
       coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
       array(select format_type(x, null) from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[])) x),
       coalesce(p.proconfig, '{}')
from pg_proc p
join pg_namespace n on n.oid = p.pronamespace
join pg_type t on t.oid = p.prorettype
where n.nspname = %s and p.prokind = 'f'
"""

# PostgREST applies the impersonated role's user-context settings per transaction
# (Config/Database.hs::queryRoleSettings), values lower-cased.
_ROLE_SETTINGS = """
select r.rolname, lower(substr(s, strpos(s, '=') + 1)), substr(s, 1, strpos(s, '=') - 1)
from pg_roles r, unnest(r.rolconfig) s
join pg_settings ps on ps.name = substr(s, 1, strpos(s, '=') - 1) and ps.context = 'user'
where r.rolname = any(%s) and substr(s, 1, strpos(s, '=') - 1) <> 'default_transaction_isolation'
"""


def load(conn: Any, schema: str = "public", roles: tuple[str, ...] = ("authenticated", "anon")) -> Database:
    """Read the catalog through an open psycopg connection."""
    version = str(conn.execute("show server_version").fetchone()[0]).split()[0]
    indexes = []
    for table, name, unique, valid, partial, method, definition, columns, options in conn.execute(_INDEXES, (schema,)):
        opts = [int(o) for o in (options or [])][: len(columns)]
        indexes.append(Index(
            name=name, table=table, columns=tuple(columns), desc=tuple(bool(o & 1) for o in opts),
            nulls_first=tuple(bool(o & 2) for o in opts), unique=unique, valid=valid, partial=partial,
            method=method, definition=definition,
        ))
    fks = [ForeignKey(n, t, tuple(c), ft, tuple(fc)) for n, t, c, ft, fc in conn.execute(_FOREIGN_KEYS, (schema, schema))]
    policies = [Policy(t, n, cmd, tuple(r), perm, q, w) for t, n, cmd, r, perm, q, w in conn.execute(_POLICIES, (schema,))]
    rls, rows = {}, {}
    for name, enabled, estimate in conn.execute(_TABLES, (schema,)):
        rls[name] = bool(enabled)
        rows[name] = int(estimate)
    functions: dict[str, Function] = {}
    overloaded: set[str] = set()
    for name, vol, retset, typtype, argnames, argmodes, argtypes, config in conn.execute(_FUNCTIONS, (schema,)):
        modes = list(argmodes) or ["i"] * len(argtypes)
        params = tuple(
            (n, t) for n, t, m in zip(list(argnames) + [""] * len(argtypes), argtypes, modes, strict=False)
            if m in ("i", "b", "v")
        )
        has_out = any(m in ("o", "t", "b") for m in modes)
        settings = tuple((s.split("=", 1)[0], s.split("=", 1)[1]) for s in config if "=" in s)
        if name in functions:
            overloaded.add(name)
        functions[name] = Function(name, params, typtype not in ("c",) and not has_out, bool(retset), vol, settings)
    for name in overloaded:  # PostgREST would pick by argument names; not written here
        functions.pop(name, None)
    role_settings: dict[str, list[tuple[str, str]]] = {}
    for role, value, key in conn.execute(_ROLE_SETTINGS, (list(roles),)):
        role_settings.setdefault(role, []).append((key, value))
    return Database(version, Catalog(fks, functions, role_settings, schema), indexes, policies, rls, rows)
