"""The harness's custom Locust arguments (also shown, editable, in the web UI's start form)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from harness.contracts import API_TARGETS, TARGET_IDS, TARGETS
from harness.settings import SettingsError, load_settings
from reports.rules import Thresholds, add_threshold_arguments

AUTO = -1
CONNECTION_MODES = ("reuse", "per-lookup", "per-request")


def default_targets() -> list[str]:
    """Direct targets, plus the API routes when APP_URL is set (the realtime targets are asked for by name)."""
    try:
        app = load_settings().app_url
    except SettingsError:
        app = None
    return [t for t in TARGET_IDS if TARGETS[t].level == "direct" or (TARGETS[t].level == "api" and app)]


def add_arguments(parser: Any) -> None:
    g = parser  # Locust's web-UI kwargs (is_multiple, …) only work on the parser itself
    d = HarnessOptions(targets=())
    g.add_argument(
        "--targets", nargs="+", choices=list(TARGET_IDS), is_multiple=True, default=default_targets(),
        help="Target ids to load side by side (api_* need APP_URL)",
    )
    g.add_argument("--known-weight", type=int, default=d.known_weight, help="Task weight: lookups of known phones")
    g.add_argument("--unknown-weight", type=int, default=d.unknown_weight,
                   help="Task weight: lookups of unknown phones (not-found path)")
    g.add_argument(
        "--write-weight", type=int, default=d.write_weight,
        help="Task weight: append an outbound message. -1 = auto (5 on the sandbox, 0 elsewhere); "
        "a real deployment also needs --allow-writes",
    )
    g.add_argument("--allow-writes", action="store_true", default=d.allow_writes,
                   help="Allow the write task against a non-sandbox target")
    g.add_argument("--distinct-keys", action="store_true", default=d.distinct_keys,
                   help="Never repeat a known phone (defeats query caches)")
    g.add_argument("--workload", default=d.workload,
                   help="workload.json from `python -m seed workload` (read by the master)")
    g.add_argument("--open-rate", type=float, default=d.open_rate,
                   help="Open model: lookups/s per target (0 = closed model)")
    g.add_argument("--max-late", type=float, default=d.max_late,
                   help="Open model: drop a start more than this many seconds late")
    g.add_argument("--step-spec", default=d.step_spec, help="Step shape: users per step, 'users' or 'users:seconds'")
    g.add_argument("--step-hold", type=float, default=d.step_hold,
                   help="Step shape: seconds each step is held (default per step)")
    g.add_argument("--warmup", type=float, default=d.warmup, help="Seconds at the start left out of the HDR histograms")
    g.add_argument("--think-time", type=float, default=d.think_time,
                   help="Closed model: seconds a user waits between lookups")
    g.add_argument("--hdr-out", default=d.hdr_out, help="HDR artifact path (default: <--csv prefix>_hdr.json)")
    g.add_argument("--raw-samples", default=d.raw_samples,
                   help="Also write every sample to this CSV (written by the master)")
    add_threshold_arguments(g.add_argument, prefix="Decision: ")
    g.add_argument(
        "--verdict-exit-code", action=argparse.BooleanOptionalAction, default=d.verdict_exit_code,
        help="Headless: exit with the verdict's code (0 GO, 10 OPTIMISE SUPABASE, 11 INCONCLUSIVE)",
    )
    g.add_argument("--subscribers-per-workspace", type=int, default=d.subscribers_per_workspace,
                   help="Realtime targets: subscribers to each workspace's inbox (the first of them also writes)")
    g.add_argument("--realtime-rate", type=float, default=d.realtime_rate,
                   help="Realtime targets: marked messages written per second to each subscribed workspace")
    g.add_argument(
        "--connections", choices=CONNECTION_MODES, default=d.connections,
        help="reuse: keep-alive (default); per-lookup: fresh connections for each lookup (a cold serverless "
        "instance); per-request: a fresh connection for every call (a client without keep-alive)",
    )
    g.add_argument(
        "--skip-preflight", action="store_true", default=d.skip_preflight,
        help="Start without one real lookup per target and without the data-parity check (the report says so)",
    )
    g.add_argument(
        "--allow-data-mismatch", action="store_true", default=d.allow_data_mismatch,
        help="Run even when the backends hold different data (the verdict is then INCONCLUSIVE)",
    )
    g.add_argument(
        "--verify-data", action="store_true", default=d.verify_data,
        help="Data parity by full table fingerprints and sampled lookups (python -m seed verify), not row counts",
    )


_TH = Thresholds()


@dataclass(frozen=True)
class HarnessOptions:
    """The harness's options: every default is stated here once (the decision's from ``Thresholds``)."""

    targets: tuple[str, ...]
    known_weight: int = 90
    unknown_weight: int = 10
    write_weight: int = AUTO
    allow_writes: bool = False
    distinct_keys: bool = False
    workload: str = "workload.json"
    open_rate: float = 0.0
    max_late: float = 1.0
    step_spec: str = "10,25,50,100"
    step_hold: float = 30.0
    warmup: float = 10.0
    think_time: float = 0.0
    hdr_out: str = ""
    raw_samples: str = ""
    p95_target_ms: float = _TH.p95_target_ms
    min_speedup: float = _TH.min_speedup
    equivalence: float = _TH.equivalence
    min_samples: int = _TH.min_samples
    max_failure_ratio: float = _TH.max_failure_ratio
    verdict_exit_code: bool = True
    connections: str = "reuse"
    subscribers_per_workspace: int = 5
    realtime_rate: float = 1.0
    skip_preflight: bool = False
    allow_data_mismatch: bool = False
    verify_data: bool = False

    @classmethod
    def from_parsed(cls, parsed: Any) -> HarnessOptions:
        if parsed is None:
            return cls(targets=tuple(default_targets()))
        raw = getattr(parsed, "targets", None) or default_targets()
        if isinstance(raw, str):
            raw = raw.split(",")
        targets: list[str] = []
        for t in raw:
            for part in str(t).replace(",", " ").split():
                if part not in TARGETS:
                    raise ValueError(f"--targets: unknown target {part!r} (one of {', '.join(TARGET_IDS)})")
                if part not in targets:
                    targets.append(part)
        kw = {name: getattr(parsed, name) for name in cls.__dataclass_fields__ if name != "targets" and hasattr(parsed, name)}
        opts = cls(targets=tuple(targets), **kw)
        opts.validate()
        return opts

    def validate(self) -> None:
        for name in ("known_weight", "unknown_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
        if self.write_weight < AUTO:
            raise ValueError("--write-weight must be >= 0 (or -1 for auto)")
        if self.open_rate < 0 or self.warmup < 0 or self.think_time < 0 or self.max_late <= 0:
            raise ValueError("--open-rate, --warmup and --think-time must be >= 0, --max-late > 0")
        if not self.targets:
            raise ValueError("--targets: select at least one target")
        if self.subscribers_per_workspace < 1 or self.realtime_rate <= 0:
            raise ValueError("--subscribers-per-workspace must be >= 1 and --realtime-rate > 0")
        self.thresholds.validate()

    @property
    def thresholds(self) -> Thresholds:
        """The decision's thresholds: the live Decision tab and the headless exit code use all of them."""
        return Thresholds(p95_target_ms=self.p95_target_ms, min_speedup=self.min_speedup, equivalence=self.equivalence,
                          min_samples=self.min_samples, max_failure_ratio=self.max_failure_ratio)

    def effective_write_weight(self, sandbox: bool) -> int:
        if self.write_weight == AUTO:
            return 5 if sandbox else 0
        if self.write_weight > 0 and not sandbox and not self.allow_writes:
            return 0
        return self.write_weight

    @property
    def api_targets(self) -> tuple[str, ...]:
        return tuple(t for t in self.targets if t in API_TARGETS)
