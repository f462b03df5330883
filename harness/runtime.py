"""The harness's per-process state and its Locust event wiring.

One :class:`Harness` per process.  On the master (or a local runner) it reads
the options and the workload at each test start and hands them to the
workers (``harness_setup`` message, before Locust's spawn messages on the same
socket, so workers have them before their users start); steps are broadcast
as ``harness_step``.  Workers ship HDR histograms, pacer counters and raw
samples with every stats report; the master merges them and, at quit, writes
the artifact and sets the exit code from the verdict.
"""

from __future__ import annotations

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

import bisect
import csv
import itertools
import logging
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import gevent.event

from harness import artifact, decision
from harness.hdr import Recorder
from harness.options import HarnessOptions, add_arguments
from harness.pacer import Pacer, PacerCounts
from harness.preflight import unreachable
from harness.settings import Settings, SettingsError, load_settings
from harness.targets import WRITE_TARGETS, Endpoints
from harness.workload import Sampler, Workload, WorkloadError, resolve

log = logging.getLogger("harness")

KINDS = ("known", "unknown", "write")


class Harness:
    def __init__(self, environment: Environment, settings: Settings) -> None:
        self.environment = environment
        self.settings = settings
        self.endpoints = Endpoints.from_settings(settings)
        self.sandbox = settings.is_sandbox
        self.options = HarnessOptions.from_parsed(environment.parsed_options)
        self.recorder = Recorder(self.options.warmup)
        self.workload: Workload | None = None
        self.sampler: Sampler | None = None
        self.ready = gevent.event.Event()
        self.tokens: dict[str, str] = {}
        self.slice_index = 0
        self.slices = 1
        self.pacers: dict[str, Pacer] = {}
        self.pacer_totals: dict[str, PacerCounts] = {}
        self.steps: list[dict[str, Any]] = []
        self.steps_stale = False  # set when a run ends: the next set_step starts a new list
        self.started_at: datetime | None = None
        self.ended_at: datetime | None = None
        self.rng = random.Random()
        self.kind_weights: dict[str, list[int]] = {}
        self.raw_file: IO[str] | None = None
        self.raw_writer: Any = None
        self.all_user_classes = list(environment.user_classes)
        self.config_error: str | None = None
        self.request_cache: dict[Any, Any] = {}
        self.kind_cum: dict[str, tuple[list[int], int]] = {}
        self.worker_count = 0

    # ------------------------------------------------------------------ role
    @property
    def is_master(self) -> bool:
        return isinstance(self.environment.runner, MasterRunner)

    @property
    def is_worker(self) -> bool:
        return isinstance(self.environment.runner, WorkerRunner)

    @property
    def open_model(self) -> bool:
        return self.options.open_rate > 0

    # ------------------------------------------------------------------ targets
    def select_targets(self, targets: list[str] | tuple[str, ...]) -> None:
        """Keep only the selected targets' user classes (master/local: it decides the dispatch)."""
        from harness.users import LookupUser

        chosen = [
            c for c in self.all_user_classes
            if not (isinstance(c, type) and issubclass(c, LookupUser)) or c.target in targets
        ]
        for c in chosen:
            if isinstance(c, type) and issubclass(c, LookupUser):
                # shown by the web UI; requests use absolute URLs, so a host typed there changes nothing
                c.host = self.endpoints.base_url(c.target) or c.host
        self.environment.user_classes = chosen

    def check_targets(self) -> list[str]:
        return [m for t in self.options.targets if (m := self.endpoints.missing(t))]

    # ------------------------------------------------------------------ per test
    def begin(self) -> None:
        """Master/local at test start: options, workload, tokens; then tell the workers."""
        self.options = HarnessOptions.from_parsed(self.environment.parsed_options)
        run_time = getattr(self.environment.parsed_options, "run_time", None)
        if isinstance(run_time, int | float) and 0 < run_time <= self.options.warmup:
            log.warning(
                f"the run ({run_time:g} s) is not longer than --warmup ({self.options.warmup:g} s): "
                "the HDR histograms will hold no samples; lower --warmup or lengthen -t"
            )
        self.select_targets(self.options.targets)
        self.workload = resolve(self.settings, self.options.workload)
        self.tokens = self._tokens(self.workload)
        if "convex_query" in self.options.targets and not self.tokens and not self.settings.get("CONVEX_AUTH_TOKEN"):
            log.warning(
                "convex_query has no member token: set CONVEX_AUTH_TOKEN; its lookups will fail as Unauthenticated"
            )
        self._reset_run()
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            clients = sorted(c.id for c in runner.clients.ready + runner.clients.running + runner.clients.spawning)
            self.worker_count = len(clients)
            wire = self.workload.to_wire()
            for i, client_id in enumerate(clients):
                runner.send_message(
                    "harness_setup",
                    {"workload": wire, "tokens": self.tokens, "slice": i, "slices": len(clients)},
                    client_id,
                )
        else:
            self._use_workload(self.workload, 0, 1)

    def _reset_run(self) -> None:
        self.recorder.start(self.options.warmup)
        if self.options.raw_samples:
            self.recorder.raw = []
        self.pacers = {}
        self.pacer_totals = {}
        # steps are not cleared here: a shape sets its first step just before the test starts
        self.started_at = datetime.now(UTC)
        self.ended_at = None
        w = self.options.effective_write_weight(self.sandbox)
        self.kind_weights = {
            t: [self.options.known_weight, self.options.unknown_weight, w if t in WRITE_TARGETS else 0]
            for t in self.options.targets
        }
        self.kind_cum = {t: (list(itertools.accumulate(ws)), sum(ws)) for t, ws in self.kind_weights.items()}
        self.request_cache = {}
        if self.options.write_weight > 0 and w == 0:
            log.warning("write task left off: the target is not the sandbox (add --allow-writes to turn it on)")

    def _use_workload(self, workload: Workload, slice_index: int, slices: int) -> None:
        self.workload = workload
        self.slice_index, self.slices = slice_index, slices
        self.sampler = Sampler(workload, self.options.distinct_keys, slice_index, slices)
        self.ready.set()

    def on_setup_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        self.tokens = dict(data.get("tokens") or {})
        self.request_cache = {}
        self.options = HarnessOptions.from_parsed(environment.parsed_options)
        self._use_workload(Workload.from_wire(data["workload"]), int(data["slice"]), int(data["slices"]))

    def on_step_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.recorder.step = msg.data["index"]

    def _tokens(self, workload: Workload) -> dict[str, str]:
        """Member access tokens per workspace for the Convex query path (never logged)."""
        explicit = self.settings.get("CONVEX_AUTH_TOKEN")
        if explicit or not self.sandbox:
            return {}
        try:
            from sandbox.tokens import mint_jwt  # the sandbox's issuer; absent outside the sandbox
        except ImportError:
            log.warning("sandbox.tokens is not available: convex_query runs without a member token")
            return {}
        members = dict(workload.members)
        for ws in {k.workspace_id for k in workload.known} - members.keys():
            user = self._sandbox_member(ws)
            if user is not None:
                members[ws] = user
        return {ws: mint_jwt(sub=user, alg="ES256") for ws, user in members.items()}

    def _sandbox_member(self, workspace_id: str) -> str | None:
        """A member of a pinned workspace (TEST_WORKSPACE_ID), asked of the sandbox's Supabase once per test."""
        import httpx  # test start only, never on the hot path

        key = self.settings.get("SUPABASE_SERVICE_ROLE_KEY")
        if not key or not self.settings.get("SUPABASE_URL"):
            return None
        try:
            resp = httpx.get(
                f"{self.settings.supabase_url}/rest/v1/workspace_members",
                params={"select": "user_id", "workspace_id": f"eq.{workspace_id}", "order": "created_at", "limit": "1"},
                headers={"apikey": key, "Authorization": f"Bearer {key}"},
                timeout=10.0,
            )
            rows = resp.json() if resp.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            rows = []
        if rows and isinstance(rows[0], dict) and isinstance(rows[0].get("user_id"), str):
            return str(rows[0]["user_id"])
        log.warning(f"workspace {workspace_id} has no member on the sandbox: convex_query will run without a token")
        return None

    def token_for(self, workspace_id: str) -> str | None:
        return self.tokens.get(workspace_id) or self.settings.get("CONVEX_AUTH_TOKEN")

    # ------------------------------------------------------------------ users' helpers
    def wait_ready(self, timeout: float = 30.0) -> bool:
        if self.config_error is not None:
            return False
        return self.ready.wait(timeout)

    def choose_kind(self, target: str) -> str:
        cum, total = self.kind_cum.get(target) or ([self.options.known_weight], self.options.known_weight)
        if total <= 0 or cum[0] == total:
            return "known"
        return KINDS[bisect.bisect_right(cum, self.rng.random() * total)]

    def pacer(self, target: str) -> Pacer:
        p = self.pacers.get(target)
        if p is None:
            # each process paces its share of the target's rate
            p = self.pacers[target] = Pacer(self.options.open_rate / max(self.slices, 1), self.options.max_late)
        return p

    # ------------------------------------------------------------------ steps
    def set_step(self, index: int, users: int) -> None:
        now = time.time()
        if self.steps_stale:
            self.steps, self.steps_stale = [], False
        if self.steps and self.steps[-1]["end"] is None:
            self.steps[-1]["end"] = now
        self.steps.append({"index": index, "users": users, "start": now, "end": None})
        self.recorder.step = index
        runner = self.environment.runner
        if isinstance(runner, MasterRunner):
            runner.send_message("harness_step", {"index": index})

    def close_steps(self) -> None:
        if self.steps and self.steps[-1]["end"] is None:
            self.steps[-1]["end"] = time.time()
        self.steps_stale = True

    # ------------------------------------------------------------------ shipping
    def drain_pacers(self) -> dict[str, dict[str, Any]]:
        return {t: p.drain().to_dict() for t, p in self.pacers.items()}

    def merge_pacers(self, data: dict[str, dict[str, Any]]) -> None:
        for t, counts in data.items():
            self.pacer_totals.setdefault(t, PacerCounts()).add(counts)

    def pacer_summary(self) -> dict[str, dict[str, Any]]:
        if not self.is_master:
            self.merge_pacers(self.drain_pacers())
        return {t: c.to_dict() for t, c in sorted(self.pacer_totals.items())}

    def write_raw(self, rows: list[Any], worker: str) -> None:
        if not self.options.raw_samples or not rows:
            return
        if self.raw_writer is None:
            path = Path(self.options.raw_samples)
            path.parent.mkdir(parents=True, exist_ok=True)
            self.raw_file = path.open("w", newline="", encoding="utf-8")
            self.raw_writer = csv.writer(self.raw_file)
            self.raw_writer.writerow(["timestamp", "type", "name", "step", "response_time_us", "failed", "warmup", "worker"])
        for r in rows:
            self.raw_writer.writerow([f"{r[0]:.6f}", r[1], r[2], "" if r[3] is None else r[3], r[4], r[5], r[6], worker])

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        if self.started_at is None:
            return
        self.ended_at = self.ended_at or datetime.now(UTC)
        self.close_steps()
        if not self.is_master:
            self.write_raw(self.recorder.drain_raw(), "local")
        if self.raw_file is not None:
            self.raw_file.close()
            self.raw_file, self.raw_writer = None, None
        path = self.artifact_path()
        if path is not None:
            artifact.write(path, self)
            log.info("HDR artifact written: %s", path)
        pacers = self.pacer_summary()
        for t, c in pacers.items():
            log.info("open model %s: %s", t, c)
        parsed = self.environment.parsed_options
        headless = bool(parsed and (getattr(parsed, "headless", False) or getattr(parsed, "autoquit", -1) != -1))
        if headless and self.options.verdict_exit_code:
            decisions = decision.compute(self)
            code = decision.exit_code(decisions, self.options.targets)
            for level, d in decisions.items():
                log.info("verdict (%s): %s: %s", level, d.verdict.value, d.reason)
            self.environment.process_exit_code = code

    def artifact_path(self) -> Path | None:
        if self.options.hdr_out:
            return Path(self.options.hdr_out)
        prefix = getattr(self.environment.parsed_options, "csv_prefix", None)
        return Path(f"{prefix}_hdr.json") if prefix else None


HARNESS: Harness | None = None


def current() -> Harness:
    if HARNESS is None:
        raise RuntimeError("the harness is not initialised (import harness.runtime from a locustfile)")
    return HARNESS


# ---------------------------------------------------------------------- wiring


def _fail(environment: Environment, message: str) -> None:
    """A configuration problem: one line, no traceback; headless runs end, web-UI runs stop."""
    log.error(message)
    runner = environment.runner
    if runner is None or isinstance(runner, WorkerRunner):
        return
    parsed = environment.parsed_options
    if parsed is not None and getattr(parsed, "headless", False):
        environment.process_exit_code = 2
        gevent.spawn_later(0, runner.quit)
    else:
        gevent.spawn_later(0, runner.stop)


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    global HARNESS
    try:
        settings = load_settings()
        HARNESS = h = Harness(environment, settings)
    except (SettingsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("harness_setup", h.on_setup_message)
        runner.register_message("harness_step", h.on_step_message)
        return
    h.select_targets(h.options.targets)
    problems = h.check_targets()
    parsed = environment.parsed_options
    if parsed is not None and getattr(parsed, "headless", False):
        try:  # fail before any user starts, in one line
            resolve(h.settings, h.options.workload)
        except WorkloadError as e:
            problems.append(str(e))
        if not problems:
            problems += unreachable(h.endpoints, h.options.targets)
    if problems:
        print("error: " + "; ".join(problems), file=sys.stderr)
        sys.exit(2)
    if environment.web_ui is not None:
        from harness import webui

        webui.install(environment, h)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    h = HARNESS
    if h is None:
        return
    if h.is_worker:
        h.options = HarnessOptions.from_parsed(environment.parsed_options)
        h._reset_run()
        return
    h.ready.clear()
    h.config_error = None
    try:
        h.begin()
        missing = h.check_targets() or unreachable(h.endpoints, h.options.targets)
        if missing:
            raise ValueError("; ".join(missing))
    except (WorkloadError, SettingsError, ValueError) as e:
        h.config_error = str(e)
        _fail(environment, f"error: {e}")


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    h = HARNESS
    if h is None:
        return
    h.recorder.step = None
    if not h.is_worker and h.started_at is not None:
        h.ended_at = datetime.now(UTC)
        h.close_steps()


@events.request.add_listener
def _on_request(request_type: str, name: str, response_time: float, exception: Any = None,
                context: dict[str, Any] | None = None, **_: Any) -> None:
    h = HARNESS
    if h is None or response_time is None:
        return
    h.recorder.record(request_type, name, response_time, exception is not None, (context or {}).get("round_trips"))


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    h = HARNESS
    if h is None:
        return
    data["harness_hdr"] = h.recorder.drain()
    data["harness_pacer"] = h.drain_pacers()
    if h.options.raw_samples:
        data["harness_raw"] = h.recorder.drain_raw()


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    h = HARNESS
    if h is None:
        return
    h.recorder.merge(data.get("harness_hdr") or [])
    h.merge_pacers(data.get("harness_pacer") or {})
    h.write_raw(data.get("harness_raw") or [], client_id)


@events.reset_stats.add_listener
def _on_reset_stats(**_: Any) -> None:
    # the web UI's "Reset stats": the histograms (and so the Decision tab) start afresh too
    h = HARNESS
    if h is not None and not h.is_worker:
        h.recorder.entries = {}
        h.pacer_totals = {}
        for p in h.pacers.values():
            p.drain()


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    h = HARNESS
    if h is None or h.is_worker:
        return
    h.finish()
