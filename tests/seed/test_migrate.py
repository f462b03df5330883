"""Migration against loopback stand-ins: parity, idempotence, retries, resume, SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from seed import migrate as mig
from seed.convex_client import ConvexClient, ConvexFunctionError
from seed.errors import SeedError
from seed.fingerprint import digest_rows
from seed.generate import Dataset, generate
from seed.supabase_rest import SupabaseRest
from seed.tables import TABLES

from . import fake_convex, fake_supabase

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return generate(contacts=120, seed=11)


@pytest.fixture
def stack(dataset: Dataset) -> Iterator[tuple[fake_convex.FakeConvex, str, str]]:
    with fake_supabase.serve(dataset, max_rows=300) as sb_url, fake_convex.serve() as (fake, cx_url):
        yield fake, sb_url, cx_url


def clients(sb_url: str, cx_url: str, attempts: int = 7) -> tuple[SupabaseRest, ConvexClient]:
    return SupabaseRest(sb_url, fake_supabase.SERVICE_KEY), ConvexClient(
        cx_url, fake_convex.ADMIN_KEY, attempts=attempts
    )


def assert_parity(fake: fake_convex.FakeConvex, data: Dataset) -> None:
    for t in TABLES:
        docs = list(fake.docs[t.convex].values())
        assert len(docs) == len(data.rows[t.name]), t.name
        expected = digest_rows(t, data.rows[t.name]).hex
        got = digest_rows(
            t, [{c.name: d.get(c.field) for c in t.columns} | {"id": d["supabaseId"]} for d in docs]
        ).hex
        assert got == expected, t.name
        assert fake.inserts[t.convex] == len(data.rows[t.name]), f"{t.name}: a row was inserted twice"


def test_full_migration_then_idempotent_rerun(stack, dataset, tmp_path):
    fake, sb_url, cx_url = stack
    rest, convex = clients(sb_url, cx_url)
    opts = mig.Options(batch_rows=97, in_flight=3, page_size=250, checkpoint=tmp_path / "cp.json")
    result = mig.run(rest, convex, opts)
    assert not result.interrupted
    assert result.sent == dataset.total
    assert_parity(fake, dataset)
    assert sum(s.inserted for s in result.tables) == dataset.total

    again = mig.run(rest, convex, opts)  # a completed checkpoint starts a fresh, idempotent pass
    assert again.sent == dataset.total
    assert sum(s.unchanged for s in again.tables) == dataset.total
    assert sum(s.inserted for s in again.tables) == 0
    assert_parity(fake, dataset)


def test_batches_respect_row_and_byte_limits(stack, dataset, tmp_path):
    fake, sb_url, cx_url = stack
    rest, convex = clients(sb_url, cx_url)
    opts = mig.Options(batch_rows=500, batch_bytes=16 * 1024, in_flight=2, checkpoint=tmp_path / "cp.json")
    result = mig.run(rest, convex, opts)
    msgs = next(s for s in result.tables if s.name == "messages")
    assert msgs.batches > 1
    assert msgs.bytes / msgs.batches <= 16 * 1024
    assert_parity(fake, dataset)


def test_dry_run_writes_nothing(stack, dataset, tmp_path):
    fake, sb_url, cx_url = stack
    rest, convex = clients(sb_url, cx_url)
    result = mig.run(rest, convex, mig.Options(dry_run=True, checkpoint=tmp_path / "cp.json"))
    assert [s.source_rows for s in result.tables] == [len(dataset.rows[t.name]) for t in TABLES]
    assert all(not d for d in fake.docs.values())
    assert not (tmp_path / "cp.json").exists()


@pytest.mark.parametrize("failure", ["429", "503", "drop"])
def test_transient_failures_are_retried(stack, dataset, tmp_path, failure):
    fake, sb_url, cx_url = stack
    rest, convex = clients(sb_url, cx_url)
    fake.failures = ["", failure, failure]  # the first call is run()'s preflight
    result = mig.run(rest, convex, mig.Options(batch_rows=500, checkpoint=tmp_path / "cp.json"))
    assert result.retries >= 2
    assert_parity(fake, dataset)


@pytest.mark.parametrize("failure", ["400", "error"])
def test_other_failures_are_not_retried_and_resume_works(stack, dataset, tmp_path, failure):
    fake, sb_url, cx_url = stack
    rest, convex = clients(sb_url, cx_url)
    opts = mig.Options(batch_rows=100, in_flight=1, checkpoint=tmp_path / "cp.json")
    mig.run(
        rest,
        convex,
        mig.Options(batch_rows=100, in_flight=1, checkpoint=tmp_path / "warm.json", dry_run=True),
    )
    # let workspaces .. contacts through, then fail one conversations batch
    calls_before = len(fake.calls)
    fake.failures = [*[""] * 4, failure]
    with pytest.raises(SeedError) as info:
        mig.run(rest, convex, opts)
    assert "rerun to resume" in str(info.value)
    assert len(fake.calls) - calls_before == 5  # the failed call was not repeated
    resumed = mig.run(rest, convex, opts)
    assert resumed.tables[0].sent == 0  # workspaces were done before the failure
    assert_parity(fake, dataset)


def test_function_error_carries_convex_error_data(stack):
    _fake, sb_url, cx_url = stack
    _, convex = clients(sb_url, cx_url)
    with pytest.raises(ConvexFunctionError) as info:
        convex.mutation("migrate:upsertContacts", {"rows": [{"supabaseId": "x", "workspaceId": "nope"}]})
    assert info.value.data["code"] == "MissingReference"


def test_wrong_admin_key_is_one_clear_error(stack, tmp_path):
    _fake, sb_url, cx_url = stack
    rest = SupabaseRest(sb_url, fake_supabase.SERVICE_KEY)
    convex = ConvexClient(cx_url, "wrong|key")
    with pytest.raises(SeedError, match="CONVEX_ADMIN_KEY was rejected"):
        mig.run(rest, convex, mig.Options(checkpoint=tmp_path / "cp.json"))
    assert not (tmp_path / "cp.json").exists()


def _run_cli(
    sb_url: str, cx_url: str, cwd: Path, *extra: str, kill: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ENV_FILE", "SEED_TEST_KILL")}
    env.update(
        SUPABASE_URL=sb_url,
        SUPABASE_SERVICE_ROLE_KEY=fake_supabase.SERVICE_KEY,
        CONVEX_URL=cx_url,
        CONVEX_ADMIN_KEY=fake_convex.ADMIN_KEY,
        PYTHONPATH=str(ROOT),
    )
    if kill:
        env["SEED_TEST_KILL"] = kill
    return subprocess.run(
        [sys.executable, "-m", "seed", "-q", "migrate", "--checkpoint", str(cwd / "cp.json"), *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


# Eleven different instants, several inside a batch: a page read but not sent,
# a batch about to go out, a request on the wire, Convex's answer received but
# not yet checkpointed, a checkpoint written but not renamed, and just after.
KILL_POINTS = [
    "page:1",
    "send:1",
    "inflight:3",
    "ack:2",
    "ckpt:2",
    "saved:4",
    "send:9",
    "inflight:14",
    "ack:17",
    "ckpt:22",
    "page:9",
    "inflight:30",
]


def test_sigkill_at_many_points_then_resume(stack, dataset, tmp_path):
    fake, sb_url, cx_url = stack
    args = ("--batch-rows", "25", "--in-flight", "3", "--page-size", "150")
    killed = 0
    progress: list[int] = []
    for point in KILL_POINTS:
        proc = _run_cli(sb_url, cx_url, tmp_path, *args, kill=point)
        if proc.returncode == 0:
            break  # the data ran out before this point: the migration finished
        assert proc.returncode == -9, (point, proc.returncode, proc.stderr)
        killed += 1
        progress.append(sum(len(d) for d in fake.docs.values()))
        assert "Traceback" not in proc.stderr
    assert killed >= 10
    assert progress == sorted(progress)  # never lost ground
    final = _run_cli(sb_url, cx_url, tmp_path, *args)
    assert final.returncode == 0, final.stderr
    assert_parity(fake, dataset)
    assert not list(tmp_path.glob(".cp.json.*.tmp")), "a stale temporary checkpoint was left behind"


@pytest.mark.parametrize("sig", ["INT", "TERM"])
def test_ctrl_c_or_sigterm_saves_progress_and_resumes(stack, dataset, tmp_path, sig):
    fake, sb_url, cx_url = stack
    args = ("--batch-rows", "25", "--in-flight", "3")
    proc = _run_cli(sb_url, cx_url, tmp_path, *args, kill=f"send:20:{sig}")
    assert proc.returncode == 130, proc.stderr
    assert "rerun the same command to resume" in proc.stderr and "Traceback" not in proc.stderr
    saved = sum(
        s["rows"] for s in __import__("json").loads((tmp_path / "cp.json").read_text())["tables"].values()
    )
    assert saved >= 10 * 25  # batches sent before the signal landed and were checkpointed
    final = _run_cli(sb_url, cx_url, tmp_path, *args)
    assert final.returncode == 0, final.stderr
    assert_parity(fake, dataset)


def test_convex_error_headline_skips_the_request_id_line():
    from seed.convex_client import _headline

    msg = "[Request ID: 3e56f9741d16e919] Server Error\nArgumentValidationError: Object is missing `workspaceId`.\n\nObject: {}"
    assert _headline(msg) == "ArgumentValidationError: Object is missing `workspaceId`."
    assert _headline("[Request ID: x] Server Error") == "[Request ID: x] Server Error"


def test_parent_missing_in_convex_rewinds_the_checkpoint(stack, dataset, tmp_path):
    """A parent created in Supabase after its table was copied: the failed run
    rewinds the checkpoint to that table, and the rerun repairs everything."""
    from seed import checkpoint as ckpt

    fake, sb_url, cx_url = stack
    rest, convex = clients(sb_url, cx_url)
    opts = mig.Options(batch_rows=200, checkpoint=tmp_path / "cp.json")
    mig.run(rest, convex, opts)
    lost = dataset.workspaces[0]["id"]
    del fake.docs["workspaces"][lost]
    cp = ckpt.Checkpoint(path=opts.checkpoint, source=rest.host, target=convex.host)
    for name in ("workspaces", "workspace_members", "contacts"):
        cp.tables[name].done = True
    cp.save()
    with pytest.raises(SeedError, match="references a workspaces row"):
        mig.run(rest, convex, opts)
    back = ckpt.load(opts.checkpoint, rest.host, convex.host)
    assert back is not None and not back.tables["workspaces"].done
    mig.run(rest, convex, opts)
    assert lost in fake.docs["workspaces"]
    assert len(fake.docs["messages"]) == len(dataset.rows["messages"])
