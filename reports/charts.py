"""Charts for report.html, as inline base64 PNG data URIs (viewable offline)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # headless: never opens a display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from harness.contracts import TARGETS
from reports.load import TRANSACTION, Run, Series
from reports.rules import TargetStats

MAX_POINTS = 1500  # per line: a 2-hour 1-second history is thinned to this many points
COLOURS = {
    "supabase_rest": "#d62728", "supabase_nested": "#ff7f0e", "supabase_rpc": "#bcbd22",
    "convex_http": "#1f77b4", "convex_query": "#17becf", "api_supabase": "#9467bd", "api_convex": "#2ca02c",
}


@dataclass(frozen=True)
class Chart:
    title: str
    data_uri: str | None
    note: str = ""


def _uri(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _thin(xs: Sequence[float], ys: Sequence[float]) -> tuple[Sequence[float], Sequence[float]]:
    step = max(1, math.ceil(len(xs) / MAX_POINTS))
    return xs[::step], ys[::step]


def _ordered(targets: dict[str, TargetStats]) -> list[TargetStats]:
    order = list(TARGETS)
    return sorted(targets.values(), key=lambda t: order.index(t.target) if t.target in order else 99)


def percentiles_chart(targets: dict[str, TargetStats], p95_target_ms: float) -> Chart:
    rows = [t for t in _ordered(targets) if t.p95_ms is not None]
    if not rows:
        return Chart("P50 / P95 / P99 per target", None, "no successful lookups")
    fig, ax = plt.subplots(figsize=(9, 3.6))
    width = 0.26
    for i, (label, attr) in enumerate((("P50", "p50_ms"), ("P95", "p95_ms"), ("P99", "p99_ms"))):
        ax.bar([x + (i - 1) * width for x in range(len(rows))], [getattr(t, attr) or 0 for t in rows], width, label=label)
    ax.axhline(p95_target_ms, color="black", linestyle="--", linewidth=1, label=f"P95 target {p95_target_ms:g} ms")
    ax.set_xticks(range(len(rows)), [t.target for t in rows], rotation=20, ha="right")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return Chart("P50 / P95 / P99 per target", _uri(fig))


def _rel(run: Run, s: Series) -> list[float]:
    origin = run.start_ts if run.start_ts is not None else (s.t[0] if s.t else 0.0)
    return [t - origin for t in s.t]


def _shade_warmup(ax: plt.Axes, run: Run) -> None:
    if run.warmup_s > 0:
        ax.axvspan(0, run.warmup_s, color="grey", alpha=0.15, label="warm-up")
    if run.start_ts is not None:
        for step in run.steps[1:]:
            ax.axvline(step.start - run.start_ts, color="grey", linestyle=":", linewidth=1)


def percentiles_over_time_chart(run: Run) -> Chart:
    per_target = {name: s for (rtype, name), s in run.history.items() if rtype == TRANSACTION and s.t}
    fig, ax = plt.subplots(figsize=(9, 3.6))
    if per_target:
        note = ("P95 of each target's lookups over Locust's ~10 s current window (--csv-full-history, which make "
                "demo|run|swarm and locust.conf set), as Locust's own charts show it: not the cumulative aggregate.")
        for name in [t for t in TARGETS if t in per_target]:
            s = per_target[name]
            xs, ys = _thin(_rel(run, s), s.p95)
            ax.plot(xs, ys, label=f"{name} P95", color=COLOURS.get(name), linewidth=1)
    else:
        agg = run.history.get(("", "Aggregated"))
        if agg is None or not agg.t:
            plt.close(fig)
            return Chart("Percentiles over time", None, "the history file has no rows")
        note = ("Only the Aggregated row is in the history (run without --csv-full-history): its percentiles "
                "are cumulative since the start and mix every request type; rerun with --csv-full-history for "
                "each target's windowed P95.")
        for label, values in (("P50", agg.p50), ("P95", agg.p95), ("P99", agg.p99)):
            xs, ys = _thin(_rel(run, agg), values)
            ax.plot(xs, ys, label=f"Aggregated {label} (cumulative)", linewidth=1)
    _shade_warmup(ax, run)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Chart("Percentiles over time", _uri(fig), note)


def distribution_chart(targets: dict[str, TargetStats]) -> Chart:
    """HDR-style percentile plot: latency against percentile on a 1/(1-p) axis."""
    fig, ax = plt.subplots(figsize=(9, 3.6))
    drew = False
    for t in _ordered(targets):
        if t.distribution is not None:
            n = t.distribution.total
            xs: list[float] = []
            ys: list[float] = []
            for value, cum in zip(t.distribution.values, t.distribution._cumulative, strict=True):
                p = cum / n
                if p < 1:
                    xs.append(1 / (1 - p))
                    ys.append(value)
            xs, ys = list(_thin(xs, ys)[0]), list(_thin(xs, ys)[1])
            xs.append(n)
            ys.append(t.distribution.values[-1])
        else:
            points = [(0.5, t.p50_ms), (0.95, t.p95_ms), (0.99, t.p99_ms)]
            xs = [1 / (1 - p) for p, v in points if v is not None]
            ys = [v for _, v in points if v is not None]
        if xs:
            ax.plot(xs, ys, label=t.target + ("" if t.distribution is not None else " (CSV points)"),
                    color=COLOURS.get(t.target), linewidth=1, marker=None if t.distribution is not None else "o")
            drew = True
    if not drew:
        plt.close(fig)
        return Chart("Latency distribution", None, "no successful lookups")
    ax.set_xscale("log")
    ticks = [2, 10, 20, 100, 1000, 10000]
    ax.set_xticks(ticks, ["50%", "90%", "95%", "99%", "99.9%", "99.99%"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    return Chart("Latency distribution (percentile plot)", _uri(fig))


def throughput_chart(run: Run) -> Chart:
    agg = run.history.get(("", "Aggregated"))
    if agg is None or not agg.t:
        return Chart("Requests/s and users over time", None, "the history file has no rows")
    fig, ax = plt.subplots(figsize=(9, 3.2))
    xs = _rel(run, agg)
    tx, ty = _thin(xs, agg.rps)
    ax.plot(tx, ty, label="requests/s (all rows)", color="#1f77b4", linewidth=1)
    fx, fy = _thin(xs, agg.fps)
    ax.plot(fx, fy, label="failures/s", color="#d62728", linewidth=1)
    ax.set_xlabel("seconds since start")
    ax.set_ylabel("requests/s")
    _shade_warmup(ax, run)
    ax2 = ax.twinx()
    ux, uy = _thin(xs, agg.users)
    ax2.step(ux, uy, where="post", color="black", linewidth=1, label="users")
    ax2.set_ylabel("users")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    return Chart("Requests/s and users over time", _uri(fig))


def steps_chart(run: Run) -> Chart:
    per_step = run.step_entries()
    if not per_step:
        return Chart("P95 per concurrency step", None, "the run had no steps (or no HDR artifact)")
    users = {s.index: s.users for s in run.steps}
    fig, ax = plt.subplots(figsize=(9, 3.4))
    indices = sorted(per_step)
    for name in TARGETS:
        xs = [users.get(i, i) for i in indices if name in per_step[i] and per_step[i][name].count]
        ys = [per_step[i][name].distribution.quantile(0.95) for i in indices if name in per_step[i] and per_step[i][name].count]
        if xs:
            ax.plot(xs, ys, marker="o", label=name, color=COLOURS.get(name))
    ax.set_xlabel("users (step)")
    ax.set_ylabel("P95 ms")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return Chart("P95 per concurrency step", _uri(fig))


TIME_SPLIT_TITLE = "Where the time goes (P50 and P95 lookups, ms)"
PART_COLOURS = {"connect": "#8c564b", "database": "#1f77b4", "server": "#9ecae1", "rest": "#d9d9d9",
                "unsplit": "#f0f0f0"}


def time_split_chart(run: Run) -> Chart:
    """Stacked bars: per target, its P50 and P95 lookups split into connect, database, server, rest."""
    from reports.timing import target_timings

    bars: list[tuple[str, dict[str, float]]] = []
    for t in target_timings(run):
        for sp in t.splits:
            parts = {"connect": sp.connect_ms}
            if sp.server_ms is None:
                parts["unsplit"] = max(sp.lookup_ms - sp.connect_ms, 0.0)
            else:
                parts["database"] = sp.database_ms or 0.0
                parts["server"] = sp.server_other_ms or 0.0
                parts["rest"] = sp.rest_ms or 0.0
            bars.append((f"{t.target} P{sp.percentile * 100:g}", parts))
    if not bars:
        return Chart(TIME_SPLIT_TITLE, None, "no per-phase timings in this run's artifact")
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(bars)), 4.2))
    bottoms = [0.0] * len(bars)
    labels = {"connect": "connect", "database": "database (mean)", "server": "server, other",
              "rest": "rest: network + queueing", "unsplit": "no server timing (not split)"}
    for part, colour in PART_COLOURS.items():
        heights = [b[1].get(part, 0.0) for b in bars]
        if not any(heights):
            continue
        ax.bar(range(len(bars)), heights, 0.6, bottom=bottoms, color=colour, edgecolor="#555", linewidth=0.4,
               label=labels[part])
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(bars)), [b[0] for b in bars], fontsize=7, rotation=40, ha="right")
    ax.set_ylabel("ms")
    ax.legend(fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    return Chart(TIME_SPLIT_TITLE, _uri(fig), "parts of the lookups within 2 percentile points of P50 / P95")


def all_charts(run: Run, p95_target_ms: float) -> list[Chart]:
    return [
        percentiles_chart(run.targets, p95_target_ms),
        percentiles_over_time_chart(run),
        distribution_chart(run.targets),
        throughput_chart(run),
        steps_chart(run),
        time_split_chart(run),
    ]
