"""The web UI's "Decision" tab and ``/decision.json``, live from the merged HDR histograms.

The tab is Locust's extended-tab mechanism: ``extended_tabs`` / ``extended_tables``
in the template arguments, and its rows added to every ``/stats/requests``
response as ``extended_stats``.  The rules are ``reports.rules`` (via
:mod:`harness.decision`); a short cache keeps the bootstrap off the hot path.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from flask import Response, jsonify, request

from harness import decision

if TYPE_CHECKING:
    from locust.env import Environment

    from harness.runtime import Harness

TAB_KEY = "decision"
COLUMNS = [
    {"key": "item", "title": "Check"},
    {"key": "subject", "title": "Target"},
    {"key": "value", "title": "Value"},
    {"key": "threshold", "title": "Threshold"},
    {"key": "status", "title": "Status"},
]
CACHE_S = 2.0

# The start form, as this harness needs it: its options (Locust's "Custom parameters") open, and the
# single-host field replaced by a note, since every target's URL comes from the settings. Locust's
# React form has no switch for either, so a small script adjusts the rendered page.
FORM_SCRIPT = """<script>
(function () {
  var NOTE = "Each target's host comes from the settings (SUPABASE_URL, CONVEX_URL, CONVEX_SITE_URL, " +
    "APP_URL); pick the targets under Custom parameters. There is no single host to set here.";
  function adjust() {
    var host = document.querySelector('input[name="host"]');
    var box = host && (host.closest(".MuiFormControl-root") || host.parentElement);
    if (box && !box.dataset.crmHidden) {
      box.dataset.crmHidden = "1";
      box.style.display = "none";
      var note = document.createElement("p");
      note.className = "crm-targets-note";
      note.textContent = NOTE;
      note.style.cssText = "margin:0;font-size:0.875rem;opacity:0.8";
      box.parentElement.insertBefore(note, box);
    }
    document.querySelectorAll('[aria-expanded="false"]').forEach(function (button) {
      if (button.textContent.trim() === "Custom parameters" && !button.dataset.crmOpened) {
        button.dataset.crmOpened = "1";
        button.click();
      }
    });
  }
  new MutationObserver(adjust).observe(document.documentElement, {childList: true, subtree: true});
  adjust();
})();
</script>"""


def install(environment: Environment, h: Harness) -> None:
    web_ui = environment.web_ui
    assert web_ui is not None
    app = web_ui.app
    assert app is not None
    cache: dict[str, Any] = {"at": 0.0, "rows": []}

    def rows() -> list[dict[str, Any]]:
        now = time.monotonic()
        if now - cache["at"] > CACHE_S:
            cache["rows"] = decision.table_rows(h) if h.started_at is not None else []
            cache["at"] = now
        return cache["rows"]

    web_ui.template_args["extended_tabs"] = [{"title": "Decision", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": COLUMNS}]
    web_ui.template_args["extended_csv_files"] = [{"href": "./decision.json", "title": "Download decision JSON"}]

    @app.route("/decision.json")
    @web_ui.auth_required_if_enabled
    def decision_json() -> Response:
        if h.started_at is None:
            return jsonify({"state": "not started", "decisions": {}})
        return jsonify(decision.payload(h))

    @app.before_request
    def select_targets_from_form() -> None:
        # the start form's "targets" decides which user classes the dispatcher gets
        if request.method == "POST" and request.path.endswith("/swarm") and "targets" in request.form:
            values = request.form.getlist("targets")
            chosen = [p for v in values for p in v.replace(",", " ").split()]
            if chosen:
                h.select_targets(chosen)

    @app.after_request
    def adjust_start_form(response: Response) -> Response:
        if request.path in ("/", "/index.html") and response.mimetype == "text/html" and not response.direct_passthrough:
            page = response.get_data(as_text=True)
            if "</body>" in page:
                response.set_data(page.replace("</body>", FORM_SCRIPT + "</body>", 1))
        return response

    @app.after_request
    def add_decision_rows(response: Response) -> Response:
        if request.path.endswith("/stats/requests") and response.status_code == 200 and response.is_json:
            try:
                body = json.loads(response.get_data())
                body["extended_stats"] = [{"key": TAB_KEY, "data": rows()}]
                response.set_data(json.dumps(body))
            except Exception:  # the stock stats must never break because of the tab
                pass
        return response
