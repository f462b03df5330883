"""A master and two worker processes: the workload reaches the workers, the HDR merges exactly."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import pytest

from tests.harness.fake_backend import FakeBackend
from tests.harness.helpers import AI_CONTEXT, LOCUST, final_counts, locust_env, read_hdr
from tests.ports import listening_port

TARGETS = ["supabase_rest", "supabase_rpc", "convex_http", "convex_query"]


@pytest.mark.slow
def test_master_and_two_workers(tmp_path: Path) -> None:
    master_dir, worker_dir = tmp_path / "master", tmp_path / "worker"
    master_dir.mkdir()
    worker_dir.mkdir()  # no workload.json here: workers get it from the master
    with FakeBackend() as fb:
        (master_dir / "workload.json").write_text(json.dumps(fb.data.workload()))
        env = locust_env(fb.env())
        # the master binds a port of its choosing; the workers are told the one it got
        master = subprocess.Popen(
            [LOCUST, "-f", AI_CONTEXT, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", "0",
             "--headless", "--expect-workers", "2", "--expect-workers-max-wait", "30", "-u", "8", "-r", "8",
             "-t", "5s", "--csv", str(master_dir / "run"), "--json-file", str(master_dir / "final"),
             "--warmup", "0", "--targets", *TARGETS, "--write-weight", "0", "--open-rate", "40",
             "--raw-samples", str(master_dir / "raw.csv")],
            env=env, cwd=master_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        workers: list[subprocess.Popen[str]] = []
        try:
            port = listening_port(master)
            workers = [
                subprocess.Popen(
                    [LOCUST, "-f", AI_CONTEXT, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                    env=env, cwd=worker_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )
                for _ in range(2)
            ]
            _, master_stderr = master.communicate(timeout=60)
        finally:
            for proc in (master, *workers):
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    assert master.returncode == 11, master_stderr[-3000:]
    counts = final_counts(master_dir / "final.json")
    hdr = read_hdr(master_dir / "run")
    assert hdr["metadata"]["workers"] == 2
    whole = {(e["type"], e["name"]): e for e in hdr["entries"] if e["step"] is None}
    checked = 0
    for (rtype, name), (n, failures) in counts.items():
        e = whole[(rtype, name)]
        assert (e["count"] + e["failures"], e["failures"]) == (n, failures), (rtype, name)
        checked += 1
    assert checked >= 2 * len(TARGETS)
    for t in TARGETS:
        assert counts[("lookup", t)][0] > 0 and counts[("lookup", t)][1] == 0
    # open model: each worker paced half of the 40/s; the master merged their counters
    pacer = hdr["metadata"]["open_model"]
    assert set(pacer) == set(TARGETS)
    for t in TARGETS:
        c = pacer[t]
        assert c["scheduled"] == c["started"] + c["dropped"]
        assert c["started"] >= counts[("lookup", t)][0] + counts.get(("lookup-miss", t), (0, 0))[0]
    # raw samples travel to the master too: one row per sample, from both workers
    with open(master_dir / "raw.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    assert len(raw) == sum(n for n, _ in counts.values())
    assert len({r["worker"] for r in raw}) == 2
