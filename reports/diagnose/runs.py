"""What a load run measured, for the findings only a run can give: ``round_trips``, ``pool_saturation``.

``diagnose --run PREFIX`` reads the run's HDR artifact (``PREFIX_hdr.json``,
docs/formats.md), or Locust's ``PREFIX_stats.csv`` when there is none:

- per HTTP call (``"<target> <call>"``, whole run and per step): the client time's
  P50, the P50 of each of its ``phases`` (``connect``, ``ttfb``, ``download``,
  ``server``: the response's ``Server-Timing``) and the mean of each
  ``server_metrics`` entry (PostgREST's ``jwt parse plan transaction response``);
- per target: the lookup's P50 and its round trips (``metadata.targets``);
- ``metadata.database``: ``activity`` samples (:func:`reports.diagnose.pgstat.activity_sample`),
  and per step ``steps[].statements`` (:func:`reports.diagnose.pgstat.delta`).

Without phases, server and network time cannot be told apart: ``round_trips``
then says it counts the calls' whole client time.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contracts import TARGETS, TRANSACTION_TYPES, ArtifactError, read_artifact
from reports.diagnose.findings import Finding
from reports.load import PER_MS, BadInput, decode_histogram, read_stats, resolve_prefix

# calls of the write path: not part of a lookup's round trips
WRITE_CALLS = frozenset({"contacts id", "conversations newest", "messages insert", "conversations update"})
POOL_ROLE = "authenticator"  # the role PostgREST (and the sandbox gateway) logs in as
SINGLE_REQUEST = ("supabase_nested", "supabase_rpc")


@dataclass
class CallTimes:
    name: str
    count: int
    client_p50: float | None
    phases_p50: dict[str, float] = field(default_factory=dict)
    server_means: dict[str, float] = field(default_factory=dict)  # Server-Timing metric -> mean ms

    @property
    def target(self) -> str:
        return self.name.split(" ", 1)[0]

    @property
    def what(self) -> str:
        return self.name.split(" ", 1)[1] if " " in self.name else ""

    @property
    def server_p50(self) -> float | None:
        """P50 of the ``server`` phase (the response's Server-Timing), else None (no server timing)."""
        return self.phases_p50.get("server")

    def transaction(self) -> tuple[float, str] | None:
        """PostgREST's ``transaction`` time (pool wait + statements): its P50 as a phase, else its mean."""
        if "transaction" in self.phases_p50:
            return self.phases_p50["transaction"], "P50"
        if "transaction" in self.server_means:
            return self.server_means["transaction"], "mean"
        return None


@dataclass
class RunFacts:
    prefix: str
    source: str  # "hdr", "csv", or "hdr+csv" (lookups from the artifact, calls from the CSV)
    calls: dict[str, CallTimes] = field(default_factory=dict)
    lookups_p50: dict[str, float] = field(default_factory=dict)
    round_trips: dict[str, int] = field(default_factory=dict)
    database: dict[str, Any] = field(default_factory=dict)
    step_calls: dict[int, dict[str, CallTimes]] = field(default_factory=dict)
    step_users: dict[int, int] = field(default_factory=dict)


def _p50(blob: Any, unit: str, where: str) -> float | None:
    hist = decode_histogram(blob, where)
    if hist.get_total_count() == 0:
        return None
    return float(hist.get_value_at_percentile(50)) / PER_MS.get(unit, 1000.0)


def _phases(raw: Any, unit: str, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: 'phases' must be an object of phase name -> histogram")
    out = {}
    for name, value in raw.items():
        if isinstance(value, dict) and "hdr" in value:
            p = _p50(value["hdr"], str(value.get("unit", unit)), f"{where} phases.{name}")
        elif isinstance(value, dict) and isinstance(value.get("p50_ms"), int | float):
            p = float(value["p50_ms"])
        else:
            raise BadInput(f"{where}: phases.{name} needs 'hdr' (a histogram) or 'p50_ms'")
        if p is not None:
            out[str(name)] = p
    return out


def read_run(prefix_arg: str) -> RunFacts:
    """The run's per-call P50s (and phases), lookup P50s, round trips and database record."""
    prefix = resolve_prefix(prefix_arg)
    artifact = prefix.with_name(prefix.name + "_hdr.json")
    stats = prefix.with_name(prefix.name + "_stats.csv")
    if artifact.is_file():
        run = _from_artifact(prefix, artifact)
        if not run.calls and stats.is_file():  # artifacts of format /1 hold the lookups only
            from_csv = _from_csv(prefix, stats)
            run.calls, run.source = from_csv.calls, "hdr+csv"
            run.lookups_p50 = {**from_csv.lookups_p50, **run.lookups_p50}
        return run
    if stats.is_file():
        return _from_csv(prefix, stats)
    raise BadInput(f"{prefix_arg}: no run there ({artifact.name} and {stats.name} not found)")


def _means(raw: Any, where: str) -> dict[str, float]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise BadInput(f"{where}: 'server_metrics' must be an object of metric -> {{sum_ms, count}}")
    out = {}
    for name, value in raw.items():
        if not (isinstance(value, dict) and isinstance(value.get("sum_ms"), int | float)
                and isinstance(value.get("count"), int)):
            raise BadInput(f"{where}: server_metrics.{name} needs 'sum_ms' and 'count'")
        if value["count"] > 0:
            out[str(name)] = float(value["sum_ms"]) / value["count"]
    return out


def _from_artifact(prefix: Path, path: Path) -> RunFacts:
    try:
        _, meta, entries = read_artifact(path)
    except ArtifactError as exc:
        raise BadInput(str(exc)) from None
    run = RunFacts(str(prefix), "hdr")
    for t, info in (meta.get("targets") or {}).items():
        if isinstance(info, dict) and isinstance(info.get("round_trips"), int):
            run.round_trips[t] = info["round_trips"]
    for step in meta.get("steps") or []:
        if isinstance(step, dict) and isinstance(step.get("index"), int) and isinstance(step.get("users"), int):
            run.step_users[step["index"]] = step["users"]
    db = meta.get("database")
    run.database = db if isinstance(db, dict) else {}
    for i, e in enumerate(entries):
        where = f"{path} entries[{i}]"
        unit = str(e.get("unit", "us"))
        step = e.get("step")
        p50 = _p50(e.get("hdr"), unit, f"{where} ({e['name']})")
        if e["type"] == "lookup":
            if step is None and p50 is not None:
                run.lookups_p50[e["name"]] = p50
            continue
        if e["type"] in TRANSACTION_TYPES or " " not in e["name"]:
            continue
        call = CallTimes(e["name"], int(e.get("count") or 0), p50, _phases(e.get("phases"), unit, where),
                         _means(e.get("server_metrics"), where))
        if step is None:
            run.calls[call.name] = call
        elif isinstance(step, int):
            run.step_calls.setdefault(step, {})[call.name] = call
    return run


def _from_csv(prefix: Path, path: Path) -> RunFacts:
    run = RunFacts(str(prefix), "csv")
    for row in read_stats(path):
        if row.name == "Aggregated":
            continue
        if row.type == "lookup" and row.p50 is not None:
            run.lookups_p50[row.name] = row.p50
        elif row.type not in ("lookup-miss", "write") and " " in row.name:
            run.calls[row.name] = CallTimes(row.name, row.count, row.p50)
    return run


# ------------------------------------------------------------------------------ findings


def round_trips(run: RunFacts) -> list[Finding]:
    out = []
    for target, info in TARGETS.items():
        n = run.round_trips.get(target, info.round_trips)
        calls = [c for c in run.calls.values() if c.target == target and c.what not in WRITE_CALLS
                 and c.client_p50 is not None and c.count > 0]
        if n < 2 or not calls:
            continue
        timed = all(c.server_p50 is not None for c in calls)
        per_call = [(c.client_p50 or 0.0) - (c.server_p50 or 0.0) if timed else (c.client_p50 or 0.0) for c in calls]
        overhead = max(0.0, float(statistics.median(per_call)))
        cost = (n - 1) * overhead
        lookup = run.lookups_p50.get(target)
        share = cost / lookup if lookup else None
        if share is None:
            severity = "medium"
        elif share >= 0.5:
            severity = "high"
        elif share >= 0.25:
            severity = "medium"
        else:
            severity = "low"
        basis = ("the measured per-call non-server time (client P50 − server P50, median over its calls)"
                 if timed else
                 "the calls' client time (the run has no server timing: network, gateway and database together)")
        others = [f"{t} P50 {run.lookups_p50[t]:.1f} ms" for t in SINGLE_REQUEST if t in run.lookups_p50]
        detail = (f"{target} makes {n} sequential requests per lookup; with {basis}, {overhead:.2f} ms each, "
                  f"{n - 1} of them cost {cost:.1f} ms at P50"
                  + (f", {share:.0%} of its lookup P50 ({lookup:.1f} ms)" if lookup and share is not None else "")
                  + (f". One request in the same run: {', '.join(others)}" if others else ""))
        out.append(Finding(
            code="round_trips", severity=severity, table=None, detail=detail,
            fix=("one request per lookup: the nested select (GET /rest/v1/contacts?select=…,"
                 "conversations(…,messages(…)),contact_notes(…)) or POST /rest/v1/rpc/get_contact_context"),
            statements=sorted(c.name for c in calls),
            evidence={"requests": n, "per_call_ms": round(overhead, 3), "cost_ms_p50": round(cost, 3),
                      "basis": "non-server" if timed else "client", "lookup_p50_ms": lookup,
                      "calls": {c.name: {"client_p50_ms": c.client_p50, "server_p50_ms": c.server_p50} for c in calls}},
            cost_ms=cost,
        ))
    return out


def _pool_counts(sample: dict[str, Any]) -> tuple[int, int] | None:
    role = (sample.get("by_role") or {}).get(POOL_ROLE)
    if not isinstance(role, dict):
        return None
    return int(role.get("active", 0)), int(role.get("total", 0))


def pool_saturation(run: RunFacts) -> list[Finding]:
    out = []
    samples = [s for s in run.database.get("activity") or [] if isinstance(s, dict)]
    pool = [c for c in (_pool_counts(s) for s in samples) if c is not None]
    if pool:
        ceiling = max(total for _, total in pool)
        busy = [a for a, _ in pool if ceiling and a >= ceiling]
        share = len(busy) / len(pool)
        if ceiling and len(busy) >= 2 and share >= 0.1:
            out.append(Finding(
                code="pool_saturation", severity="high" if share >= 0.5 else "medium", table=None,
                detail=(f"every one of PostgREST's {ceiling} connections ({POOL_ROLE}) was running a statement in "
                        f"{len(busy)} of {len(pool)} activity samples ({share:.0%} of the measured window): "
                        "requests waited for a pooled connection"),
                fix=("fewer requests per lookup first (see round_trips), then a larger PostgREST pool "
                     "(db-pool / PGRST_DB_POOL; on hosted Supabase the pool follows the compute size)"),
                evidence={"pool_connections": ceiling, "busy_samples": len(busy), "samples": len(pool)},
                cost_ms=share * 100,
            ))
    limit_hits = [s for s in samples if isinstance(s.get("max_connections"), int)
                  and s.get("total", 0) >= 0.9 * s["max_connections"]]
    if limit_hits:
        worst = max(limit_hits, key=lambda s: s.get("total", 0))
        out.append(Finding(
            code="pool_saturation", severity="high", table=None,
            detail=(f"client connections reached {worst['total']} of max_connections {worst['max_connections']} "
                    f"in {len(limit_hits)} of {len(samples)} activity samples"),
            fix="a connection pooler for direct clients (Supavisor), fewer idle connections, or a larger instance",
            evidence={"max_connections": worst["max_connections"], "peak_total": worst["total"]},
            cost_ms=100.0,
        ))
    out.extend(_transaction_growth(run))
    return out


def _step_exec_ms(run: RunFacts) -> dict[int, float]:
    """Per step, the median mean execution time of the Supabase lookup statements."""
    out = {}
    for step in run.database.get("steps") or []:
        if not isinstance(step, dict) or not isinstance(step.get("index"), int):
            continue
        means = [float(r["mean_exec_time_ms"]) for r in step.get("statements") or []
                 if isinstance(r, dict) and str(r.get("target") or "").startswith("supabase_")
                 and r.get("target") != "supabase_any" and isinstance(r.get("mean_exec_time_ms"), int | float)]
        if means:
            out[step["index"]] = float(statistics.median(means))
    return out


def _transaction_growth(run: RunFacts) -> list[Finding]:
    per_step, kind = {}, "mean"
    for step, calls in run.step_calls.items():
        tx = [t for t in (c.transaction() for c in calls.values() if c.target.startswith("supabase")) if t]
        if tx:
            per_step[step] = float(statistics.median(v for v, _ in tx))
            kind = tx[0][1]
    exec_ms = _step_exec_ms(run)
    steps = sorted(s for s in per_step if s in exec_ms and s in run.step_users)
    if len(steps) < 2:
        return []
    lo, hi = steps[0], steps[-1]
    tx_lo, tx_hi, ex_lo, ex_hi = per_step[lo], per_step[hi], exec_ms[lo], exec_ms[hi]
    grew = tx_hi - tx_lo >= max(1.0, tx_lo)
    flat = ex_hi <= 1.5 * ex_lo + 0.5
    if not (grew and flat):
        return []
    return [Finding(
        code="pool_saturation", severity="medium", table=None,
        detail=(f"PostgREST's transaction time ({kind}) grew from {tx_lo:.1f} ms at {run.step_users[lo]} users to "
                f"{tx_hi:.1f} ms at {run.step_users[hi]} users while the statements' execution stayed at "
                f"{ex_lo:.2f} → {ex_hi:.2f} ms: the growth is waiting for a pooled connection"),
        fix=("fewer requests per lookup first (see round_trips), then a larger PostgREST pool "
             "(db-pool / PGRST_DB_POOL)"),
        evidence={"transaction_p50_ms": {str(run.step_users[s]): per_step[s] for s in steps},
                  "execution_mean_ms": {str(run.step_users[s]): exec_ms[s] for s in steps}},
        cost_ms=tx_hi - tx_lo,
    )]
