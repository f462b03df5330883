"""The harness's per-process state and its Locust event wiring.

:func:`install` builds one :class:`Harness` for an Environment, keeps it on the
environment (:func:`harness_of`: how users and shapes reach the run) and
registers the listeners it needs with closures over it, as Locust's own
``setup_distributed_stats_event_listeners`` does.  Importing this module (as
the locustfiles do) adds the harness's command-line options and calls
:func:`install` at ``init``.

On the master (or a local runner), before any user starts, the run's ground is
checked (:meth:`Harness.check_ground`): the target hosts, one real lookup per
target (:mod:`harness.preflight`) and the data parity between the backends
(:mod:`harness.parity`).  It then hands the options and the workload to the
workers (``harness_setup`` message, before Locust's spawn messages on the same
socket, so workers have them before their users start); steps are broadcast as
``harness_step``.  Workers ship HDR histograms, pacer counters and raw samples
with every stats report; the master merges them and, at quit, writes the
artifact and sets the exit code from the verdict.
"""

from __future__ import annotations

from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

import bisect
import itertools
import logging
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import gevent.event

from harness import artifact, decision, parity, phases, preflight
from harness.contracts import REALTIME_TARGETS, TRANSACTION, WRITE_TARGETS
from harness.cpu import CpuSampler
from harness.dbtime import DatabaseWindow
from harness.hdr import Recorder
from harness.options import HarnessOptions, add_arguments
from harness.pacer import Pacer, PacerCounts
from harness.paths import Paths
from harness.raw import RawSampleWriter
from harness.realtime import RealtimeBook
from harness.settings import Settings, SettingsError, load_settings
from harness.targets import Endpoints
from harness.tokens import member_tokens
from harness.workload import Key, Sampler, Workload, WorkloadError, resolve

log = logging.getLogger("harness")

KINDS = ("known", "unknown", "write")
_ATTRIBUTE = "crm_harness"


class GroundError(Exception):
    """The run cannot measure what it claims; the message is one line per problem, joined by '; '."""


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
        self.paths = Paths(self.endpoints)
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
        self.raw: RawSampleWriter | None = None
        self.all_user_classes = list(environment.user_classes)
        self.config_error: str | None = None
        self.request_cache: dict[Any, Any] = {}
        self.kind_cum: dict[str, tuple[list[int], int]] = {}
        self.known_only: set[str] = set()  # targets whose every task is a known-phone lookup: no draw of the kind
        self.worker_count = 0
        # what was checked before the run (artifact metadata); None until checked
        self.preflight: dict[str, Any] | None = None
        self.data_parity: dict[str, Any] | None = None
        self.network: dict[str, Any] | None = None  # the sandbox's network profile (None: deployments)
        self.ground_checked = False
        self.cpu = CpuSampler()
        self.realtime = RealtimeBook()  # writes and sightings of the realtime targets
        self.subscriber_counts: dict[str, int] = {}
        self.cpu_samples: dict[str, list[tuple[float, float]]] = {}  # process -> samples (master/local)
        self.db: DatabaseWindow | None = None  # pg_stat_statements over the window (master/local, Supabase targets)

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

    @property
    def tokens(self) -> dict[str, str]:
        return dict(self.paths.tokens)

    # ------------------------------------------------------------------ targets
    def select_targets(self, targets: list[str] | tuple[str, ...]) -> None:
        """Keep only the selected targets' user classes (master/local: it decides the dispatch)."""
        from harness.users import TargetUser

        chosen = [
            c for c in self.all_user_classes
            if not (isinstance(c, type) and issubclass(c, TargetUser)) or c.target in targets
        ]
        for c in chosen:
            if isinstance(c, type) and issubclass(c, TargetUser):
                # shown by the web UI; requests use absolute URLs, so a host typed there changes nothing
                c.host = self.endpoints.base_url(c.target) or c.host
        self.environment.user_classes = chosen

    def missing_settings(self) -> list[str]:
        return [m for t in self.options.targets if (m := self.endpoints.missing(t))]

    def writing_targets(self) -> list[str]:
        """Targets whose run writes: the write task's, and every realtime target's writer."""
        w = self.options.effective_write_weight(self.sandbox)
        return [t for t in self.options.targets if (w > 0 and t in WRITE_TARGETS) or t in REALTIME_TARGETS]

    # ------------------------------------------------------------------ before any user starts
    def prepare(self) -> None:
        """Master/local: options, workload and member tokens for the coming run."""
        self.options = HarnessOptions.from_parsed(self.environment.parsed_options)
        self.select_targets(self.options.targets)
        self.workload = resolve(self.settings, self.options.workload)
        self.paths = Paths(self.endpoints, member_tokens(self.settings, self.workload))
        self.network = network_profile(self.settings)
        if "convex_query" in self.options.targets and not self.paths.tokens and not self.settings.get("CONVEX_AUTH_TOKEN"):
            log.warning(
                "convex_query has no member token: set CONVEX_AUTH_TOKEN; its lookups will fail as Unauthenticated"
            )

    def check_ground(self) -> None:
        """Hosts, one real lookup per target, data parity: raise :class:`GroundError` when the run cannot measure.

        ``--skip-preflight`` skips the lookups and the parity check (the report then says "not checked").
        """
        assert self.workload is not None
        targets = self.options.targets
        problems = self.missing_settings() or preflight.unreachable(self.endpoints, targets)
        if problems:
            raise GroundError("; ".join(problems))
        if (needs := [t for t in targets if t in REALTIME_TARGETS]) and not (self.sandbox or self.options.allow_writes):
            raise GroundError(f"{', '.join(needs)}: the inbox's updates come from writes, and this is not the sandbox: "
                              "add --allow-writes (rows are marked loadtest; `python -m seed cleanup` removes them)")
        if self.options.skip_preflight:
            self.preflight = {"status": "skipped"}
            self.data_parity = parity.not_checked("--skip-preflight")
            self.ground_checked = True
            return
        known = preflight.Known.of(self.workload)
        problems = preflight.check_targets(self.paths, targets, known, self.writing_targets(),
                                           anon_key=self.settings.get("SUPABASE_ANON_KEY"))
        if problems:
            raise GroundError("; ".join(problems))
        self.preflight = {"status": "ok", "targets": list(targets), "contact": known.source}
        self.data_parity = parity.check(self.settings, targets, self.workload, self.options.verify_data)
        status = self.data_parity["status"]
        if status == "mismatch":
            if not self.options.allow_data_mismatch:
                raise GroundError(parity.mismatch_line(self.data_parity))
            self.data_parity["allowed"] = True
            log.warning("data differs between the backends (--allow-data-mismatch): the verdict will be INCONCLUSIVE")
        elif status == "not checked":
            log.warning(parity.summary(self.data_parity))
        else:
            log.info(parity.summary(self.data_parity))
        self.ground_checked = True

    def begin(self) -> None:
        """Master/local at test start: the checked ground, then tell the workers."""
        if not self.ground_checked:  # web UI: each start from the form is checked anew
            self.prepare()
            self.check_ground()
        self.ground_checked = False
        run_time = getattr(self.environment.parsed_options, "run_time", None)
        if isinstance(run_time, int | float) and 0 < run_time <= self.options.warmup:
            log.warning(
                f"the run ({run_time:g} s) is not longer than --warmup ({self.options.warmup:g} s): "
                "the HDR histograms will hold no samples; lower --warmup or lengthen -t"
            )
        self.reset_run()
        assert self.workload is not None
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
            self.use_workload(self.workload, 0, 1)

    def reset_run(self) -> None:
        self.recorder.start(self.options.warmup)
        self.cpu.start()
        if self.db is not None:
            self.db.stop()
        self.db = None
        if not self.is_worker and any(t.startswith(("supabase_", "api_supabase")) for t in self.options.targets):
            self.db = DatabaseWindow(self.settings.get("DATABASE_URL"), lambda: self.recorder.step)
            self.db.start(self.options.warmup)
        self.cpu_samples = {}
        self.realtime = RealtimeBook()
        self.subscriber_counts = {}
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
        self.known_only = {t for t, (cum, total) in self.kind_cum.items() if total <= 0 or cum[0] == total}
        self.request_cache = {}
        if self.options.write_weight > 0 and w == 0:
            log.warning("write task left off: the target is not the sandbox (add --allow-writes to turn it on)")

    def use_workload(self, workload: Workload, slice_index: int, slices: int) -> None:
        self.workload = workload
        self.slice_index, self.slices = slice_index, slices
        self.sampler = Sampler(workload, self.options.distinct_keys, slice_index, slices)
        self.ready.set()

    def on_setup_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        self.paths = Paths(self.endpoints, dict(data.get("tokens") or {}))
        self.request_cache = {}
        self.options = HarnessOptions.from_parsed(environment.parsed_options)
        self.use_workload(Workload.from_wire(data["workload"]), int(data["slice"]), int(data["slices"]))

    def on_step_message(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.recorder.step = msg.data["index"]

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

    # ------------------------------------------------------------------ realtime subscribers
    def next_subscriber(self, target: str) -> tuple[str, bool]:
        """(workspace, writes?) for this process's next subscriber of ``target``.

        Subscribers are numbered across processes (process k of n takes k, k + n, …);
        each workspace of the workload gets ``--subscribers-per-workspace`` of them in
        turn, the first of which also writes to it.  With a single member token (a
        deployment's ``CONVEX_AUTH_TOKEN``) every subscriber takes the workload's first
        workspace: the only one that token is known to read.
        """
        assert self.workload is not None
        local = self.subscriber_counts.get(target, 0)
        self.subscriber_counts[target] = local + 1
        index = local * max(self.slices, 1) + self.slice_index
        spaces = list(dict.fromkeys(k.workspace_id for k in self.workload.known))
        if not self.paths.tokens:
            # one member token for every subscriber (CONVEX_AUTH_TOKEN): RLS and the member check let it read
            # one workspace, the one the preflight subscribed to
            spaces = spaces[:1]
        per = self.options.subscribers_per_workspace
        return spaces[(index // per) % len(spaces)], index % per == 0

    def workspace_keys(self, workspace_id: str) -> list[Key]:
        assert self.workload is not None
        return [k for k in self.workload.known if k.workspace_id == workspace_id]

    # ------------------------------------------------------------------ steps
    def set_step(self, index: int, users: int) -> None:
        now = time.time()
        if self.steps_stale:
            self.steps, self.steps_stale = [], False
        if self.steps and self.steps[-1]["end"] is None:
            self.steps[-1]["end"] = now
        self.steps.append({"index": index, "users": users, "start": now, "end": None})
        self.recorder.step = index
        if self.db is not None:
            self.db.mark_step(index)
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

    def merge_cpu(self, process: str, samples: list[Any]) -> None:
        if samples:
            self.cpu_samples.setdefault(process, []).extend((float(t), float(p)) for t, p in samples)

    def cpu_summary(self) -> dict[str, list[tuple[float, float]]]:
        """Every process's CPU samples (this process's own included)."""
        self.merge_cpu("master" if self.is_master else "local", self.cpu.drain())
        return {p: sorted(v) for p, v in sorted(self.cpu_samples.items())}

    def pacer_summary(self) -> dict[str, dict[str, Any]]:
        if not self.is_master:
            self.merge_pacers(self.drain_pacers())
        return {t: c.to_dict() for t, c in sorted(self.pacer_totals.items())}

    def database_record(self) -> dict[str, Any] | None:
        """``metadata.database``: pg_stat_statements over the measured window, or why not (None: no Supabase target)."""
        if self.db is None:
            return None
        lookups: dict[str, int] = {}
        for (rtype, name, step), e in self.recorder.entries.items():
            if step is None and rtype in (TRANSACTION, "lookup-miss"):
                lookups[name] = lookups.get(name, 0) + e.count + e.failures
        lookups["supabase_rest"] = lookups.get("supabase_rest", 0) + lookups.get("api_supabase", 0)  # same statements
        return self.db.record({t: n for t, n in lookups.items() if n})

    def write_raw(self, rows: list[Any], worker: str) -> None:
        if not self.options.raw_samples or not rows:
            return
        if self.raw is None:
            self.raw = RawSampleWriter(self.options.raw_samples)
        self.raw.write(rows, worker)

    # ------------------------------------------------------------------ the end
    def finish(self) -> None:
        if self.started_at is None:
            return
        self.ended_at = self.ended_at or datetime.now(UTC)
        self.close_steps()
        if not self.is_master:
            self.write_raw(self.recorder.drain_raw(), "local")
        if self.raw is not None:
            self.raw.close()
            self.raw = None
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


def network_profile(settings: Settings) -> dict[str, Any] | None:
    """The sandbox's network (links, RTTs, TLS) when the targets are the sandbox's; None against deployments."""
    if not settings.is_sandbox:
        return None
    try:
        from sandbox.network import active_profile
    except ImportError:
        return None
    return active_profile(env={"SANDBOX_NETWORK": settings.get("SANDBOX_NETWORK") or ""})


def harness_of(environment: Environment) -> Harness:
    """The run's harness, as :func:`install` attached it to the environment."""
    h = getattr(environment, _ATTRIBUTE, None)
    if not isinstance(h, Harness):
        raise RuntimeError("the harness is not installed on this environment (import harness.runtime from a locustfile)")
    return h


def fail(environment: Environment, message: str) -> None:
    """A configuration problem: one line, no traceback; headless runs end (exit 2), web-UI runs stop."""
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


# ---------------------------------------------------------------------- wiring


def install(environment: Environment) -> Harness:
    """Create the environment's harness and register its listeners; headless runs check their ground here.

    A settings, workload or ground problem in a headless run is one line on
    stderr and exit 2, before any user starts.
    """
    try:
        h = Harness(environment, load_settings())
    except (SettingsError, ValueError) as e:
        _exit(str(e))
    phases.install()
    setattr(environment, _ATTRIBUTE, h)
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message("harness_setup", h.on_setup_message)
        runner.register_message("harness_step", h.on_step_message)
    else:
        _check_at_start_up(h)
        if environment.web_ui is not None:
            from harness import webui

            webui.install(environment, h)
    Listeners(h).register(environment.events)
    return h


def _exit(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _check_at_start_up(h: Harness) -> None:
    """Master/local: a headless run checks its whole ground now; the web UI only its settings (the rest at each start)."""
    h.select_targets(h.options.targets)
    parsed = h.environment.parsed_options
    if parsed is not None and getattr(parsed, "headless", False):
        try:  # fail before any user starts, in one line
            h.prepare()
            h.check_ground()
        except (WorkloadError, SettingsError, GroundError, ValueError) as e:
            _exit(str(e))
    elif problems := h.missing_settings():
        _exit("; ".join(problems))


class Listeners:
    """The harness's Locust event listeners, bound to one :class:`Harness`."""

    def __init__(self, h: Harness) -> None:
        self.h = h

    def register(self, ev: Any) -> None:
        ev.test_start.add_listener(self.on_test_start)
        ev.test_stop.add_listener(self.on_test_stop)
        ev.request.add_listener(self.on_request)
        ev.report_to_master.add_listener(self.on_report_to_master)
        ev.worker_report.add_listener(self.on_worker_report)
        ev.reset_stats.add_listener(self.on_reset_stats)
        ev.quitting.add_listener(self.on_quitting)

    def on_test_start(self, environment: Environment, **_: Any) -> None:
        h = self.h
        if h.is_worker:
            h.options = HarnessOptions.from_parsed(environment.parsed_options)
            h.reset_run()
            return
        h.ready.clear()
        h.config_error = None
        try:
            h.begin()
        except (WorkloadError, SettingsError, GroundError, ValueError) as e:
            h.ground_checked = False
            h.config_error = str(e)
            fail(environment, f"error: {e}")

    def on_test_stop(self, environment: Environment, **_: Any) -> None:
        h = self.h
        h.recorder.step = None
        h.cpu.stop()
        if not h.is_worker and h.started_at is not None:
            h.ended_at = datetime.now(UTC)
            h.close_steps()
            if h.db is not None:
                h.db.stop()

    # every argument Locust passes is named: **_ then only takes what a later Locust adds (no dict per sample)
    def on_request(self, request_type: str, name: str, response_time: float, response_length: int = 0,
                   exception: Any = None, context: dict[str, Any] | None = None, start_time: float | None = None,
                   url: str | None = None, response: Any = None, **_: Any) -> None:
        if response_time is None:
            return
        ctx = context or {}
        status = ctx.get("status")  # the harness's calls say it; anyone else's response may
        if status is None and response is not None:
            status = int(getattr(response, "status_code", 0) or 0)
        self.h.recorder.record(request_type, name, response_time, exception is not None, ctx.get("round_trips"),
                               status, ctx.get("phases"), ctx.get("metrics"), ctx.get("new_connections") or 0)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        h = self.h
        data["harness_hdr"] = h.recorder.drain()
        data["harness_pacer"] = h.drain_pacers()
        data["harness_cpu"] = h.cpu.drain()
        data["harness_realtime"] = h.realtime.drain()
        if h.options.raw_samples:
            data["harness_raw"] = h.recorder.drain_raw()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        h = self.h
        h.recorder.merge(data.get("harness_hdr") or [])
        h.merge_pacers(data.get("harness_pacer") or {})
        h.merge_cpu(client_id, data.get("harness_cpu") or [])
        h.realtime.merge(data.get("harness_realtime") or {})
        h.write_raw(data.get("harness_raw") or [], client_id)

    def on_reset_stats(self, **_: Any) -> None:
        # the web UI's "Reset stats": the histograms (and so the Decision tab) start afresh too
        h = self.h
        if not h.is_worker:
            h.recorder.entries = {}
            h.pacer_totals = {}
            for p in h.pacers.values():
                p.drain()

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        if not self.h.is_worker:
            self.h.finish()


@events.init_command_line_parser.add_listener
def _on_parser(parser: Any, **_: Any) -> None:
    add_arguments(parser)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    install(environment)
