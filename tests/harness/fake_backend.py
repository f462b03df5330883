"""A loopback server speaking every target's wire format, for the harness's tests.

It serves PostgREST-style ``/rest/v1``, the Convex ``/api/query`` and HTTP
actions, and the two Next.js routes, all on one port, from a small in-memory
data set; it counts requests per route and can be made slow or stalled.
Threaded (one thread per connection) with HTTP/1.1 keep-alive.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

API_KEY = "test-crm-key"
SERVICE_KEY = "test-service-role"
WORKSPACE = "11111111-2222-4333-8444-555555555555"
MEMBER = "99999999-2222-4333-8444-555555555555"


def _uuid(n: int) -> str:
    return str(uuid.UUID(int=n, version=4))


class Data:
    def __init__(self, contacts: int = 50) -> None:
        self.contacts = {f"62812000{i:05d}": _uuid(1000 + i) for i in range(contacts)}
        self.lock = threading.Lock()
        self.writes = 0
        self.read_only = False  # the role may read but not write (403 42501, as PostgREST)

    def contact(self, ws: str, phone: str) -> dict[str, Any] | None:
        cid = self.contacts.get(phone) if ws == WORKSPACE else None
        if cid is None:
            return None
        return {"id": cid, "workspace_id": ws, "phone": phone, "name": "N", "email": None, "tags": [],
                "lead_status": None, "lead_score": 1, "metadata": {}, "created_at": "2026-01-21T10:00:00.123456+00:00",
                "updated_at": "2026-01-21T10:00:00.123456+00:00", "workspace": {"id": ws, "name": "Eagle"}}

    def context(self, ws: str, phone: str) -> dict[str, Any] | None:
        c = self.contact(ws, phone)
        if c is None:
            return None
        return {"contact": {"id": c["id"], "phone": phone}, "workspace": {"id": ws, "name": "Eagle"},
                "conversations": [{"id": _uuid(5), "messages": [{"id": _uuid(6)}]}], "notes": []}

    def workload(self, unknown: int = 5) -> dict[str, Any]:
        return {
            "format": "crm-workload/1",
            "generated_at": "2026-01-21T10:00:00Z",
            "workspaces": [{"id": WORKSPACE, "name": "Eagle", "member_user_id": MEMBER}],
            "known": [{"workspace_id": WORKSPACE, "phone": p, "weight": 10.0 if i < 3 else 1.0}
                      for i, p in enumerate(self.contacts)],
            "unknown": [{"workspace_id": WORKSPACE, "phone": f"62899000{i:05d}"} for i in range(unknown)],
        }


class FakeBackend:
    def __init__(self, data: Data | None = None, delay: Callable[[str], float] | None = None,
                 server_timing: bool = False) -> None:
        self.data = data or Data()
        self.delay = delay
        self.server_timing = server_timing  # send PostgREST's Server-Timing (its handling time as `transaction`)
        self.counts: Counter[str] = Counter()
        self.served: list[tuple[str, float]] = []  # (route, server-side seconds)
        self.arrivals: list[tuple[float, str, int]] = []  # (epoch seconds, route, client port): who asked when
        self.stall_until = 0.0
        self.lock = threading.Lock()
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body go out in two writes: without this, Nagle + delayed ACK add 40 ms
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self) -> None:
                t0 = time.perf_counter()
                arrived = time.time()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, doc, route = backend.route(self.command, self.path, self.headers, body)
                with backend.lock:
                    backend.arrivals.append((arrived, route, self.client_address[1]))
                wait = max(backend.stall_until - time.time(), 0.0)
                if backend.delay is not None:
                    wait += backend.delay(route)
                if wait:
                    time.sleep(wait)
                payload = b"" if doc is None and status in (201, 204) else json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if backend.server_timing and status < 400 and self.path.startswith("/rest/v1/"):
                    ms = (time.perf_counter() - t0) * 1000.0
                    self.send_header("Server-Timing", f"jwt;dur=0.0, parse;dur=0.0, plan;dur=0.0, "
                                                      f"transaction;dur={ms:.1f}, response;dur=0.0")
                self.end_headers()
                self.wfile.write(payload)
                with backend.lock:
                    backend.counts[route] += 1
                    backend.served.append((route, time.perf_counter() - t0))

            do_GET = do_POST = do_PATCH = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # a burst of users connecting must not overflow the backlog (1 s SYN retry)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # clients hang up at the end of a run

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def requests_seen(self) -> int:
        with self.lock:
            return sum(self.counts.values())

    def __enter__(self) -> FakeBackend:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> dict[str, str]:
        return {
            "SUPABASE_URL": self.url, "SUPABASE_SERVICE_ROLE_KEY": SERVICE_KEY, "SUPABASE_ANON_KEY": "anon",
            "CONVEX_URL": self.url, "CONVEX_SITE_URL": self.url, "APP_URL": self.url, "CRM_API_KEY": API_KEY,
            "CONVEX_AUTH_TOKEN": "member-token", "ENV_FILE": "/dev/null/none",
        }

    # ------------------------------------------------------------------ routes
    def route(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any, str]:
        parts = urlsplit(path)
        q = dict(parse_qsl(parts.query, keep_blank_values=True))
        p = parts.path
        d = self.data
        if p.startswith("/rest/v1/"):
            return self._rest(method, p[len("/rest/v1/"):], q, headers, body)
        if p == "/api/query" and method == "POST":
            doc = json.loads(body)
            if headers.get("Authorization") != "Bearer member-token":
                return 200, {"status": "error", "errorMessage": "Unauthenticated", "logLines": []}, "convex query"
            args = doc["args"]
            return (
                200, {"status": "success", "value": d.context(args["workspaceId"], args["phone"]), "logLines": []}, "convex query"
            )
        if headers.get("x-api-key") != API_KEY:
            return 401, {"error": "unauthorized"}, "401"
        if p in ("/contacts/by-phone", "/api/contacts/by-phone", "/api/contacts/by-phone-convex") and method == "GET":
            ctx = d.context(q.get("workspaceId", ""), q.get("phone", ""))
            return (200, ctx, p) if ctx else (404, {"error": "contact not found"}, p)
        if p == "/messages/outbound" and method == "POST":
            doc = json.loads(body)
            if d.contact(doc.get("workspaceId", ""), doc.get("phone", "")) is None:
                return 404, {"error": "contact not found"}, p
            with d.lock:
                d.writes += 1
            return 201, {"id": str(uuid.uuid4()), "conversationId": _uuid(100)}, p
        return 404, {"error": "no route"}, "404"

    def _rest(self, method: str, table: str, q: dict[str, str], headers: Any, body: bytes) -> tuple[int, Any, str]:
        """The PostgREST gateway's routes (``/rest/v1/<table>``)."""
        d = self.data
        if headers.get("apikey") != SERVICE_KEY or headers.get("Authorization") != f"Bearer {SERVICE_KEY}":
            return 401, {"message": "Invalid API key"}, "rest 401"
        ws, phone = q.get("workspace_id", "")[3:], q.get("phone", "")[3:]
        if table == "contacts" and method == "GET":
            c = d.contact(ws, phone)
            if "conversations(" in q.get("select", ""):
                return 200, [dict(c, conversations=[], contact_notes=[])] if c else [], "rest contacts nested"
            if q.get("select") == "id":
                return 200, [{"id": c["id"]}] if c else [], "rest contacts id"
            return 200, [c] if c else [], "rest contacts"
        if table == "conversations" and method == "GET":
            n = int(q.get("limit", "3"))
            return 200, [{"id": _uuid(100 + i)} for i in range(n)], "rest conversations"
        if table == "messages" and method == "GET":
            if not q.get("conversation_id", "").startswith("in.("):
                return 400, {"message": "bad filter"}, "rest messages"
            return 200, [{"id": _uuid(7), "conversation_id": _uuid(100)}], "rest messages"
        if table == "contact_notes":
            return 200, [], "rest contact_notes"
        if method in ("POST", "PATCH") and table in ("messages", "conversations") and d.read_only:
            return 403, {"code": "42501", "message": f"permission denied for table {table}"}, "rest 403"
        if table == "messages" and method == "POST":
            doc = json.loads(body)
            if doc.get("message_type") != "loadtest":
                return 400, {"message": "unmarked write"}, "rest messages insert"
            with d.lock:
                d.writes += 1
            return 201, None, "rest messages insert"
        if table == "conversations" and method == "PATCH":
            return 204, None, "rest conversations update"
        if table == "rpc/get_contact_context" and method == "POST":
            args = json.loads(body)
            return 200, d.context(args["p_workspace_id"], args["p_phone"]), "rest rpc"
        return 404, {"message": "no route"}, "rest ?"
