"""Throughput of ``seed generate`` and ``seed migrate`` against the sandbox.

    .venv/bin/python bench/bench_seed.py [--contacts 10000] [--env-file .sandbox/env]

Measures: generation (in memory) and loading (COPY) in rows/s; migration rows/s
with the time split into reading (Supabase pages, JSON decode), encoding
(Convex form + JSON) and writing (mutation round trips, summed over the
in-flight threads); bytes per row as sent; and the arithmetic against Convex's
4 MiB/s per-deployment write budget. Sandbox only: it clears the Convex tables.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table as RichTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.settings import SettingsError, is_loopback_url, load_settings  # noqa: E402
from seed import loaders  # noqa: E402
from seed import migrate as mig  # noqa: E402
from seed.convex_client import ConvexClient  # noqa: E402
from seed.errors import SeedError  # noqa: E402
from seed.generate import generate  # noqa: E402
from seed.supabase_rest import SupabaseRest  # noqa: E402
from seed.tables import TABLES, to_convex  # noqa: E402
from seed.verify import verify  # noqa: E402

BUDGET = 4 * 1024 * 1024  # Convex: MAX_BYTES_WRITTEN_PER_SECOND, per deployment
console = Console(highlight=False, soft_wrap=True, width=160)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--contacts", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--env-file", default=str(ROOT / ".sandbox" / "env"))
    p.add_argument("--batch-rows", type=int, default=mig.DEFAULT_BATCH_ROWS)
    p.add_argument("--in-flight", type=int, default=mig.DEFAULT_IN_FLIGHT)
    p.add_argument(
        "--reset", action="store_true", help="generate --reset first (every CRM row in the sandbox)"
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the dataset afterwards (default: delete it, clear Convex)"
    )
    args = p.parse_args()
    try:
        s = load_settings(env_file=args.env_file)
        if not (is_loopback_url(s.supabase_url) and is_loopback_url(s.convex_url)):
            raise SeedError("bench_seed runs against the local sandbox only")
        db = s.require("DATABASE_URL")
        key = s.require("SUPABASE_SERVICE_ROLE_KEY")
        admin = s.require("CONVEX_ADMIN_KEY")
    except (SettingsError, SeedError) as exc:
        print(f"bench_seed: {exc}", file=sys.stderr)
        return 2

    rows: list[list[str]] = []
    t0 = time.perf_counter()
    data = generate(args.contacts, args.seed)
    gen_s = time.perf_counter() - t0
    rows.append(["generate (in memory)", f"{data.total:,}", f"{gen_s:.2f}", f"{data.total / gen_s:,.0f}"])
    load = loaders.load_copy(db, data, reset=args.reset)
    rows.append(
        [
            "load (COPY, one transaction)",
            f"{data.total:,}",
            f"{load.seconds:.2f}",
            f"{data.total / load.seconds:,.0f}",
        ]
    )

    # encoding alone, one thread, from rows as PostgREST returns them (ISO times):
    # what the client can produce per second
    as_read = {spec.name: [loaders.rest_row(spec, r) for r in data.rows[spec.name]] for spec in TABLES}
    t0 = time.perf_counter()
    enc_bytes = 0
    for spec in TABLES:
        for row in as_read[spec.name]:
            enc_bytes += len(orjson.dumps(to_convex(spec, row))) + 1
    enc_s = time.perf_counter() - t0
    rows.append(
        ["encode only (Convex form + JSON)", f"{data.total:,}", f"{enc_s:.2f}", f"{data.total / enc_s:,.0f}"]
    )

    with (
        SupabaseRest(s.supabase_url, key) as rest,
        ConvexClient(s.convex_url, admin) as convex,
        tempfile.TemporaryDirectory() as tmp,
    ):
        mig.preflight(rest, convex)
        mig.clear_convex(convex)
        opts = mig.Options(
            batch_rows=args.batch_rows, in_flight=args.in_flight, checkpoint=Path(tmp) / "cp.json"
        )
        result = mig.run(rest, convex, opts)
        t0 = time.perf_counter()
        parity = verify(rest, convex, admin, samples=5)
        verify_s = time.perf_counter() - t0
        if not args.keep:
            # leave the shared sandbox small: other test suites migrate all of it
            import psycopg

            with psycopg.connect(db, autocommit=True) as conn:
                conn.execute(
                    "delete from public.workspaces where id = any(%s::uuid[])",
                    [[w["id"] for w in data.workspaces]],
                )
            mig.clear_convex(convex)
    sent = result.sent
    rows.append(
        [
            "migrate (read+encode+write, pipelined)",
            f"{sent:,}",
            f"{result.seconds:.2f}",
            f"{sent / result.seconds:,.0f}",
        ]
    )
    rows.append(
        ["verify (both fingerprints + 6 lookups)", f"{sent:,}", f"{verify_s:.2f}", f"{sent / verify_s:,.0f}"]
    )

    t = RichTable(
        title=f"seed throughput, {args.contacts:,} contacts (seed {args.seed})", title_justify="left"
    )
    for col in ("step", "rows", "s", "rows/s"):
        t.add_column(col, justify="left" if col == "step" else "right")
    for r in rows:
        t.add_row(*r)
    console.print(t)

    read = sum(x.read_s for x in result.tables)
    enc = sum(x.encode_s for x in result.tables)
    write = sum(x.write_s for x in result.tables)
    busy = read + enc + write
    t2 = RichTable(
        title="migrate: where the time goes (thread-seconds; reading and writing overlap)",
        title_justify="left",
    )
    for col in (
        "table",
        "rows",
        "batches",
        "B/row",
        "read s",
        "encode s",
        "write s",
        "mean batch ms",
        "rows/s",
    ):
        t2.add_column(col, justify="left" if col == "table" else "right")
    for x in result.tables:
        t2.add_row(
            x.name, f"{x.sent:,}", f"{x.batches}", f"{x.bytes / max(1, x.sent):.0f}", f"{x.read_s:.2f}", f"{x.encode_s:.2f}",
            f"{x.write_s:.2f}", f"{1000 * x.write_s / max(1, x.batches):.0f}", f"{x.sent / x.seconds:,.0f}" if x.seconds else "-",
        )  # fmt: skip
    t2.add_row(
        "share",
        "",
        "",
        "",
        f"{read / busy:.0%}",
        f"{enc / busy:.0%}",
        f"{write / busy:.0%}",
        "",
        "",
        style="bold",
    )
    console.print(t2)

    total_bytes = sum(x.bytes for x in result.tables)
    batches = sum(x.batches for x in result.tables)
    bpr = total_bytes / max(1, sent)
    batch_bytes = total_bytes / max(1, batches)
    mean_write = write / max(1, batches)
    console.print(
        f"bytes sent: {total_bytes / 2**20:.1f} MiB for {sent:,} rows = {bpr:.0f} B/row (JSON, incl. request envelope)"
    )
    console.print(
        f"Convex budget 4 MiB/s / {bpr:.0f} B/row = {BUDGET / bpr:,.0f} rows/s at the budget "
        f"(JSON bytes; Convex counts stored document bytes, of similar size)"
    )
    console.print(
        f"client side: encoding alone {enc_bytes / enc_s / 2**20:.1f} MiB/s on one core "
        f"= {enc_bytes / enc_s / BUDGET:.1f}x the budget; reading {sent / max(read, 1e-9):,.0f} rows/s "
        f"= {sent * bpr / max(read, 1e-9) / 2**20:.1f} MiB/s"
    )
    need = BUDGET * mean_write / batch_bytes
    console.print(
        f"write side: {args.in_flight} in flight x {batch_bytes / 2**20:.2f} MiB/batch / {mean_write * 1000:.0f} ms per batch "
        f"(measured here) = {args.in_flight * batch_bytes / mean_write / 2**20:.1f} MiB/s; "
        f"saturating 4 MiB/s needs {need:.1f} batches in flight at this latency "
        f"(at a cloud round trip of +100 ms: {BUDGET * (mean_write + 0.1) / batch_bytes:.1f})"
    )
    console.print(
        "parity after the run: "
        + (
            "OK (counts, fingerprints, 6 sampled lookups)"
            if parity.ok
            else "FAILED: " + "; ".join(parity.mismatches())
        )
    )
    return 0 if parity.ok else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SeedError as exc:
        print(f"bench_seed: {exc}", file=sys.stderr)
        sys.exit(1)
