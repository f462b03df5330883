"""decision.md, decision.json, report.html and the stdout table."""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.contracts import LEVELS, TARGETS
from reports import charts as charts_module
from reports import failures, realtime, timing
from reports.charts import Chart
from reports.load import Run
from reports.rules import Decision, TargetStats, Thresholds, p95_interval, primary

SANDBOX_BANNER = "sandbox numbers exercise the method; they are not a verdict on hosted Supabase or Convex"
MISMATCH_BANNER = (
    "data differs between Supabase and Convex: the two backends did not answer the same lookups; "
    "this run cannot produce GO or OPTIMISE SUPABASE"
)
LEVEL_TITLES = {"direct": "Direct backends", "api": "API routes (Next.js)"}
COLUMNS = ["target", "what", "P50 ms", "P95 ms [95% CI]", "P99 ms", "req/s", "failure %", "samples",
           "round trips", "evidence"]


CRITERIA_NOTE = (
    "PASS / FAIL hold over the whole interval (bootstrap 95 % CI with histograms, Locust's bucket bounds "
    "with CSV only); UNDETERMINED means the interval straddles the threshold. GO needs the first three "
    "rows of the deciding Convex variant to pass; OPTIMISE SUPABASE needs its 'within … or slower' row to pass."
)


def _ms(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def target_row(t: TargetStats, d: Decision) -> list[str]:
    info = TARGETS.get(t.target)
    if t.p95_ms is not None:
        iv = p95_interval(t, d.thresholds)
        p95 = f"{_ms(iv.estimate)} [{_ms(iv.low)}, {_ms(iv.high)}]"
    else:
        p95 = "n/a"
    trips = "n/a" if t.round_trips is None else str(t.round_trips)
    if info and info.level == "api":
        trips += f" ({t.queries} behind)"
    problems = d.evidence.get(t.target, ())
    mark = "ok" if not problems else "; ".join(p.split(": ", 1)[-1] for p in problems)
    if d.convex == t.target:
        mark += " (decides)"
    return [
        t.target, info.label if info else "", _ms(t.p50_ms), p95, _ms(t.p99_ms),
        "n/a" if t.rps is None else f"{t.rps:.1f}", f"{t.failure_ratio:.2%}", str(t.count), trips, mark,
    ]


def ordered(targets: tuple[TargetStats, ...]) -> list[TargetStats]:
    order = list(TARGETS)
    return sorted(targets, key=lambda t: order.index(t.target) if t.target in order else 99)


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def criteria_rows(d: Decision) -> list[list[str]]:
    return [[c.subject, c.name, c.value, c.threshold, c.status.upper()] for c in d.criteria]


def thresholds_line(th: Thresholds) -> str:
    return (
        f"P95 target < {th.p95_target_ms:g} ms · min speed-up {th.min_speedup:.0%} (ratio ≤ {th.go_ratio:g}) · "
        f"equivalence {th.equivalence:.0%} (ratio > {th.equivalent_ratio:g}) · min samples {th.min_samples} · "
        f"max failure ratio {th.max_failure_ratio:.2%} · queries < {th.max_queries} · "
        f"{th.confidence:.0%} CI, {th.resamples} bootstrap resamples, seed {th.seed}"
    )


def step_table(run: Run) -> tuple[list[str], list[list[str]]]:
    """One row per concurrency step: users, then each target's P95 ms (samples)."""
    per_step = run.step_entries()
    users = {s.index: s.users for s in run.steps}
    names = [t for t in TARGETS if any(t in entries for entries in per_step.values())]
    rows = []
    for i in sorted(per_step):
        cells = [str(i), str(users.get(i, "?"))]
        for name in names:
            e = per_step[i].get(name)
            if e is None:
                cells.append("")
            else:
                p95 = _ms(e.distribution.quantile(0.95)) if e.count else "n/a"
                fails = f", {e.failures} failed" if e.failures else ""
                cells.append(f"{p95} ({e.count}{fails})")
        rows.append(cells)
    return ["step", "users", *(f"{n} P95 ms (n)" for n in names)], rows


def hosts_line(run: Run) -> str:
    """Target hosts grouped by host (scheme://host:port only)."""
    by_host: dict[str, list[str]] = {}
    for target, host in run.hosts.items():
        by_host.setdefault(host, []).append(target)
    order = list(TARGETS)
    return "; ".join(
        f"{host} ({', '.join(sorted(ts, key=lambda t: order.index(t) if t in order else 99))})"
        for host, ts in sorted(by_host.items())
    )


def finite(obj: Any) -> Any:
    """JSON has no Infinity/NaN: an unbounded ratio (a 0 ms P95) is written as null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    return obj


def to_json(run: Run, decisions: dict[str, Decision]) -> dict[str, Any]:
    return finite({
        "format": "crm-latency-decision/1",
        "generated_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "run": {
            "prefix": str(run.prefix.resolve()),
            "source": run.source,
            "sandbox": run.sandbox,
            "hosts": run.hosts,
            "started_at": run.metadata.get("started_at"),
            "ended_at": run.metadata.get("ended_at"),
            "locust_version": run.metadata.get("locust_version"),
            "warmup_s": run.warmup_s,
            "steps": [s.__dict__ for s in run.steps],
        },
        "verdict": primary(decisions).verdict.value,
        "exit_code": primary(decisions).exit_code,
        "decisions": {**{level: d.to_dict() for level, d in decisions.items()},
                      # the inbox's update latency: reported, never deciding (reports.realtime)
                      **({"realtime": {s.target: s.to_dict() for s in rt}} if (rt := realtime.realtime_stats(run)) else {})},
        "notes": run.notes,
    })


def ground_lines(run: Run) -> list[str]:
    """What was checked before the run started: the preflight and the data parity."""
    from harness.parity import summary

    pre = run.preflight
    if pre is None:
        pre_line = "preflight: not recorded (an artifact from before the preflight, or no artifact)"
    elif pre.get("status") == "ok":
        pre_line = f"preflight: one real lookup per target OK ({pre.get('contact') or 'workload'})"
    else:
        pre_line = f"preflight: {pre.get('status', 'not run')}"
    return [pre_line, summary(run.data_parity), network_line(run)]


def network_line(run: Run) -> str:
    """Where the run was measured: the sandbox's network profile and the connection mode."""
    meta = run.metadata.get("network")
    connections = run.metadata.get("connections") or "reuse"
    if isinstance(meta, dict):
        try:
            from sandbox.network import summary as network_summary
        except ImportError:  # reports read on a machine without the sandbox package
            where = f"sandbox network {meta.get('name', '?')}"
        else:
            where = "sandbox network " + network_summary(meta)
    elif run.sandbox:
        where = "sandbox network: not recorded (every link loopback unless the run says otherwise)"
    else:
        where = "measured against deployments"
    return f"{where} · connections: {connections}"


def _mismatch(run: Run) -> bool:
    return bool(run.data_parity and run.data_parity.get("status") == "mismatch")


@dataclass(frozen=True)
class FailureReport:
    target: str
    requests: int
    failed: int
    reasons: list[tuple[str, str, int, str | None]]  # (transaction type, error, occurrences, hint)
    statuses: dict[int, int]


def failure_reports(run: Run) -> list[FailureReport]:
    """Per target with failures: the top reasons with counts and hints, and the HTTP status mix."""
    rows = [(f.method.strip(), f.name.strip(), f.error, f.occurrences) for f in run.failures]
    out = []
    for t in ordered(tuple(run.targets.values())):
        failed = t.failures + t.other_failures
        ranked = failures.reasons(rows, t.target)
        if not failed and not ranked:
            continue
        out.append(FailureReport(
            t.target, t.requests, failed,
            [(m, e, n, failures.hint(t.target, e, m)) for m, e, n in ranked],
            run.status_mix(t.target),
        ))
    return out


def _status_text(mix: dict[int, int]) -> str:
    if not mix:
        return "no HTTP statuses recorded (artifact without them, or no calls after the warm-up)"
    return ", ".join(f"{'no response' if code == 0 else code}: {n:,}" for code, n in mix.items())


def _failures_md(run: Run) -> list[str]:
    reports = failure_reports(run)
    if not reports:
        return []
    out = ["## Failures\n"]
    for r in reports:
        share = f"{r.failed / r.requests:.2%}" if r.requests else "n/a"
        out.append(f"**{r.target}**: {r.failed:,} of {r.requests:,} requests failed ({share}) · "
                   f"HTTP statuses: {_status_text(r.statuses)}\n")
        rows = [[m, e, f"{n:,}", h or ""] for m, e, n, h in r.reasons]
        if rows:
            out.append(_md_table(["request", "error", "count", "likely cause"], rows) + "\n")
    return out


TIME_COLUMNS = ["target", "at", "lookup ms", "connect", "server", "of which database", "rest (network + queueing)",
                "new conns / lookup"]
TIME_NOTE = (
    "Each row averages the sampled lookups within 2 percentile points of P50 or P95, so its parts add up. "
    "server: the backend's own Server-Timing (PostgREST's jwt, parse, plan, transaction, response; the Convex "
    "runtime's exec); database: one found lookup's statements' execution time, each call's mean once "
    "(pg_stat_statements over the measured window, inside server); rest: lookup − connect − server, the "
    "network both ways plus any queueing, the load generator's own included. 'no server timing': the backend "
    "sent no Server-Timing header, so its time is not split further: nothing is estimated."
)


def time_note(run: Run) -> str:
    line = timing.database_line(run)
    return TIME_NOTE if line is None else f"{TIME_NOTE} {line[0].upper()}{line[1:]}"


def _part(v: float | None, missing: str) -> str:
    return missing if v is None else _ms(v)


def time_rows(run: Run) -> list[list[str]]:
    rows = []
    for t in timing.target_timings(run):
        for sp in t.splits:
            no_server = "no server timing" if t.server_timing == "none" else "n/a (not every call timed)"
            if sp.database_ms is not None:
                db = _ms(sp.database_ms)
            else:
                db = "inside exec" if TARGETS[t.target].role == "convex" else "not measured"
            rows.append([
                t.target, f"P{sp.percentile * 100:g}", _ms(sp.lookup_ms), _ms(sp.connect_ms),
                _part(sp.server_ms, no_server), db if sp.server_ms is not None else "n/a",
                _part(sp.rest_ms, "n/a"), f"{t.new_connections_per_lookup:.2f}",
            ])
    return rows


CALL_COLUMNS = ["call", "calls", "new conns", "connect P50", "TTFB P50", "download P50", "server P50", "server metrics (mean ms)"]


def call_rows(run: Run) -> list[list[str]]:
    rows = []
    for t in timing.target_timings(run):
        for c in t.calls:
            metrics = ", ".join(f"{k} {v:.1f}" for k, v in c.server_metrics.items()) or "no server timing"
            rows.append([
                c.name, f"{c.calls:,}", f"{c.new_connections:,}", _part(c.p50_ms.get("connect"), "-"),
                _part(c.p50_ms.get("ttfb"), "n/a"), _part(c.p50_ms.get("download"), "n/a"),
                _part(c.p50_ms.get("server"), "none"), metrics,
            ])
    return rows


def _time_md(run: Run, findings: list[dict[str, Any]]) -> list[str]:
    rows = time_rows(run)
    if not rows:
        return []
    out = ["## Where the time goes\n", _md_table(TIME_COLUMNS, rows) + "\n", time_note(run) + "\n",
           "### Per call\n", _md_table(CALL_COLUMNS, call_rows(run)) + "\n", timing.cpu_line(run) + "\n"]
    out += _findings_md(findings)
    return out


def _realtime_md(run: Run) -> list[str]:
    stats = realtime.realtime_stats(run)
    if not stats:
        return []
    return ["## Realtime (inbox)\n", _md_table(realtime.COLUMNS, realtime.rows(stats)) + "\n", realtime.NOTE + "\n"]


def _findings_md(findings: list[dict[str, Any]]) -> list[str]:
    if not findings:
        return []
    return ["### Findings (python -m reports diagnose)\n", _md_table(FINDING_COLUMNS, finding_rows(findings)) + "\n"]


def _level_sections_md(decisions: dict[str, Decision]) -> list[str]:
    out: list[str] = []
    for level in LEVELS:
        d = decisions.get(level)
        if d is None:
            continue
        out.append(f"## {LEVEL_TITLES[level]}: {d.verdict.value}\n")
        out.append(d.reason + "\n")
        out.append(_md_table(COLUMNS, [target_row(t, d) for t in ordered(d.targets)]) + "\n")
        if d.criteria:
            out.append("### Criteria\n")
            out.append(_md_table(["subject", "criterion", "value", "threshold", "result"], criteria_rows(d)) + "\n")
            out.append(CRITERIA_NOTE + "\n")
        if d.second_finding is not None:
            out.append("### Second finding: optimised Supabase\n")
            out.append(d.second_finding.text + "\n")
        out.extend(f"- {n}" for n in d.notes)
        if d.notes:
            out.append("")
    return out


def to_markdown(run: Run, decisions: dict[str, Decision], findings: list[dict[str, Any]] | None = None) -> str:
    main = primary(decisions)
    parts = ["# Supabase → Convex latency decision\n"]
    if _mismatch(run):
        parts.append(f"> **DATA DIFFERS:** {MISMATCH_BANNER}.\n")
    if run.sandbox:
        parts.append(f"> **Sandbox run:** {SANDBOX_BANNER}.\n")
    parts.append(f"**Verdict: {main.verdict.value}** (exit code {main.exit_code})\n")
    parts.append(" · ".join(ground_lines(run)) + "\n")
    parts.append(f"Thresholds: {thresholds_line(main.thresholds)}\n")
    parts.append(
        f"Run `{run.prefix}` · source: "
        + ("HDR histograms (" + run.prefix.name + "_hdr.json)" if run.source == "hdr"
           else "Locust CSV percentiles (no HDR histograms)")
        + f" · warm-up {run.warmup_s:g} s excluded\n"
    )
    if run.hosts:
        parts.append(f"Target hosts: {hosts_line(run)}\n")
    parts += _level_sections_md(decisions)
    parts += _time_md(run, findings or [])
    parts += _realtime_md(run)
    parts += _failures_md(run)
    header, steps = step_table(run)
    if steps:
        parts.append("## P95 per concurrency step\n")
        parts.append(_md_table(header, steps) + "\n")
    if run.notes:
        parts.append("## Notes\n")
        parts.extend(f"- {n}" for n in run.notes)
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


def to_text(run: Run, decisions: dict[str, Decision], findings: list[dict[str, Any]] | None = None) -> str:
    out: list[str] = []
    if _mismatch(run):
        out.append(f"DATA DIFFERS: {MISMATCH_BANNER}.")
    if run.sandbox:
        out.append(f"SANDBOX RUN: {SANDBOX_BANNER}.")
    main = primary(decisions)
    out.append(f"VERDICT: {main.verdict.value} (exit {main.exit_code})")
    out.extend(ground_lines(run))
    out.append(f"thresholds: {thresholds_line(main.thresholds)}")
    out.append(f"source: {'HDR histograms' if run.source == 'hdr' else 'Locust CSV percentiles (bucketed; no CI)'}")
    if run.hosts:
        out.append(f"target hosts: {hosts_line(run)}")
    for level in LEVELS:
        d = decisions.get(level)
        if d is None:
            continue
        out.append("")
        out.append(f"== {LEVEL_TITLES[level]}: {d.verdict.value}")
        out.append(d.reason)
        cols = [c for c in COLUMNS if c != "what"]
        rows = [[c for i, c in enumerate(target_row(t, d)) if i != 1] for t in ordered(d.targets)]
        out.append(_text_table(cols, rows))
        if d.criteria:
            out.append("")
            out.append(_text_table(["subject", "criterion", "value", "threshold", "result"], criteria_rows(d)))
        if d.second_finding is not None:
            out.append("")
            out.append("second finding: " + d.second_finding.text)
    rows = time_rows(run)
    if rows:
        out.append("")
        out.append("== Where the time goes (ms; parts add up within each row)")
        out.append(_text_table(TIME_COLUMNS, rows))
        if (db_line := timing.database_line(run)) is not None:
            out.append(db_line)
        out.append(timing.cpu_line(run))
    if rt := realtime.realtime_stats(run):
        out.append("")
        out.append("== Realtime (inbox): update latency, ms (does not change the verdict)")
        out.append(_text_table(realtime.COLUMNS, realtime.rows(rt)))
    for f in (findings or [])[:5]:
        out.append(f"finding [{f.get('severity', '')}] {f.get('code', '')} {f.get('table') or ''}: {f.get('detail', '')}")
    for r in failure_reports(run):
        out.append("")
        share = f"{r.failed / r.requests:.2%}" if r.requests else "n/a"
        out.append(f"failures of {r.target}: {r.failed:,} of {r.requests:,} requests ({share}); "
                   f"HTTP statuses: {_status_text(r.statuses)}")
        for m, e, n, h in r.reasons[:3]:
            out.append(f"  {n:>7,}  {m}: {e}" + (f"  -> {h}" if h else ""))
    for note in run.notes:
        out.append("note: " + note)
    return "\n".join(out) + "\n"


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:.9em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left}
th{background:#f3f3f3}
.banner{background:#fff3cd;border:1px solid #e0c36b;padding:.8em;margin:1em 0}
.verdict{font-size:1.6em;font-weight:bold;padding:.4em .8em;display:inline-block;border-radius:4px}
.GO{background:#d4edda}.OPTIMISE{background:#fde2c8}.INCONCLUSIVE{background:#e2e3e5}
.mismatch{background:#f8d7da;border:1px solid #d9534f;padding:.8em;margin:1em 0;font-weight:bold}
.pass{color:#155724;font-weight:bold}.fail{color:#a71d2a;font-weight:bold}.undetermined{color:#856404}
img{max-width:100%}.note{color:#555;font-size:.9em}
"""


def _html_table(header: list[str], rows: list[list[str]], status_col: int | None = None) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = f' class="{e(c.lower())}"' if i == status_col else ""
            cells.append(f"<td{cls}>{e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


FINDING_COLUMNS = ["severity", "code", "table", "detail", "fix"]


def finding_rows(findings: list[dict[str, Any]]) -> list[list[str]]:
    return [[str(f.get("severity", "")), str(f.get("code", "")), str(f.get("table") or ""), str(f.get("detail", "")),
             str(f.get("fix", ""))] for f in findings]


def to_html(run: Run, decisions: dict[str, Decision], charts: list[Chart],
            findings: list[dict[str, Any]] | None = None) -> str:
    e = html.escape
    main = primary(decisions)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Latency decision: {e(main.verdict.value)}</title>",
             f"<style>{CSS}</style></head><body>", "<h1>Supabase → Convex latency decision</h1>"]
    parts += _html_header(run, main)
    for level in LEVELS:
        if (d := decisions.get(level)) is not None:
            parts += _html_level(level, d)
    parts += _html_time(run, charts, findings or [])
    if rt := realtime.realtime_stats(run):
        parts += ["<h2>Realtime (inbox)</h2>", _html_table(realtime.COLUMNS, realtime.rows(rt)),
                  f"<p class='note'>{html.escape(realtime.NOTE)}</p>"]
    parts += _html_failures(run)
    header, steps = step_table(run)
    if steps:
        parts += ["<h2>P95 per concurrency step</h2>", _html_table(header, steps)]
    parts.append("<h2>Charts</h2>")
    for c in charts:
        if c.title == charts_module.TIME_SPLIT_TITLE:
            continue  # shown under "Where the time goes"
        parts.append(f"<h3>{e(c.title)}</h3>")
        if c.data_uri:
            parts.append(f"<img alt='{e(c.title)}' src='{c.data_uri}'>")
        if c.note:
            parts.append(f"<p class='note'>{e(c.note)}</p>")
    if run.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in run.notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_header(run: Run, main: Decision) -> list[str]:
    e = html.escape
    parts = []
    if _mismatch(run):
        parts.append(f"<div class='mismatch'>DATA DIFFERS: {e(MISMATCH_BANNER)}.</div>")
    if run.sandbox:
        parts.append(f"<div class='banner'><b>Sandbox run:</b> {e(SANDBOX_BANNER)}.</div>")
    parts.append(f"<p><span class='verdict {e(main.verdict.value.split()[0])}'>{e(main.verdict.value)}</span> "
                 f"exit code {main.exit_code}</p>")
    parts.append(f"<p class='note'>Thresholds: {e(thresholds_line(main.thresholds))}</p>")
    parts.append(f"<p class='note'>{' · '.join(e(x) for x in ground_lines(run))}</p>")
    source = "HDR histograms" if run.source == "hdr" else "Locust CSV percentiles (bucketed; no bootstrap CI)"
    parts.append(f"<p class='note'>Run <code>{e(str(run.prefix))}</code> · source: {e(source)} · "
                 f"warm-up {run.warmup_s:g} s excluded</p>")
    if run.hosts:
        parts.append(f"<p class='note'>Target hosts: {e(hosts_line(run))}</p>")
    return parts


def _html_level(level: str, d: Decision) -> list[str]:
    e = html.escape
    parts = [f"<h2>{e(LEVEL_TITLES[level])}: {e(d.verdict.value)}</h2><p>{e(d.reason)}</p>",
             _html_table(COLUMNS, [target_row(t, d) for t in ordered(d.targets)])]
    if d.criteria:
        parts.append("<h3>Criteria</h3>")
        parts.append(_html_table(["subject", "criterion", "value", "threshold", "result"],
                                 [[*r[:4], r[4].lower()] for r in criteria_rows(d)], status_col=4))
        parts.append(f"<p class='note'>{e(CRITERIA_NOTE)}</p>")
    if d.second_finding is not None:
        parts.append(f"<h3>Second finding: optimised Supabase</h3><p>{e(d.second_finding.text)}</p>")
    return parts + [f"<p class='note'>{e(n)}</p>" for n in d.notes]


def _html_time(run: Run, charts: list[Chart], findings: list[dict[str, Any]]) -> list[str]:
    e = html.escape
    parts = []
    rows = time_rows(run)
    if rows:
        parts += ["<h2>Where the time goes</h2>", _html_table(TIME_COLUMNS, rows), f"<p class='note'>{e(time_note(run))}</p>"]
        split_chart = next((c for c in charts if c.title == charts_module.TIME_SPLIT_TITLE), None)
        if split_chart is not None and split_chart.data_uri:
            parts.append(f"<img alt='{e(split_chart.title)}' src='{split_chart.data_uri}'>")
        parts += ["<h3>Per call</h3>", _html_table(CALL_COLUMNS, call_rows(run)),
                  f"<p class='note'>{e(timing.cpu_line(run))}</p>"]
    if findings:
        parts += ["<h3>Findings (python -m reports diagnose)</h3>", _html_table(FINDING_COLUMNS, finding_rows(findings))]
    return parts


def _html_failures(run: Run) -> list[str]:
    e = html.escape
    reports = failure_reports(run)
    parts = ["<h2>Failures</h2>"] if reports else []
    for r in reports:
        share = f"{r.failed / r.requests:.2%}" if r.requests else "n/a"
        parts.append(f"<p><b>{e(r.target)}</b>: {r.failed:,} of {r.requests:,} requests failed ({share}) · "
                     f"HTTP statuses: {e(_status_text(r.statuses))}</p>")
        if r.reasons:
            parts.append(_html_table(["request", "error", "count", "likely cause"],
                                     [[m, err, f"{n:,}", h or ""] for m, err, n, h in r.reasons]))
    return parts
