"""Paired measurements for benchmarks on a shared, noisy machine.

Two things are compared by running them as interleaved pairs, A B, B A, A B, ...
(:func:`run_pairs`): whatever else the machine is doing at a given moment hits
both halves of a pair alike, so the per-pair ratio ``A_i / B_i`` (or
difference) is far steadier than either absolute value.  A goal is decided on
the median of those ratios with its 95 % interval (a percentile bootstrap over
the pairs, ``scipy.stats.bootstrap``): ``met`` when the whole interval is on the
right side of the goal, ``not met`` when it is all on the wrong side, and
``undecided`` when it straddles the goal (more pairs, or a quieter machine,
may settle it).

Absolute values are reported as a spread (median, min-max over the pairs) and
labelled with the machine (:func:`machine`) and its load during the run
(:class:`LoadMonitor`); they are never goals.

Each benchmark writes its block of ``docs/benchmarks.md`` between
``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` (:func:`write_docs`), so
the prose around it is kept.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
DEFAULT_PAIRS = 10
CONFIDENCE = 0.95
RESAMPLES = 9999
SANDBOX_LOCK = Path(tempfile.gettempdir()) / "sandbox-tests.lock"

Side = Literal["a", "b"]
Verdict = Literal["met", "not met", "undecided"]
T = TypeVar("T")


# --------------------------------------------------------------------------- order


def order(pairs: int) -> list[tuple[Side, Side]]:
    """The run order of ``pairs`` pairs: A B, B A, A B, ... (each side goes first in half of them)."""
    if pairs < 1:
        raise ValueError("at least one pair is needed")
    return [("a", "b") if i % 2 == 0 else ("b", "a") for i in range(pairs)]


def run_pairs(
    pairs: int,
    measure: Callable[[Side, int], T],
    *,
    progress: Callable[[int, T, T], None] | None = None,
) -> tuple[list[T], list[T]]:
    """Runs ``measure(side, pair)`` in interleaved order; returns the A and B results aligned by pair."""
    got_a: list[T] = []
    got_b: list[T] = []
    for i, sides in enumerate(order(pairs)):
        results: dict[Side, T] = {}
        for side in sides:
            results[side] = measure(side, i)
        got_a.append(results["a"])
        got_b.append(results["b"])
        if progress is not None:
            progress(i, results["a"], results["b"])
    return got_a, got_b


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Estimate:
    """A median with its two-sided interval (``confidence``) over ``n`` values."""

    median: float
    low: float
    high: float
    n: int
    confidence: float = CONFIDENCE

    def format(self, spec: str = ".2f", unit: str = "") -> str:
        return f"{self.median:{spec}}{unit} [{self.low:{spec}}, {self.high:{spec}}]"

    def overlaps(self, other: Estimate) -> bool:
        return self.low <= other.high and other.low <= self.high


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0) -> Estimate:
    """Median of ``values`` with a percentile-bootstrap interval (resampling the values, i.e. the pairs).

    Seeded, so the same values always give the same interval.  One value has no
    interval (low = high = the value); identical values have a zero-width one.
    """
    import numpy as np
    from scipy import stats

    data = np.asarray(values, dtype="float64")
    if data.size == 0:
        raise ValueError("no values")
    if not np.isfinite(data).all():
        raise ValueError("values must be finite numbers")
    mid = float(np.median(data))
    if data.size == 1 or float(data.min()) == float(data.max()):
        return Estimate(mid, mid, mid, int(data.size), confidence)
    res = stats.bootstrap((data,), np.median, confidence_level=confidence, n_resamples=RESAMPLES,
                          method="percentile", rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Estimate(mid, float(ci.low), float(ci.high), int(data.size), confidence)


def ratios(a: Sequence[float], b: Sequence[float]) -> list[float]:
    """``a_i / b_i`` per pair."""
    if len(a) != len(b):
        raise ValueError(f"unpaired values: {len(a)} A, {len(b)} B")
    if any(x <= 0 for x in b):
        raise ValueError("a ratio needs positive B values")
    return [x / y for x, y in zip(a, b, strict=True)]


def ratio(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Median of the per-pair ratios ``a_i / b_i`` with its interval."""
    return median_interval(ratios(a, b), confidence)


def difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> Estimate:
    """Median of the per-pair differences ``a_i - b_i`` with its interval."""
    if len(a) != len(b):
        raise ValueError(f"unpaired values: {len(a)} A, {len(b)} B")
    return median_interval([x - y for x, y in zip(a, b, strict=True)], confidence)


@dataclass(frozen=True)
class Spread:
    """Absolute values over the pairs: median, min, max (machine-dependent, never a goal)."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("no values")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def format(self, spec: str = ".0f", unit: str = "") -> str:
        return f"{self.median:{spec}}{unit} ({self.low:{spec}}–{self.high:{spec}})"


@dataclass(frozen=True)
class Goal:
    """``estimate >= threshold`` (``at_least``) or ``estimate <= threshold``, decided on the interval."""

    label: str
    threshold: float
    at_least: bool = True

    def verdict(self, estimate: Estimate) -> Verdict:
        if self.at_least:
            if estimate.low >= self.threshold:
                return "met"
            return "not met" if estimate.high < self.threshold else "undecided"
        if estimate.high <= self.threshold:
            return "met"
        return "not met" if estimate.low > self.threshold else "undecided"

    def describe(self, spec: str = "g") -> str:
        return f"{'≥' if self.at_least else '≤'} {self.threshold:{spec}}"


# --------------------------------------------------------------------------- machine and load


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    python: str
    system: str
    date: str

    def label(self) -> str:
        return f"{self.cpu}, {self.cores} cores, {self.system}, Python {self.python}, {self.date}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> Machine:
    return Machine(cpu_model(), os.cpu_count() or 1, platform.python_version(),
                   f"{platform.system()} {platform.machine()}", dt.date.today().isoformat())


class LoadMonitor:
    """The 1-minute load average, sampled every ``interval`` s in a thread while the block runs."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-monitor", daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> LoadMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])

    def label(self) -> str:
        if not self.samples:
            return "load average not sampled"
        return (f"load average (1 min) {min(self.samples):.2f}–{max(self.samples):.2f}, median "
                f"{statistics.median(self.samples):.2f}, on {os.cpu_count() or 1} cores")


# --------------------------------------------------------------------------- reporting


@dataclass
class Comparison:
    """One compared quantity: the absolute values of both sides and their per-pair ratio or difference."""

    name: str
    a_label: str
    b_label: str
    a: list[float]
    b: list[float]
    unit: str = ""
    kind: Literal["ratio", "difference"] = "ratio"
    #: the estimate's sense, e.g. "harness/plain capacity"; the default is "A/B" or "A − B"
    estimate_label: str = ""
    goal: Goal | None = None
    #: for a ratio, compare ``b_i / a_i`` instead (e.g. capacity from CPU per lookup)
    inverse: bool = False
    #: format of the absolute values
    spec: str = ".0f"
    estimate: Estimate = field(init=False)

    def __post_init__(self) -> None:
        if self.kind == "ratio":
            self.estimate = ratio(self.b, self.a) if self.inverse else ratio(self.a, self.b)
        else:
            self.estimate = difference(self.a, self.b)

    @property
    def verdict(self) -> Verdict | None:
        return self.goal.verdict(self.estimate) if self.goal else None

    def what(self) -> str:
        if self.estimate_label:
            return self.estimate_label
        if self.kind == "difference":
            return f"{self.a_label} − {self.b_label}"
        return f"{self.b_label}/{self.a_label}" if self.inverse else f"{self.a_label}/{self.b_label}"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "estimate_label": self.what(), "unit": self.unit,
            "a": {"label": self.a_label, "values": self.a}, "b": {"label": self.b_label, "values": self.b},
            "inverse": self.inverse, "estimate": asdict(self.estimate),
            "goal": asdict(self.goal) if self.goal else None, "verdict": self.verdict,
        }


@dataclass
class Check:
    """One quantity measured over repeated runs (no B side), e.g. an error against planted truth, or an
    absolute latency that is a check by nature; decided on its median's interval."""

    name: str
    values: list[float]
    unit: str = ""
    goal: Goal | None = None
    spec: str = ".2f"
    estimate: Estimate = field(init=False)

    def __post_init__(self) -> None:
        self.estimate = median_interval(self.values)

    @property
    def verdict(self) -> Verdict | None:
        return self.goal.verdict(self.estimate) if self.goal else None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "check", "unit": self.unit, "values": self.values,
                "estimate": asdict(self.estimate), "goal": asdict(self.goal) if self.goal else None,
                "verdict": self.verdict}


def checks_table(checks: Sequence[Check], runs_label: str = "runs") -> str:
    lines = [f"| measured | {runs_label} | min–max | median [95 % interval] | check | verdict |", "|---|---:|---|---|---|---|"]
    for c in checks:
        unit = f" {c.unit}" if c.unit else ""
        verdict = f"**{c.verdict}**" if c.verdict else "–"
        lines.append(f"| {c.name} | {c.estimate.n} | {min(c.values):{c.spec}}–{max(c.values):{c.spec}}{unit} "
                     f"| {c.estimate.format(c.spec, unit)} | {c.goal.describe() + unit if c.goal else '–'} | {verdict} |")
    return "\n".join(lines)


def summary_table(comparisons: Sequence[Comparison], estimate_spec: str = ".2f") -> str:
    """The Markdown table: both sides' spread, the estimate with its interval, the goal and its verdict."""
    lines = [
        "| measured | A: median (min–max) | B: median (min–max) | pairs | estimate | median [95 % interval] | goal | verdict |",
        "|---|---|---|---:|---|---|---|---|",
    ]
    for c in comparisons:
        unit = f" {c.unit}" if c.unit else ""
        est_unit = unit if c.kind == "difference" else ""
        verdict = f"**{c.verdict}**" if c.verdict else "–"
        lines.append(
            f"| {c.name} | {c.a_label} {Spread.of(c.a).format(c.spec, unit)} | {c.b_label} {Spread.of(c.b).format(c.spec, unit)} "
            f"| {c.estimate.n} | {c.what()} | {c.estimate.format(estimate_spec, est_unit)} "
            f"| {c.goal.describe() + est_unit if c.goal else '–'} | {verdict} |"
        )
    return "\n".join(lines)


def verdict_lines(comparisons: Sequence[Comparison | Check], estimate_spec: str = ".2f") -> list[str]:
    out = []
    for c in comparisons:
        if c.goal is None:
            continue
        if isinstance(c, Check):
            unit = f" {c.unit}" if c.unit else ""
            out.append(f"{c.name}: {c.estimate.format(c.spec, unit)} (check {c.goal.describe()}{unit}): {c.verdict}")
            continue
        unit = f" {c.unit}" if c.kind == "difference" and c.unit else ""
        out.append(f"{c.name}: {c.what()} {c.estimate.format(estimate_spec, unit)} "
                   f"(goal {c.goal.describe()}{unit}): {c.verdict}")
    return out


def exit_code(comparisons: Sequence[Comparison | Check]) -> int:
    """0 when every goal is met, 3 when one is not met, 4 when none failed but one is undecided."""
    verdicts = {c.verdict for c in comparisons if c.verdict}
    if "not met" in verdicts:
        return 3
    return 4 if "undecided" in verdicts else 0


# --------------------------------------------------------------------------- command line and docs


def add_arguments(parser: argparse.ArgumentParser, pairs: int = DEFAULT_PAIRS) -> None:
    parser.add_argument("--pairs", type=_positive, default=pairs,
                        help=f"interleaved A/B pairs (A B, B A, ...; default {pairs})")
    parser.add_argument("--write-docs", action="store_true",
                        help="rewrite this benchmark's block of docs/benchmarks.md with the results")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the results, with metadata, as JSON")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command as a user types it, without ``--write-docs``/``--json``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--write-docs" or arg.startswith("--json="):
            continue
        if arg == "--json":
            skip = True
            continue
        kept.append(arg)
    return " ".join([".venv/bin/python", script, *kept])


def block_markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"


def replace_block(document: str, name: str, body: str, heading: str) -> str:
    """``document`` with the block of ``name`` replaced by ``body``; a missing block is appended under
    ``heading`` at the end."""
    start, end = block_markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    i = document.find(start)
    if i == -1:
        return document.rstrip("\n") + f"\n\n{heading}\n\n{block}\n"
    j = document.find(end, i)
    if j == -1:
        raise ValueError(f"{start} has no closing {end}")
    return document[:i] + block + document[j + len(end):]


def write_docs(name: str, body: str, heading: str, path: Path = DOCS) -> None:
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    path.write_text(replace_block(text, name, body, heading))


def header_lines(command: str, mach: Machine, load: LoadMonitor, pairs: int) -> str:
    return (f"Command: `{command}` ({pairs} interleaved pairs)  \n"
            f"Machine: {mach.label()}; {load.label()}.")


def write_json(path: Path, name: str, comparisons: Sequence[Comparison | Check], mach: Machine, load: LoadMonitor,
               command: str, extra: dict[str, Any] | None = None) -> None:
    doc = {
        "format": "crm-bench/1", "benchmark": name, "command": command,
        "metadata": {**asdict(mach), "load_average_1min": load.samples, "argv": sys.argv},
        "comparisons": [c.to_json() for c in comparisons], **(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")


# --------------------------------------------------------------------------- the sandbox


@contextlib.contextmanager
def sandbox_lock(wait_s: float = 600.0) -> Iterator[None]:
    """Holds the lock the test fixture and every benchmark take before using the fixed sandbox ports."""
    with open(SANDBOX_LOCK, "w") as lock:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"error: the sandbox ports stayed busy for {wait_s:.0f} s "
                                     f"(another job holds {SANDBOX_LOCK})") from None
                time.sleep(0.5)
        yield


@contextlib.contextmanager
def sandbox(services: list[str], wait_s: float = 600.0) -> Iterator[dict[str, str]]:
    """The sandbox's env for a benchmark: the developer's running stack when it has ``services``,
    otherwise a stack of its own in a temporary state dir, started under the shared lock (the ports
    are fixed) and stopped at the end, as the test fixture does."""
    from sandbox import launcher

    default = launcher.state_dir_of(None)
    if default.exists():
        running = launcher.status(default)
        if all(running.get(s) for s in services):
            yield {**launcher.read_env(default), "SANDBOX_DIR": str(default)}
            return
    with sandbox_lock(wait_s):
        state = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
        try:
            try:
                env = launcher.up(services, state)
            except launcher.LauncherError as exc:
                raise SystemExit(f"error: the sandbox did not start: {exc}") from None
            yield {**env, "SANDBOX_DIR": str(state)}
        finally:
            launcher.down(state)
            shutil.rmtree(state, ignore_errors=True)
