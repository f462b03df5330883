"""The step shape: users per step, each held; every sample carries its step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.fake_backend import FakeBackend
from tests.harness.helpers import STEP_SHAPE, read_hdr, run_locust


@pytest.mark.slow
def test_step_shape_records_steps(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        prefix = tmp_path / "run"
        p = run_locust(
            ["-f", STEP_SHAPE, "--headless", "-t", "20s", "--csv", str(prefix), "--warmup", "0",
             "--targets", "convex_http", "--step-spec", "1:2,3:2", "--think-time", "0.02", "--write-weight", "0",
             "--unknown-weight", "0"],
            fb.env(), tmp_path,
        )
    assert p.returncode == 11, p.stderr[-3000:]
    hdr = read_hdr(prefix)
    steps = hdr["metadata"]["steps"]
    assert [(s["index"], s["users"]) for s in steps] == [(0, 1), (1, 3)]
    assert all(s["end"] is not None and s["end"] >= s["start"] for s in steps)
    assert steps[0]["end"] == steps[1]["start"]
    by_step = {e["step"]: e for e in hdr["entries"] if (e["type"], e["name"]) == ("lookup", "convex_http")}
    assert set(by_step) == {None, 0, 1}
    assert by_step[0]["count"] + by_step[1]["count"] == by_step[None]["count"]
    # What the backend saw in each step's window: counts and connections, not the machine's speed.
    lookups = [(t, port) for t, route, port in fb.arrivals if route == "/contacts/by-phone"]
    seen = [[(t, port) for t, port in lookups if s["start"] <= t < s["end"]] for s in steps]
    # one user, then three: one keep-alive connection each
    assert [len({port for _, port in window}) for window in seen] == [1, 3]
    # A sample carries the step it completed in: a step holds the lookups that arrived in it, but for
    # those in flight at its edges (the one user's at the switch; the three users' at the end).
    assert len(seen[0]) - 1 <= by_step[0]["count"] <= len(seen[0])
    assert len(seen[1]) - 3 <= by_step[1]["count"] <= len(seen[1]) + 1
    assert by_step[0]["failures"] == by_step[1]["failures"] == 0


def test_bad_step_spec_is_one_line(tmp_path: Path) -> None:
    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        p = run_locust(
            ["-f", STEP_SHAPE, "--headless", "-t", "20s", "--targets", "convex_http", "--step-spec", "abc"],
            fb.env(), tmp_path,
        )
    assert p.returncode == 2, p.stderr[-3000:]
    assert "--step-spec: 'abc' is not users[:seconds]" in p.stderr
    assert "Traceback" not in p.stderr
