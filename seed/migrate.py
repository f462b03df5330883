"""Copy every table Supabase -> Convex (``python -m seed migrate``).

Per table, in foreign-key order: a reader thread pages through Supabase by id
(keyset), the main thread converts rows to Convex form and packs them into
batches (<= ``batch_rows`` rows and <= ``batch_bytes`` of JSON), and up to
``in_flight`` batches are sent concurrently to ``migrate:upsert<Table>``.
When a batch is acknowledged, the checkpoint's cursor advances over the
acknowledged prefix and is saved atomically. A table starts only when its
parent table is complete, because the mutations resolve references through
``by_supabase_id``.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import orjson

from . import checkpoint as ckpt
from .convex_client import ConvexClient, ConvexFunctionError
from .errors import SeedError
from .supabase_rest import PAGE_SIZE, SupabaseRest
from .tables import TABLES, Table, to_convex

MAX_BATCH_ROWS = 8192  # Convex: at most 8192 elements in an array argument
DEFAULT_BATCH_ROWS = 1000
DEFAULT_BATCH_BYTES = 2 * 1024 * 1024
DEFAULT_IN_FLIGHT = 4


# test hook ---------------------------------------------------------------------
# SEED_TEST_KILL="<phase>:<n>[:INT|TERM]" signals this process (SIGKILL unless
# INT/TERM is given) at the n-th occurrence of a phase: page (a page was read),
# send (a batch is about to be sent), inflight (2 ms into the n-th request), ack
# (Convex acknowledged, checkpoint not yet written), ckpt (checkpoint temp file
# written, not yet renamed), saved (checkpoint renamed into place).
class _KillHook:
    def __init__(self, spec: str | None) -> None:
        self.phase: str | None = None
        self.at = 0
        self.signal = signal.SIGKILL
        if spec:
            phase, _, rest = spec.partition(":")
            n, _, sig = rest.partition(":")
            self.phase, self.at = phase, int(n or 1)
            if sig:
                self.signal = {"INT": signal.SIGINT, "TERM": signal.SIGTERM}[sig]
        self.counts: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, phase: str) -> None:
        if phase != self.phase:
            return
        with self.lock:
            self.counts[phase] = self.counts.get(phase, 0) + 1
            hit = self.counts[phase] == self.at
        if not hit:
            return
        if phase == "inflight":
            threading.Timer(0.002, self._fire).start()
        else:
            self._fire()

    def _fire(self) -> None:
        os.kill(os.getpid(), self.signal)


@dataclass
class Options:
    batch_rows: int = DEFAULT_BATCH_ROWS
    batch_bytes: int = DEFAULT_BATCH_BYTES
    in_flight: int = DEFAULT_IN_FLIGHT
    page_size: int = PAGE_SIZE
    checkpoint: Path = ckpt.DEFAULT_PATH
    restart: bool = False
    dry_run: bool = False

    def validate(self) -> None:
        if not 1 <= self.batch_rows <= MAX_BATCH_ROWS:
            raise SeedError(f"--batch-rows must be between 1 and {MAX_BATCH_ROWS}", 2)
        if not 1024 <= self.batch_bytes <= 8 * 1024 * 1024:
            raise SeedError("--batch-bytes must be between 1024 and 8388608", 2)
        if not 1 <= self.in_flight <= 32:
            raise SeedError("--in-flight must be between 1 and 32", 2)
        if not 1 <= self.page_size <= 10_000:
            raise SeedError("--page-size must be between 1 and 10000", 2)


@dataclass
class TableStats:
    name: str
    source_rows: int = 0
    sent: int = 0
    batches: int = 0
    bytes: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    resumed_from: int = 0
    skipped: bool = False
    seconds: float = 0.0
    read_s: float = 0.0
    encode_s: float = 0.0
    write_s: float = 0.0


@dataclass
class Result:
    tables: list[TableStats] = field(default_factory=list)
    seconds: float = 0.0
    retries: int = 0
    interrupted: bool = False

    @property
    def sent(self) -> int:
        return sum(t.sent for t in self.tables)


@dataclass
class Batch:
    seq: int
    last_id: str
    rows: int
    body: bytes


class Reporter:
    """Progress callbacks; the CLI plugs in rich bars, tests plug in nothing."""

    def start_table(self, table: Table, total: int, done: int) -> None: ...
    def advance(self, table: Table, rows: int) -> None: ...
    def end_table(self, table: Table) -> None: ...


def _pages(
    rest: SupabaseRest,
    table: Table,
    after: str | None,
    page_size: int,
    stats: TableStats,
    hook: Callable[[str], None],
    stop: threading.Event,
) -> Iterator[list[dict]]:
    """Read ahead in a thread (2 pages buffered) so reading overlaps encoding and writing."""
    q: queue.Queue[Any] = queue.Queue(maxsize=2)
    done = object()

    def put(item: Any) -> bool:
        # never block forever: the consumer may have stopped (Ctrl-C, a failed batch)
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            it = rest.scan(table, after, page_size)
            while not stop.is_set():
                t0 = time.perf_counter()
                page = next(it, None)
                stats.read_s += time.perf_counter() - t0
                if page is None:
                    break
                hook("page")
                if not put(page):
                    return
            put(done)
        except BaseException as exc:
            put(exc)

    thread = threading.Thread(target=run, name=f"read-{table.name}", daemon=True)
    thread.start()
    while True:
        item = q.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _batches(table: Table, pages: Iterator[list[dict]], opts: Options, stats: TableStats) -> Iterator[Batch]:
    # Each row is encoded once and the request body is assembled from the pieces,
    # so the byte limit is exact without re-encoding the batch.
    head = b'{"path":' + orjson.dumps(table.mutation) + b',"args":{"rows":['
    tail = b']},"format":"json"}'
    seq = 0
    docs: list[bytes] = []
    size = len(head) + len(tail)
    last_id = ""
    for page in pages:
        t0 = time.perf_counter()
        for row in page:
            doc = orjson.dumps(to_convex(table, row))
            if docs and (len(docs) >= opts.batch_rows or size + len(doc) + 1 > opts.batch_bytes):
                stats.encode_s += time.perf_counter() - t0
                yield Batch(seq, last_id, len(docs), head + b",".join(docs) + tail)
                t0 = time.perf_counter()
                seq += 1
                docs, size = [], len(head) + len(tail)
            docs.append(doc)
            size += len(doc) + 1
            last_id = row["id"]
        stats.encode_s += time.perf_counter() - t0
    if docs:
        yield Batch(seq, last_id, len(docs), head + b",".join(docs) + tail)


@dataclass
class _Acks:
    """Acknowledged batches not yet folded into the checkpoint. Batches land out of order; the
    cursor only moves over the contiguous prefix, so a resume never skips a batch still in flight."""

    next_seq: int = 0  # first batch not yet folded into the checkpoint
    landed: dict[int, Batch] = field(default_factory=dict)

    def fold(self, state: ckpt.TableState) -> bool:
        """Moves ``state``'s cursor and row count over the contiguous prefix; whether it moved."""
        moved = False
        while self.next_seq in self.landed:
            b = self.landed.pop(self.next_seq)
            state.cursor = b.last_id
            state.rows += b.rows
            self.next_seq += 1
            moved = True
        return moved


def _drain(
    pending: dict[Future[Any], Batch], settle: Callable[[set[Future[Any]]], None], interrupted: threading.Event
) -> None:
    """Lets the in-flight batches land so their rows count in the checkpoint (``settle`` removes
    each one from ``pending``); Ctrl-C meanwhile only marks the run interrupted."""
    while pending:
        try:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
        except KeyboardInterrupt:
            interrupted.set()
            continue
        settle(done)


def migrate_table(
    table: Table,
    rest: SupabaseRest,
    convex: ConvexClient,
    cp: ckpt.Checkpoint,
    opts: Options,
    stats: TableStats,
    reporter: Reporter,
    hook: Callable[[str], None],
    interrupted: threading.Event,
) -> None:
    state = cp.tables[table.name]
    stats.resumed_from = state.rows
    reporter.start_table(table, stats.source_rows, state.rows)
    t_start = time.perf_counter()
    stop = threading.Event()
    acks = _Acks()
    pending: dict[Future[Any], Batch] = {}
    failure: BaseException | None = None

    timing = threading.Lock()

    def send(batch: Batch) -> Any:
        hook("inflight")
        t0 = time.perf_counter()
        try:
            return convex.call_raw("mutation", table.mutation, batch.body)
        finally:
            with timing:  # several sender threads add to the same total
                stats.write_s += time.perf_counter() - t0

    def settle(done: set[Future[Any]]) -> None:
        nonlocal failure
        for fut in done:
            batch = pending.pop(fut)
            try:
                value = fut.result()
            except BaseException as exc:
                failure = failure or exc
                continue
            hook("ack")
            acks.landed[batch.seq] = batch
            if isinstance(value, dict):
                _count_upserts(value, state, stats)
            stats.sent += batch.rows
            reporter.advance(table, batch.rows)
        if acks.fold(state):
            cp.save()
            hook("saved")

    with ThreadPoolExecutor(max_workers=opts.in_flight, thread_name_prefix=f"send-{table.name}") as pool:
        try:
            for batch in _batches(
                table, _pages(rest, table, state.cursor, opts.page_size, stats, hook, stop), opts, stats
            ):
                if interrupted.is_set() or failure is not None:
                    break
                while len(pending) >= opts.in_flight:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
                if failure is not None:
                    break
                hook("send")
                stats.batches += 1
                stats.bytes += len(batch.body)
                pending[pool.submit(send, batch)] = batch
        except KeyboardInterrupt:
            interrupted.set()
        finally:
            stop.set()
            _drain(pending, settle, interrupted)
    stats.seconds += time.perf_counter() - t_start
    if failure is not None:
        _raise_table_failure(table, failure, cp)
    if interrupted.is_set():
        return
    state.done = True
    cp.save()
    reporter.end_table(table)


def _count_upserts(value: dict[str, Any], state: ckpt.TableState, stats: TableStats) -> None:
    """A batch's ``{inserted, updated, unchanged}`` into the checkpoint's and the run's totals."""
    for name in ("inserted", "updated", "unchanged"):
        n = int(value.get(name, 0))
        setattr(state, name, getattr(state, name) + n)
        setattr(stats, name, getattr(stats, name) + n)


def _raise_table_failure(table: Table, failure: BaseException, cp: ckpt.Checkpoint) -> NoReturn:
    """One line for the user; a missing parent row also rewinds the checkpoint to the parent's table."""
    missing = _missing_parent(failure)
    if missing is not None:
        # A parent row appeared in Supabase after its table was copied (a live
        # database). Resuming as is would fail the same way, so the checkpoint
        # goes back to that parent table: the rerun copies it again (idempotent)
        # and everything after it.
        names = [t.name for t in TABLES]
        for name in names[names.index(missing) :]:
            cp.tables[name] = ckpt.TableState()
        cp.save()
        raise SeedError(
            f"{table.name}: a row references a {missing} row that Convex does not have "
            f"(added to Supabase during the migration?); rerun to copy {missing} again and continue"
        ) from None
    if isinstance(failure, SeedError):
        raise SeedError(f"{table.name}: {failure} (progress saved; rerun to resume)") from None
    raise failure


def _missing_parent(failure: BaseException) -> str | None:
    """The Supabase table named by a ``MissingReference`` ConvexError, if that is the failure."""
    data = getattr(failure, "data", None)
    if (
        isinstance(failure, ConvexFunctionError)
        and isinstance(data, dict)
        and data.get("code") == "MissingReference"
    ):
        name = str(data.get("table"))
        return next((t.name for t in TABLES if name in (t.name, t.convex)), None)
    return None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def plan(rest: SupabaseRest, cp: ckpt.Checkpoint) -> list[TableStats]:
    stats = []
    for t in TABLES:
        s = TableStats(t.name, source_rows=rest.count(t))
        s.skipped = cp.tables[t.name].done
        s.resumed_from = cp.tables[t.name].rows
        stats.append(s)
    return stats


def preflight(rest: SupabaseRest, convex: ConvexClient) -> None:
    """Fail fast, before writing anything, on a wrong key, an unreachable URL or a missing schema."""
    rest.check_schema()
    convex.query("migrate:tableDigest", {"table": "workspaces", "cursor": None, "numItems": 1}, attempts=2)


def open_checkpoint(opts: Options, source: str, target: str) -> tuple[ckpt.Checkpoint, bool]:
    """(checkpoint, resuming). A completed checkpoint starts a fresh pass: it only
    exists to resume an interrupted one, and rerunning an upsert is idempotent."""
    path = Path(opts.checkpoint)
    existing = None if opts.restart else ckpt.load(path, source, target)
    if existing is not None and not existing.complete:
        return existing, existing.started
    return ckpt.Checkpoint(path=path, source=source, target=target), False


def run(
    rest: SupabaseRest,
    convex: ConvexClient,
    opts: Options,
    reporter: Reporter | None = None,
    on_plan: Callable[[list[TableStats], ckpt.Checkpoint, bool], None] | None = None,
) -> Result:
    opts.validate()
    reporter = reporter or Reporter()
    hook = _KillHook(os.environ.get("SEED_TEST_KILL"))
    preflight(rest, convex)
    cp, resuming = open_checkpoint(opts, rest.host, convex.host)
    cp.before_replace = lambda: hook("ckpt")
    stats = plan(rest, cp)
    if on_plan is not None:
        on_plan(stats, cp, resuming)
    result = Result(tables=stats)
    if opts.dry_run:
        return result
    if not resuming:
        cp.save()
    interrupted = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    t0 = time.perf_counter()
    try:
        for t, s in zip(TABLES, stats, strict=True):
            if cp.tables[t.name].done:
                continue
            try:
                migrate_table(t, rest, convex, cp, opts, s, reporter, hook, interrupted)
            except KeyboardInterrupt:
                interrupted.set()
            if interrupted.is_set():
                break
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
    result.seconds = time.perf_counter() - t0
    result.retries = convex.retries
    result.interrupted = interrupted.is_set()
    return result


def clear_convex(convex: ConvexClient, on_table: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Delete every document of the six tables (children first) via ``migrate:clearTable``."""
    deleted: dict[str, int] = {}
    for t in reversed(TABLES):
        total = 0
        while True:
            value = convex.mutation("migrate:clearTable", {"table": t.convex})
            total += int(value.get("deleted", 0))
            if not value.get("hasMore"):
                break
        deleted[t.convex] = total
        if on_table:
            on_table(t.convex, total)
    return deleted
