"""``python -m reports diagnose``: the plans of every Supabase lookup statement, and what would fix them.

For N sampled workload phones it gets the plan of every statement of every
Supabase path (the 4 requests of today's path, the nested select, the RPC) as
PostgREST runs them (:mod:`reports.diagnose.sampling`), checks the catalog
through ``DATABASE_URL`` when set, reads a run's artifact when given
(``--run``), and writes ``diagnosis.json`` (docs/diagnosis.md): per statement
the planning and execution time (median over the samples) and scans, and the
findings, worst first, also printed as a short table.

Exit codes: 0 (with or without findings), 2 bad input (one line), 1 internal error.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reports.diagnose import catalog as catalog_mod
from reports.diagnose import findings as F
from reports.diagnose import pgstat, runs, sampling
from reports.diagnose.plans import PlanError, PlanSummary, summarize
from reports.load import BadInput

FORMAT = "crm-diagnosis/1"
DEFAULT_SAMPLES = 20
FUNCTION_BODY = " (function body)"


def add_parser(sub: Any, parser_class: type[argparse.ArgumentParser] | None = None) -> argparse.ArgumentParser:
    """Register ``diagnose`` on ``python -m reports``'s subcommands."""
    d = sub.add_parser(
        "diagnose", help="plans of the Supabase lookup statements, and findings with fixes",
        description="The plans of the Supabase lookup statements, as PostgREST runs them, for sampled workload "
                    "phones; findings with their fixes. Writes diagnosis.json (docs/diagnosis.md).",
    )
    d.add_argument("--workload", type=Path, default=None,
                   help="the phones to sample (workload.json); default: TEST_WORKSPACE_ID/TEST_PHONE, "
                        "else the run's folder's workload.json (--run), else runs/workload.json")
    d.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, help="workload phones to sample (default %(default)s)")
    d.add_argument("--run", metavar="PREFIX", default=None,
                   help="a run (Locust --csv prefix or its folder) for round_trips and pool_saturation")
    d.add_argument("--out", type=Path, default=None, help="output directory (default reports/out/diagnose-<UTC time>/)")
    d.add_argument("--via", choices=("auto", "postgrest", "database"), default="auto",
                   help="how plans are obtained: PostgREST's plan media type, EXPLAIN through DATABASE_URL, "
                        "or the first that works (default)")
    d.add_argument("--max-rows", type=int, default=sampling.pgrst.DEFAULT_MAX_ROWS,
                   help="PostgREST's db-max-rows, for the statements written for DATABASE_URL (default %(default)s, "
                        "hosted Supabase's); 0 for none")
    d.add_argument("--seed", type=int, default=0, help="sampling seed (default %(default)s)")
    d.add_argument("--timeout", type=float, default=30.0, help="seconds per request or statement (default %(default)s)")
    return d


# ------------------------------------------------------------------------------ inputs


@dataclass
class Inputs:
    settings: Any
    keys: list[Any]
    identities: dict[str, sampling.Identity]  # workspace id -> who the lookups run as
    workload_source: str
    database_url: str | None
    paths: Any


def _settings() -> Any:
    from harness.settings import SettingsError, load_settings

    try:
        return load_settings()
    except SettingsError as exc:
        raise BadInput(str(exc)) from None


def _workload(settings: Any, explicit: Path | None, run: str | None) -> Any:
    from harness.workload import WorkloadError, load_file, resolve

    try:
        if explicit is not None:
            return load_file(explicit)
        candidates = []
        if run:
            folder = Path(run) if Path(run).is_dir() else Path(run).parent
            candidates.append(folder / "workload.json")
        candidates.append(Path("runs") / "workload.json")
        path = next((c for c in candidates if c.is_file()), candidates[-1])
        return resolve(settings, str(path))
    except WorkloadError as exc:
        raise BadInput(str(exc)) from None


def gather(args: argparse.Namespace) -> Inputs:
    """Settings, workload, sampled phones and who each lookup runs as; BadInput on anything missing."""
    from harness.paths import Paths
    from harness.targets import Endpoints
    from harness.tokens import member_tokens

    if args.samples < 1:
        raise BadInput(f"--samples must be at least 1, got {args.samples}")
    settings = _settings()
    workload = _workload(settings, args.workload, args.run)
    rng = random.Random(args.seed)
    distinct = list(dict.fromkeys(workload.known))
    keys = rng.sample(distinct, min(args.samples, len(distinct)))
    database_url = settings.get("DATABASE_URL")
    supabase_url = settings.get("SUPABASE_URL")
    apikey = settings.get("SUPABASE_ANON_KEY") or settings.get("SUPABASE_SERVICE_ROLE_KEY")
    if args.via == "postgrest" and not (supabase_url and apikey):
        raise BadInput("--via postgrest needs SUPABASE_URL and SUPABASE_ANON_KEY")
    if args.via == "database" and not database_url:
        raise BadInput("--via database needs DATABASE_URL")
    if not database_url and not (supabase_url and apikey):
        raise BadInput("nothing to diagnose: set SUPABASE_URL and SUPABASE_ANON_KEY (plans from PostgREST), "
                       "or DATABASE_URL (EXPLAIN through the database)")
    # the member's token as Bearer with the anon key as apikey: role `authenticated`, RLS on
    endpoints = Endpoints(supabase_url=supabase_url.rstrip("/") if supabase_url else "http://unused",
                          supabase_key=apikey, supabase_bearer=None, convex_token=settings.get("CONVEX_AUTH_TOKEN"))
    tokens = member_tokens(settings, workload) if supabase_url else {}
    paths = Paths(endpoints, tokens)
    identities: dict[str, sampling.Identity] = {}
    for ws in {k.workspace_id for k in keys}:
        token = paths.token_for(ws)
        claims = sampling.claims_of(token) if token else {}
        if not claims.get("sub") and workload.members.get(ws):
            claims = {"sub": workload.members[ws], "role": "authenticated", "aud": "authenticated"}
        if token or claims.get("sub"):
            identities[ws] = sampling.Identity(token, claims)
    usable = [k for k in keys if k.workspace_id in identities]
    if not usable:
        raise BadInput("no member to run the lookups as: set CONVEX_AUTH_TOKEN (a member's Supabase access token), "
                       "or give a workload whose workspaces name a member_user_id (python -m seed workload)")
    return Inputs(settings, usable, identities, workload.source, database_url, paths)


# ------------------------------------------------------------------------------ sampling


@dataclass
class Collected:
    plans: dict[str, list[PlanSummary]] = field(default_factory=dict)
    raw: dict[str, list[tuple[float, Any]]] = field(default_factory=dict)  # (execution ms, plan)
    via: dict[str, str] = field(default_factory=dict)
    sql: dict[str, str] = field(default_factory=dict)
    failures: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, sample: sampling.Sample) -> None:
        summary = summarize(sample.plan)
        self.plans.setdefault(sample.name, []).append(summary)
        self.raw.setdefault(sample.name, []).append((summary.execution_ms or 0.0, sample.plan))
        self.via[sample.name] = sample.via
        if sample.sql and sample.name not in self.sql:
            self.sql[sample.name] = sample.sql


def _planners(inputs: Inputs, args: argparse.Namespace, conn: Any, db: Any) -> list[sampling.Planner]:
    out: list[sampling.Planner] = []
    if args.via in ("auto", "postgrest") and inputs.settings.get("SUPABASE_URL") and any(
            i.token for i in inputs.identities.values()):
        import httpx

        out.append(sampling.PostgrestPlanner(httpx.Client(timeout=args.timeout, follow_redirects=False)))
    if args.via in ("auto", "database") and conn is not None:
        out.append(sampling.DatabasePlanner(conn, db.pgrst, args.max_rows or None))
    if not out:
        raise BadInput("no way to get plans: the member tokens are missing for PostgREST and DATABASE_URL is not set")
    return out


ENABLE_PLANS = "alter role authenticator set pgrst.db_plan_enabled to 'true'; notify pgrst, 'reload config'"


def collect(inputs: Inputs, args: argparse.Namespace, conn: Any, db: Any) -> Collected:
    got = Collected()
    planners = _planners(inputs, args, conn, db)
    for key in inputs.keys:
        identity = inputs.identities[key.workspace_id]
        found_by: set[str] = set()
        for target in sampling.LOOKUP_TARGETS:
            while True:
                # a workspace known by its member's id only (no token) is explained through the database
                usable = [p for p in planners if identity.token or isinstance(p, sampling.DatabasePlanner)]
                if not usable:
                    got.failures.setdefault(target, []).append(
                        f"workspace {key.workspace_id}: no member token, and DATABASE_URL is not set")
                    break
                try:
                    samples, found = sampling.drive(inputs.paths, target, key, identity, usable[0])
                    if found:
                        found_by.add(target)
                        for sample in samples:
                            got.add(sample)
                    else:  # the plan of a miss is not the lookup's
                        got.failures.setdefault(target, []).append(
                            f"phone {key.phone} of workspace {key.workspace_id}: not found as the member "
                            "(not in the data, or not the member's workspace): left out")
                except sampling.PlansDisabled:
                    host = inputs.settings.describe().get("SUPABASE_URL", "SUPABASE_URL")
                    planners = [p for p in planners if not isinstance(p, sampling.PostgrestPlanner)]
                    if not planners:
                        other = ("use --via auto with DATABASE_URL" if args.via == "postgrest"
                                 else "set DATABASE_URL")
                        why = "" if args.via == "postgrest" else " and DATABASE_URL is not set"
                        raise BadInput(f"plans are not enabled on {host} (406 PGRST107){why}: enable them "
                                       f"({ENABLE_PLANS}) or {other}") from None
                    got.notes.append(f"{host} does not serve plans (406 PGRST107): EXPLAIN through DATABASE_URL instead")
                    continue
                except (sampling.CallFailed, PlanError) as exc:
                    got.failures.setdefault(target, []).append(str(exc))
                break
        if conn is not None and "supabase_rpc" in found_by:
            _function_body(inputs, key, conn, db, args, got)
    if not got.plans:
        first = next((v[0] for v in got.failures.values() if v), "no statement answered")
        raise BadInput(f"no plan obtained: {first}")
    return got


def _function_body(inputs: Inputs, key: Any, conn: Any, db: Any, args: argparse.Namespace, got: Collected) -> None:
    """The RPC's own statement, explained through DATABASE_URL (PostgREST's plan shows only the call)."""
    req = inputs.paths.first("supabase_rpc", key)
    statement = sampling.function_body_statement(conn, db.pgrst, "get_contact_context", req.body)
    if statement is None:
        return
    planner = sampling.DatabasePlanner(conn, db.pgrst, args.max_rows or None)
    name = f"supabase_rpc {req.what}{FUNCTION_BODY}"
    try:
        _, plan = planner.execute(statement, inputs.identities[key.workspace_id], name)
    except sampling.CallFailed as exc:
        got.failures.setdefault("supabase_rpc", []).append(str(exc))
        return
    got.add(sampling.Sample(name, "supabase_rpc", req.what + FUNCTION_BODY, sampling.VIA_DATABASE, plan, statement.sql))


# ------------------------------------------------------------------------------ the document


def _stat(values: Sequence[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "max": None}
    return {"median": round(float(statistics.median(vals)), 3), "max": round(max(vals), 3)}


def _statement_json(name: str, got: Collected) -> dict[str, Any]:
    samples = got.plans[name]
    target, _, call = name.partition(" ")
    scans: dict[tuple[str, str, str | None], list[float]] = {}
    for p in samples:
        for s in p.scans:
            scans.setdefault((s.node, s.table, s.index), []).append(s.rows_read)
    sorts: dict[tuple[str | None, tuple[str, ...]], list[float]] = {}
    for p in samples:
        for srt in p.sorts:
            sorts.setdefault((srt.table, srt.raw_keys), []).append(srt.rows)
    auth: dict[tuple[str | None, str, str], list[float]] = {}
    for p in samples:
        for c in p.auth_calls:
            if c.per_row:
                auth.setdefault((c.table, c.node, c.condition), []).append(c.evaluations)
    raw = sorted(got.raw[name], key=lambda x: x[0])
    representative = raw[len(raw) // 2][1]
    return {
        "name": name, "target": target, "call": call, "via": got.via[name], "samples": len(samples),
        "planning_ms": _stat([p.planning_ms for p in samples]),
        "execution_ms": _stat([p.execution_ms for p in samples]),
        "shared_blocks": {"hit": _stat([float(p.shared_hit) for p in samples])["median"],
                          "read": _stat([float(p.shared_read) for p in samples])["median"]},
        "scans": [{"node": n, "table": t, "index": i, "samples": len(v),
                   "rows_read_median": round(float(statistics.median(v)), 1)}
                  for (n, t, i), v in sorted(scans.items(), key=lambda kv: (kv[0][1], kv[0][0]))],
        "sorts": [{"table": t, "keys": list(k), "samples": len(v), "rows_median": round(float(statistics.median(v)), 1)}
                  for (t, k), v in sorts.items()],
        "per_row_auth_calls": [{"table": t, "node": n, "condition": c, "samples": len(v),
                                "evaluations_median": round(float(statistics.median(v)), 1)}
                               for (t, n, c), v in auth.items()],
        "sql": got.sql.get(name),
        "plan": representative,
    }


_ORDER = ["supabase_rest contacts", "supabase_rest conversations", "supabase_rest messages",
          "supabase_rest contact_notes", "supabase_nested contacts nested", "supabase_rpc rpc/get_contact_context",
          "supabase_rpc rpc/get_contact_context" + FUNCTION_BODY]


def document(inputs: Inputs, got: Collected, db: Any, run: runs.RunFacts | None, found: list[F.Finding],
             elapsed_s: float, args: argparse.Namespace) -> dict[str, Any]:
    names = sorted(got.plans, key=lambda n: (_ORDER.index(n) if n in _ORDER else len(_ORDER), n))
    skipped = []
    if db is None:
        skipped.append("missing_hot_index, unindexed_fk and the policies of rls_per_row_auth_call: no DATABASE_URL")
    if run is None:
        skipped.append("round_trips, pool_saturation: no --run")
    return {
        "format": FORMAT,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "elapsed_s": round(elapsed_s, 2),
        "sandbox": bool(inputs.settings.is_sandbox),
        "supabase": inputs.settings.describe().get("SUPABASE_URL"),
        "database": pgstat.database_label(inputs.database_url) if inputs.database_url else None,
        "postgres_version": db.server_version if db is not None else None,
        "workload": inputs.workload_source,
        "samples": {"requested": args.samples, "phones": len(inputs.keys), "seed": args.seed},
        "run": run.prefix if run is not None else None,
        "notes": got.notes,
        "checks_skipped": skipped,
        "failures": {t: sorted(set(v))[:5] for t, v in got.failures.items()},
        "statements": [_statement_json(n, got) for n in names],
        "findings": [f.to_json() for f in found],
    }


def text_table(doc: dict[str, Any]) -> str:
    lines = []
    if doc.get("sandbox"):
        lines.append("SANDBOX: plans of the local stack, not of hosted Supabase.")
    lines.append(f"{'statement':<54} {'via':<12} {'n':>3} {'plan ms':>8} {'exec ms':>8}  scans")
    for s in doc["statements"]:
        scans = ", ".join(sorted({f"{x['node']} {x['table']}" for x in s["scans"]
                                  if x["table"] not in ("workspace_members",)}))[:60]
        lines.append(f"{s['name']:<54} {s['via']:<12} {s['samples']:>3} {s['planning_ms']['median'] or 0:>8.2f} "
                     f"{s['execution_ms']['median'] or 0:>8.2f}  {scans}")
    lines.append("")
    if not doc["findings"]:
        lines.append("findings: none")
    else:
        lines.append(f"{'severity':<8} {'code':<22} {'table':<15} detail")
        for f in doc["findings"]:
            detail = f["detail"] if len(f["detail"]) <= 100 else f["detail"][:99] + "…"
            lines.append(f"{f['severity']:<8} {f['code']:<22} {f['table'] or '-':<15} {detail}")
            fix = f["fix"] if len(f["fix"]) <= 160 else f["fix"][:159] + "…"
            lines.append(f"{'':<8} {'fix:':<22} {fix}")
    for note in doc["notes"]:
        lines.append(f"note: {note}")
    for skipped in doc["checks_skipped"]:
        lines.append(f"not checked: {skipped}")
    for target, problems in doc["failures"].items():
        more = f" (and {len(problems) - 1} more in diagnosis.json)" if len(problems) > 1 else ""
        lines.append(f"left out: {target}: {problems[0]}{more}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ the command


def diagnose(args: argparse.Namespace) -> tuple[dict[str, Any], Path]:
    """Run the diagnosis; return (the document, the output directory written)."""
    t0 = time.perf_counter()
    inputs = gather(args)
    run = runs.read_run(args.run) if args.run else None
    conn, db = None, None
    if inputs.database_url:
        try:
            conn = pgstat.connect(inputs.database_url, args.timeout)
        except pgstat.StatsUnavailable as exc:
            raise BadInput(str(exc)) from None
        # schema-qualified names in the deparsed policies: the fix runs whatever the search_path
        conn.execute("select set_config('search_path', '', false)")
        db = catalog_mod.load(conn)
    try:
        got = collect(inputs, args, conn, db)
    finally:
        if conn is not None:
            conn.close()
    found: list[F.Finding] = []
    if db is not None:
        found += F.missing_hot_index(db, got.plans)
        found += F.unindexed_fk(db)
    found += F.seq_scan_hot_path(got.plans, db)
    found += F.sort_without_index(got.plans, db)
    found += F.rls_per_row_auth_call(got.plans, db)
    if run is not None:
        found += runs.round_trips(run)
        found += runs.pool_saturation(run)
    out = args.out or Path("reports") / "out" / f"diagnose-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    doc = document(inputs, got, db, run, F.worst_first(found), time.perf_counter() - t0, args)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "diagnosis.json").write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"{out}: cannot write diagnosis.json ({exc.strerror or exc})") from None
    return doc, out


def cmd_diagnose(args: argparse.Namespace) -> int:
    doc, out = diagnose(args)
    try:
        sys.stdout.write(text_table(doc))
        sys.stdout.write(f"wrote {out}/diagnosis.json ({doc['elapsed_s']:.1f} s)\n")
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    return 0
