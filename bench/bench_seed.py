"""``seed migrate`` against the runtime's write path alone, in interleaved pairs, on the sandbox.

    .venv/bin/python -m bench.bench_seed [--pairs 10] [--contacts 500] [--write-docs]

Generates a dataset (``--contacts``, seed 42) and loads it into the sandbox's
PostgreSQL (COPY).  Then, as interleaved pairs, with the Convex tables cleared
before every run:

* A, **migrate**: ``seed.migrate.run``, reading pages through the gateway,
  encoding, and writing batches with ``--in-flight`` in flight (pipelined);
* B, **write only**: the very same batches, encoded beforehand, sent with the
  same concurrency, table by table: what the runtime's write path takes alone.

Per pair: migrate rows/s / write-only rows/s.  Goal: >= 0.8 (median, 95 %
interval), i.e. reading and encoding cost the migration at most a fifth of
the time the writes take, so the client keeps the deployment's write path
busy.  Also prints, from the migrate runs, bytes per row as sent and the
arithmetic against Convex's 4 MiB/s per-deployment write budget, and checks
parity after the last migrate run.  Sandbox only (it clears the Convex tables);
uses a running sandbox, or starts its own under the shared lock and stops it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import pairs
from harness.settings import SettingsError, is_loopback_url, load_settings
from seed import loaders
from seed import migrate as mig
from seed.convex_client import ConvexClient
from seed.errors import SeedError
from seed.generate import generate
from seed.supabase_rest import SupabaseRest
from seed.tables import TABLES
from seed.verify import verify

NAME = "seed"
HEADING = "## Seed"
BUDGET = 4 * 1024 * 1024  # Convex: MAX_BYTES_WRITTEN_PER_SECOND, per deployment
GOAL = pairs.Goal("migrate/write-only throughput", 0.8)


def encoded_batches(data: Any, opts: mig.Options) -> list[tuple[str, list[bytes]]]:
    """Every table's batches, encoded as the migration encodes them from PostgREST's rows."""
    out = []
    for spec in TABLES:
        rows = [loaders.rest_row(spec, r) for r in data.rows[spec.name]]
        stats = mig.TableStats(spec.name)
        out.append((spec.mutation, [b.body for b in mig._batches(spec, iter([rows]), opts, stats)]))
    return out


def write_only(convex: ConvexClient, batches: list[tuple[str, list[bytes]]], in_flight: int) -> float:
    """Sends the batches, ``in_flight`` at a time, parents' tables before children's; wall seconds."""
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="bench-write") as pool:
        for mutation, bodies in batches:
            pending: set[Future[Any]] = set()
            for body in bodies:
                while len(pending) >= in_flight:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for f in done:
                        f.result()
                pending.add(pool.submit(convex.call_raw, "mutation", mutation, body))
            for f in pending:
                f.result()
    return time.perf_counter() - t0


def _arguments(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contacts", type=int, default=500)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--batch-rows", type=int, default=mig.DEFAULT_BATCH_ROWS)
    p.add_argument("--in-flight", type=int, default=mig.DEFAULT_IN_FLIGHT)
    pairs.add_arguments(p)
    return p.parse_args(argv)


def _bytes_per_row(result: mig.Result) -> float:
    """Bytes sent per row, as JSON including the request envelope."""
    return sum(x.bytes for x in result.tables) / max(1, result.sent)


def _write_path_notes(last: mig.Result, in_flight: int) -> list[str]:
    """Where a migrate run's time goes, and what its bytes per row mean against Convex's write budget."""
    total_bytes = sum(x.bytes for x in last.tables)
    n_batches = sum(x.batches for x in last.tables)
    bpr = _bytes_per_row(last)
    write = sum(x.write_s for x in last.tables)
    read = sum(x.read_s for x in last.tables)
    enc = sum(x.encode_s for x in last.tables)
    busy = read + enc + write
    mean_write = write / max(1, n_batches)
    batch_bytes = total_bytes / max(1, n_batches)
    return [
        f"where a migrate run's time goes (thread-seconds; reader and {in_flight} senders overlap): reading "
        f"{read:.2f} s ({read / busy:.0%}), encoding {enc:.2f} s ({enc / busy:.0%}), writing {write:.2f} s "
        f"({write / busy:.0%}); mean batch {1000 * mean_write:.0f} ms",
        f"bytes sent: {bpr:.0f} B/row (JSON including the request envelope) -> Convex's 4 MiB/s budget is "
        f"{BUDGET / bpr:,.0f} rows/s; saturating it needs {BUDGET * mean_write / batch_bytes:.1f} batches in flight at "
        f"this batch latency ({BUDGET * (mean_write + 0.1) / batch_bytes:.1f} with a 100 ms cloud round trip)",
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _arguments(argv)
    mach = pairs.machine()
    with pairs.sandbox(["postgres", "supabase", "convex"]) as env, pairs.LoadMonitor() as load:
        try:
            s = load_settings(env_file=str(Path(env["SANDBOX_DIR"]) / "env"))
            if not (is_loopback_url(s.supabase_url) and is_loopback_url(s.convex_url)):
                raise SeedError("bench_seed runs against the local sandbox only")
            db = s.require("DATABASE_URL")
            key = s.require("SUPABASE_SERVICE_ROLE_KEY")
            admin = s.require("CONVEX_ADMIN_KEY")
        except (SettingsError, SeedError) as exc:
            print(f"bench_seed: {exc}", file=sys.stderr)
            return 2
        t0 = time.perf_counter()
        data = generate(args.contacts, args.seed)
        gen_s = time.perf_counter() - t0
        loaded = loaders.load_copy(db, data, reset=False)
        print(f"dataset: {data.total:,} rows ({args.contacts:,} contacts, seed {args.seed}); generated in {gen_s:.2f} s, "
              f"loaded (COPY) in {loaded.seconds:.2f} s", flush=True)
        opts_base = {"batch_rows": args.batch_rows, "in_flight": args.in_flight}
        batches = encoded_batches(data, mig.Options(**opts_base))
        results: list[mig.Result] = []
        parity_ok = False
        try:
            with SupabaseRest(s.supabase_url, key) as rest, ConvexClient(s.convex_url, admin) as convex, \
                    tempfile.TemporaryDirectory() as tmp:
                mig.preflight(rest, convex)

                def measure(side: pairs.Side, i: int) -> float:
                    mig.clear_convex(convex)
                    if side == "b":
                        return data.total / write_only(convex, batches, args.in_flight)
                    result = mig.run(rest, convex, mig.Options(**opts_base, checkpoint=Path(tmp) / f"cp-{i}.json"))
                    results.append(result)
                    return result.sent / result.seconds

                def progress(i: int, a: float, b: float) -> None:
                    print(f"  pair {i + 1:>2}: migrate {a:8,.0f} rows/s, write only {b:8,.0f} rows/s -> {a / b:.2f} "
                          f"(load {os.getloadavg()[0]:.2f})", flush=True)

                got_m, got_w = pairs.run_pairs(args.pairs, measure, progress=progress)
                if pairs.order(args.pairs)[-1][-1] == "b":  # the last run wrote without migrate: migrate once more
                    mig.clear_convex(convex)
                    results.append(mig.run(rest, convex, mig.Options(**opts_base, checkpoint=Path(tmp) / "cp-last.json")))
                parity_ok = verify(rest, convex, admin, samples=5).ok
                mig.clear_convex(convex)
        finally:
            # leave the shared sandbox as it was: other suites migrate all of it
            import psycopg

            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute("delete from public.workspaces where id = any(%s::uuid[])",
                             [[w["id"] for w in data.workspaces]])
    comps = [pairs.Comparison("rows/s", "migrate", "write only", got_m, got_w, goal=GOAL)]
    bpr = _bytes_per_row(results[-1])
    notes = [
        *_write_path_notes(results[-1], args.in_flight),
        f"parity after the last migrate run: {'OK' if parity_ok else 'FAILED'}",
    ]
    table = pairs.summary_table(comps)
    print(table)
    for line in [*pairs.verdict_lines(comps), *notes]:
        print(line)
    print(f"{load.label()}; machine: {mach.label()}")
    command = pairs.command_line("-m bench.bench_seed", argv)
    if args.json:
        pairs.write_json(args.json, NAME, comps, mach, load, command, {"rows": data.total, "bytes_per_row": bpr})
    if args.write_docs:
        body = (
            f"{pairs.header_lines(command, mach, load, args.pairs)}  \n"
            f"Dataset: {data.total:,} rows ({args.contacts:,} contacts, seed {args.seed}); batches of "
            f"{args.batch_rows:,} rows, {args.in_flight} in flight; the Convex tables cleared before every run.\n\n"
            f"{table}\n\n" + "\n".join(f"- {line}" for line in [*pairs.verdict_lines(comps), *notes])
        )
        pairs.write_docs(NAME, body, HEADING)
    return pairs.exit_code(comps) if parity_ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SeedError as exc:
        print(f"bench_seed: {exc}", file=sys.stderr)
        sys.exit(1)
