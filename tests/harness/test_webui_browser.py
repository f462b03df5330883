"""The web UI in a real headless Chromium: start a swarm from the form, read the Decision tab."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.harness.fake_backend import FakeBackend
from tests.harness.helpers import AI_CONTEXT, LOCUST, locust_env
from tests.ports import listening_port

# The browser, as the Makefile names it (`make test CHROMIUM=/path/to/chromium`).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(shutil.which(CHROMIUM) is None, reason=f"needs Chromium at {CHROMIUM} (set CHROMIUM)")]


def wait_http(url: str, timeout: float = 20) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def test_swarm_from_the_form_and_read_the_decision_tab(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with FakeBackend() as fb:
        (tmp_path / "workload.json").write_text(json.dumps(fb.data.workload()))
        proc = subprocess.Popen(
            [LOCUST, "-f", AI_CONTEXT, "--web-host", "127.0.0.1", "--web-port", "0",
             "--targets", "supabase_rest", "convex_http", "convex_query", "--write-weight", "0"],
            env=locust_env(fb.env()), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            base = f"http://127.0.0.1:{listening_port(proc)}"
            wait_http(base + "/")
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=CHROMIUM,
                    args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                page = browser.new_page()
                page.goto(base + "/")
                # the harness's options are open from the start, and the single-host field gives way to a note
                custom = page.get_by_role("button", name="Custom parameters")
                custom.wait_for(timeout=10_000)
                page.wait_for_function(
                    "() => [...document.querySelectorAll('[aria-expanded=\"true\"]')]"
                    ".some(b => b.textContent.trim() === 'Custom parameters')", timeout=10_000)
                assert page.locator("input[name=warmup]").is_visible()
                assert not page.locator("input[name=host]").is_visible()
                note = page.locator(".crm-targets-note").inner_text()
                page.fill("input[name=userCount]", "6")
                page.fill("input[name=spawnRate]", "6")
                page.get_by_role("button", name="Advanced options").click()
                page.fill("input[name=runTime]", "40s")  # bounded even if the test dies
                page.fill("input[name=warmup]", "0")
                page.fill("input[name=minSamples]", "20")
                page.fill("input[name=thinkTime]", "0.02")
                page.get_by_role("button", name="Start").click()
                page.get_by_role("tab", name="Decision").click()
                # rows arrive with the stats poll; the verdict row names the level
                page.get_by_text("VERDICT (direct)").wait_for(timeout=20_000)
                page.get_by_role("cell", name="convex_query").first.wait_for(timeout=20_000)
                table = page.locator("table").first.inner_text()
                decision = page.request.get(base + "/decision.json").json()
                browser.close()
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert "P95 / P99" in table and "supabase_rest" in table and "exit code" in table
    assert note.startswith("Each target's host comes from the settings (SUPABASE_URL")
    direct = decision["decisions"]["direct"]
    assert direct["verdict"] in ("GO", "OPTIMISE SUPABASE", "INCONCLUSIVE")
    assert direct["thresholds"]["min_samples"] == 20  # the form's value reached the rules
    assert {t["target"] for t in direct["targets"]} == {"supabase_rest", "convex_http", "convex_query"}
    assert all(t["failures"] == 0 and t["count"] > 0 for t in direct["targets"])
    assert decision["warmup_s"] == 0
