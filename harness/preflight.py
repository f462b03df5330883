"""Before any user starts: can every selected target answer the lookup the run will send?

1. :func:`unreachable`: one TCP connect per distinct host, no request sent.
2. :func:`check_targets`: one real, authenticated lookup per target, through the
   very path the users send (:mod:`harness.paths`), for a known contact (the
   pinned one, or the workload's first); for targets whose write task is on, the
   write path's permissions too, without writing a row.

Each problem is one line naming the target, what failed, the setting behind it
and the likely fix; the caller stops the run (exit 2) before a single sample is
taken, instead of running its full length into a column of 401s.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from harness.contracts import REALTIME_TARGETS, URL_SETTING
from harness.paths import Path, Paths, outcome
from harness.targets import Endpoints
from harness.workload import Key, Workload
from reports.failures import auth_hint, status_of

CONNECT_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 15.0


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def unreachable(endpoints: Endpoints, targets: Iterable[str], timeout: float = CONNECT_TIMEOUT_S) -> list[str]:
    """One line per host that does not accept a TCP connection, naming the targets and the setting behind it."""
    by_url: dict[str, list[str]] = {}
    for target in targets:
        base = endpoints.base_url(target)
        if base:
            by_url.setdefault(base, []).append(target)
    problems = []
    for url, names in by_url.items():
        host, port = _address(url)
        try:
            socket.create_connection((host, port), timeout=timeout).close()
        except OSError as e:
            reason = e.strerror or type(e).__name__
            problems.append(f"{', '.join(names)}: cannot connect to {url} ({URL_SETTING[names[0]]}): {reason}")
    return problems


class CallProblem(Exception):
    def __init__(self, what: str, failure: str) -> None:
        super().__init__(f"{what}: {failure}")
        self.what = what
        self.failure = failure


def drive(client: httpx.Client, path: Path) -> bool:
    """Send a path's calls with httpx; raise :class:`CallProblem` at the first that fails."""
    try:
        call = next(path)
        while True:
            req = call.request
            try:
                resp = client.request(req.method, req.url, headers=dict(req.headers), content=req.body)
                status, content = resp.status_code, resp.content
            except httpx.HTTPError as e:
                raise CallProblem(req.what, f"connection error: {type(e).__name__}") from None
            data, failure = outcome(call, status, content)
            if failure is not None:
                raise CallProblem(req.what, failure)
            call = path.send(data)
    except StopIteration as done:
        return bool(done.value)


@dataclass(frozen=True)
class Known:
    """The contact every target is asked for, and where it came from (for the message)."""

    key: Key
    unknown: Key
    pinned: bool
    source: str

    @classmethod
    def of(cls, workload: Workload) -> Known:
        unknown = workload.unknown[0] if workload.unknown else Key(workload.known[0].workspace_id, "1" + "9" * 12)
        pinned = workload.source == "TEST_WORKSPACE_ID/TEST_PHONE"
        return cls(workload.known[0], unknown, pinned, workload.source)

    def not_found(self, target: str) -> str:
        who = f"contact {self.key.phone} of workspace {self.key.workspace_id}"
        if self.pinned:
            return f"{target}: the pinned {who} (TEST_WORKSPACE_ID + TEST_PHONE) does not exist on this backend"
        fix = "run `python -m seed migrate`" if target.startswith(("convex", "api_convex")) else "rerun `python -m seed workload`"
        return f"{target}: the workload's {who} was not found ({self.source} comes from another dataset?): {fix}"


def _credential(paths: Paths, target: str) -> str | None:
    ep = paths.endpoints
    if target.startswith("supabase"):
        return "SUPABASE_SERVICE_ROLE_KEY" if ep.supabase_bearer else "SUPABASE_ANON_KEY and the member token"
    return None


def _line(paths: Paths, target: str, problem: CallProblem, writing: bool) -> str:
    status = status_of(problem.failure)
    stage = "write path" if writing else "lookup"
    text = f"{target}: the {stage}'s {problem.what} request failed ({problem.failure})"
    lowered = problem.failure.lower()
    if status in (401, 403) or "unauthenticated" in lowered:
        return f"{text}: {auth_hint(target, _credential(paths, target))}"
    if "forbidden" in lowered or "not a member" in lowered:
        return f"{text}: the token's user is not a member of the workspace ({auth_hint(target)})"
    if status == 429:
        return f"{text}: rate limited before the run started"
    return text


def check_targets(paths: Paths, targets: Iterable[str], known: Known, writing: Iterable[str] = (),
                  timeout: float = REQUEST_TIMEOUT_S, anon_key: str | None = None) -> list[str]:
    """One line per target whose lookup (or write path, for ``writing`` targets) cannot do its job; a
    realtime target's subscription must be accepted and its first value arrive."""
    problems: list[str] = []
    write_on = set(writing)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for target in targets:
            if target in REALTIME_TARGETS:
                if (problem := check_subscription(paths, target, known, anon_key, timeout)) is not None:
                    problems.append(problem)
                    continue
            else:
                try:
                    if not drive(client, paths.lookup(target, known.key)):
                        problems.append(known.not_found(target))
                        continue
                except CallProblem as p:
                    problems.append(_line(paths, target, p, writing=False))
                    continue
            if target in write_on:
                try:
                    drive(client, paths.write_dry_run(target, known.key, known.unknown))
                except CallProblem as p:
                    problems.append(_line(paths, target, p, writing=True))
    return problems


def check_subscription(paths: Paths, target: str, known: Known, anon_key: str | None, timeout: float) -> str | None:
    """Subscribe to the known contact's workspace inbox and wait for the first value; one line when refused."""
    from harness.realtime import ConvexInbox, SubscriptionError, SupabaseInbox

    ep, ws = paths.endpoints, known.key.workspace_id
    token = paths.token_for(ws)
    sub: ConvexInbox | SupabaseInbox | None = None
    try:
        if target == "convex_sub":
            assert ep.convex_url is not None
            sub = ConvexInbox(ep.convex_url, token, ws, timeout)
        else:
            assert ep.supabase_url is not None and ep.supabase_key is not None
            key = anon_key or ep.supabase_key
            sub = SupabaseInbox(ep.supabase_url, key, token or ep.supabase_bearer or key, ws, timeout)
        sub.initial(timeout)
    except SubscriptionError as e:
        credential = "CONVEX_AUTH_TOKEN" if target == "convex_sub" else "SUPABASE_ANON_KEY and the member token"
        return f"{target}: the inbox subscription of workspace {ws} failed ({e}): check {credential}"
    finally:
        if sub is not None:
            sub.close()
    return None
