"""Findings: each a stable ``code``, a ``severity``, the ``table``, a ``detail`` and a ``fix``.

Catalog checks (``missing_hot_index``, ``unindexed_fk``, the policy half of
``rls_per_row_auth_call``) read :class:`~reports.diagnose.catalog.Database`;
plan checks (``seq_scan_hot_path``, ``sort_without_index``, the plan half of
``rls_per_row_auth_call``) read the sampled plans of every statement; run checks
(``round_trips``, ``pool_saturation``) live in :mod:`reports.diagnose.runs`.
docs/diagnosis.md explains every code.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reports.diagnose.catalog import HOT_TABLES, LOOKUP_TABLES, Database, Index, Policy
from reports.diagnose.plans import PlanSummary, SortKey

SEVERITIES = ("high", "medium", "low")
# A sequential scan reading fewer rows than this per execution is the planner's right
# choice on a small table, not a finding (its scans are still listed per statement).
SEQ_SCAN_MIN_ROWS = 1000
# Per-row evaluations of an auth call per execution from which it is "high".
AUTH_CALLS_HIGH = 1000


@dataclass
class Finding:
    code: str
    severity: str
    table: str | None
    detail: str
    fix: str
    statements: list[str] = field(default_factory=list)
    evidence: dict[str, Any] = field(default_factory=dict)
    cost_ms: float = 0.0  # an estimate of the time at stake, for ordering within a severity

    def to_json(self) -> dict[str, Any]:
        out = {"code": self.code, "severity": self.severity, "table": self.table, "detail": self.detail,
               "fix": self.fix, "statements": self.statements, "evidence": self.evidence}
        return out


def worst_first(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (SEVERITIES.index(f.severity), -f.cost_ms, f.code, f.table or ""))


@dataclass(frozen=True)
class HotPath:
    """What a lookup asks of one table: equality on ``eq``, then rows in ``order``."""

    table: str
    eq: tuple[str, ...]
    order: tuple[SortKey, ...]
    reads: str  # the lookup's read, for the detail line

    def columns_sql(self) -> str:
        return ", ".join([*self.eq, *(k.sql() for k in self.order)])


# issue: contacts(workspace_id, phone), conversations(contact_id, last_message_at desc),
# messages(conversation_id, created_at desc), contact_notes(contact_id, created_at desc); the
# conversations are read newest first with nulls last, so the index must say nulls last.
HOT_PATHS = {
    "contacts": HotPath("contacts", ("workspace_id", "phone"), (), "where workspace_id = … and phone = …"),
    "conversations": HotPath(
        "conversations", ("contact_id",), (SortKey("last_message_at", True, False),),
        "where contact_id = … order by last_message_at desc nulls last limit 3",
    ),
    "messages": HotPath(
        "messages", ("conversation_id",), (SortKey("created_at", True, True),),
        "where conversation_id = … order by created_at desc limit 20",
    ),
    "contact_notes": HotPath(
        "contact_notes", ("contact_id",), (SortKey("created_at", True, True),),
        "where contact_id = … order by created_at desc limit 10",
    ),
}


def serves(index: Index, eq: Iterable[str], order: Sequence[SortKey], all_eq: bool = True) -> bool:
    """True when a btree scan of ``index`` finds rows by equality on ``eq`` (its leading
    columns, in any order; with ``all_eq=False`` any subset of them) and returns them in
    ``order`` (read forwards or backwards)."""
    if not index.usable:
        return False
    eq_set = set(eq)
    cols = index.columns
    p = 0
    while p < len(cols) and cols[p] in eq_set and not (order and cols[p] == order[0].column):
        p += 1
    if all_eq and not eq_set <= {c for c in cols[:p] if c is not None}:
        return False
    if not order:
        return p > 0
    if p + len(order) > len(cols):
        return False
    forward = backward = True
    for i, key in enumerate(order):
        j = p + i
        if cols[j] != key.column:
            return False
        same = index.desc[j] == key.desc and index.nulls_first[j] == key.nulls_first
        flipped = index.desc[j] != key.desc and index.nulls_first[j] != key.nulls_first
        forward, backward = forward and same, backward and flipped
    return forward or backward


def index_name(table: str, columns: Sequence[str]) -> str:
    name = f"{table}_{'_'.join(re.sub(r'[^a-z0-9_]', '', c.split(' ')[0].lower()) for c in columns)}_idx"
    return name[:63]


def create_index(table: str, columns: Sequence[str], db: Database | None = None) -> str:
    """``create index concurrently`` (no write lock on a live table) under a name not taken on the table."""
    name = index_name(table, [c.split(" ")[0] for c in columns])
    taken = {i.name for i in db.indexes} if db is not None else set()
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name[:59]}_{n}"
    schema = db.pgrst.schema if db is not None else "public"
    return f"create index concurrently if not exists {candidate} on {schema}.{table} ({', '.join(columns)});"


# ------------------------------------------------------------------------------ catalog checks


def missing_hot_index(db: Database, plans: Mapping[str, Sequence[PlanSummary]]) -> list[Finding]:
    out = []
    for table, hot in HOT_PATHS.items():
        if table not in db.rls_enabled:
            continue
        if any(serves(i, hot.eq, hot.order) for i in db.indexes_of(table)):
            continue
        read = _rows_read_by_table(plans).get(table, 0.0)
        rows = db.row_estimates.get(table, 0)
        out.append(Finding(
            code="missing_hot_index",
            severity="high" if rows >= 10_000 or read >= SEQ_SCAN_MIN_ROWS else "medium",
            table=table,
            detail=(f"no index serves the lookup's read of {table} ({hot.reads}): "
                    f"about {rows:,} rows in the table; the sampled plans read {read:,.0f} of them per lookup (median)"),
            fix=create_index(table, [*hot.eq, *(k.sql() for k in hot.order)], db),
            statements=sorted(n for n, ps in plans.items() if any(s.table == table for p in ps for s in p.scans)),
            evidence={"wanted": f"{table}({hot.columns_sql()})", "table_rows_estimate": rows,
                      "indexes": [i.definition for i in db.indexes_of(table)]},
            cost_ms=read / 1000.0,
        ))
    return out


def unindexed_fk(db: Database) -> list[Finding]:
    """splinter's 0001: no valid index whose leading columns are the foreign key's, in order."""
    out = []
    for fk in db.pgrst.foreign_keys:
        if fk.table not in LOOKUP_TABLES:
            continue
        n = len(fk.columns)
        covered = any(i.valid and not i.partial and i.columns[:n] == fk.columns for i in db.indexes_of(fk.table))
        if covered:
            continue
        joined = fk.columns in (("contact_id",), ("conversation_id",)) and fk.table in HOT_TABLES
        out.append(Finding(
            code="unindexed_fk",
            severity="medium" if joined else "low",
            table=fk.table,
            detail=(f"foreign key {fk.name} {fk.table}({', '.join(fk.columns)}) → {fk.foreign} has no index "
                    f"leading with its columns: embedding {fk.table} under {fk.foreign} and deleting {fk.foreign} "
                    f"rows scan {fk.table}"),
            fix=create_index(fk.table, list(fk.columns), db),
            evidence={"constraint": fk.name, "table_rows_estimate": db.row_estimates.get(fk.table, 0)},
            cost_ms=0.0,
        ))
    return out


# ------------------------------------------------------------------------------ plan checks


def _median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _rows_read_by_table(plans: Mapping[str, Sequence[PlanSummary]]) -> dict[str, float]:
    """Median, over the samples, of the rows a lookup statement reads from each table (max over statements)."""
    out: dict[str, float] = {}
    for samples in plans.values():
        tables = {s.table for p in samples for s in p.scans}
        for t in tables:
            med = _median([sum(s.rows_read for s in p.scans if s.table == t) for p in samples])
            out[t] = max(out.get(t, 0.0), med)
    return out


def seq_scan_hot_path(plans: Mapping[str, Sequence[PlanSummary]], db: Database | None) -> list[Finding]:
    by_table: dict[str, list[tuple[str, float, float]]] = {}
    for name, samples in plans.items():
        for table in HOT_TABLES:
            per_sample = [[s for s in p.scans if s.table == table and s.node == "Seq Scan"] for p in samples]
            if not any(per_sample):
                continue
            read = _median([sum(s.rows_read for s in scans) for scans in per_sample])
            if read < SEQ_SCAN_MIN_ROWS:
                continue
            exec_ms = _median([p.execution_ms or 0.0 for p in samples])
            by_table.setdefault(table, []).append((name, read, exec_ms))
    out = []
    for table, hits in sorted(by_table.items()):
        read = max(r for _, r, _ in hits)
        hot = HOT_PATHS[table]
        served = db is not None and any(serves(i, hot.eq, hot.order) for i in db.indexes_of(table))
        if db is None:
            fix = f"if no index serves it: {create_index(table, [*hot.eq, *(k.sql() for k in hot.order)])}"
        elif served:
            fix = f"analyze public.{table};  -- an index serving the lookup exists: refresh the planner's statistics"
        else:
            fix = create_index(table, [*hot.eq, *(k.sql() for k in hot.order)], db)
        out.append(Finding(
            code="seq_scan_hot_path",
            severity="high" if read >= 10 * SEQ_SCAN_MIN_ROWS else "medium",
            table=table,
            detail=(f"a sequential scan reads {read:,.0f} rows of {table} per lookup (median of the samples) in "
                    + ", ".join(f"{n} ({ms:.2f} ms execution)" for n, _, ms in hits)),
            fix=fix,
            statements=[n for n, _, _ in hits],
            evidence={"rows_read_median": read},
            cost_ms=max(ms for _, _, ms in hits),
        ))
    return out


def sort_without_index(plans: Mapping[str, Sequence[PlanSummary]], db: Database | None) -> list[Finding]:
    found: dict[tuple[str, tuple[str, ...], tuple[SortKey, ...]], list[tuple[str, float]]] = {}
    for name, samples in plans.items():
        for p in samples:
            for sort in p.sorts:
                scan = sort.scan
                if sort.table not in HOT_TABLES or scan is None or not sort.keys or scan.in_initplan:
                    continue
                if any(k.column in scan.any_columns for k in sort.keys) or scan.any_columns:
                    continue  # rows of several parents (= ANY): no single index scan returns them in order
                if db is not None and any(serves(i, scan.eq_columns, sort.keys, all_eq=False)
                                          for i in db.indexes_of(sort.table)):
                    continue  # an index gives the order; the planner sorted a few rows instead
                if db is None and max(sort.rows, scan.rows_read) < SEQ_SCAN_MIN_ROWS:
                    continue  # indexes unknown: a sort of a few rows may be the planner's choice
                key = (sort.table, scan.eq_columns, sort.keys)
                found.setdefault(key, []).append((name, sort.rows))
    out = []
    for (table, eq, keys), hits in sorted(found.items(), key=lambda kv: kv[0][0]):
        hot = HOT_PATHS.get(table)
        columns = ([*hot.eq, *(k.sql() for k in hot.order)] if hot and hot.order == keys and set(hot.eq) <= set(eq)
                   else [*eq, *(k.sql() for k in keys)])
        rows = _median([r for _, r in hits])
        names = sorted({n for n, _ in hits})
        where = f"where {' and '.join(c + ' = …' for c in eq)} " if eq else ""
        out.append(Finding(
            code="sort_without_index",
            severity="high" if rows >= SEQ_SCAN_MIN_ROWS else "medium",
            table=table,
            detail=(f"{', '.join(names)} sort{'s' if len(names) == 1 else ''} {table} rows "
                    f"({where}order by {', '.join(k.sql() for k in keys)}; {rows:,.0f} rows per sort, median)"
                    + ("" if db is not None else "; indexes not checked (no DATABASE_URL)")),
            fix=create_index(table, columns, db),
            statements=names,
            evidence={"sort_keys": [k.sql() for k in keys], "rows_sorted_median": rows},
            cost_ms=rows / 1000.0,
        ))
    return out


# ------------------------------------------------------------------------------ RLS

_CALL_PATTERNS = (
    r"auth\.(?:uid|jwt|role|email)\(\)",
    r"current_setting\('[^']*'(?:::text)?(?:,\s*(?:true|false))?\)",
)
_WRAPPED = re.compile(r"\(\s*SELECT\s+$", re.I)
_ALIAS_AFTER = re.compile(r"^\s+AS\s+\"?[\w$]+\"?\s*\)", re.I)


def bare_auth_calls(qual: str) -> list[tuple[int, int]]:
    """Spans of ``auth.uid()`` & co. not already inside a scalar sub-select ``( SELECT … AS x)``."""
    spans = []
    for pattern in _CALL_PATTERNS:
        for m in re.finditer(pattern, qual, re.I):
            before, after = qual[: m.start()], qual[m.end():]
            if _WRAPPED.search(before) and (_ALIAS_AFTER.match(after) or re.match(r"^\s*\)", after)):
                continue
            spans.append((m.start(), m.end()))
    return sorted(spans)


def rewrite(qual: str) -> str:
    """The policy expression with every bare auth call wrapped: ``(select auth.uid())``."""
    out, last = [], 0
    for start, end in bare_auth_calls(qual):
        out.append(qual[last:start])
        out.append(f"(select {qual[start:end]})")
        last = end
    out.append(qual[last:])
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _applies_to_reads(policy: Policy) -> bool:
    return policy.command in ("SELECT", "ALL") and bool({"authenticated", "public"} & set(policy.roles))


def rls_per_row_auth_call(plans: Mapping[str, Sequence[PlanSummary]], db: Database | None) -> list[Finding]:
    # per table the plans evaluate an auth call per row on: (statement, median evaluations, node)
    per_row: dict[str, list[tuple[str, float, str]]] = {}
    for name, samples in plans.items():
        tables = {c.table or "?" for p in samples for c in p.auth_calls if c.per_row}
        for t in tables:
            evals = _median([sum(c.evaluations for c in p.auth_calls if c.per_row and (c.table or "?") == t)
                             for p in samples])
            node = next(f"{c.node} on {c.alias or c.table} ({c.condition})" for p in samples for c in p.auth_calls
                        if c.per_row and (c.table or "?") == t)
            per_row.setdefault(t, []).append((name, evals, node))
    out = []
    flagged_tables: set[str] = set()
    if db is not None:
        for policy in db.policies:
            if policy.table not in LOOKUP_TABLES or not _applies_to_reads(policy) or not policy.qual:
                continue
            if not bare_auth_calls(policy.qual):
                continue
            flagged_tables.add(policy.table)
            direct = per_row.get(policy.table, [])
            # a policy's sub-select evaluating it per row of the table it reads (workspace_members …)
            via = [(t, hits) for t, hits in per_row.items()
                   if t != policy.table and re.search(rf"\b{re.escape(t)}\b", policy.qual)
                   and any(_scans(plans, n, policy.table) for n, _, _ in hits)]
            confirmed = direct or [h for _, hits in via for h in hits]
            evals = max((e for _, e, _ in confirmed), default=0.0)
            if direct:
                severity = "high" if evals >= AUTH_CALLS_HIGH else "medium"
                seen = f"the sampled plans evaluate it for every row read: {_hits(direct)}"
            elif confirmed:
                severity = "medium" if evals >= AUTH_CALLS_HIGH else "low"
                seen = f"the sampled plans evaluate it per row of the tables its sub-select reads: {_hits(confirmed)}"
            else:
                severity = "low"
                seen = "the sampled plans show no per-row evaluation (an index condition or a hashed sub-plan runs it once)"
            fix = f'alter policy "{policy.name}" on {db.pgrst.schema}.{policy.table} using ({rewrite(policy.qual)})'
            if policy.with_check and bare_auth_calls(policy.with_check):
                fix += f" with check ({rewrite(policy.with_check)})"
            out.append(Finding(
                code="rls_per_row_auth_call", severity=severity, table=policy.table,
                detail=(f'policy "{policy.name}" on {policy.table} calls '
                        f"{', '.join(sorted({policy.qual[s:e] for s, e in bare_auth_calls(policy.qual)}))} "
                        f"outside a scalar sub-select; {seen}"),
                fix=fix + ";",
                statements=sorted({n for n, _, _ in confirmed} or {n for n in plans if _scans(plans, n, policy.table)}),
                evidence={"policy": policy.name, "using": re.sub(r"\s+", " ", policy.qual),
                          "per_row_evaluations_median": evals},
                cost_ms=evals / 10_000.0,
            ))
    for table, hits in sorted(per_row.items()):
        if table in flagged_tables or any(re.search(rf"\b{re.escape(table)}\b", p.qual or "")
                                          for p in (db.policies if db else []) if p.table in flagged_tables):
            continue
        evals = max(e for _, e, _ in hits)
        out.append(Finding(
            code="rls_per_row_auth_call",
            severity="high" if evals >= AUTH_CALLS_HIGH else "medium",
            table=None if table == "?" else table,
            detail=f"the sampled plans evaluate auth.uid()/current_setting() for every row read: {_hits(hits)}"
                   + ("" if db is not None else " (policies not read: no DATABASE_URL)"),
            fix=(f"in the row level security policies of {table}, write (select auth.uid()) instead of auth.uid() "
                 "(and the same for auth.jwt(), current_setting(…)): evaluated once per statement"),
            statements=sorted(n for n, _, _ in hits),
            evidence={"per_row_evaluations_median": evals},
            cost_ms=evals / 10_000.0,
        ))
    return out


def _scans(plans: Mapping[str, Sequence[PlanSummary]], name: str, table: str) -> bool:
    return any(s.table == table for p in plans.get(name, ()) for s in p.scans)


def _hits(hits: Sequence[tuple[str, float, str]]) -> str:
    return "; ".join(f"{n}: {node}, {e:,.1f} evaluations per lookup (median)" for n, e, node in hits)
