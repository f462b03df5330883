"""A loopback stand-in for the Convex HTTP API's ``migrate:*`` functions.

It follows convex/migrate.ts (upsert keyed by supabaseId, references resolved
through supabaseId with a MissingReference error, tableDigest pages, clearTable)
and can inject failures (429, 503, dropped connections, a function error) so
the client's retry policy is tested without the real runtime. Documents live
in memory, so they survive the migrating subprocess being SIGKILLed.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from seed.fingerprint import Digest
from seed.tables import TABLES

REFS = {
    t.convex: {c.field: next(x.convex for x in TABLES if x.name == c.ref) for c in t.refs} for t in TABLES
}
UPSERTS = {t.mutation.split(":")[1]: t.convex for t in TABLES}
ADMIN_KEY = "fake|admin-key"


class MissingReference(Exception):
    pass


class FakeConvex:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, dict[str, Any]]] = {t.convex: {} for t in TABLES}
        self.inserts: dict[str, int] = {t.convex: 0 for t in TABLES}
        self.lock = threading.Lock()
        self.calls: list[str] = []
        # queued failures for the next calls: "429", "503", "drop", "error", "400"
        self.failures: list[str] = []
        self.missing: set[str] = set()  # function paths to pretend are not deployed

    # functions -----------------------------------------------------------------
    def upsert(self, table: str, rows: list[dict[str, Any]]) -> dict[str, int]:
        if len(rows) > 8192:
            raise ValueError("ArgumentValidationError: array longer than 8192")
        out = {"inserted": 0, "updated": 0, "unchanged": 0}
        with self.lock:  # one mutation at a time: serializable, like Convex
            for row in rows:
                for field, target in REFS[table].items():
                    if row[field] not in self.docs[target]:
                        raise MissingReference(
                            json.dumps(
                                {"code": "MissingReference", "table": target, "supabaseId": row[field]}
                            )
                        )
            for row in rows:
                existing = self.docs[table].get(row["supabaseId"])
                if existing is None:
                    out["inserted"] += 1
                    self.inserts[table] += 1
                elif existing == row:
                    out["unchanged"] += 1
                else:
                    out["updated"] += 1
                self.docs[table][row["supabaseId"]] = dict(row)
        return out

    def digest(self, table: str, cursor: str | None, num: int) -> dict[str, Any]:
        with self.lock:
            keys = sorted(self.docs[table])
        start = int(cursor or 0)
        page = keys[start : start + num]
        d = Digest()
        for k in page:
            d.add_doc(self.docs[table][k])
        end = start + len(page)
        return {"count": d.count, "digest": d.hex, "cursor": str(end), "isDone": end >= len(keys)}

    def clear(self, table: str, size: int | None) -> dict[str, Any]:
        with self.lock:
            doomed = list(self.docs[table])[: size or 1000]
            for k in doomed:
                del self.docs[table][k]
            return {"deleted": len(doomed), "hasMore": bool(self.docs[table])}

    def call(self, path: str, args: dict[str, Any]) -> Any:
        module, _, name = path.partition(":")
        if path in self.missing:
            raise KeyError(f"Could not find function for '{path}'. Did you forget to run `npx convex dev`?")
        if module == "migrate" and name in UPSERTS:
            return self.upsert(UPSERTS[name], args["rows"])
        if path == "migrate:tableDigest":
            return self.digest(args["table"], args["cursor"], args["numItems"])
        if path == "migrate:clearTable":
            return self.clear(args["table"], args.get("batchSize"))
        raise KeyError(f"Could not find function for '{path}'. Did you forget to run `npx convex dev`?")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a SIGKILLed client resets its connections; that is the point of the test


def _handler(fake: FakeConvex) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else 40 ms delayed-ACK stalls per keep-alive request

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, "fake-convex")

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            fake.calls.append(body.get("path", ""))
            with fake.lock:
                failure = fake.failures.pop(0) if fake.failures else None
            if failure == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if failure in ("429", "503", "400"):
                self._send(int(failure), {"code": "Injected", "message": f"injected {failure}"})
                return
            if failure == "error":
                self._send(200, {"status": "error", "errorMessage": "Uncaught Error: injected failure"})
                return
            if self.headers.get("Authorization") != f"Convex {ADMIN_KEY}":
                self._send(
                    401,
                    {
                        "code": "BadAdminKey",
                        "message": "The provided admin key was invalid for this instance",
                    },
                )
                return
            try:
                value = fake.call(body["path"], body.get("args") or {})
            except MissingReference as exc:
                data = json.loads(str(exc.args[0]))
                self._send(
                    200,
                    {
                        "status": "error",
                        "errorMessage": "Uncaught ConvexError: MissingReference",
                        "errorData": data,
                    },
                )
                return
            except (KeyError, ValueError) as exc:
                self._send(200, {"status": "error", "errorMessage": str(exc.args[0])})
                return
            self._send(200, {"status": "success", "value": value})

    return Handler


@contextmanager
def serve() -> Iterator[tuple[FakeConvex, str]]:
    fake = FakeConvex()
    server = _QuietServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
