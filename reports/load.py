"""Read a run: Locust's ``PREFIX_stats.csv``, ``PREFIX_stats_history.csv``,
``PREFIX_failures.csv`` and, when present, the harness's ``PREFIX_hdr.json``.

Every problem with the input raises :class:`BadInput` whose message is one
line naming the file (and line or entry).
"""

from __future__ import annotations

import csv
import json
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.contracts import (
    TARGETS,
    TRANSACTION,
    TRANSACTION_TYPES,
    ArtifactError,
    decision_level,
    epoch_s,
    read_artifact,
    target_of,
    targets_of,
)
from reports.rules import TargetStats, target_from_distribution
from reports.stats import Distribution, distribution_from_histogram

STATS_COLUMNS = ("Type", "Name", "Request Count", "Failure Count", "Requests/s", "Failures/s", "50%", "95%", "99%")
HISTORY_COLUMNS = (
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "95%", "99%",
    "Total Request Count", "Total Failure Count",
)
FAILURE_COLUMNS = ("Method", "Name", "Error", "Occurrences")
# Headers of Locust before 1.0 (e.g. "Method", "# requests"): a different layout, not read.
OLD_LOCUST_MARKERS = ("# requests", "# failures", "# reqs", "Median response time", "Requests Failed/s")


class BadInput(Exception):
    """Unusable input; the message is one line naming the file and row."""


@dataclass(frozen=True)
class StatsRow:
    line: int
    type: str
    name: str
    count: int
    failures: int
    rps: float
    p50: float | None
    p95: float | None
    p99: float | None
    percentiles: dict[str, float | None]


@dataclass
class Series:
    """One (Type, Name) row's history; percentiles are cumulative unless --csv-full-history."""

    # compact arrays: a 2-hour full history is ~10^6 numbers
    t: array[float] = field(default_factory=lambda: array("d"))
    users: array[int] = field(default_factory=lambda: array("q"))
    rps: array[float] = field(default_factory=lambda: array("d"))
    fps: array[float] = field(default_factory=lambda: array("d"))
    p50: array[float] = field(default_factory=lambda: array("d"))
    p95: array[float] = field(default_factory=lambda: array("d"))
    p99: array[float] = field(default_factory=lambda: array("d"))
    total: array[int] = field(default_factory=lambda: array("q"))
    total_failures: array[int] = field(default_factory=lambda: array("q"))


@dataclass(frozen=True)
class FailureRow:
    method: str
    name: str
    error: str
    occurrences: int


@dataclass(frozen=True)
class HdrEntry:
    type: str
    name: str
    step: int | None
    count: int
    failures: int
    distribution: Distribution
    statuses: dict[int, int] = field(default_factory=dict)  # HTTP status -> calls (0: no response)
    # where the time went (docs/formats.md): phase -> distribution (ms); server metric -> mean ms
    phases: dict[str, Distribution] = field(default_factory=dict)
    server_metrics: dict[str, float] = field(default_factory=dict)
    new_connections: int = 0
    server_timed: int = 0
    split: tuple[tuple[float, float, float | None], ...] = ()  # lookups: sampled (total, connect, server) ms
    split_n: int = 0  # lookups the sample stands for


@dataclass(frozen=True)
class Step:
    index: int
    users: int
    start: float
    end: float | None  # None while a step is still running


@dataclass
class Run:
    prefix: Path
    stats: list[StatsRow]
    history: dict[tuple[str, str], Series]
    failures: list[FailureRow]
    hdr_entries: list[HdrEntry] | None
    metadata: dict[str, Any]
    warmup_s: float
    targets: dict[str, TargetStats]
    start_ts: float | None
    notes: list[str]
    problems: list[str] = field(default_factory=list)  # why the run cannot decide (from its metadata)

    @property
    def data_parity(self) -> dict[str, Any] | None:
        record = self.metadata.get("data_parity")
        return record if isinstance(record, dict) else None

    @property
    def preflight(self) -> dict[str, Any] | None:
        record = self.metadata.get("preflight")
        return record if isinstance(record, dict) else None

    def status_mix(self, target: str) -> dict[int, int]:
        """HTTP statuses of the target's calls (after the warm-up), from the artifact."""
        mix: dict[int, int] = {}
        for e in self.hdr_entries or []:
            if e.step is None and e.name.startswith(target + " "):
                for code, n in e.statuses.items():
                    mix[code] = mix.get(code, 0) + n
        return dict(sorted(mix.items()))

    @property
    def source(self) -> str:
        """"hdr" when at least one target's numbers come from the histograms (an artifact may be empty)."""
        if self.hdr_entries is not None and any(t.source == "hdr" for t in self.targets.values()):
            return "hdr"
        return "csv"

    @property
    def sandbox(self) -> bool:
        return bool(self.metadata.get("sandbox"))

    @property
    def hosts(self) -> dict[str, str]:
        """Target id -> scheme://host[:port] (never userinfo, path or query)."""
        out: dict[str, str] = {}
        for tid, info in (self.metadata.get("targets") or {}).items():
            host = info.get("host") if isinstance(info, dict) else None
            if isinstance(host, str) and host:
                parts = urlsplit(host)
                netloc = parts.netloc.rsplit("@", 1)[-1]
                out[tid] = f"{parts.scheme}://{netloc}" if netloc else "(unparsed host)"
        return out

    @property
    def steps(self) -> list[Step]:
        out = []
        for s in self.metadata.get("steps") or []:
            try:
                end = s.get("end")
                out.append(Step(int(s["index"]), int(s["users"]), float(s["start"]), None if end is None else float(end)))
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def step_entries(self) -> dict[int, dict[str, HdrEntry]]:
        out: dict[int, dict[str, HdrEntry]] = {}
        for e in self.hdr_entries or []:
            if e.step is not None and e.type == TRANSACTION:
                out.setdefault(e.step, {})[e.name] = e
        return out


# --------------------------------------------------------------------------- paths


def resolve_prefix(arg: str) -> Path:
    """Accept ``dir/run``, ``dir/run_stats.csv``, a directory holding exactly one ``*_stats.csv``, or a
    report folder (``reports decide --out``): its ``decision.json`` names the run it was made from."""
    path = Path(arg)
    if path.name.endswith("_stats.csv"):
        return path.with_name(path.name[: -len("_stats.csv")])
    if path.is_dir() and (path / "decision.json").is_file() and not any(path.glob("*_stats.csv")):
        try:
            prefix = json.loads((path / "decision.json").read_text(encoding="utf-8"))["run"]["prefix"]
        except (OSError, ValueError, KeyError, TypeError):
            raise BadInput(f"{path / 'decision.json'}: no run.prefix (not a report of `python -m reports decide`)") from None
        run = Path(prefix)
        if not _file(run, "_stats.csv").is_file():
            raise BadInput(f"{path / 'decision.json'}: its run {run} is gone ({run}_stats.csv not found)")
        return run
    if path.is_dir():
        found = sorted(p for p in path.glob("*_stats.csv"))
        if len(found) == 1:
            return found[0].with_name(found[0].name[: -len("_stats.csv")])
        if not found:
            raise BadInput(f"{path}: no *_stats.csv in this directory (give the --csv PREFIX of a Locust run)")
        raise BadInput(f"{path}: {len(found)} *_stats.csv files here; give the PREFIX of one run")
    return path


def _file(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


# --------------------------------------------------------------------------- CSV


def _check_header(path: Path, required: tuple[str, ...]) -> list[str]:
    """The header, when the file is a complete Locust 2.x CSV with the required columns; else BadInput."""
    header, body = _read_csv(path, required)
    body.close()  # type: ignore[attr-defined]  # a generator: closing it closes the file
    with path.open("rb") as raw:
        size = path.stat().st_size
        raw.seek(max(size - 1, 0))
        if size and raw.read(1) != b"\n" and b"\n" in path.read_bytes()[:-1]:
            # Locust ends every row with a newline; a missing one means the file was cut.
            lines = path.read_bytes().count(b"\n") + 1
            raise BadInput(f"{path} line {lines}: last row has no line end (truncated file?)")
    return header


def _frame(path: Path, required: tuple[str, ...], text: tuple[str, ...], explain: Any) -> Any:
    """The CSV as a pandas DataFrame of ``required`` columns (``text`` as strings, the rest numbers, "N/A"
    and "" as NaN).  Whenever pandas cannot read it, ``explain`` re-reads it row by row and raises the
    exact one-line error (file, line, column)."""
    import pandas as pd

    _check_header(path, required)
    # text as categories: a 2-hour history repeats a few dozen names 180,000 times
    dtypes = {c: ("category" if c in text else "float64") for c in required}
    try:
        df = pd.read_csv(path, usecols=list(required), dtype=dtypes, na_values=["N/A", ""], keep_default_na=False,
                         encoding="utf-8", skip_blank_lines=True)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError):
        explain(path)
        raise BadInput(f"{path}: not a readable CSV file") from None
    for c in text:
        if "" not in df[c].cat.categories:
            df[c] = df[c].cat.add_categories([""])
        df[c] = df[c].fillna("")
    return df[list(required)]  # usecols keeps the file's column order: put them in the caller's


def _valid_counts(df: Any, columns: tuple[str, ...], integer: tuple[str, ...]) -> bool:
    """No missing, negative or (for counts) fractional value in these columns."""
    import numpy as np

    values = df[list(columns)].to_numpy(dtype="float64")
    if np.isnan(values).any() or (values < 0).any():
        return False
    ints = df[list(integer)].to_numpy(dtype="float64")
    return bool((ints == np.floor(ints)).all())


def _read_csv(path: Path, required: tuple[str, ...]) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and a lazy iterator of (line number, row); rows are checked as they stream past."""
    if not path.is_file():
        raise BadInput(f"{path}: file not found")
    size = path.stat().st_size
    with path.open("rb") as raw:
        if size:
            raw.seek(-1, 2)
        ends_with_newline = raw.read(1) == b"\n"
    fh = path.open(encoding="utf-8", newline="")
    reader = csv.reader(fh)
    try:
        header = [h.strip() for h in next(reader, [])]
    except (csv.Error, UnicodeDecodeError) as exc:
        fh.close()
        raise BadInput(f"{path}: not a readable CSV file ({exc})") from None
    if not any(header):
        fh.close()
        raise BadInput(f"{path}: empty file (truncated, or the run wrote nothing)")
    if any(m in header for m in OLD_LOCUST_MARKERS) or ("Method" in header and "Type" not in header and "Error" not in header):
        fh.close()
        old = ", ".join(h for h in header if h in OLD_LOCUST_MARKERS or h == "Method")
        raise BadInput(f"{path} line 1: older Locust column set ({old}); re-run with Locust 2.x "
                       f"(needs columns: {', '.join(required)})")
    missing = [c for c in required if c not in header]
    if missing:
        fh.close()
        raise BadInput(f"{path} line 1: missing column(s) {', '.join(repr(m) for m in missing)}; not a Locust 2.x CSV")

    def rows() -> Iterator[tuple[int, list[str]]]:
        width = len(header)
        last = 1
        with fh:
            try:
                for row in reader:
                    last = reader.line_num
                    if not row:
                        continue
                    if len(row) != width:
                        raise BadInput(f"{path} line {last}: {len(row)} fields, expected {width} (truncated file?)")
                    yield last, row
            except (csv.Error, UnicodeDecodeError) as exc:
                raise BadInput(f"{path} line {reader.line_num + 1}: unreadable ({exc})") from None
        if not ends_with_newline and last > 1:
            # Locust ends every row with a newline; a missing one means the file was cut.
            raise BadInput(f"{path} line {last}: last row has no line end (truncated file?)")

    return header, rows()


def _num(path: Path, line: int, column: str, raw: str, allow_na: bool = True) -> float | None:
    value = raw.strip()
    if value in ("N/A", "") and allow_na:
        return None
    try:
        number = float(value)
    except ValueError:
        raise BadInput(f"{path} line {line} column {column!r}: {raw!r} is not a number") from None
    if math.isnan(number) or number < 0:
        raise BadInput(f"{path} line {line} column {column!r}: {raw!r} is not a valid count or time")
    return number


def _count(path: Path, line: int, column: str, raw: str) -> int:
    value = _num(path, line, column, raw, allow_na=False)
    assert value is not None
    return int(value)


def _check_name(path: Path, line: int, rtype: str, name: str) -> None:
    if rtype == "" and name == "Aggregated":
        return
    head = name.split(" ", 1)[0]
    if head not in TARGETS:
        raise BadInput(
            f"{path} line {line}: unknown name {name!r} (Type {rtype!r}); names must start with a target id"
            f" ({', '.join(TARGETS)})"
        )
    if rtype in TRANSACTION_TYPES and name not in TARGETS:
        raise BadInput(f"{path} line {line}: unknown target id {name!r} for Type {rtype!r}")


def _exact_stats(path: Path) -> list[StatsRow]:
    """Row by row, every check with its line: the explanation when the fast reader finds a problem."""
    header, body = _read_csv(path, STATS_COLUMNS)
    col = {h: i for i, h in enumerate(header)}
    pct_cols = [h for h in header if h.endswith("%")]
    out = []
    for line, row in body:
        rtype, name = row[col["Type"]].strip(), row[col["Name"]].strip()
        _check_name(path, line, rtype, name)
        count = _count(path, line, "Request Count", row[col["Request Count"]])
        failures = _count(path, line, "Failure Count", row[col["Failure Count"]])
        if failures > count:
            raise BadInput(f"{path} line {line}: Failure Count {failures} exceeds Request Count {count}")
        pcts = {h: _num(path, line, h, row[col[h]]) for h in pct_cols}
        out.append(
            StatsRow(line, rtype, name, count, failures, _num(path, line, "Requests/s", row[col["Requests/s"]]) or 0.0,
                     pcts["50%"], pcts["95%"], pcts["99%"], pcts)
        )
    return out


def _exact_history(path: Path) -> dict[tuple[str, str], Series]:
    """Row by row, every check with its line: the explanation when the fast reader finds a problem."""
    header, body = _read_csv(path, HISTORY_COLUMNS)
    c = {h: i for i, h in enumerate(header)}
    ts, uc, ty, nm, rp, fp = c["Timestamp"], c["User Count"], c["Type"], c["Name"], c["Requests/s"], c["Failures/s"]
    i50, i95, i99, itot, ifail = c["50%"], c["95%"], c["99%"], c["Total Request Count"], c["Total Failure Count"]
    series: dict[tuple[str, str], Series] = {}
    checked: set[tuple[str, str]] = set()
    nan = math.nan
    for line, row in body:
        key = (row[ty], row[nm])
        if key not in checked:
            _check_name(path, line, *key)
            checked.add(key)
        s = series.get(key)
        if s is None:
            s = series[key] = Series()
        try:
            # Fast path; on any error re-parse the row field by field for a precise message.
            s.t.append(float(row[ts]))
            s.users.append(int(row[uc]))
            s.rps.append(float(row[rp]))
            s.fps.append(float(row[fp]))
            s.p50.append(nan if row[i50] == "N/A" else float(row[i50]))
            s.p95.append(nan if row[i95] == "N/A" else float(row[i95]))
            s.p99.append(nan if row[i99] == "N/A" else float(row[i99]))
            s.total.append(int(row[itot]))
            s.total_failures.append(int(row[ifail]))
        except ValueError:
            for name in ("Timestamp", "User Count", "Requests/s", "Failures/s", "50%", "95%", "99%",
                         "Total Request Count", "Total Failure Count"):
                value = _num(path, line, name, row[c[name]], allow_na=name.endswith("%"))
                if value is not None and name in ("User Count", "Total Request Count", "Total Failure Count") \
                        and value != int(value):
                    raise BadInput(f"{path} line {line} column {name!r}: {row[c[name]]!r} is not an integer") from None
            raise BadInput(f"{path} line {line}: unreadable row") from None
    return series


def _exact_failures(path: Path) -> list[FailureRow]:
    """Row by row, every check with its line: the explanation when the fast reader finds a problem."""
    header, body = _read_csv(path, FAILURE_COLUMNS)
    col = {h: i for i, h in enumerate(header)}
    out = []
    for line, row in body:
        name = row[col["Name"]].strip()
        _check_name(path, line, row[col["Method"]].strip(), name)
        out.append(FailureRow(row[col["Method"]], name, row[col["Error"]],
                              _count(path, line, "Occurrences", row[col["Occurrences"]])))
    return out


def _names_ok(df: Any, type_col: str) -> bool:
    pairs = df[[type_col, "Name"]].drop_duplicates()
    for rtype, name in pairs.itertuples(index=False):
        rtype, name = str(rtype).strip(), str(name).strip()
        if rtype == "" and name == "Aggregated":
            continue
        if target_of(name) not in TARGETS or (rtype in TRANSACTION_TYPES and name not in TARGETS):
            return False
    return True


def read_stats(path: Path) -> list[StatsRow]:
    header = _check_header(path, STATS_COLUMNS)
    pct_cols = tuple(h for h in header if h.endswith("%"))
    columns = tuple(dict.fromkeys((*STATS_COLUMNS, *pct_cols)))
    df = _frame(path, columns, ("Type", "Name"), _exact_stats)
    counts = ("Request Count", "Failure Count")
    numbers = df[[c for c in columns if c not in ("Type", "Name", *counts)]].to_numpy(dtype="float64")
    if (not _valid_counts(df, counts, counts) or (numbers[~(numbers != numbers)] < 0).any()  # NaN: N/A
            or (df["Failure Count"] > df["Request Count"]).any() or not _names_ok(df, "Type")):
        _exact_stats(path)
        raise BadInput(f"{path}: inconsistent rows")
    out = []
    for i, r in enumerate(df.itertuples(index=False)):
        row = dict(zip(columns, r, strict=True))
        pcts = {h: _na(row[h]) for h in pct_cols}
        out.append(StatsRow(i + 2, str(row["Type"]).strip(), str(row["Name"]).strip(), int(row["Request Count"]),
                            int(row["Failure Count"]), _na(row["Requests/s"]) or 0.0, pcts["50%"], pcts["95%"],
                            pcts["99%"], pcts))
    return out


def _na(value: Any) -> float | None:
    return None if value is None or value != value else float(value)  # NaN is "N/A"


def read_history(path: Path) -> dict[tuple[str, str], Series]:
    import numpy as np

    df = _frame(path, HISTORY_COLUMNS, ("Type", "Name"), _exact_history)
    required = ("Timestamp", "User Count", "Requests/s", "Failures/s", "Total Request Count", "Total Failure Count")
    counts = ("User Count", "Total Request Count", "Total Failure Count")
    pct = df[["50%", "95%", "99%"]].to_numpy(dtype="float64")
    if not _valid_counts(df, required, counts) or (pct[~np.isnan(pct)] < 0).any() or not _names_ok(df, "Type"):
        _exact_history(path)
        raise BadInput(f"{path}: inconsistent rows")
    # group rows by (Type, Name) on the categories' codes, keeping each series in file (time) order
    types, names = df["Type"].cat, df["Name"].cat
    key = types.codes.to_numpy(dtype="int64") * (len(names.categories) + 1) + names.codes.to_numpy(dtype="int64")
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    type_codes, name_codes = types.codes.to_numpy(), names.codes.to_numpy()
    type_labels, name_labels = list(types.categories), list(names.categories)
    columns = {c: df[c].to_numpy(dtype="float64") for c in (*required, "50%", "95%", "99%")}
    del df, types, names  # the columns above are all that is left to read: keep the peak memory down
    series: dict[tuple[str, str], Series] = {}
    groups = sorted(np.split(order, bounds), key=lambda rows: rows[0])  # first appearance first, as in the file
    for rows in groups:
        first = rows[0]
        label = (str(type_labels[type_codes[first]]), str(name_labels[name_codes[first]]))
        series[label] = Series(
            t=_doubles(columns["Timestamp"][rows]), users=_ints(columns["User Count"][rows]),
            rps=_doubles(columns["Requests/s"][rows]), fps=_doubles(columns["Failures/s"][rows]),
            p50=_doubles(columns["50%"][rows]), p95=_doubles(columns["95%"][rows]), p99=_doubles(columns["99%"][rows]),
            total=_ints(columns["Total Request Count"][rows]), total_failures=_ints(columns["Total Failure Count"][rows]),
        )
    return series


def _doubles(values: Any) -> array[float]:
    out = array("d")
    out.frombytes(values.astype("<f8").tobytes())
    return out


def _ints(values: Any) -> array[int]:
    out = array("q")
    out.frombytes(values.astype("<i8").tobytes())
    return out


def read_failures(path: Path) -> list[FailureRow]:
    df = _frame(path, FAILURE_COLUMNS, ("Method", "Name", "Error"), _exact_failures)
    if not _valid_counts(df, ("Occurrences",), ("Occurrences",)) or not _names_ok(df, "Method"):
        _exact_failures(path)
        raise BadInput(f"{path}: inconsistent rows")
    return [FailureRow(str(m), str(n).strip(), str(e), int(o))
            for m, n, e, o in df[list(FAILURE_COLUMNS)].itertuples(index=False)]


# --------------------------------------------------------------------------- HDR JSON


def read_hdr(path: Path) -> tuple[dict[str, Any], list[HdrEntry]]:
    try:
        _, metadata, entries = read_artifact(path)
    except ArtifactError as exc:
        raise BadInput(str(exc)) from None
    for key, kind in (("targets", dict), ("steps", list), ("settings", dict)):
        if metadata.get(key) is not None and not isinstance(metadata[key], kind):
            raise BadInput(f"{path}: metadata.{key} must be {'an object' if kind is dict else 'a list'}")
    warmup = metadata.get("warmup_s")
    if warmup is not None and (not isinstance(warmup, int | float) or isinstance(warmup, bool) or warmup < 0):
        raise BadInput(f"{path}: metadata.warmup_s must be a non-negative number, got {warmup!r}")
    from hdrh.histogram import HdrHistogram  # only needed when an artifact is present

    out = []
    for i, e in enumerate(entries):
        where = f"{path} entries[{i}]"
        name, etype = e["name"], e["type"]  # read_artifact checked both
        step = e.get("step")
        if step is not None and not isinstance(step, int):
            raise BadInput(f"{where} ({name}): 'step' must be null or an integer")
        unit = e.get("unit", "us")
        per_ms = PER_MS.get(unit)
        if per_ms is None:
            raise BadInput(f"{where} ({name}): unknown unit {unit!r} (us, ms or ns)")
        failures = e.get("failures", 0)
        if not isinstance(failures, int) or failures < 0:
            raise BadInput(f"{where} ({name}): 'failures' must be a non-negative integer")
        dist = distribution_from_histogram(decode_histogram(e.get("hdr"), f"{where} ({name})"), per_ms)
        declared = e.get("count")
        if isinstance(declared, int) and declared != dist.total:
            raise BadInput(f"{where} ({name}): 'count' is {declared} but the histogram holds {dist.total} values")
        statuses = e.get("statuses") or {}
        try:
            codes = {int(k): int(v) for k, v in statuses.items()}
        except (AttributeError, TypeError, ValueError):
            raise BadInput(f"{where} ({name}): 'statuses' must map HTTP status codes to counts") from None
        out.append(HdrEntry(etype, name, step, dist.total, failures, dist, codes, *_timing(e, where, name, HdrHistogram)))
    return metadata, out


#: An artifact histogram's unit -> its values per millisecond.
PER_MS = {"us": 1000.0, "ms": 1.0, "ns": 1_000_000.0}


def decode_histogram(blob: Any, where: str) -> Any:
    """A base64 HdrHistogram from an artifact; BadInput naming ``where`` when it is not one."""
    from hdrh.histogram import HdrHistogram  # only needed when an artifact is present

    if not isinstance(blob, str) or not blob:
        raise BadInput(f"{where}: 'hdr' must be a non-empty base64 string")
    try:
        return HdrHistogram.decode(blob.encode("ascii"))
    except Exception:  # the codec raises assorted types on corrupt input
        raise BadInput(f"{where}: 'hdr' is not a decodable HdrHistogram encoding") from None


def _timing(e: dict[str, Any], where: str, name: str, histogram: Any) -> tuple[Any, ...]:
    """An entry's phases, server metrics, connections and split sample (absent before format /2)."""
    try:
        phases = {}
        for phase, p in (e.get("phases") or {}).items():
            phases[str(phase)] = distribution_from_histogram(histogram.decode(p["hdr"].encode("ascii")), 1000.0)
        metrics = {str(m): float(v["sum_ms"]) / int(v["count"])
                   for m, v in (e.get("server_metrics") or {}).items() if int(v["count"]) > 0}
        split = e.get("split") or {}
        samples = tuple((float(t), float(c), None if sv is None else float(sv)) for t, c, sv in split.get("samples") or [])
        return phases, metrics, int(e.get("new_connections", 0)), int(e.get("server_timed", 0)), samples, \
            int(split.get("n", len(samples)))
    except (AttributeError, KeyError, TypeError, ValueError, ZeroDivisionError):
        raise BadInput(f"{where} ({name}): unreadable 'phases', 'server_metrics' or 'split'") from None
    except Exception:  # the histogram codec raises assorted types on corrupt input
        raise BadInput(f"{where} ({name}): a phase's 'hdr' is not a decodable HdrHistogram encoding") from None


# --------------------------------------------------------------------------- the run


def load_run(prefix_arg: str | Path, warmup_s: float | None = None, hdr: str | Path | None = None) -> Run:
    """Read a run; ``hdr`` names the HDR artifact when it was written away from the CSVs (``--hdr-out``)."""
    prefix = resolve_prefix(str(prefix_arg))
    stats_path = _file(prefix, "_stats.csv")
    hdr_path = _file(prefix, "_hdr.json") if hdr is None else Path(hdr)
    if hdr is not None and not hdr_path.is_file():
        raise BadInput(f"{hdr_path}: file not found (--hdr)")
    stats = read_stats(stats_path)
    history = read_history(_file(prefix, "_stats_history.csv"))
    failures = read_failures(_file(prefix, "_failures.csv"))
    notes: list[str] = []

    metadata: dict[str, Any] = {}
    hdr_entries: list[HdrEntry] | None = None
    if hdr_path.exists():
        metadata, hdr_entries = read_hdr(hdr_path)
    else:
        notes.append(
            f"No {hdr_path.name}: percentiles are Locust's CSV values, bucketed to ~2 significant digits "
            "(±5 ms between 100 ms and 1 s), include the warm-up, allow no bootstrap CI, and may miss the "
            "run's last second (Locust does not rewrite _stats.csv at shutdown)."
        )
    lookups = _lookup_rows(stats_path, stats)
    warmup_s = _warmup(warmup_s, metadata, hdr_entries is not None, notes)
    agg_series = history.get(("", "Aggregated"))
    start_ts = epoch_s(metadata.get("started_at"))
    if start_ts is None and agg_series and agg_series.t:
        start_ts = agg_series.t[0]

    targets: dict[str, TargetStats] = {}
    if hdr_entries is not None:
        measured_s = _measured_s(metadata, start_ts, warmup_s)
        targets = _hdr_targets(hdr_entries, lookups, measured_s, hdr_path.name, warmup_s, notes)
    for name, row in lookups.items():
        if name not in targets:
            targets[name] = _csv_target(row, history.get((TRANSACTION, name)), start_ts, warmup_s)
    for name, t in list(targets.items()):
        requests, failed = _other_transactions(name, stats, hdr_entries if t.source == "hdr" else None)
        targets[name] = replace(t, other_requests=requests, other_failures=failed)
    if warmup_s > 0 and hdr_entries is None:
        per_target = any(k[0] == TRANSACTION for k in history)
        notes.append(
            f"Warm-up ({warmup_s:g} s): excluded from sample counts"
            + (" (per-target history rows)" if per_target
               else " only where per-target history exists (run with --csv-full-history)")
            + "; Locust's cumulative CSV percentiles still include it."
        )
    _check_measured(stats_path, set(lookups) | set(targets))
    notes += _round_trip_notes(targets, metadata)
    run = Run(prefix, stats, history, failures, hdr_entries, metadata, warmup_s, targets, start_ts, notes)
    run.problems += _run_problems(run)
    return run


def _lookup_rows(stats_path: Path, stats: list[StatsRow]) -> dict[str, StatsRow]:
    aggregated = next((r for r in stats if r.type == "" and r.name == "Aggregated"), None)
    if (aggregated.count if aggregated else sum(r.count for r in stats)) == 0:
        raise BadInput(f"{stats_path}: the run recorded zero requests")
    lookups = {r.name: r for r in stats if r.type == TRANSACTION}
    if not lookups:
        raise BadInput(f"{stats_path}: no transaction rows (Type {TRANSACTION!r}, Name <target id>); "
                       "was the run made with this project's locustfiles?")
    return lookups


def _warmup(warmup_s: float | None, metadata: dict[str, Any], has_hdr: bool, notes: list[str]) -> float:
    meta_warmup = metadata.get("warmup_s")
    if warmup_s is None:
        return float(meta_warmup) if isinstance(meta_warmup, int | float) else 0.0
    if has_hdr and isinstance(meta_warmup, int | float) and float(meta_warmup) != warmup_s:
        notes.append(
            f"The HDR histograms exclude the harness's own warm-up ({float(meta_warmup):g} s); "
            f"--warmup {warmup_s:g} applies to the CSV-derived series only."
        )
    return warmup_s


def _measured_s(metadata: dict[str, Any], start_ts: float | None, warmup_s: float) -> float | None:
    end_ts = epoch_s(metadata.get("ended_at"))
    return (end_ts - start_ts - warmup_s) if (end_ts and start_ts) else None


def _hdr_targets(entries: list[HdrEntry], lookups: dict[str, StatsRow], measured_s: float | None, artifact: str,
                 warmup_s: float, notes: list[str]) -> dict[str, TargetStats]:
    whole: dict[str, HdrEntry] = {}
    for e in entries:
        if e.step is None and e.type == TRANSACTION:
            seen = whole.get(e.name)
            # several entries for one target (e.g. one per worker) are merged, as HDR add() would
            whole[e.name] = e if seen is None else HdrEntry(
                e.type, e.name, None, seen.count + e.count, seen.failures + e.failures,
                seen.distribution.merged(e.distribution),
            )
    targets = {}
    for name, e in whole.items():
        total = e.count + e.failures
        rps = total / measured_s if measured_s and measured_s > 0 else lookups[name].rps if name in lookups else None
        targets[name] = target_from_distribution(name, e.distribution, failures=e.failures, rps=rps, source="hdr")
    if not whole:
        notes.append(f"{artifact} holds no lookup samples (a run shorter than its {warmup_s:g} s warm-up?): "
                     "using Locust's CSV percentiles.")
    notes += [f"{name} has a CSV row but no HDR entry: using its CSV percentiles."
              for name in lookups if whole and name not in whole]
    return targets


def _csv_target(row: StatsRow, series: Series | None, start_ts: float | None, warmup_s: float) -> TargetStats:
    """A target from Locust's CSV row, its warm-up's samples taken out of the counts where the history allows."""
    successes, fails = row.count - row.failures, row.failures
    if warmup_s > 0 and series and series.t and start_ts is not None:
        before = [i for i, t in enumerate(series.t) if t < start_ts + warmup_s]
        if before:
            i = before[-1]
            successes -= series.total[i] - series.total_failures[i]
            fails -= series.total_failures[i]
    return TargetStats(target=row.name, p50_ms=row.p50, p95_ms=row.p95, p99_ms=row.p99,
                       count=max(successes, 0), failures=max(fails, 0), rps=row.rps, source="csv")


def _check_measured(stats_path: Path, measured: set[str]) -> None:
    """The decision's level needs its baseline and a Convex target (harness.contracts.decision_level)."""
    level = decision_level(measured)
    (baseline,) = targets_of(level, "baseline")
    convex = targets_of(level, "convex")
    if baseline not in measured:
        raise BadInput(f"{stats_path}: target {baseline!r} missing (no Type 'lookup' row): the baseline was not measured")
    if not any(c in measured for c in convex):
        raise BadInput(f"{stats_path}: no Convex target measured (no Type 'lookup' row for {' or '.join(convex)})")


def _round_trip_notes(targets: dict[str, TargetStats], metadata: dict[str, Any]) -> list[str]:
    notes = []
    for t in targets.values():
        declared = (metadata.get("targets") or {}).get(t.target)
        if (t.round_trips is not None and isinstance(declared, dict)
                and declared.get("round_trips") not in (None, t.round_trips)):
            notes.append(f"{t.target}: metadata says {declared['round_trips']} round trips; "
                         f"docs/formats.md says {t.round_trips}.")
    return notes


def _run_problems(run: Run) -> list[str]:
    """Why the run cannot decide, from its metadata: data that differed, a saturated load generator."""
    from reports.timing import saturation_problems  # reads the Run

    problems = []
    parity = run.data_parity
    if parity is not None and parity.get("status") == "mismatch":
        problems.append("data differs between Supabase and Convex (the run was started with --allow-data-mismatch)")
    return problems + saturation_problems(run)


def _other_transactions(target: str, stats: list[StatsRow], hdr_entries: list[HdrEntry] | None) -> tuple[int, int]:
    """(requests, failures) of the target's lookups of unknown phones and writes: from the histograms
    (after the warm-up) when the lookups come from them, else from the CSV."""
    others = ("lookup-miss", "write")
    if hdr_entries is not None:
        rows = [(e.count + e.failures, e.failures) for e in hdr_entries
                if e.step is None and e.name == target and e.type in others]
    else:
        rows = [(r.count, r.failures) for r in stats if r.name == target and r.type in others]
    return sum(r for r, _ in rows), sum(f for _, f in rows)
