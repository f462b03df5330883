"""One Locust user class per target id; each lookup is one transaction row.

Every HTTP call is its own Locust row (``<METHOD>``, ``<target> <what>``);
each logical lookup adds a ``lookup`` / ``lookup-miss`` row named by the target
with the end-to-end time (from the intended start in the open model) and the
number of round trips in its context; writes add a ``write`` row.  Calls use
FastHttpUser (geventhttpclient): keep-alive, TLS verified, no retries.
"""

from __future__ import annotations

from locust import task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import orjson

from harness import runtime
from harness import targets as T
from harness.targets import Request
from harness.workload import Key


class CallFailed(Exception):
    """A call (or the lookup as a whole) did not do what the lookup needs."""


NOT_FOUND = object()


def _detail(content: bytes | None) -> str:
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
                return f": {v[:80]}"
    return ""


# Convex prefixes each function error with its request id: dropped, so that Locust groups equal errors.
_REQUEST_ID = re.compile(r"\[Request ID: [^\]]*\]\s*")


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


class LookupUser(FastHttpUser):
    abstract = True
    target: ClassVar[str] = ""
    insecure = False  # verify TLS, as the app does
    max_retries = 0  # a retry would hide a failure inside a latency
    # every request carries an absolute URL from the settings; this only satisfies FastHttpUser
    host = "http://127.0.0.1"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._calls = 0
        self._bytes = 0

    def wait_time(self) -> float:
        h = runtime.current()
        return 0.0 if h.open_model else h.options.think_time

    # ------------------------------------------------------------------ the loop
    @task
    def act(self) -> None:
        h = runtime.current()
        if not h.wait_ready():
            raise StopUser()
        intended = h.pacer(self.target).acquire() if h.open_model else None
        kind = h.choose_kind(self.target)
        assert h.sampler is not None
        if kind == "write":
            self.transaction("write", self.write, h.sampler.known(), intended)
        elif kind == "unknown" and (key := h.sampler.unknown()) is not None:
            self.transaction("lookup-miss", self.lookup, key, intended, expect_found=False)
        else:
            self.transaction("lookup", self.lookup, h.sampler.known(), intended, expect_found=True)

    def transaction(
        self, rtype: str, body: Callable[[Key], bool], key: Key, intended: float | None, expect_found: bool = True
    ) -> None:
        self._calls = 0
        self._bytes = 0
        start_wall = time.time()
        t0 = time.perf_counter()
        exc: BaseException | None = None
        interrupted = False
        try:
            found = body(key)
            if rtype != "write" and found != expect_found:
                raise CallFailed("contact not found for a known phone" if expect_found else "contact found for an unknown phone")
        except CallFailed as e:
            exc = e
        except Exception as e:  # still recorded as a failed transaction, then reported by Locust
            exc = e
            raise
        except BaseException:  # the user is being stopped mid-lookup: not a sample
            interrupted = True
            raise
        finally:
            if not interrupted:
                self._fire(rtype, start_wall, intended if intended is not None else t0, exc)

    def _fire(self, rtype: str, start_wall: float, origin: float, exc: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type=rtype,
            name=self.target,
            response_time=(time.perf_counter() - origin) * 1000.0,
            response_length=self._bytes,
            exception=exc,
            context={"round_trips": self._calls},
            start_time=start_wall,
            url=None,
            response=None,
        )

    # ------------------------------------------------------------------ one call
    def call(
        self,
        req: Request,
        ok: tuple[int, ...] = (200,),
        not_found: tuple[int, ...] = (),
        check: Callable[[Any], str | None] | None = None,
        parse: bool = True,
    ) -> Any:
        self._calls += 1
        failure: str | None = None
        data: Any = None
        with self.client.request(
            req.method, req.url, name=f"{self.target} {req.what}", data=req.body,  # type: ignore[arg-type]  # bytes are sent as is
            headers=req.headers,  # type: ignore[arg-type]  # the session copies it
            catch_response=True,
        ) as resp:
            status = resp.status_code or 0
            content: bytes | None = None
            if status:
                try:
                    content = resp.content
                except Exception:  # body read failed mid-way
                    status = 0
            self._bytes += len(content or b"")
            if status == 0:
                failure = f"connection error: {type(getattr(resp, 'error', None)).__name__}"
            elif status in ok:
                if parse:
                    try:
                        data = orjson.loads(content or b"")
                    except orjson.JSONDecodeError:
                        failure = f"HTTP {status}: body is not JSON"
                    if failure is None and check is not None:
                        failure = check(data)
            elif status in not_found:
                data = NOT_FOUND
            else:
                failure = f"HTTP {status}{_detail(content)}"
            if failure is None:
                resp.success()
            else:
                resp.failure(failure)
        if failure is not None:
            raise CallFailed(f"{req.what}: {failure}")
        return data

    # ------------------------------------------------------------------ per target
    def lookup(self, key: Key) -> bool:
        raise NotImplementedError

    def write(self, key: Key) -> bool:
        raise NotImplementedError

    @property
    def endpoints(self) -> T.Endpoints:
        return runtime.current().endpoints

    def cached(self, key: Key, build: Callable[[], Request]) -> Request:
        """The key's first request, built once per run (URL quoting costs more than the rest of a lookup's bookkeeping)."""
        cache = runtime.current().request_cache
        ck = (self.target, key)
        req = cache.get(ck)
        if req is None:
            if len(cache) > 200_000:
                cache.clear()
            req = cache[ck] = build()
        return req

    def supabase_headers(self, key: Key) -> dict[str, str]:
        h = runtime.current()
        return self.endpoints.supabase_headers(None if self.endpoints.supabase_bearer else h.token_for(key.workspace_id))

    def supabase_write(self, key: Key) -> bool:
        ep, hdrs = self.endpoints, self.supabase_headers(key)
        rows = self.call(T.rest_contact_id(ep, key.workspace_id, key.phone, hdrs), check=_list)
        if not rows:
            raise CallFailed("write: contact not found for a known phone")
        convs = self.call(T.rest_newest_conversation(ep, rows[0]["id"], hdrs), check=_list)
        if not convs:
            return True  # nothing to append to
        conv = convs[0]["id"]
        content = f"loadtest {uuid.uuid4().hex[:12]}"
        self.call(T.rest_insert_message(ep, key.workspace_id, conv, content, hdrs), ok=(201, 204), parse=False)
        at = datetime.now(UTC).isoformat()
        self.call(T.rest_touch_conversation(ep, conv, at, content, hdrs), ok=(200, 204), parse=False)
        return True

    def convex_write(self, key: Key) -> bool:
        content = f"loadtest {uuid.uuid4().hex[:12]}"
        # 404 is a contact with no conversation to append to: a no-op, as on the Supabase path.
        self.call(T.convex_outbound(self.endpoints, key.workspace_id, key.phone, content), ok=(200, 201), not_found=(404,))
        return True


def _list(data: Any) -> str | None:
    return None if isinstance(data, list) else "expected a JSON array"


def _context_or_null(data: Any) -> str | None:
    return None if data is None or _is_context(data) else "expected the lookup object or null"


def _context(data: Any) -> str | None:
    return None if _is_context(data) else "expected the lookup object"


class SupabaseRestUser(LookupUser):
    """The app today: 4 sequential PostgREST GETs."""

    target = "supabase_rest"

    def lookup(self, key: Key) -> bool:
        ep, hdrs = self.endpoints, self.supabase_headers(key)
        rows = self.call(self.cached(key, lambda: T.rest_contact(ep, key.workspace_id, key.phone, hdrs)), check=_list)
        if not rows or not rows[0].get("workspace"):
            return False
        contact_id = rows[0]["id"]
        convs = self.call(T.rest_conversations(ep, contact_id, hdrs), check=_list)
        if convs:
            self.call(T.rest_messages(ep, [c["id"] for c in convs], hdrs), check=_list)
        self.call(T.rest_notes(ep, contact_id, hdrs), check=_list)
        return True

    def write(self, key: Key) -> bool:
        return self.supabase_write(key)


class SupabaseNestedUser(LookupUser):
    target = "supabase_nested"

    def lookup(self, key: Key) -> bool:
        req = self.cached(key, lambda: T.nested(self.endpoints, key.workspace_id, key.phone, self.supabase_headers(key)))
        rows = self.call(req, check=_list)
        return bool(rows)

    def write(self, key: Key) -> bool:
        return self.supabase_write(key)


class SupabaseRpcUser(LookupUser):
    target = "supabase_rpc"

    def lookup(self, key: Key) -> bool:
        req = self.cached(key, lambda: T.rpc(self.endpoints, key.workspace_id, key.phone, self.supabase_headers(key)))
        data = self.call(req, check=_context_or_null)
        return data is not None

    def write(self, key: Key) -> bool:
        return self.supabase_write(key)


class ConvexHttpUser(LookupUser):
    target = "convex_http"

    def lookup(self, key: Key) -> bool:
        req = self.cached(key, lambda: T.convex_http(self.endpoints, key.workspace_id, key.phone))
        data = self.call(req, not_found=(404,), check=_context)
        return data is not NOT_FOUND

    def write(self, key: Key) -> bool:
        return self.convex_write(key)


class ConvexQueryUser(LookupUser):
    target = "convex_query"

    def lookup(self, key: Key) -> bool:
        token = runtime.current().token_for(key.workspace_id)
        req = self.cached(key, lambda: T.convex_query(self.endpoints, key.workspace_id, key.phone, token))
        data = self.call(req, check=_convex_lookup)
        return data.get("value") is not None

    def write(self, key: Key) -> bool:
        return self.convex_write(key)


def _convex_lookup(data: Any) -> str | None:
    problem = convex_status(data)
    if problem is None and data.get("value") is not None and not _is_context(data["value"]):
        problem = "expected the lookup object or null as value"
    return problem


class ApiSupabaseUser(LookupUser):
    target = "api_supabase"

    def lookup(self, key: Key) -> bool:
        req = self.cached(key, lambda: T.api_route(self.endpoints, self.target, key.workspace_id, key.phone))
        data = self.call(req, not_found=(404,), check=_context)
        return data is not NOT_FOUND


class ApiConvexUser(LookupUser):
    target = "api_convex"

    def lookup(self, key: Key) -> bool:
        req = self.cached(key, lambda: T.api_route(self.endpoints, self.target, key.workspace_id, key.phone))
        data = self.call(req, not_found=(404,), check=_context)
        return data is not NOT_FOUND


USER_CLASSES: dict[str, type[LookupUser]] = {
    c.target: c
    for c in (SupabaseRestUser, SupabaseNestedUser, SupabaseRpcUser, ConvexHttpUser, ConvexQueryUser, ApiSupabaseUser, ApiConvexUser)
}
