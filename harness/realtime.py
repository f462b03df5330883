"""The inbox's update latency: subscriptions to one workspace's inbox, and the writes they must see.

Two targets, one per backend:

* ``convex_sub``: Convex's WebSocket sync protocol (``CONVEX_URL/api/sync``): Connect,
  Authenticate as a workspace member, ModifyQuerySet adding ``conversations:inbox``;
  each ``Transition`` carries the inbox's new value and the commit timestamp of the
  newest write it includes (``endVersion.ts``, ns, base64 u64 little-endian);
* ``supabase_realtime``: Supabase Realtime's Phoenix channels
  (``SUPABASE_URL/realtime/v1/websocket``, ``vsn`` 1.0.0): ``postgres_changes`` UPDATE
  on ``conversations`` filtered by ``workspace_id``, with a member's access token;
  each event carries ``commit_timestamp``.

Writes go through the backend's own write path (harness.paths) with a marked
content, ``loadtest <12 hex> <send time in µs>``, so a subscriber can tell which
write an update shows.  The update latency is the update's arrival minus the
write's commit time on the server (the servers' clock: on one machine, as with the
sandbox, exact; against a deployment, it includes the clock offset between it and
this machine, which the report says).  Every subscriber also reports the markers
it saw, so the master counts, per subscriber, the writes it never saw (missed) and
the ones it saw after a later one (out of order).

The WebSocket client is websocket-client (as locust-plugins' socket.io users):
plain sockets, so it cooperates with gevent once Locust has patched them.  The
PyPI ``convex`` client blocks gevent and is never used here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import websocket

from harness.contracts import epoch_s

REALTIME = "realtime"  # the row type of an update's latency
MARKER = re.compile(r"^loadtest ([0-9a-f]{12}) (\d{10,20})$")
CONNECT_TIMEOUT_S = 10.0
HEARTBEAT_S = 25.0  # Supabase Realtime's clients send one every 25-30 s


def marked_content() -> tuple[str, str, float]:
    """(content, marker, send time in s): the write's content names it and when it was sent."""
    now = time.time()
    marker = uuid.uuid4().hex[:12]
    return f"loadtest {marker} {int(now * 1_000_000)}", marker, now


def parse_marker(preview: Any) -> tuple[str, float] | None:
    """(marker, send time in s) of a preview the realtime writer wrote, else None."""
    if not isinstance(preview, str):
        return None
    m = MARKER.match(preview.strip())
    return (m.group(1), int(m.group(2)) / 1_000_000) if m else None


@dataclass
class Update:
    """What one pushed message showed: the marked previews, and the server's commit time (s) if it gave one."""

    markers: dict[str, float] = field(default_factory=dict)  # marker -> send time (s)
    commit_s: float | None = None
    received_s: float = 0.0


class SubscriptionError(Exception):
    """The subscription could not be made or was refused; one line."""


def _ws_url(http_url: str, path: str, query: dict[str, str] | None = None) -> str:
    parts = urlsplit(http_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    q = f"?{urlencode(query)}" if query else ""
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}{path}{q}"


class _Socket:
    def __init__(self, url: str, timeout: float) -> None:
        try:
            self.ws = websocket.create_connection(url, timeout=timeout, enable_multithread=False)
        except websocket.WebSocketBadStatusException as e:
            raise SubscriptionError(f"refused with HTTP {e.status_code}") from None
        except (OSError, websocket.WebSocketException) as e:
            raise SubscriptionError(f"cannot connect: {type(e).__name__}: {e}") from None

    def send(self, doc: Any) -> None:
        self.ws.send(json.dumps(doc))

    def recv(self, timeout: float) -> Any | None:
        """The next JSON message, or None when nothing came within ``timeout``."""
        self.ws.settimeout(timeout)
        try:
            raw = self.ws.recv()
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as e:
            raise SubscriptionError(f"connection lost: {type(e).__name__}: {e}") from None
        return json.loads(raw) if raw else None

    def close(self) -> None:
        with contextlib.suppress(OSError, websocket.WebSocketException):  # already gone
            self.ws.close(timeout=1)


def decode_ts(value: Any) -> float | None:
    """Convex's ``Timestamp`` (base64 of a little-endian u64 of ns since the epoch) in seconds."""
    if not isinstance(value, str):
        return None
    try:
        return int.from_bytes(base64.b64decode(value), "little") / 1e9
    except ValueError:
        return None


class ConvexInbox:
    """One ``conversations:inbox`` subscription over Convex's sync protocol."""

    QUERY_ID = 0

    def __init__(self, convex_url: str, token: str | None, workspace_id: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.sock = _Socket(_ws_url(convex_url, "/api/sync"), timeout)
        self.sock.send({"type": "Connect", "sessionId": str(uuid.uuid4()), "connectionCount": 0,
                        "lastCloseReason": "InitialConnect", "clientTs": int(time.time() * 1000)})
        if token:
            self.sock.send({"type": "Authenticate", "tokenType": "User", "value": token, "baseVersion": 0})
        self.sock.send({"type": "ModifyQuerySet", "baseVersion": 0, "newVersion": 1, "modifications": [
            {"type": "Add", "queryId": self.QUERY_ID, "udfPath": "conversations:inbox", "args": [{"workspaceId": workspace_id}]},
        ]})

    def initial(self, timeout: float = CONNECT_TIMEOUT_S) -> Update:
        """The first value (the subscription is live); raises when refused."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            update = self.next(left)
            if update is not None:
                return update
        raise SubscriptionError("no first value within the timeout")

    def next(self, timeout: float) -> Update | None:
        msg = self.sock.recv(timeout)
        if not isinstance(msg, dict):
            return None
        kind = msg.get("type")
        if kind in ("AuthError", "FatalError"):
            raise SubscriptionError(f"{kind}: {str(msg.get('error'))[:120]}")
        if kind != "Transition":
            return None  # Ping, MutationResponse, …
        update = Update(received_s=time.time(), commit_s=decode_ts((msg.get("endVersion") or {}).get("ts")))
        for mod in msg.get("modifications") or []:
            if mod.get("queryId") != self.QUERY_ID:
                continue
            if mod.get("type") == "QueryFailed":
                raise SubscriptionError(f"conversations:inbox failed: {str(mod.get('errorMessage'))[:120]}")
            for row in mod.get("value") or []:
                found = parse_marker(row.get("lastMessagePreview") if isinstance(row, dict) else None)
                if found:
                    update.markers[found[0]] = found[1]
        return update

    def close(self) -> None:
        self.sock.close()


class SupabaseInbox:
    """One channel on Supabase Realtime: UPDATEs of the workspace's conversations (Phoenix V1 JSON)."""

    def __init__(self, supabase_url: str, apikey: str, token: str, workspace_id: str,
                 timeout: float = CONNECT_TIMEOUT_S) -> None:
        self.sock = _Socket(_ws_url(supabase_url, "/realtime/v1/websocket", {"apikey": apikey, "vsn": "1.0.0"}), timeout)
        self.topic = f"realtime:inbox-{workspace_id}"
        self.ref = 0
        self.last_heartbeat = time.monotonic()
        self.joined = False
        config = {"broadcast": {"ack": False, "self": False}, "presence": {"key": "", "enabled": False},
                  "postgres_changes": [{"event": "UPDATE", "schema": "public", "table": "conversations",
                                        "filter": f"workspace_id=eq.{workspace_id}"}], "private": False}
        self._send(self.topic, "phx_join", {"config": config, "access_token": token}, join=True)

    def _send(self, topic: str, event: str, payload: Any, join: bool = False) -> None:
        self.ref += 1
        frame: dict[str, Any] = {"topic": topic, "event": event, "payload": payload, "ref": str(self.ref)}
        if join:
            frame["join_ref"] = str(self.ref)
        self.sock.send(frame)

    def initial(self, timeout: float = CONNECT_TIMEOUT_S) -> Update:
        """The join's reply (the subscription is live); raises when refused."""
        deadline = time.monotonic() + timeout
        while not self.joined and (left := deadline - time.monotonic()) > 0:
            self.next(left)
        if not self.joined:
            raise SubscriptionError("no reply to the join within the timeout")
        return Update(received_s=time.time())

    def next(self, timeout: float) -> Update | None:
        if time.monotonic() - self.last_heartbeat > HEARTBEAT_S:
            self._send("phoenix", "heartbeat", {})
            self.last_heartbeat = time.monotonic()
        msg = self.sock.recv(min(timeout, HEARTBEAT_S))
        if not isinstance(msg, dict) or msg.get("topic") != self.topic:
            return None
        event, payload = msg.get("event"), msg.get("payload") or {}
        if event == "phx_reply" and not self.joined:
            if payload.get("status") != "ok":
                raise SubscriptionError(f"join refused: {str(payload.get('response'))[:120]}")
            self.joined = True
            return None
        if event in ("phx_error", "phx_close"):
            raise SubscriptionError(f"channel closed ({event})")
        if event == "system" and payload.get("status") == "error":
            raise SubscriptionError(f"subscription refused: {str(payload.get('message'))[:120]}")
        if event != "postgres_changes":
            return None
        data = payload.get("data") or {}
        update = Update(received_s=time.time(), commit_s=epoch_s(data.get("commit_timestamp")))
        found = parse_marker((data.get("record") or {}).get("last_message_preview"))
        if found:
            update.markers[found[0]] = found[1]
        return update

    def close(self) -> None:
        self.sock.close()


# --------------------------------------------------------------------------- bookkeeping (missed, out of order)


@dataclass
class SubscriberLog:
    """What one subscriber saw, shipped to the master: its workspace, since when, which markers."""

    target: str
    workspace: str
    since_s: float
    seen: list[str] = field(default_factory=list)
    out_of_order: int = 0
    latest_send_s: float = 0.0

    def saw(self, marker: str, send_s: float) -> None:
        self.seen.append(marker)
        if send_s < self.latest_send_s:
            self.out_of_order += 1
        self.latest_send_s = max(self.latest_send_s, send_s)


@dataclass
class RealtimeBook:
    """Per process: writes made and subscribers' sightings since the last report; on the master, all of them."""

    written: dict[str, dict[str, list[tuple[str, float]]]] = field(default_factory=dict)  # target -> ws -> [(marker, sent)]
    subscribers: dict[str, dict[str, Any]] = field(default_factory=dict)  # subscriber id -> its log, as a dict

    def wrote(self, target: str, workspace: str, marker: str, send_s: float) -> None:
        self.written.setdefault(target, {}).setdefault(workspace, []).append((marker, send_s))

    def log(self, sid: str, log: SubscriberLog) -> None:
        entry = self.subscribers.setdefault(sid, {"target": log.target, "workspace": log.workspace, "since_s": log.since_s,
                                                  "seen": [], "out_of_order": 0})
        entry["seen"] += log.seen
        entry["out_of_order"] += log.out_of_order
        log.seen = []
        log.out_of_order = 0

    def drain(self) -> dict[str, Any]:
        out = {"written": self.written, "subscribers": self.subscribers}
        self.written, self.subscribers = {}, {}
        return out

    def merge(self, doc: dict[str, Any]) -> None:
        for target, per_ws in (doc.get("written") or {}).items():
            for ws, items in per_ws.items():
                self.written.setdefault(target, {}).setdefault(ws, []).extend((str(m), float(t)) for m, t in items)
        for sid, entry in (doc.get("subscribers") or {}).items():
            mine = self.subscribers.setdefault(sid, {**entry, "seen": [], "out_of_order": 0})
            mine["seen"] += list(entry.get("seen") or [])
            mine["out_of_order"] += int(entry.get("out_of_order") or 0)

    def summary(self, started_s: float, ended_s: float, grace_s: float = 3.0) -> dict[str, dict[str, int]]:
        """Per target: writes, the deliveries subscribers owed (writes to their workspace after they subscribed,
        and ``grace_s`` before the end), how many of those they saw, missed, and out of order."""
        out: dict[str, dict[str, int]] = {}
        for target in sorted({e["target"] for e in self.subscribers.values()} | set(self.written)):
            per_ws = self.written.get(target, {})
            row = {"writes": sum(len(v) for v in per_ws.values()), "subscribers": 0, "expected": 0, "seen": 0,
                   "missed": 0, "out_of_order": 0}
            for entry in self.subscribers.values():
                if entry["target"] != target:
                    continue
                row["subscribers"] += 1
                owed = {m for m, sent in per_ws.get(entry["workspace"], [])
                        if sent > max(entry["since_s"], started_s) and sent < ended_s - grace_s}
                seen = set(entry["seen"])
                row["expected"] += len(owed)
                row["seen"] += len(owed & seen)
                row["missed"] += len(owed - seen)
                row["out_of_order"] += int(entry["out_of_order"])
            out[target] = row
        return out
