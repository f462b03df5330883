"""Any cut of any input file gives a verdict or one line with exit 2, never an internal error."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from reports.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures"
FILES = ["run_stats.csv", "run_stats_history.csv", "run_failures.csv", "run_hdr.json"]


@pytest.mark.parametrize("name", FILES)
def test_truncation_anywhere(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    rng = random.Random(name)
    original = (FIXTURES / "failures" / name).read_bytes()
    cuts = sorted({0, 1, len(original) - 1, *(rng.randrange(len(original)) for _ in range(12))})
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "failures", run_dir)
    for cut in cuts:
        (run_dir / name).write_bytes(original[:cut])
        code = main(["decide", str(run_dir / "run"), "--out", str(tmp_path / "out"), "--no-charts"])
        captured = capsys.readouterr()
        assert code in (0, 10, 11, 2), (cut, captured.err)
        if code == 2:
            assert captured.err.startswith("reports: error: ") and captured.err.count("\n") == 1, (cut, captured.err)
        else:
            assert captured.err == ""


def test_garbage_bytes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(FIXTURES / "go", run_dir)
    for name in FILES:
        saved = (run_dir / name).read_bytes()
        (run_dir / name).write_bytes(b"\xff\xfe\x00garbage,\x00\n\x80\x81")
        code = main(["decide", str(run_dir / "run"), "--out", str(tmp_path / "out"), "--no-charts"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and name in err, err
        (run_dir / name).write_bytes(saved)
