"""A loopback stand-in for the PostgREST reads the migration makes.

Serves a generated dataset as PostgREST would for ``select`` + ``order=id.asc``
+ ``limit`` + ``id=gt.<uuid>`` (times as ISO strings with milliseconds) and
``Prefer: count=exact``. Hermetic (no shared database), so SIGKILL tests are
not disturbed by other tests' rows. The real gateway is covered by the
sandbox-marked tests.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from seed.generate import Dataset
from seed.loaders import rest_row
from seed.tables import BY_NAME

SERVICE_KEY = "fake-service-role-key"


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a SIGKILLed client resets its connections; that is the point of the test


def _handler(tables: dict[str, list[dict[str, Any]]], max_rows: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else 40 ms delayed-ACK stalls per keep-alive request

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.headers.get("apikey") != SERVICE_KEY:
                self._send(401, {"message": "Invalid API key"})
                return
            url = urlsplit(self.path)
            name = url.path.removeprefix("/rest/v1/")
            if name not in tables:
                self._send(
                    404,
                    {
                        "code": "PGRST205",
                        "message": f"Could not find the table 'public.{name}' in the schema cache",
                    },
                )
                return
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            rows = tables[name]  # sorted by id
            if "id" in q:
                after = q["id"].removeprefix("gt.")
                rows = [r for r in rows if r["id"] > after]
            limit = min(int(q.get("limit", max_rows)), max_rows)
            page = rows[:limit]
            cols = q.get("select", "*")
            if cols != "*":
                keep = cols.split(",")
                page = [{k: r[k] for k in keep} for r in page]
            headers = {"Content-Range": f"0-{max(0, len(page) - 1)}/{len(tables[name])}"}
            self._send(200, page, headers)

    return Handler


@contextmanager
def serve(data: Dataset, max_rows: int = 1000) -> Iterator[str]:
    tables = {
        name: sorted((rest_row(BY_NAME[name], r) for r in rows), key=lambda r: r["id"])
        for name, rows in data.rows.items()
    }
    server = _QuietServer(("127.0.0.1", 0), _handler(tables, max_rows))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
