"""Reading one ``EXPLAIN (FORMAT JSON, ANALYZE, BUFFERS)`` plan: scans, sorts, auth calls, times.

The plan is PostgreSQL's JSON, as PostgREST's plan media type returns it (a list
holding one object with ``Plan``, ``Planning Time``, ``Execution Time``) or as
``EXPLAIN`` returns it through ``DATABASE_URL``.  Row counts are per execution
of the statement: ``Actual Rows`` is an average per loop, so rows × loops.

Per-row auth calls: Supabase's ``auth.uid()`` is an inlinable SQL function, so
plans show its body, ``current_setting('request.jwt.claims', …)``, where the
policy called it.  In a ``Filter`` (or ``Join Filter``) it is evaluated for every
row the node reads, unless the node belongs to an ``InitPlan`` (what
``(select auth.uid())`` becomes: evaluated once).  PostgreSQL 17+ names an
InitPlan ``InitPlan 1`` and refers to ``(InitPlan 1).col1``; 16 and older write
``InitPlan 1 (returns $0)`` and ``$0``: both are read.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

SCAN_NODES = frozenset({
    "Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan", "Sample Scan",
})
AUTH_CALL = re.compile(r"current_setting\(|\bauth\.(?:uid|jwt|role|email)\(\)")
# Conditions evaluated for every row a node reads, and the counter of rows it dropped.
PER_ROW_CONDITIONS = {"Filter": "Rows Removed by Filter", "Join Filter": "Rows Removed by Join Filter"}
ONCE_PER_SCAN_CONDITIONS = ("Index Cond", "Recheck Cond", "Hash Cond", "Merge Cond", "One-Time Filter", "TID Cond")


class PlanError(ValueError):
    """Not an EXPLAIN JSON document."""


@dataclass(frozen=True)
class Scan:
    node: str
    table: str
    alias: str | None
    index: str | None
    rows_read: float  # rows the node looked at: returned + removed by its filter/recheck, × loops
    rows_out: float
    loops: float
    eq_columns: tuple[str, ...]  # compared with one value (an index can serve them as a prefix)
    any_columns: tuple[str, ...]  # compared with = ANY (…): several values
    in_initplan: bool


@dataclass(frozen=True)
class SortKey:
    column: str
    desc: bool
    nulls_first: bool

    @classmethod
    def parse(cls, text: str) -> SortKey | None:
        """``messages_2.created_at DESC NULLS LAST`` → column, direction, nulls (PostgreSQL's defaults)."""
        m = re.match(r'^(?:"?[\w$]+"?\.)?"?([\w$]+)"?((?:\s+(?:ASC|DESC))?)((?:\s+NULLS\s+(?:FIRST|LAST))?)$', text.strip(), re.I)
        if m is None:
            return None
        desc = "DESC" in m.group(2).upper()
        nulls = m.group(3).upper()
        nulls_first = ("FIRST" in nulls) if nulls else desc
        return cls(m.group(1), desc, nulls_first)

    def sql(self) -> str:
        text = self.column + (" desc" if self.desc else "")
        if self.nulls_first != self.desc:  # not the default of the direction
            text += " nulls first" if self.nulls_first else " nulls last"
        return text


@dataclass(frozen=True)
class Sort:
    table: str | None  # the table whose rows are sorted (the scan under the sort)
    keys: tuple[SortKey, ...]
    raw_keys: tuple[str, ...]
    rows: float
    loops: float
    scan: Scan | None


@dataclass(frozen=True)
class AuthCall:
    table: str | None
    alias: str | None
    node: str
    condition: str  # "Filter", "Index Cond", …
    per_row: bool
    evaluations: float  # how many times the condition ran in this execution
    text: str


@dataclass
class PlanSummary:
    planning_ms: float | None
    execution_ms: float | None
    shared_hit: int
    shared_read: int
    top_node: str
    scans: list[Scan] = field(default_factory=list)
    sorts: list[Sort] = field(default_factory=list)
    auth_calls: list[AuthCall] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _doc(explain: Any) -> dict[str, Any]:
    if isinstance(explain, list) and explain and isinstance(explain[0], dict):
        explain = explain[0]
    if not isinstance(explain, dict) or not isinstance(explain.get("Plan"), dict):
        raise PlanError("not an EXPLAIN (FORMAT JSON) document")
    return explain


def walk(plan: dict[str, Any], in_initplan: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    """Every node with whether it belongs to an InitPlan (evaluated once per statement)."""
    inside = in_initplan or plan.get("Parent Relationship") == "InitPlan"
    yield plan, inside
    for child in plan.get("Plans") or []:
        yield from walk(child, inside)


def _num(node: dict[str, Any], key: str) -> float:
    value = node.get(key)
    return float(value) if isinstance(value, int | float) else 0.0


def _conjuncts(cond: str) -> list[str]:
    """Top-level ``AND`` terms of a condition, outer parentheses removed."""
    text = cond.strip()
    while text.startswith("(") and _closing(text, 0) == len(text) - 1:
        text = text[1:-1].strip()
    parts, depth, quoted, start = [], 0, False, 0
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and text.startswith(" AND ", i):
            parts.append(text[start:i])
            start = i + 5
            i += 4
        i += 1
    parts.append(text[start:])
    out = []
    for p in parts:
        p = p.strip()
        while p.startswith("(") and _closing(p, 0) == len(p) - 1:
            p = p[1:-1].strip()
        out.append(p)
    return out


def _closing(text: str, open_at: int) -> int:
    depth, quoted = 0, False
    for i in range(open_at, len(text)):
        ch = text[i]
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


_EQ = re.compile(r'^(?:"?[\w$]+"?\.)?"?([\w$]+)"?\s*=\s*(.+)$', re.S)


def _equalities(conds: list[str]) -> tuple[set[str], set[str]]:
    eq: set[str] = set()
    many: set[str] = set()
    for cond in conds:
        for term in _conjuncts(cond):
            if term.upper().startswith("ANY "):
                continue  # (ANY (col = (hashed SubPlan n).col1)): a membership test
            m = _EQ.match(term)
            if m is None:
                continue
            (many if m.group(2).lstrip().upper().startswith("ANY") else eq).add(m.group(1))
    return eq, many


def _scan(node: dict[str, Any], in_initplan: bool) -> Scan:
    loops = _num(node, "Actual Loops") or 1.0
    rows = _num(node, "Actual Rows")
    removed = _num(node, "Rows Removed by Filter") + _num(node, "Rows Removed by Index Recheck")
    conds = [str(node[k]) for k in ("Index Cond", "Recheck Cond", "Filter") if k in node]
    index = node.get("Index Name")
    for child in node.get("Plans") or []:
        if child.get("Node Type") in ("Bitmap Index Scan", "BitmapAnd", "BitmapOr"):
            for sub, _ in walk(child):
                if "Index Cond" in sub:
                    conds.append(str(sub["Index Cond"]))
                if sub.get("Index Name") and index is None:
                    index = sub["Index Name"]
    eq, many = _equalities(conds)
    return Scan(
        node=str(node["Node Type"]), table=str(node.get("Relation Name")), alias=node.get("Alias"),
        index=index, rows_read=(rows + removed) * loops, rows_out=rows * loops, loops=loops,
        eq_columns=tuple(sorted(eq - many)), any_columns=tuple(sorted(many)), in_initplan=in_initplan,
    )


def _sorted_scan(sort: dict[str, Any], first_key: str) -> dict[str, Any] | None:
    """The scan whose rows a Sort orders: the one named by the sort key's alias
    (``conversations_1.last_message_at``), else the first scan of its input."""
    alias = first_key.split(".", 1)[0].strip('"') if "." in first_key.split(" ", 1)[0] else None
    scans = [n for n, _ in walk(sort) if n is not sort and n.get("Node Type") in SCAN_NODES and n.get("Relation Name")]
    if alias is not None:
        named = [n for n in scans if n.get("Alias") == alias]
        return named[0] if named else None
    return scans[0] if scans else None


def summarize(explain: Any) -> PlanSummary:
    """The facts ``diagnose`` checks, from one EXPLAIN JSON document."""
    doc = _doc(explain)
    plan = doc["Plan"]
    summary = PlanSummary(
        planning_ms=doc.get("Planning Time"), execution_ms=doc.get("Execution Time"),
        shared_hit=int(_num(plan, "Shared Hit Blocks")), shared_read=int(_num(plan, "Shared Read Blocks")),
        top_node=str(plan.get("Node Type")),
    )
    for node, in_initplan in walk(plan):
        kind = node.get("Node Type")
        if kind in SCAN_NODES and node.get("Relation Name"):
            summary.scans.append(_scan(node, in_initplan))
        if kind in ("Sort", "Incremental Sort") and node.get("Sort Key"):
            raw = tuple(str(k) for k in node["Sort Key"])
            keys = tuple(k for k in (SortKey.parse(t) for t in raw) if k is not None)
            under = _sorted_scan(node, raw[0])
            scan = _scan(under, in_initplan) if under is not None else None
            summary.sorts.append(Sort(
                table=scan.table if scan else None, keys=keys if len(keys) == len(raw) else (), raw_keys=raw,
                rows=_num(node, "Actual Rows") * (_num(node, "Actual Loops") or 1.0),
                loops=_num(node, "Actual Loops") or 1.0, scan=scan,
            ))
        if in_initplan:
            continue
        loops = _num(node, "Actual Loops") or 1.0
        for cond, removed_key in PER_ROW_CONDITIONS.items():
            text = node.get(cond)
            if isinstance(text, str) and AUTH_CALL.search(text):
                evaluations = (_num(node, "Actual Rows") + _num(node, removed_key)) * loops
                summary.auth_calls.append(AuthCall(
                    node.get("Relation Name"), node.get("Alias"), str(kind), cond, True, evaluations, text,
                ))
        for cond in ONCE_PER_SCAN_CONDITIONS:
            text = node.get(cond)
            if isinstance(text, str) and AUTH_CALL.search(text):
                summary.auth_calls.append(AuthCall(
                    node.get("Relation Name"), node.get("Alias"), str(kind), cond, False, loops, text,
                ))
    return summary
