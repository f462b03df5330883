"""``python -m seed generate|migrate|verify|cleanup|workload``.

Every failure ends as one line on stderr naming its cause and a non-zero exit
status: 1 for a failed operation or a parity mismatch, 2 for bad settings or
arguments, 130 when interrupted (a migration can then be resumed).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table as RichTable
from rich.text import Text

from harness.settings import Settings, SettingsError, is_loopback_url, load_settings

from . import migrate as mig
from .errors import SeedError
from .tables import Table

# Not a terminal (CI logs, pipes): wide enough that tables keep whole uuids and digests.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 150)


# safety ------------------------------------------------------------------------
def db_host(database_url: str) -> str:
    """Host of a libpq URL or key=value string; '' for a Unix socket."""
    if "://" in database_url:
        parts = urlsplit(database_url)
        if parts.hostname:
            return parts.hostname
        host = parse_qs(parts.query).get("host", [""])[0]
        return "" if host.startswith("/") else host
    for item in database_url.split():
        key, _, value = item.partition("=")
        if key == "host":
            return "" if value.startswith("/") else value
    return ""


def is_local_host(host: str) -> bool:
    return host == "" or is_loopback_url(f"http://{host}")


def confirm_target(what: str, host: str, confirmed: str | None, local: bool) -> None:
    """Destructive operations run against the sandbox, or a host the user named."""
    if local:
        return
    if confirmed is None:
        raise SeedError(
            f"refusing to {what} on {host}: it is not the local sandbox; "
            f"pass --i-know-this-is {host} to confirm",
            2,
        )
    if confirmed.strip().lower() != host.lower():
        raise SeedError(
            f"--i-know-this-is {confirmed} does not match the target host {host}; nothing was changed", 2
        )


# progress ----------------------------------------------------------------------
class RowsPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")


def make_progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=err,
        disable=not enabled,
        transient=False,
    )


class RichReporter(mig.Reporter):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, Any] = {}

    def start_table(self, table: Table, total: int, done: int) -> None:
        self.tasks[table.name] = self.progress.add_task(table.name, total=max(total, done), completed=done)

    def advance(self, table: Table, rows: int) -> None:
        self.progress.advance(self.tasks[table.name], rows)

    def end_table(self, table: Table) -> None:
        task = self.tasks[table.name]
        self.progress.update(task, total=self.progress.tasks[task].completed)


# commands ----------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(env_file=args.env_file) if args.env_file else load_settings()


def cmd_generate(args: argparse.Namespace) -> int:
    from . import loaders
    from .generate import generate

    settings = _settings(args)
    db_url = settings.get("DATABASE_URL") if args.via in ("auto", "copy") else None
    if args.via == "copy" and not db_url:
        raise SeedError("--via copy needs DATABASE_URL", 2)
    if db_url:
        host = db_host(db_url) or "local socket"
        local = is_local_host(db_host(db_url))
    else:
        url = settings.supabase_url
        settings.require("SUPABASE_SERVICE_ROLE_KEY")
        host = urlsplit(url).hostname or url
        local = is_loopback_url(url)
    if args.reset:
        confirm_target("--reset (delete every CRM row)", host, args.i_know_this_is, local)

    t0 = time.perf_counter()
    try:
        data = generate(args.contacts, args.seed, args.workspaces)
    except ValueError as exc:
        raise SeedError(str(exc), 2) from None
    gen_s = time.perf_counter() - t0

    with make_progress(not args.quiet and sys.stderr.isatty()) as progress:
        tasks = {name: progress.add_task(name, total=len(rows)) for name, rows in data.rows.items()}

        def tick(name: str, n: int) -> None:
            progress.advance(tasks[name], n)

        if db_url:
            result = loaders.load_copy(db_url, data, reset=args.reset, progress=tick)
        else:
            result = loaders.load_rest(
                settings.supabase_url,
                settings.require("SUPABASE_SERVICE_ROLE_KEY"),
                data,
                reset=args.reset,
                progress=tick,
            )

    where = f"{host} via {'COPY (DATABASE_URL)' if result.path == 'copy' else 'REST (service-role key)'}"
    t = RichTable(
        title=f"seed generate --seed {args.seed} -> {where}", title_justify="left", box=box.SIMPLE_HEAD
    )
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in data.counts().items():
        t.add_row(name, f"{n:,}")
    t.add_row("total", f"{data.total:,}", style="bold")
    out.print(t)
    per_ws: dict[str, int] = {}
    for c in data.rows["contacts"]:
        per_ws[c["workspace_id"]] = per_ws.get(c["workspace_id"], 0) + 1
    for w in data.workspaces:
        out.print(
            f"workspace {w['name']!r} id={w['id']} slug={w['slug']} contacts={per_ws.get(w['id'], 0):,}"
        )
    first = next(c for c in data.rows["contacts"] if c["workspace_id"] == data.workspaces[0]["id"])
    out.print(f"e.g. TEST_WORKSPACE_ID={first['workspace_id']} TEST_PHONE={first['phone']}")
    out.print(
        f"generated in {gen_s:.2f} s ({data.total / gen_s:,.0f} rows/s), "
        f"loaded in {result.seconds:.2f} s ({data.total / max(result.seconds, 1e-9):,.0f} rows/s)"
    )
    return 0


def _clients(settings: Settings) -> tuple[Any, Any]:
    from .convex_client import ConvexClient
    from .supabase_rest import SupabaseRest

    rest = SupabaseRest(settings.supabase_url, settings.require("SUPABASE_SERVICE_ROLE_KEY"))
    convex = ConvexClient(settings.convex_url, settings.require("CONVEX_ADMIN_KEY"))
    return rest, convex


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    opts = mig.Options(
        batch_rows=args.batch_rows,
        batch_bytes=args.batch_bytes,
        in_flight=args.in_flight,
        page_size=args.page_size,
        checkpoint=Path(args.checkpoint),
        restart=args.restart or args.clear,
        dry_run=args.dry_run,
    )
    opts.validate()
    rest, convex = _clients(settings)
    with rest, convex:
        if args.clear and not args.dry_run:
            convex_host = urlsplit(settings.convex_url).hostname or settings.convex_url
            confirm_target(
                "--clear the Convex tables",
                convex_host,
                args.i_know_this_is,
                is_loopback_url(settings.convex_url),
            )
            mig.preflight(rest, convex)
            cleared = mig.clear_convex(convex)
            err.print("cleared Convex: " + ", ".join(f"{k} {v:,}" for k, v in cleared.items()))

        def show_plan(stats: list[mig.TableStats], cp: Any, resuming: bool) -> None:
            t = RichTable(
                title=f"plan: {rest.host} -> {convex.host}", title_justify="left", box=box.SIMPLE_HEAD
            )
            for col in ("table", "Supabase rows", "state", "batches (est.)"):
                t.add_column(col, justify="left" if col in ("table", "state") else "right")
            for s in stats:
                left = 0 if s.skipped else max(0, s.source_rows - s.resumed_from)
                state = (
                    "done"
                    if s.skipped
                    else (f"resume after {s.resumed_from:,}" if s.resumed_from else "copy")
                )
                t.add_row(s.name, f"{s.source_rows:,}", state, f"{-(-left // opts.batch_rows):,}")
            err.print(t)
            err.print(
                f"batches <= {opts.batch_rows} rows and <= {opts.batch_bytes:,} bytes, {opts.in_flight} in flight; "
                f"checkpoint {opts.checkpoint}" + (" (resuming)" if resuming else "")
            )

        with make_progress(not args.quiet and sys.stderr.isatty()) as progress:
            result = mig.run(rest, convex, opts, RichReporter(progress), show_plan)
    if args.dry_run:
        out.print("dry run: nothing was written")
        return 0
    _summary(result)
    if result.interrupted:
        err.print(f"interrupted: progress saved in {opts.checkpoint}; rerun the same command to resume")
        return 130
    return 0


def _summary(result: mig.Result) -> None:
    t = RichTable(title="migration summary", title_justify="left", box=box.SIMPLE_HEAD)
    for col in (
        "table",
        "rows",
        "sent",
        "inserted",
        "updated",
        "unchanged",
        "batches",
        "MiB",
        "s",
        "rows/s",
    ):
        t.add_column(col, justify="left" if col == "table" else "right")
    for s in result.tables:
        rate = s.sent / s.seconds if s.seconds else 0
        t.add_row(
            s.name, f"{s.source_rows:,}", f"{s.sent:,}", f"{s.inserted:,}", f"{s.updated:,}", f"{s.unchanged:,}",
            f"{s.batches:,}", f"{s.bytes / 2**20:.1f}", f"{s.seconds:.1f}",
            f"{rate:,.0f}" if s.sent else ("done" if s.skipped else "-"),
        )  # fmt: skip
    out.print(t)
    rate = result.sent / result.seconds if result.seconds else 0
    out.print(
        f"{result.sent:,} rows in {result.seconds:.1f} s ({rate:,.0f} rows/s), {result.retries} retries"
    )


def cmd_verify(args: argparse.Namespace) -> int:
    from . import verify as ver

    settings = _settings(args)
    rest, convex = _clients(settings)
    t = RichTable(title=f"parity: {rest.host} vs {convex.host}", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("table", "Supabase rows", "Convex rows", "Supabase fingerprint", "Convex fingerprint", ""):
        t.add_column(col)
    with rest, convex:
        report = ver.verify(
            rest, convex, settings.require("CONVEX_ADMIN_KEY"), samples=args.samples, seed=args.seed,
            include_loadtest=args.include_loadtest,
        )
    empty = report.empty_side()
    if empty == "both":
        raise SeedError("Supabase and Convex hold no rows: run `python -m seed generate`, then `python -m seed migrate`")
    if empty == "convex":
        raise SeedError(f"Convex has no rows ({convex.host}): run `python -m seed migrate`")
    if empty == "supabase":
        raise SeedError(
            f"Supabase has no rows ({rest.host}) but Convex has: run `python -m seed generate`, or check SUPABASE_URL"
        )
    for p in report.tables:
        t.add_row(p.name, f"{p.supabase_count:,}", f"{p.convex_count:,}", p.supabase_digest, p.convex_digest,
                  "[green]ok[/]" if p.ok else "[red]MISMATCH[/]")  # fmt: skip
    out.print(t)
    skipped = report.loadtest_messages
    if not args.include_loadtest and (skipped["supabase"] or skipped["convex"]):
        out.print(
            f"left out: load-test writes ({skipped['supabase']:,} messages on Supabase, {skipped['convex']:,} on Convex; "
            f"the conversations they touched compared as before them; {report.touched_contacts:,} contacts not sampled). "
            "`python -m seed cleanup` removes them; --include-loadtest compares them too"
        )
    good = sum(lk.ok for lk in report.lookups)
    out.print(f"sampled lookups: {good}/{len(report.lookups)} identical (incl. one unknown phone), each also through "
              "the official convex client")
    if report.ok:
        out.print("[green]parity: OK[/]")
        return 0
    for line in report.mismatches():
        err.print(f"mismatch: {line}", markup=False)
    err.print("parity: FAILED (`python -m seed migrate --clear --restart` copies Supabase into Convex again)")
    return 1


def cmd_cleanup(args: argparse.Namespace) -> int:
    from . import loadtest
    from .convex_client import ConvexClient
    from .supabase_rest import SupabaseRest

    settings = _settings(args)
    named = [h.strip().lower() for h in args.i_know_this_is or []]

    def confirm(host: str, local: bool) -> None:
        if not local and host.lower() not in named:
            confirm_target("delete the load tests' rows", host, None, local)

    done: list[str] = []
    if args.backend in ("both", "supabase"):
        url = settings.supabase_url
        confirm(urlsplit(url).hostname or url, is_loopback_url(url))
        with SupabaseRest(url, settings.require("SUPABASE_SERVICE_ROLE_KEY")) as rest:
            sb = loadtest.cleanup_supabase(rest)
        done.append(f"Supabase ({rest.host}): {sb.deleted:,} messages deleted, {sb.restored:,} conversations restored")
    if args.backend in ("both", "convex") and (args.backend == "convex" or settings.get("CONVEX_URL")):
        url = settings.convex_url
        confirm(urlsplit(url).hostname or url, is_loopback_url(url))
        with ConvexClient(url, settings.require("CONVEX_ADMIN_KEY")) as convex:
            cx = loadtest.cleanup_convex(convex)
        done.append(f"Convex ({convex.host}): {cx.deleted:,} messages deleted, {cx.restored:,} conversations restored")
    for line in done:
        out.print(line)
    return 0


def cmd_workload(args: argparse.Namespace) -> int:
    from . import workload as wl
    from .supabase_rest import SupabaseRest

    settings = _settings(args)
    with SupabaseRest(settings.supabase_url, settings.require("SUPABASE_SERVICE_ROLE_KEY")) as rest:
        ws, mem, con = wl.fetch_rows(rest)
    doc = wl.build(
        ws,
        mem,
        con,
        known=args.known,
        unknown=args.unknown,
        zipf=args.zipf,
        seed=args.seed,
        only=args.workspace,
    )
    path = Path(args.out)
    wl.write(doc, path)
    out.print(
        f"wrote {path}: {len(doc['workspaces'])} workspaces, {len(doc['known']):,} known phones "
        f"(hottest 1% draw {wl.hot_share(doc):.0%} of lookups), {len(doc['unknown']):,} unknown"
    )
    return 0


# parser ------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m seed",
        description="Generate CRM data, migrate it Supabase -> Convex, verify parity, export the workload.",
    )
    p.add_argument("--env-file", help="dotenv file to read (default: ENV_FILE or .env, then .env.local)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write deterministic synthetic CRM data into Supabase")
    g.add_argument("--contacts", type=int, default=10_000)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--workspaces", type=int, default=None, help="default: 1 + contacts // 5000 (max 8)")
    g.add_argument("--reset", action="store_true", help="first delete every row of the six CRM tables")
    g.add_argument(
        "--i-know-this-is", metavar="HOST", help="confirm --reset on a non-sandbox host by naming it"
    )
    g.add_argument(
        "--via", choices=("auto", "copy", "rest"), default="auto", help="auto: COPY when DATABASE_URL is set"
    )
    g.set_defaults(func=cmd_generate)

    m = sub.add_parser("migrate", help="copy every table Supabase -> Convex (resumable)")
    m.add_argument(
        "--batch-rows", type=int, default=mig.DEFAULT_BATCH_ROWS,
        help="rows per Convex mutation (default %(default)s; each row costs index reads, Convex allows 4,096)",
    )
    m.add_argument(
        "--batch-bytes", type=int, default=mig.DEFAULT_BATCH_BYTES,
        help="bytes per Convex mutation's arguments, at most (default %(default)s)",
    )
    m.add_argument(
        "--in-flight", type=int, default=mig.DEFAULT_IN_FLIGHT,
        help="mutations sent concurrently, in order per table (default %(default)s)",
    )
    m.add_argument(
        "--page-size", type=int, default=mig.PAGE_SIZE,
        help="rows per Supabase read (default %(default)s; hosted PostgREST caps responses at 1,000)",
    )
    m.add_argument(
        "--checkpoint", default=str(mig.ckpt.DEFAULT_PATH),
        help="file recording the last copied row per table, for resuming (default %(default)s)",
    )
    m.add_argument(
        "--restart", action="store_true", help="ignore an interrupted run's checkpoint and copy everything"
    )
    m.add_argument(
        "--clear", action="store_true", help="first delete every document of the six Convex tables"
    )
    m.add_argument(
        "--i-know-this-is", metavar="HOST", help="confirm --clear on a non-sandbox Convex by naming its host"
    )
    m.add_argument("--dry-run", action="store_true", help="check both ends and show the plan; write nothing")
    m.set_defaults(func=cmd_migrate)

    v = sub.add_parser("verify", help="compare counts, fingerprints and sampled lookups")
    v.add_argument("--samples", type=int, default=20, help="contacts whose lookups are compared (default %(default)s)")
    v.add_argument("--seed", type=int, default=7, help="seed of the contact sample (default %(default)s)")
    v.add_argument(
        "--include-loadtest", action="store_true",
        help="also compare the load tests' writes (left out by default: each backend gets its own)",
    )
    v.set_defaults(func=cmd_verify)

    c = sub.add_parser(
        "cleanup",
        help="delete the load tests' rows (message_type 'loadtest') and restore the conversations they touched",
    )
    c.add_argument(
        "--backend", choices=("both", "supabase", "convex"), default="both",
        help="which side to clean (default both; Convex when CONVEX_URL is set)",
    )
    c.add_argument(
        "--i-know-this-is", metavar="HOST", action="append",
        help="confirm a non-sandbox host by naming it (repeat for Supabase and Convex)",
    )
    c.set_defaults(func=cmd_cleanup)

    w = sub.add_parser("workload", help="write the load tests' workload.json")
    w.add_argument("--out", default="workload.json")
    w.add_argument(
        "--known",
        type=int,
        default=None,
        help="at most this many known phones (default: all contacts, up to 100,000)",
    )
    w.add_argument(
        "--unknown", type=int, default=None, help="phones that exist nowhere (default: 10%% of known)"
    )
    w.add_argument("--zipf", type=float, default=1.1, help="skew exponent s: weight of rank k is 1/k^s")
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--workspace", action="append", help="only this workspace id (repeatable)")
    w.set_defaults(func=cmd_workload)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except SettingsError as exc:
        print(f"seed: {exc}", file=sys.stderr)
        return 2
    except SeedError as exc:
        print(f"seed {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"seed {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: one line, never a traceback
        if os.environ.get("SEED_DEBUG"):
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        print(f"seed {args.command}: unexpected {type(exc).__name__}: {first} (SEED_DEBUG=1 shows the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1


__all__ = ["main"]
