"""One Locust user class per target id; each lookup is one transaction row.

Every HTTP call is its own Locust row (``<METHOD>``, ``<target> <what>``);
each logical lookup adds a ``lookup`` / ``lookup-miss`` row named by the target
with the end-to-end time (from the intended start in the open model) and the
number of round trips in its context; writes add a ``write`` row.  Calls use
FastHttpUser's user agent (geventhttpclient): keep-alive, TLS verified, no
retries; each call fires its own request event (:meth:`TargetUser.call`).  What
each target sends is :mod:`harness.paths`; the run's state is reached through
``self.environment`` (:func:`harness.runtime.harness_of`).
"""

from __future__ import annotations

from locust import task
from locust.contrib.fasthttp import FAILURE_EXCEPTIONS, FastHttpUser
from locust.exception import CatchResponseError, StopUser

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import gevent

from harness.pacer import Pacer
from harness.paths import Call, Path, outcome
from harness.phases import parse_server_timing, server_total, take_connects, time_headers
from harness.realtime import (
    REALTIME,
    ConvexInbox,
    SubscriberLog,
    SubscriptionError,
    SupabaseInbox,
    marked_content,
)
from harness.runtime import Harness, harness_of
from harness.targets import Request
from harness.workload import Key

ACCEPT_ENCODING = "gzip, deflate, br"  # what FastHttpSession.request adds when a request names none


class CallFailed(Exception):
    """A call (or the lookup as a whole) did not do what the lookup needs."""


class TargetUser(FastHttpUser):
    """What every target's users share: the run's harness, and calls that record their phases."""

    abstract = True
    target: ClassVar[str] = ""
    insecure = False  # verify TLS, as the app does
    max_retries = 0  # a retry would hide a failure inside a latency
    # every request carries an absolute URL from the settings; this only satisfies FastHttpUser
    host = "http://127.0.0.1"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.harness: Harness = harness_of(environment)
        self._connections = self.harness.options.connections  # users are made after each start's options
        self._agent = self.client.client  # the session's user agent: calls go to it directly (see call)
        self._auth_header = self.client.auth_header
        self._request_event = environment.events.request
        self._headers = time_headers(self._agent)
        self._calls = 0
        self._bytes = 0
        self._connect_ms = 0.0
        self._new_connections = 0
        self._server_ms: float | None = 0.0  # None once a call of the lookup came back without server timing

    def transaction(
        self, rtype: str, body: Callable[[Key], bool], key: Key, intended: float | None, expect_found: bool = True
    ) -> None:
        self._calls = 0
        self._bytes = 0
        self._connect_ms = 0.0
        self._new_connections = 0
        self._server_ms = 0.0
        if self._connections == "per-lookup":
            self.close_connections()  # a cold serverless instance: every lookup opens its own
        start_wall = time.time()
        t0 = time.perf_counter()
        exc: BaseException | None = None
        interrupted = False
        try:
            found = body(key)
            if found != expect_found:
                if rtype == "write":
                    raise CallFailed("write: contact not found for a known phone")
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
        total = (time.perf_counter() - origin) * 1000.0
        phases = {"connect": self._connect_ms}
        if self._server_ms is not None:
            # rest: the network both ways, and any queueing (the load generator's own included)
            phases["server"] = self._server_ms
            phases["rest"] = max(total - self._connect_ms - self._server_ms, 0.0)
        self._request_event.fire(
            request_type=rtype,
            name=self.target,
            response_time=total,
            response_length=self._bytes,
            exception=exc,
            context={"round_trips": self._calls, "phases": phases, "new_connections": self._new_connections},
            start_time=start_wall,
            url=None,
            response=None,
        )

    def close_connections(self) -> None:
        """Drop this user's pooled connections: the next call opens a new one (and pays for it)."""
        self.client.client.clientpool.close()

    # ------------------------------------------------------------------ calls
    def drive(self, path: Path) -> bool:
        """Send a path's calls one after the other; its return value is whether the contact was found."""
        try:
            call = next(path)
            while True:
                call = path.send(self.call(call))
        except StopIteration as done:
            return bool(done.value)

    def call(self, call: Call) -> Any:
        """Send one call and report it as one request event, its phases and status in the context.

        The call goes to the session's user agent (``self.client.client``: keep-alive, TLS verified,
        cookies, no retries) with the headers ``FastHttpSession.request`` would send and Locust's
        timing (request start to body read).  The event is fired here, once, with the answer already
        judged: without ``catch_response``, whose context manager copies every response.
        """
        self._calls += 1
        if self._connections == "per-request":
            self.close_connections()
        req = call.request
        headers = dict(req.headers)
        if self._auth_header:
            headers["Authorization"] = self._auth_header
        if "Accept-Encoding" not in headers and "accept-encoding" not in headers:
            headers["Accept-Encoding"] = ACCEPT_ENCODING
        resp: Any  # FastResponse, or None when no answer came
        error: BaseException | None = None
        content: bytes | None = None
        start_time = time.time()
        t0 = time.perf_counter()
        try:
            resp = self._agent.urlopen(req.url, method=req.method, headers=headers, payload=req.body)
        except FAILURE_EXCEPTIONS as e:  # as FastHttpSession: the call failed, the user goes on
            error = e
            resp = getattr(e, "response", None)  # a status the user agent refuses (4xx, 5xx) still has its response
        status = (resp.status_code or 0) if resp is not None else 0
        if status:
            try:
                content = resp.content
            except FAILURE_EXCEPTIONS as e:  # the body read failed mid-way
                status, error = 0, e
        response_time = (time.perf_counter() - t0) * 1000.0
        length = len(content) if content else 0
        self._bytes += length

        # where the call's time went (harness.phases), into the event's context and the lookup's sums
        connect_s, opened = take_connects()
        connect_ms = connect_s * 1000.0
        headers_ms = self._headers.last_s * 1000.0
        phases = {"ttfb": max(headers_ms - connect_ms, 0.0), "download": max(response_time - headers_ms, 0.0)}
        if opened:
            phases["connect"] = connect_ms
        answer = resp.headers if resp is not None else None
        # `in` first: a missing header's get() costs a KeyError, on most backends' every call
        metrics = parse_server_timing(answer["server-timing"]) if answer is not None and "server-timing" in answer else {}
        server = server_total(metrics)
        if server is not None:
            phases["server"] = server
        self._connect_ms += connect_ms
        self._new_connections += opened
        if server is None:
            self._server_ms = None
        elif self._server_ms is not None:
            self._server_ms += server

        data, failure = outcome(call, status, content)
        if failure == "connection error":
            failure = f"connection error: {type(error).__name__}"
        self._request_event.fire(
            request_type=req.method,
            name=f"{self.target} {req.what}",
            response_time=response_time,
            response_length=length,
            exception=None if failure is None else CatchResponseError(failure),
            context={"phases": phases, "metrics": metrics, "new_connections": opened, "status": status},
            start_time=start_time,
            url=req.url,
            response=resp,
        )
        if failure is not None:
            raise CallFailed(f"{req.what}: {failure}")
        return data



class LookupUser(TargetUser):
    """A lookup target's user: lookups of known and unknown phones, and writes, by the task weights."""

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._single_calls: dict[Key, Call] = {}  # a one-request lookup's call per key, made once

    def wait_time(self) -> float:
        options = self.harness.options
        return 0.0 if options.open_rate > 0 else options.think_time  # open_rate > 0: the open model

    # ------------------------------------------------------------------ the loop
    @task
    def act(self) -> None:
        h = self.harness
        if not h.ready.is_set() and not h.wait_ready():  # set once per run: skip the Event machinery after
            raise StopUser()
        target = self.target
        intended = h.pacer(target).acquire() if h.options.open_rate > 0 else None  # h.open_model, inlined
        kind = "known" if target in h.known_only else h.choose_kind(target)
        sampler = h.sampler
        assert sampler is not None
        if kind == "known":
            self.transaction("lookup", self.lookup, sampler.known(), intended, True)
        elif kind == "write":
            self.transaction("write", self.write, sampler.known(), intended)
        elif (key := sampler.unknown()) is not None:
            self.transaction("lookup-miss", self.lookup, key, intended, False)
        else:
            self.transaction("lookup", self.lookup, sampler.known(), intended, True)

    # ------------------------------------------------------------------ per target
    def first_request(self, key: Key) -> Request:
        """The key's first request, built once per run (URL quoting costs more than the rest of a lookup's bookkeeping)."""
        cache = self.harness.request_cache.get(self.target)
        if cache is None:
            cache = self.harness.request_cache[self.target] = {}
        req = cache.get(key)
        if req is None:
            if len(cache) > 200_000:
                cache.clear()
            req = cache[key] = self.harness.paths.first(self.target, key)
        return req

    def lookup(self, key: Key) -> bool:
        paths = self.harness.paths
        if self.target in paths.SINGLE_CALL:  # one call: no generator to drive (the users' hot path)
            call = self._single_calls.get(key)
            if call is None:
                if len(self._single_calls) > 50_000:
                    self._single_calls.clear()
                call = self._single_calls[key] = paths.single_call(self.target, self.first_request(key))
            return paths.found(self.target, self.call(call))
        return self.drive(paths.lookup(self.target, key, self.first_request(key)))

    def write(self, key: Key) -> bool:
        return self.drive(self.harness.paths.write(self.target, key))


class SupabaseRestUser(LookupUser):
    """The app today: 4 sequential PostgREST GETs."""

    target = "supabase_rest"


class SupabaseNestedUser(LookupUser):
    """1 PostgREST GET with embedded resources."""

    target = "supabase_nested"


class SupabaseRpcUser(LookupUser):
    """1 POST to the ``get_contact_context`` SQL function."""

    target = "supabase_rpc"


class ConvexHttpUser(LookupUser):
    """1 request to the Convex HTTP action, ``x-api-key`` guarded."""

    target = "convex_http"


class ConvexQueryUser(LookupUser):
    """1 ``POST /api/query`` of ``contacts:getContextByPhone`` as a workspace member."""

    target = "convex_query"


class ApiSupabaseUser(LookupUser):
    """The Next.js route doing the 4 queries server-side."""

    target = "api_supabase"


class ApiConvexUser(LookupUser):
    """The Next.js route making one Convex call."""

    target = "api_convex"


USER_CLASSES: dict[str, type[LookupUser]] = {
    c.target: c
    for c in (
        SupabaseRestUser, SupabaseNestedUser, SupabaseRpcUser, ConvexHttpUser, ConvexQueryUser, ApiSupabaseUser, ApiConvexUser
    )
}


class InboxUser(TargetUser):
    """A realtime target's user: one agent's inbox, subscribed to one workspace (harness.realtime).

    The first subscriber of each workspace also writes marked messages to it at
    ``--realtime-rate`` per second, through the backend's own write path; every
    subscriber records, per write it sees, the update's latency as a ``realtime`` row.
    """

    abstract = True

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.subscription: Any = None
        self.log: SubscriberLog | None = None
        self.known: set[str] = set()
        self.writer: gevent.Greenlet | None = None
        self.sid = f"{self.target}-{uuid.uuid4().hex[:8]}"
        self._shipped = time.monotonic()

    def wait_time(self) -> float:
        return 0.0

    def subscribe(self, workspace_id: str) -> Any:
        raise NotImplementedError

    def on_start(self) -> None:
        h = self.harness
        if not h.wait_ready():
            raise StopUser()
        workspace, writes = h.next_subscriber(self.target)
        try:
            self.subscription = self.subscribe(workspace)
            self.known = set(self.subscription.initial().markers)  # earlier writes are not this run's updates
        except SubscriptionError as e:
            self._fire_failure(f"subscribe: {e}")
            raise StopUser() from None
        self.log = SubscriberLog(self.target, workspace, time.time())
        if writes:
            self.writer = gevent.spawn(self._write_loop, workspace)

    def on_stop(self) -> None:
        if self.writer is not None:
            self.writer.kill(block=True, timeout=5)
        if self.subscription is not None:
            self.subscription.close()
        if self.log is not None:
            self.harness.realtime.log(self.sid, self.log)

    @task
    def listen(self) -> None:
        assert self.subscription is not None and self.log is not None
        try:
            update = self.subscription.next(1.0)
        except SubscriptionError as e:
            self._fire_failure(f"subscription lost: {e}")
            raise StopUser() from None
        if update is not None:
            for marker, sent_s in update.markers.items():
                if marker in self.known:
                    continue
                self.known.add(marker)
                self.log.saw(marker, sent_s)
                origin = update.commit_s if update.commit_s is not None else sent_s
                self.environment.events.request.fire(
                    request_type=REALTIME, name=self.target, response_time=max(update.received_s - origin, 0.0) * 1000,
                    response_length=0, exception=None, context={"origin": "commit" if update.commit_s else "send"},
                    start_time=origin, url=None, response=None,
                )
        if time.monotonic() - self._shipped > 2.0:  # hand the sightings to this process's book for the next report
            self.harness.realtime.log(self.sid, self.log)
            self._shipped = time.monotonic()

    def _fire_failure(self, message: str) -> None:
        self.environment.events.request.fire(
            request_type=REALTIME, name=self.target, response_time=0.0, response_length=0,
            exception=CallFailed(message), context={}, start_time=time.time(), url=None, response=None,
        )

    def _write_loop(self, workspace_id: str) -> None:
        """Marked writes to the workspace, paced; each one the subscribers owe a sighting of, once written."""
        h = self.harness
        keys = h.workspace_keys(workspace_id)
        pacer = Pacer(h.options.realtime_rate, h.options.max_late)
        for i in itertools.count():
            pacer.acquire()
            content, marker, sent_s = marked_content()
            appended: list[bool] = []

            def append(key: Key, content: str = content, appended: list[bool] = appended) -> bool:
                appended.append(self.drive(h.paths.append(self.target, key, content)))
                return True

            self.transaction("write", append, keys[i % len(keys)], None)
            if appended and appended[0]:
                h.realtime.wrote(self.target, workspace_id, marker, sent_s)


class ConvexSubUser(InboxUser):
    """``conversations:inbox`` subscribed over Convex's WebSocket sync protocol."""

    target = "convex_sub"

    def subscribe(self, workspace_id: str) -> ConvexInbox:
        ep = self.harness.endpoints
        assert ep.convex_url is not None
        return ConvexInbox(ep.convex_url, self.harness.paths.token_for(workspace_id), workspace_id)


class SupabaseRealtimeUser(InboxUser):
    """The workspace's conversations' UPDATEs on Supabase Realtime (``postgres_changes``)."""

    target = "supabase_realtime"

    def subscribe(self, workspace_id: str) -> SupabaseInbox:
        h = self.harness
        ep = h.endpoints
        assert ep.supabase_url is not None and ep.supabase_key is not None
        anon = h.settings.get("SUPABASE_ANON_KEY") or ep.supabase_key
        token = h.paths.token_for(workspace_id) or ep.supabase_bearer or anon
        return SupabaseInbox(ep.supabase_url, anon, token, workspace_id)


INBOX_USER_CLASSES: dict[str, type[InboxUser]] = {c.target: c for c in (ConvexSubUser, SupabaseRealtimeUser)}
