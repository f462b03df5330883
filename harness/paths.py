"""Each target's lookup and write as a sequence of calls, written once and driven by any HTTP client.

A path is a generator: it yields a :class:`Call` (the request and what counts
as success), receives the call's parsed answer (or :data:`NOT_FOUND`), and
returns whether the contact was found.  The Locust users drive it with their
FastHttpUser's user agent (every call a stats row); the preflight drives the very same
path with httpx before any user starts.  :func:`outcome` is the one place that
judges an answer, for both drivers.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson

from harness import targets as T
from harness.targets import Endpoints, Request
from harness.workload import Key

NOT_FOUND: Any = object()
Path = Generator["Call", Any, bool]
Check = Callable[[Any], str | None]


class Appended(Enum):
    APPENDED = "appended"
    NO_CONVERSATION = "no conversation to append to"
    NO_CONTACT = "contact not found"


@dataclass(frozen=True, slots=True)
class Call:
    request: Request
    ok: tuple[int, ...] = (200,)
    not_found: tuple[int, ...] = ()
    check: Check | None = None
    parse: bool = True


# Convex prefixes each function error with its request id: dropped, so that Locust groups equal errors.
_REQUEST_ID = re.compile(r"\[Request ID: [^\]]*\]\s*")


def detail(content: bytes | None) -> str:
    """": <message>" from a JSON error body (PostgREST, Convex, the routes), or ""."""
    if not content:
        return ""
    try:
        doc = orjson.loads(content)
    except orjson.JSONDecodeError:
        return ""
    if isinstance(doc, dict):
        for k in ("error", "message", "code", "errorMessage"):
            v = doc.get(k)
            if isinstance(v, str) and v:
                return f": {_REQUEST_ID.sub('', v)[:80]}"
    return ""


def outcome(call: Call, status: int, content: bytes | None) -> tuple[Any, str | None]:
    """(answer, failure): the parsed body, :data:`NOT_FOUND`, or a one-line failure."""
    if status == 0:
        return None, "connection error"
    if status in call.ok:
        if not call.parse:
            return None, None
        try:
            data = orjson.loads(content or b"")
        except orjson.JSONDecodeError:
            return None, f"HTTP {status}: body is not JSON"
        return data, call.check(data) if call.check is not None else None
    if status in call.not_found:
        return NOT_FOUND, None
    return None, f"HTTP {status}{detail(content)}"


# ---------------------------------------------------------------------------- answer checks


def convex_status(data: Any) -> str | None:
    """Convex reports a function error as HTTP 200 with ``"status": "error"``."""
    if not isinstance(data, dict) or data.get("status") not in ("success", "error"):
        return "not a Convex function response"
    if data["status"] == "error":
        message = _REQUEST_ID.sub("", str(data.get("errorMessage", "")))
        return f"convex error: {message[:80]}"
    return None


def _is_context(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("contact"), dict)


def is_list(data: Any) -> str | None:
    return None if isinstance(data, list) else "expected a JSON array"


def context_or_null(data: Any) -> str | None:
    return None if data is None or _is_context(data) else "expected the lookup object or null"


def context(data: Any) -> str | None:
    return None if _is_context(data) else "expected the lookup object"


def convex_lookup(data: Any) -> str | None:
    problem = convex_status(data)
    if problem is None and data.get("value") is not None and not _is_context(data["value"]):
        problem = "expected the lookup object or null as value"
    return problem


# ---------------------------------------------------------------------------- the paths


@dataclass(frozen=True)
class Paths:
    """The requests of every target for one run: endpoints plus the member tokens minted for it."""

    endpoints: Endpoints
    tokens: Mapping[str, str] = field(default_factory=dict)  # workspace id -> member access token

    def token_for(self, workspace_id: str) -> str | None:
        return self.tokens.get(workspace_id) or self.endpoints.convex_token

    def supabase_headers(self, key: Key) -> dict[str, str]:
        ep = self.endpoints
        return ep.supabase_headers(None if ep.supabase_bearer else self.token_for(key.workspace_id))

    # The first request of a lookup depends on the key only: the users build it once per key.
    def first(self, target: str, key: Key) -> Request:
        ep, ws, phone = self.endpoints, key.workspace_id, key.phone
        if target == "supabase_rest":
            return T.rest_contact(ep, ws, phone, self.supabase_headers(key))
        if target == "supabase_nested":
            return T.nested(ep, ws, phone, self.supabase_headers(key))
        if target == "supabase_rpc":
            return T.rpc(ep, ws, phone, self.supabase_headers(key))
        if target == "convex_http":
            return T.convex_http(ep, ws, phone)
        if target == "convex_query":
            return T.convex_query(ep, ws, phone, self.token_for(ws))
        return T.api_route(ep, target, ws, phone)

    SINGLE_CALL = frozenset({"supabase_nested", "supabase_rpc", "convex_http", "convex_query", "api_supabase", "api_convex"})

    @staticmethod
    def single_call(target: str, req: Request) -> Call:
        """The one call of a one-request lookup, with what counts as its success."""
        if target == "supabase_nested":
            return Call(req, check=is_list)
        if target == "supabase_rpc":
            return Call(req, check=context_or_null)
        if target == "convex_query":
            return Call(req, check=convex_lookup)
        return Call(req, not_found=(404,), check=context)

    @staticmethod
    def found(target: str, data: Any) -> bool:
        """Whether a one-request lookup's answer holds the contact (404, null, [] are not-found)."""
        if target == "supabase_nested":
            return bool(data)
        if target == "supabase_rpc":
            return data is not None
        if target == "convex_query":
            return data.get("value") is not None
        return data is not NOT_FOUND

    def lookup(self, target: str, key: Key, first: Request | None = None) -> Path:
        req = first or self.first(target, key)
        if target == "supabase_rest":
            return self._rest_lookup(key, req)
        return _single(target, req)

    def _rest_lookup(self, key: Key, first: Request) -> Path:
        """The app today: 4 sequential PostgREST GETs."""
        ep, hdrs = self.endpoints, self.supabase_headers(key)
        rows = yield Call(first, check=is_list)
        if not rows or not rows[0].get("workspace"):
            return False
        contact_id = rows[0]["id"]
        convs = yield Call(T.rest_conversations(ep, contact_id, hdrs), check=is_list)
        if convs:
            yield Call(T.rest_messages(ep, [c["id"] for c in convs], hdrs), check=is_list)
        yield Call(T.rest_notes(ep, contact_id, hdrs), check=is_list)
        return True

    def write(self, target: str, key: Key, content: str | None = None) -> Path:
        """Append an outbound ``loadtest`` message (docs/formats.md, "The write path").

        Returns False only when the contact is not found; a contact without a
        conversation to append to is a no-op, as in the app.
        """
        appended = yield from self._append(target, key, content or f"loadtest {uuid.uuid4().hex[:12]}")
        return appended is not Appended.NO_CONTACT

    def append(self, target: str, key: Key, content: str) -> Path:
        """The write path with a given content: True when a message was appended."""
        appended = yield from self._append(target, key, content)
        return appended is Appended.APPENDED

    def _append(self, target: str, key: Key, content: str) -> Generator[Call, Any, Appended]:
        if target.startswith("supabase"):
            return (yield from self._supabase_append(key, content))
        return (yield from self._convex_append(key, content))

    def _supabase_append(self, key: Key, content: str) -> Generator[Call, Any, Appended]:
        ep, hdrs = self.endpoints, self.supabase_headers(key)
        rows = yield Call(T.rest_contact_id(ep, key.workspace_id, key.phone, hdrs), check=is_list)
        if not rows:
            return Appended.NO_CONTACT
        convs = yield Call(T.rest_newest_conversation(ep, rows[0]["id"], hdrs), check=is_list)
        if not convs:
            return Appended.NO_CONVERSATION
        conv = convs[0]["id"]
        yield Call(T.rest_insert_message(ep, key.workspace_id, conv, content, hdrs), ok=(201, 204), parse=False)
        at = datetime.now(UTC).isoformat()
        yield Call(T.rest_touch_conversation(ep, conv, at, content, hdrs), ok=(200, 204), parse=False)
        return Appended.APPENDED

    def _convex_append(self, key: Key, content: str) -> Generator[Call, Any, Appended]:
        # 404: no such contact, or no conversation to append to (the action does not say which)
        found = yield Call(T.convex_outbound(self.endpoints, key.workspace_id, key.phone, content), ok=(200, 201),
                           not_found=(404,))
        return Appended.NO_CONVERSATION if found is NOT_FOUND else Appended.APPENDED

    def write_dry_run(self, target: str, key: Key, unknown: Key) -> Path:
        """The write path's permissions, checked without writing a row.

        Supabase: the write's two reads, then an UPDATE that matches no row (the
        table privilege is checked, nothing changes).  Convex: the write to a
        phone that does not exist (the key is checked, the action answers 404).
        """
        if target.startswith("supabase"):
            return self._supabase_dry_write(key)
        return self._convex_dry_write(unknown)

    def _supabase_dry_write(self, key: Key) -> Path:
        ep, hdrs = self.endpoints, self.supabase_headers(key)
        rows = yield Call(T.rest_contact_id(ep, key.workspace_id, key.phone, hdrs), check=is_list)
        if not rows:
            return False
        yield Call(T.rest_newest_conversation(ep, rows[0]["id"], hdrs), check=is_list)
        nobody = "00000000-0000-0000-0000-000000000000"
        yield Call(T.rest_touch_conversation(ep, nobody, datetime.now(UTC).isoformat(), "loadtest preflight", hdrs),
                   ok=(200, 204), parse=False)
        return True

    def _convex_dry_write(self, unknown: Key) -> Path:
        found = yield Call(T.convex_outbound(self.endpoints, unknown.workspace_id, unknown.phone, "loadtest preflight"),
                           ok=(200, 201), not_found=(404,))
        return found is not NOT_FOUND


def _single(target: str, req: Request) -> Path:
    """The one-request paths: found, not found (404 or null), or a failure."""
    data = yield Paths.single_call(target, req)
    return Paths.found(target, data)
