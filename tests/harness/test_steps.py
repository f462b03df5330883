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
             "--targets", "convex_http", "--step-spec", "1:2,3:2", "--think-time", "0.02", "--write-weight", "0"],
            fb.env(), tmp_path,
        )
    assert p.returncode == 11, p.stderr[-3000:]
    hdr = read_hdr(prefix)
    steps = hdr["metadata"]["steps"]
    assert [(s["index"], s["users"]) for s in steps] == [(0, 1), (1, 3)]
    assert all(s["end"] is not None and s["end"] >= s["start"] for s in steps)
    by_step = {e["step"]: e for e in hdr["entries"] if (e["type"], e["name"]) == ("lookup", "convex_http")}
    assert set(by_step) == {None, 0, 1}
    assert by_step[0]["count"] + by_step[1]["count"] == by_step[None]["count"]
    assert by_step[1]["count"] > by_step[0]["count"]  # three users against one, same hold


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
