"""`python -m reports compare RUN_A RUN_B`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reports.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures"


def compare(capsys: pytest.CaptureFixture[str], a: Path, b: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["compare", str(a), str(b), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _line(out: str, target: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(target + " "))


def test_same_run_is_not_significant(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = compare(capsys, FIXTURES / "go" / "run", FIXTURES / "go" / "run")
    assert rc == 0 and err == ""
    for target in ("supabase_rest", "convex_query", "api_convex"):
        assert "not significant (n.s.)" in _line(out, target)
        assert "+0.0%" in _line(out, target)


def test_real_change_is_significant(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, _ = compare(capsys, FIXTURES / "go" / "run", FIXTURES / "optimise" / "run", "--out", str(tmp_path))
    assert rc == 0
    assert "verdict GO" in out and "verdict OPTIMISE SUPABASE" in out
    assert _line(out, "supabase_rest").rstrip().endswith("significant")
    assert _line(out, "convex_query").rstrip().endswith("significant")
    data = json.loads((tmp_path / "compare.json").read_text())
    rows = {c["target"]: c for c in data["changes"]}
    assert rows["supabase_rest"]["significance"] == "significant"
    assert rows["supabase_rest"]["ratio"]["high"] < 1  # the optimise run's Supabase REST is faster
    assert "| supabase_rest |" in (tmp_path / "compare.md").read_text()


def test_targets_in_one_run_only(capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = compare(capsys, FIXTURES / "go" / "run", FIXTURES / "inconclusive" / "run")
    assert _line(out, "api_convex").rstrip().endswith("n/a")


def test_csv_only_significance_unknown(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "go", tmp_path / "go")
    (tmp_path / "go" / "run_hdr.json").unlink()
    rc, out, _ = compare(capsys, tmp_path / "go" / "run", FIXTURES / "optimise" / "run")
    assert rc == 0 and "unknown (CSV only)" in _line(out, "supabase_rest")


def test_compare_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = compare(capsys, FIXTURES / "go" / "run", tmp_path / "missing")
    assert rc == 2 and err.startswith("reports: error: ") and err.count("\n") == 1


def test_significance_on_independent_samples() -> None:
    import math
    import random

    from reports.compare import compare_targets
    from reports.rules import Thresholds, target_from_distribution
    from reports.stats import Distribution

    def sample(target: str, median: float, seed: int) -> dict[str, object]:
        rng = random.Random(seed)
        dist = Distribution.from_samples(round(rng.lognormvariate(math.log(median), 0.4), 2) for _ in range(3000))
        return {target: target_from_distribution(target, dist)}

    same = compare_targets(sample("convex_query", 100, 1), sample("convex_query", 100, 2), Thresholds())  # type: ignore[arg-type]
    assert same[0].significance == "not significant"
    moved = compare_targets(sample("convex_query", 100, 1), sample("convex_query", 90, 2), Thresholds())  # type: ignore[arg-type]
    assert moved[0].significance == "significant" and moved[0].ratio is not None and moved[0].ratio.high < 1


def test_report_folders_name_their_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    for scenario in ("go", "optimise"):
        assert main(["decide", str(FIXTURES / scenario / "run"), "--out", str(tmp_path / scenario), "--no-charts"]) in (0, 10)
    capsys.readouterr()
    rc, out, err = compare(capsys, tmp_path / "go", tmp_path / "optimise")
    assert (rc, err) == (0, "")
    assert f"A: {FIXTURES / 'go' / 'run'}" in out and "verdict GO" in out and "verdict OPTIMISE SUPABASE" in out
    assert _line(out, "supabase_rest").rstrip().endswith("significant")
    # a report whose run has been deleted: one line naming it
    shutil.copytree(FIXTURES / "go", tmp_path / "gone-run")
    main(["decide", str(tmp_path / "gone-run" / "run"), "--out", str(tmp_path / "gone"), "--no-charts"])
    shutil.rmtree(tmp_path / "gone-run")
    capsys.readouterr()
    rc, _, err = compare(capsys, tmp_path / "gone", tmp_path / "go")
    assert rc == 2 and "decision.json: its run" in err and err.count("\n") == 1


def test_rows_under_the_sample_minimum_are_not_called_significant(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = compare(capsys, FIXTURES / "go" / "run", FIXTURES / "optimise" / "run", "--min-samples", "100000")
    assert rc == 0
    assert _line(out, "supabase_rest").rstrip().endswith("too few samples")
    assert "'too few samples' under --min-samples (100000)" in out
