"""`python -m reports decide` on real Locust runs, and every kind of bad input."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reports.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]


def decide(capsys: pytest.CaptureFixture[str], prefix: Path | str, out: Path, *extra: str) -> tuple[int, str, str]:
    code = main(["decide", str(prefix), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def copy_run(name: str, dest: Path) -> Path:
    shutil.copytree(FIXTURES / name, dest / name)
    return dest / name / "run"


# ---------------------------------------------------------------- verdicts on real runs

@pytest.mark.parametrize(
    ("scenario", "code", "verdict"),
    [
        ("go", 0, "GO"),
        ("optimise", 10, "OPTIMISE SUPABASE"),
        ("inconclusive", 11, "INCONCLUSIVE"),
        ("thin", 11, "INCONCLUSIVE"),
        ("failures", 11, "INCONCLUSIVE"),
    ],
)
def test_decide_on_fixtures(capsys: pytest.CaptureFixture[str], tmp_path: Path, scenario: str, code: int,
                            verdict: str) -> None:
    rc, out, err = decide(capsys, FIXTURES / scenario / "run", tmp_path, "--no-charts")
    assert (rc, err) == (code, "")
    assert f"VERDICT: {verdict} (exit {code})" in out
    data = json.loads((tmp_path / "decision.json").read_text())
    assert data["verdict"] == verdict and data["exit_code"] == code
    assert data["run"]["source"] == "hdr"
    md = (tmp_path / "decision.md").read_text()
    assert f"**Verdict: {verdict}**" in md
    assert "sandbox numbers exercise the method; they are not a verdict on hosted Supabase or Convex" in md


def test_thin_run_says_what_is_missing(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, out, _ = decide(capsys, FIXTURES / "thin" / "run", tmp_path, "--no-charts")
    assert "Not enough evidence" in out and "needed for P95" in out


def test_a_failing_target_leaves_the_run_undecided_and_explained(capsys: pytest.CaptureFixture[str],
                                                                 tmp_path: Path) -> None:
    rc, out, _ = decide(capsys, FIXTURES / "failures" / "run", tmp_path, "--no-charts")
    data = json.loads((tmp_path / "decision.json").read_text())
    direct = data["decisions"]["direct"]
    assert (rc, data["verdict"]) == (11, "INCONCLUSIVE")
    assert direct["reason"].startswith("The run cannot decide: convex_http failed ")
    assert [p.split(" failed ")[0] for p in direct["run_problems"]] == ["convex_http", "supabase_nested"]
    # the numbers alone would have said GO on convex_query: kept as a note, never as the verdict
    assert direct["convex"] == "convex_query" and any(n.startswith("Without these problems the rules would give GO")
                                                      for n in direct["notes"])
    assert any("failure ratio" in p for p in direct["evidence"]["convex_http"])
    md = (tmp_path / "decision.md").read_text()
    failures = md.split("## Failures", 1)[1]
    assert "**convex_http**" in failures and "server error (500)" in failures
    assert "failures of convex_http" in out
    # --strict: the same report, exit 3
    rc, _, err = decide(capsys, FIXTURES / "failures" / "run", tmp_path, "--no-charts", "--strict")
    assert rc == 3 and err.startswith("reports: the run cannot decide: convex_http failed")


def test_thresholds_are_options_and_printed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, out, _ = decide(capsys, FIXTURES / "go" / "run", tmp_path, "--no-charts", "--p95-target-ms", "20")
    assert rc == 11 and "P95 target < 20 ms" in out
    rc, out, _ = decide(capsys, FIXTURES / "thin" / "run", tmp_path, "--no-charts", "--min-samples", "50")
    assert rc in (0, 10, 11) and "min samples 50" in out
    assert json.loads((tmp_path / "decision.json").read_text())["decisions"]["direct"]["thresholds"]["min_samples"] == 50


def test_api_level_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _, out, _ = decide(capsys, FIXTURES / "go" / "run", tmp_path, "--no-charts")
    assert "== API routes (Next.js)" in out and "api_convex" in out
    assert "api" in json.loads((tmp_path / "decision.json").read_text())["decisions"]
    _, out, _ = decide(capsys, FIXTURES / "inconclusive" / "run", tmp_path, "--no-charts")
    assert "API routes" not in out


def test_report_html_is_self_contained_with_charts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    decide(capsys, FIXTURES / "steps" / "run", tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "url(http" not in html and "@import" not in html
    assert html.count("data:image/png;base64,") == 5  # bars, over time, distribution, rps/users, steps
    assert "P95 per concurrency step" in html
    assert "sandbox numbers exercise the method" in html
    assert "<script" not in html


def test_steps_table(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    decide(capsys, FIXTURES / "steps" / "run", tmp_path, "--no-charts")
    md = (tmp_path / "decision.md").read_text()
    assert "## P95 per concurrency step" in md
    steps = json.loads((tmp_path / "decision.json").read_text())["run"]["steps"]
    assert [s["users"] for s in steps] == [20, 40, 80]


def test_csv_fallback_says_so(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prefix = copy_run("go", tmp_path)
    (prefix.parent / "run_hdr.json").unlink()
    rc, out, err = decide(capsys, prefix, tmp_path / "out", "--no-charts")
    assert err == "" and rc in (0, 11)
    assert "Locust CSV percentiles" in out
    data = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert data["run"]["source"] == "csv"
    assert any("bucketed" in n for n in data["notes"])
    assert data["decisions"]["direct"]["ratio"]["method"] == "bucket bounds"


def test_empty_hdr_artifact_falls_back_to_csv(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # a run shorter than its warm-up writes an artifact with no samples
    prefix = copy_run("go", tmp_path)
    hdr_path = prefix.parent / "run_hdr.json"
    doc = json.loads(hdr_path.read_text())
    doc["entries"] = []
    hdr_path.write_text(json.dumps(doc))
    rc, out, err = decide(capsys, prefix, tmp_path / "out", "--no-charts")
    assert err == "" and rc in (0, 11)
    assert "source: Locust CSV percentiles" in out
    data = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert data["run"]["source"] == "csv"
    assert any("holds no lookup samples" in n for n in data["notes"])


def test_csv_warmup_excluded_from_counts(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prefix = copy_run("steps", tmp_path)  # --csv-full-history: per-target history rows
    (prefix.parent / "run_hdr.json").unlink()

    def samples(*extra: str) -> dict[str, int]:
        decide(capsys, prefix, tmp_path / "out", "--no-charts", *extra)
        data = json.loads((tmp_path / "out" / "decision.json").read_text())
        return {t["target"]: t["count"] for t in data["decisions"]["direct"]["targets"]}

    whole, later = samples(), samples("--warmup", "5")
    assert all(0 < later[t] < whole[t] for t in whole)
    notes = json.loads((tmp_path / "out" / "decision.json").read_text())["notes"]
    assert any("Warm-up (5 s)" in n and "still include it" in n for n in notes)


def test_reports_record_hosts_never_credentials(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prefix = copy_run("go", tmp_path)
    hdr = prefix.parent / "run_hdr.json"
    doc = json.loads(hdr.read_text())
    doc["metadata"]["targets"]["supabase_rest"]["host"] = "https://svc:s3cretpw@abc.supabase.co/rest/v1?apikey=KEY123"
    hdr.write_text(json.dumps(doc))
    decide(capsys, prefix, tmp_path / "out")
    for name in ("decision.md", "decision.json", "report.html"):
        text = (tmp_path / "out" / name).read_text()
        assert "s3cretpw" not in text and "KEY123" not in text
    assert json.loads((tmp_path / "out" / "decision.json").read_text())["run"]["hosts"]["supabase_rest"] == "https://abc.supabase.co"


def test_directory_and_stats_path_accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert decide(capsys, FIXTURES / "go", tmp_path, "--no-charts")[0] == 0
    assert decide(capsys, FIXTURES / "go" / "run_stats.csv", tmp_path, "--no-charts")[0] == 0


def test_module_entry_point_exit_code_and_help() -> None:
    help_out = subprocess.run([sys.executable, "-m", "reports", "decide", "--help"], capture_output=True, text=True,
                              cwd=ROOT, timeout=60)
    assert help_out.returncode == 0 and "10 OPTIMISE SUPABASE" in help_out.stdout and "--p95-target-ms" in help_out.stdout


# ---------------------------------------------------------------- bad input: one line, exit 2

def _mutate(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _truncate_mid_row(path: Path) -> None:
    text = path.read_text()
    path.write_text(text[: text.index("\n", len(text) // 2) - 7])


def _old_columns(path: Path) -> None:
    _mutate(path, "Type,Name,Request Count,Failure Count,Median Response Time",
            "Method,Name,# requests,# failures,Median response time")


def _drop_baseline(prefix: Path) -> None:
    _mutate(prefix.parent / "run_stats.csv", "lookup,supabase_rest,", "write,supabase_rest,")
    (prefix.parent / "run_hdr.json").unlink()


BAD = {
    "missing failures file": (lambda p: (p.parent / "run_failures.csv").unlink(), "run_failures.csv: file not found"),
    "missing stats file": (lambda p: (p.parent / "run_stats.csv").unlink(), "run_stats.csv: file not found"),
    "truncated stats": (lambda p: _truncate_mid_row(p.parent / "run_stats.csv"), "run_stats.csv line"),
    "truncated history": (lambda p: _truncate_mid_row(p.parent / "run_stats_history.csv"), "run_stats_history.csv line"),
    "empty stats": (lambda p: (p.parent / "run_stats.csv").write_text(""), "run_stats.csv: empty file"),
    "unknown name": (lambda p: _mutate(p.parent / "run_stats.csv", "convex_query contacts", "convexq contacts"),
                     "unknown name 'convexq contacts:getContextByPhone'"),
    "unknown target id": (lambda p: _mutate(p.parent / "run_stats.csv", "lookup,convex_query,", "lookup,convex_query_v2,"),
                          "unknown name 'convex_query_v2'"),
    "older Locust columns": (lambda p: _old_columns(p.parent / "run_stats.csv"), "older Locust column set"),
    "not a number": (lambda p: _mutate(p.parent / "run_stats.csv", "lookup,convex_http,", "lookup,convex_http,many"),
                     "'Request Count'"),
    "baseline missing": (lambda p: _drop_baseline(p), "target 'supabase_rest' missing"),
    "truncated hdr json": (lambda p: (p.parent / "run_hdr.json").write_text((p.parent / "run_hdr.json").read_text()[:500]),
                           "run_hdr.json line"),
    "corrupt hdr blob": (lambda p: _mutate(p.parent / "run_hdr.json", '"hdr": "', '"hdr": "AAAA'),
                         "not a decodable HdrHistogram"),
    "bad hdr metadata": (lambda p: _mutate(p.parent / "run_hdr.json", '"targets": {', '"targets": ["x"], "t": {'),
                         "metadata.targets must be an object"),
    "hdr count mismatch": (lambda p: _mutate(p.parent / "run_hdr.json", '"count": ', '"count": 9'),
                           "but the histogram holds"),
    "wrong hdr format": (lambda p: _mutate(p.parent / "run_hdr.json", "crm-latency-hdr/1", "something/9"),
                         "expected 'crm-latency-hdr/1'"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str) -> None:
    prefix = copy_run("go", tmp_path)
    mutate, expected = BAD[case]
    mutate(prefix)
    rc, out, err = decide(capsys, prefix, tmp_path / "out", "--no-charts")
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("reports: error: "), err
    assert expected in err
    assert "Traceback" not in err + out


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        ("zero", "the run recorded zero requests"),
        ("noconvex", "no Convex target measured"),
    ],
)
def test_real_runs_that_cannot_be_decided(capsys: pytest.CaptureFixture[str], tmp_path: Path, scenario: str,
                                          expected: str) -> None:
    rc, _, err = decide(capsys, FIXTURES / scenario / "run", tmp_path, "--no-charts")
    assert rc == 2 and expected in err and err.count("\n") == 1


def test_a_run_whose_convex_lookups_all_failed_is_reported_not_refused(capsys: pytest.CaptureFixture[str],
                                                                       tmp_path: Path) -> None:
    rc, out, _ = decide(capsys, FIXTURES / "allfail" / "run", tmp_path, "--no-charts")
    data = json.loads((tmp_path / "decision.json").read_text())
    assert (rc, data["verdict"]) == (11, "INCONCLUSIVE")
    problems = data["decisions"]["direct"]["run_problems"]
    assert [p.split(" failed ")[0] for p in problems] == ["convex_http", "convex_query"]
    assert "all " in " ".join(data["decisions"]["direct"]["evidence"]["convex_http"])
    assert "failures of convex_http" in out and "failures of convex_query" in out


def test_missing_prefix_and_bad_options(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = decide(capsys, tmp_path / "nope" / "run", tmp_path)
    assert rc == 2 and "run_stats.csv: file not found" in err
    rc, _, err = decide(capsys, FIXTURES / "go" / "run", tmp_path, "--equivalence", "0.7")
    assert rc == 2 and "--equivalence" in err and err.count("\n") == 1
    rc, _, err = decide(capsys, tmp_path, tmp_path)
    assert rc == 2 and "no *_stats.csv" in err


def test_usage_error_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "reports", "decide"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_duplicate_hdr_entries_are_merged(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prefix = copy_run("go", tmp_path)
    hdr = prefix.parent / "run_hdr.json"
    doc = json.loads(hdr.read_text())
    doc["entries"] += [dict(e) for e in doc["entries"] if e["name"] == "convex_query" and e["step"] is None]
    hdr.write_text(json.dumps(doc))
    decide(capsys, FIXTURES / "go" / "run", tmp_path / "a", "--no-charts")
    decide(capsys, prefix, tmp_path / "b", "--no-charts")

    def counts(out: str) -> dict[str, int]:
        data = json.loads((tmp_path / out / "decision.json").read_text())
        return {t["target"]: t["count"] for t in data["decisions"]["direct"]["targets"]}

    a, b = counts("a"), counts("b")
    assert b["convex_query"] == 2 * a["convex_query"] and b["supabase_rest"] == a["supabase_rest"]


def test_zero_ms_percentiles_give_valid_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Locust buckets sub-0.5 ms responses to 0: the ratio is unbounded, the JSON stays valid."""
    import csv
    import io

    prefix = copy_run("go", tmp_path)
    (prefix.parent / "run_hdr.json").unlink()
    stats = prefix.parent / "run_stats.csv"
    rows = list(csv.reader(io.StringIO(stats.read_text())))
    header = rows[0]
    for row in rows[1:]:
        if row[:2] == ["lookup", "supabase_rest"]:
            for col in ("50%", "95%", "99%"):
                row[header.index(col)] = "0"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    stats.write_text(buf.getvalue())
    rc, _, err = decide(capsys, prefix, tmp_path / "out", "--no-charts")
    assert err == "" and rc == 10  # Convex "slower" than a 0 ms baseline
    data = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert data["decisions"]["direct"]["ratio"]["high"] is None


def test_hdr_entries_for_http_calls_and_misses_are_accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prefix = copy_run("go", tmp_path)
    hdr = prefix.parent / "run_hdr.json"
    doc = json.loads(hdr.read_text())
    base = next(e for e in doc["entries"] if e["name"] == "convex_query")
    doc["entries"] += [{**base, "type": "POST", "name": "convex_query contacts:getContextByPhone"},
                       {**base, "type": "lookup-miss"}]
    hdr.write_text(json.dumps(doc))
    assert decide(capsys, prefix, tmp_path / "out", "--no-charts")[0] == 0
    doc["entries"].append({**base, "type": "lookup-miss", "name": "convex_query extra"})
    hdr.write_text(json.dumps(doc))
    rc, _, err = decide(capsys, prefix, tmp_path / "out", "--no-charts")
    assert rc == 2 and "entries[" in err and "unknown name 'convex_query extra'" in err


def test_api_routes_only_run_is_decided_at_the_api_level(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A run of `--targets api_supabase api_convex`: the GO run's API rows alone."""
    prefix = copy_run("go", tmp_path)
    stats = Path(f"{prefix}_stats.csv")
    lines = stats.read_text().splitlines(keepends=True)
    stats.write_text("".join([lines[0]] + [ln for ln in lines[1:] if ",api_" in ln or ",Aggregated," in ln]))
    hdr_path = Path(f"{prefix}_hdr.json")
    hdr = json.loads(hdr_path.read_text())
    hdr["entries"] = [e for e in hdr["entries"] if e["name"].startswith("api_")]
    hdr_path.write_text(json.dumps(hdr))

    rc, out, err = decide(capsys, prefix, tmp_path / "out", "--no-charts")
    data = json.loads((tmp_path / "out" / "decision.json").read_text())
    assert err == ""
    assert list(data["decisions"]) == ["api"]
    assert data["verdict"] == data["decisions"]["api"]["verdict"]
    assert rc == data["exit_code"] == {"GO": 0, "OPTIMISE SUPABASE": 10, "INCONCLUSIVE": 11}[data["verdict"]]
    assert "API routes (Next.js)" in out and "Direct backends" not in out


def test_hdr_artifact_written_elsewhere_is_found_with_hdr(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    prefix = copy_run("go", tmp_path)
    moved = tmp_path / "elsewhere.json"
    Path(f"{prefix}_hdr.json").rename(moved)
    rc, _, _ = decide(capsys, prefix, tmp_path / "csv-only", "--no-charts")
    assert json.loads((tmp_path / "csv-only" / "decision.json").read_text())["run"]["source"] == "csv"
    rc, out, err = decide(capsys, prefix, tmp_path / "with-hdr", "--no-charts", "--hdr", str(moved))
    assert (rc, err) == (0, "") and "source: HDR histograms" in out
    rc, _, err = decide(capsys, prefix, tmp_path / "missing", "--hdr", str(tmp_path / "nope.json"))
    assert rc == 2 and err.strip().endswith("nope.json: file not found (--hdr)")
