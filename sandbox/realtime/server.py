"""Supabase Realtime's WebSocket (``/realtime/v1/websocket``): Phoenix channels with ``postgres_changes``.

What the official clients (supabase-js / realtime-js, supabase-py's realtime)
exchange with hosted Realtime (supabase/realtime: RealtimeWeb.UserSocket,
RealtimeChannel, Extensions.PostgresCdcRls), behind Kong's ``apikey`` check:

- connect: ``?apikey=<key>&vsn=1.0.0|2.0.0``; a bad key or token is an HTTP
  error on the upgrade (Kong: 401 ``{"message"}``; Realtime: 401 ``{"error"}``);
- ``phoenix`` ``heartbeat`` → ``phx_reply`` ok;
- ``phx_join`` on ``realtime:<name>`` with ``config.postgres_changes``: the
  reply echoes each binding with its ``id``; the subscription is live before
  the reply, and a ``system`` push says ``Subscribed to PostgreSQL`` (or why
  not) after it; the token is the join's ``access_token`` (else the socket's key);
- ``access_token`` updates a channel's claims (a bad one closes the channel with
  a ``system`` error, as does the token's expiry);
- ``phx_leave`` → ``phx_reply`` ok, then ``phx_close``;
- changes: ``postgres_changes`` with ``{ids, data}``, ``data`` as Realtime
  builds it (schema, table, commit_timestamp, type, columns, record,
  old_record, errors).

Broadcast and presence are not implemented (their messages are ignored, and
private channels are refused as a project without Realtime policies refuses them).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from . import filters as filters_mod
from .auth import TokenError, TokenVerifier
from .feed import Change, Feed, TableInfo
from .phoenix import Frame, FrameError, Serializer, serializer_for

log = logging.getLogger("sandbox.realtime")

PATH = "/realtime/v1/websocket"
EVENTS = ("*", "INSERT", "UPDATE", "DELETE")


class SubscribeError(Exception):
    pass


def binding_id(params: dict[str, Any]) -> int:
    """A stable, non-zero integer per binding (hosted: ``:erlang.phash2(params)``, 0..2^27-1)."""
    digest = hashlib.sha1(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).digest()
    return int.from_bytes(digest[:4], "big") % (2**27 - 1) + 1


@dataclass
class Binding:
    id: int
    event: str
    schema: str
    table: str
    filters: list[filters_mod.Filter]

    def index_key(self) -> tuple[str, str, str, Any] | None:
        """Where the dispatcher files this binding: under its first ``eq`` filter's value when it has one."""
        if self.schema == "*" or self.table == "*":
            return None
        for f in self.filters:
            if f.op == "eq":
                return (self.schema, self.table, f.column, value_key(f.values[0]))
        return None


def value_key(value: Any) -> Any:
    """A hashable key under which equal typed values meet (numbers by value)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ("n", float(value))
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@dataclass(eq=False)
class Channel:
    socket: Socket
    topic: str
    join_ref: str | None
    claims: dict[str, Any]
    token: str
    bindings: list[Binding] = field(default_factory=list)
    expiry: asyncio.TimerHandle | None = None

    @property
    def name(self) -> str:
        return self.topic[len("realtime:") :]

    @property
    def role(self) -> str:
        return str(self.claims.get("role"))


MAX_QUEUED_FRAMES = 10_000  # a client this far behind is disconnected


class Socket:
    def __init__(self, server: Realtime, send: Any, serializer: Serializer, token: str) -> None:
        self.server = server
        self._send = send
        self.serializer = serializer
        self.token = token
        self.channels: dict[str, Channel] = {}
        self.open = True
        # Frames go out in order through one writer task per socket, so a client
        # that stops reading holds up only itself, never the change feed.
        self._outbox: collections.deque[str] = collections.deque()
        self._writing = False
        self._writer: asyncio.Future[None] | None = None

    async def send(self, text: str) -> None:
        if not self.open:
            return
        if len(self._outbox) >= MAX_QUEUED_FRAMES:
            log.warning("realtime: a client stopped reading; closing its socket")
            self.open = False
            self._outbox.clear()
            with contextlib.suppress(Exception):
                await self._send({"type": "websocket.close", "code": 1008})
            return
        self._outbox.append(text)
        if not self._writing:
            self._writing = True
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        try:
            while self._outbox and self.open:
                await self._send({"type": "websocket.send", "text": self._outbox.popleft()})
        except Exception:  # the client went away
            self.open = False
        finally:
            self._writing = False

    async def push(self, channel: Channel, event: str, payload: Any) -> None:
        await self.send(self.serializer.message(channel.topic, event, payload, None, channel.join_ref))

    async def system(self, channel: Channel, extension: str, status: str, message: str) -> None:
        await self.push(
            channel, "system", {"extension": extension, "status": status, "message": message, "channel": channel.name}
        )

    async def close_channel(self, channel: Channel) -> None:
        self.server.unsubscribe(channel)
        self.channels.pop(channel.topic, None)
        await self.send(self.serializer.message(channel.topic, "phx_close", {}, channel.join_ref, channel.join_ref))

    async def shutdown_channel(self, channel: Channel, message: str) -> None:
        """RealtimeChannel.shutdown_response: a system error, then the channel closes."""
        await self.system(channel, "system", "error", message)
        await self.close_channel(channel)

    # ------------------------------------------------------------------ incoming
    async def handle(self, frame: Frame) -> None:
        if frame.topic == "phoenix" and frame.event == "heartbeat":
            await self.send(self.serializer.reply(frame, "ok", {}))
            return
        channel = self.channels.get(frame.topic)
        if frame.event == "phx_join":
            if channel is not None:
                await self.close_channel(channel)
            await self.join(frame)
        elif frame.event == "phx_leave":
            await self.send(self.serializer.reply(frame, "ok", {}))
            if channel is not None:
                await self.close_channel(channel)
        elif channel is None:
            await self.send(self.serializer.reply(frame, "error", {"reason": "unmatched topic"}))
        elif frame.event == "access_token":
            await self.refresh_token(channel, frame.payload)
        # broadcast, presence and anything else: not implemented, ignored

    def _channel_token(self, payload: dict[str, Any]) -> str:
        token = payload.get("access_token") or payload.get("user_token")
        if isinstance(token, str) and not token.startswith("sb_"):
            return token
        return self.token

    async def join(self, frame: Frame) -> None:
        topic = frame.topic
        if not topic.startswith("realtime:"):
            await self.send(self.serializer.reply(frame, "error", {"reason": "unmatched topic"}))
            return
        if topic == "realtime:":
            await self.send(self.serializer.reply(frame, "error", {"reason": "TopicNameRequired: You must provide a topic name"}))
            return
        payload = frame.payload if isinstance(frame.payload, dict) else {}
        token = self._channel_token(payload)
        try:
            claims = self.server.verifier.claims(token)
        except TokenError as exc:
            await self.send(self.serializer.reply(frame, "error", {"reason": exc.reason}))
            return
        channel = Channel(self, topic, frame.join_ref, claims, token)
        config = payload.get("config")
        if isinstance(config, dict) and config.get("private") in (True, "true"):
            reason = f"Unauthorized: You do not have permissions to read from this Channel topic: {channel.name}"
            await self.send(self.serializer.reply(frame, "error", {"reason": reason}))
            return
        if isinstance(config, dict):
            params = [p for p in (config.get("postgres_changes") or []) if p is not None]
        else:  # the legacy API: realtime:schema[:table[:filter]]
            parts = channel.name.split(":", 2)
            params = [dict(zip(("schema", "table", "filter"), parts, strict=False))]
        error = None
        try:
            channel.bindings = [await self.server.binding(p, channel) for p in params]
        except SubscribeError as exc:
            error = str(exc)
            channel.bindings = []
        # Live before the reply: a write right after SUBSCRIBED is not missed.
        self.channels[topic] = channel
        self.server.subscribe(channel)
        self._arm_expiry(channel)
        echoed = [{**p, "id": binding_id(p)} for p in params if isinstance(p, dict)]
        await self.send(self.serializer.reply(frame, "ok", {"postgres_changes": echoed}))
        if error is not None:
            await self.system(channel, "postgres_changes", "error", error)
        elif params:
            await self.system(channel, "postgres_changes", "ok", "Subscribed to PostgreSQL")

    async def refresh_token(self, channel: Channel, payload: Any) -> None:
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or token.startswith("sb_") or token == channel.token:
            return
        try:
            claims = self.server.verifier.claims(token)
        except TokenError as exc:
            await self.shutdown_channel(channel, exc.message)
            return
        channel.token = token
        channel.claims = claims
        self._arm_expiry(channel)
        if channel.bindings:
            await self.system(channel, "postgres_changes", "ok", "Subscribed to PostgreSQL")

    def _arm_expiry(self, channel: Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
        remaining = float(channel.claims["exp"]) - time.time()
        loop = asyncio.get_running_loop()
        channel.expiry = loop.call_later(
            max(0.0, remaining), lambda: asyncio.ensure_future(self._expire(channel))
        )

    async def _expire(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            await self.shutdown_channel(
                channel, f"Token has expired {max(0, int(time.time() - channel.claims['exp']))} seconds ago"
            )

    def closed(self) -> None:
        self.open = False
        for channel in list(self.channels.values()):
            if channel.expiry is not None:
                channel.expiry.cancel()
            self.server.unsubscribe(channel)
        self.channels.clear()


class Realtime:
    """The ASGI WebSocket endpoint and the change dispatcher."""

    def __init__(self, db_uri: str, verifier: TokenVerifier, api_keys: set[str]) -> None:
        self.verifier = verifier
        self.api_keys = api_keys
        self.feed = Feed(db_uri, self.dispatch)
        self._started: asyncio.Task[None] | None = None
        # Channels by binding: those with an `eq` filter under (schema, table, column, value),
        # so a change only looks at the channels its row can match; the rest under
        # (schema, table), either possibly "*".
        self._by_value: dict[tuple[str, str, str, Any], set[Channel]] = defaultdict(set)
        self._by_table: dict[tuple[str, str], set[Channel]] = defaultdict(set)
        self._eq_columns: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)

    async def start(self) -> None:
        if self._started is None:
            self._started = asyncio.ensure_future(self.feed.start())
        await asyncio.shield(self._started)

    async def stop(self) -> None:
        await self.feed.stop()

    # ------------------------------------------------------------------ subscriptions
    async def binding(self, params: Any, channel: Channel) -> Binding:
        """Validates one postgres_changes entry as Realtime's subscription insert does."""
        if not isinstance(params, dict):
            raise SubscribeError(
                "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: "
                f"{params!r}"
            )
        event = str(params.get("event", "*")).upper()
        event = event if event in EVENTS else "*"
        schema, table = params.get("schema"), params.get("table")
        if schema is None and table is None:
            raise SubscribeError(
                "No subscription params provided. Please provide at least a `schema` or `table` to subscribe to: "
                f"{params!r}"
            )
        schema = schema if isinstance(schema, str) else "public"
        table = table if isinstance(table, str) else "*"
        try:
            parsed = filters_mod.parse(params.get("filter"))
        except filters_mod.FilterError as exc:
            raise SubscribeError(str(exc)) from None
        described = f"[event: {event}, schema: {schema}, table: {table}, filters: {[(f.column, f.op, f.raw) for f in parsed]}]"
        tables = await self.feed.published(schema, table)
        if not tables:
            raise SubscribeError(
                "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the "
                f"given connect parameters: {described}"
            )
        if not await self.feed.role_exists(channel.role):
            raise SubscribeError(
                "Unable to subscribe to changes with given parameters. An exception happened so please check your "
                f"connect parameters: {described}. Exception: role \"{channel.role}\" does not exist"
            )
        for f in parsed:
            info = tables[0]
            if f.column not in await self.feed.selectable(info, channel.role):
                raise SubscribeError(
                    "Unable to subscribe to changes with given parameters. An exception happened so please check your "
                    f"connect parameters: {described}. Exception: invalid column for filter {f.column}"
                )
            try:
                f.values = await self.feed.typed_values(info, f.column, f.texts())
            except Exception as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise SubscribeError(
                    "Unable to subscribe to changes with given parameters. An exception happened so please check your "
                    f"connect parameters: {described}. Exception: {detail}"
                ) from None
        return Binding(binding_id(params), event, schema, table, parsed)

    def subscribe(self, channel: Channel) -> None:
        for b in channel.bindings:
            key = b.index_key()
            if key is None:
                self._by_table[(b.schema, b.table)].add(channel)
            else:
                self._by_value[key].add(channel)
                columns = self._eq_columns[(b.schema, b.table)]
                columns[key[2]] = columns.get(key[2], 0) + 1

    def unsubscribe(self, channel: Channel) -> None:
        for b in channel.bindings:
            key = b.index_key()
            if key is None:
                _discard(self._by_table, (b.schema, b.table), channel)
            elif _discard(self._by_value, key, channel):
                columns = self._eq_columns[(b.schema, b.table)]
                columns[key[2]] -= 1
                if columns[key[2]] == 0:
                    del columns[key[2]]
                if not columns:
                    del self._eq_columns[(b.schema, b.table)]

    def _candidates(self, change: Change) -> set[Channel]:
        """The channels that may want a change: by table, and by the row's value in each indexed column."""
        channels: set[Channel] = set()
        for key in ((change.schema, change.table), (change.schema, "*"), ("*", change.table), ("*", "*")):
            channels.update(self._by_table.get(key, ()))
        columns = self._eq_columns.get((change.schema, change.table))
        if columns:
            row = change.record if change.type != "DELETE" else change.old_record
            for column in columns:
                if row and column in row and row[column] is not None:
                    channels.update(self._by_value.get((change.schema, change.table, column, value_key(row[column])), ()))
        return channels

    # ------------------------------------------------------------------ changes
    async def dispatch(self, change: Change) -> None:
        channels = self._candidates(change)
        if not channels:
            return
        info = await self.feed.table(change.schema, change.table)
        if info is None:
            return
        by_role: dict[str, list[Channel]] = defaultdict(list)
        for channel in channels:
            if channel.socket.open and any(self._matches(b, change) for b in channel.bindings):
                by_role[channel.role].append(channel)
        deliveries: list[tuple[Channel, bytes]] = []
        needs_rls: list[tuple[Channel, bytes]] = []
        identity = info.identity_columns()
        pk = info.pk
        for role, role_channels in by_role.items():
            selectable = await self.feed.selectable(info, role)
            data, error = self._data(change, info, selectable, identity, pk)
            filter_record = change.record if change.type != "DELETE" else {
                k: v for k, v in (change.old_record or {}).items() if k in identity
            }
            for channel in role_channels:
                if error or self._passes(channel, change, filter_record or {}):
                    if error or not info.rls or change.type == "DELETE":
                        deliveries.append((channel, data))
                    else:
                        needs_rls.append((channel, data))
        if needs_rls:
            distinct: dict[bytes, dict[str, Any]] = {}
            for channel, _ in needs_rls:
                distinct.setdefault(orjson.dumps(channel.claims, option=orjson.OPT_SORT_KEYS), channel.claims)
            keys = list(distinct)
            row_key = {k: (change.record or {}).get(k) for k in pk}
            visible = dict(zip(keys, await self.feed.visible(info, row_key, [distinct[k] for k in keys]), strict=True))
            deliveries.extend(
                (channel, data) for channel, data in needs_rls
                if visible[orjson.dumps(channel.claims, option=orjson.OPT_SORT_KEYS)]
            )
        for channel, data in deliveries:
            ids = [b.id for b in channel.bindings if self._matches(b, change)]
            serializer = channel.socket.serializer
            frame = (
                serializer.broadcast_prefix(channel.topic, "postgres_changes")
                + b'{"ids":' + orjson.dumps(list(dict.fromkeys(ids))) + b',"data":' + data + b"}"
                + serializer.broadcast_suffix()
            )
            await channel.socket.send(frame.decode())

    @staticmethod
    def _matches(b: Binding, change: Change) -> bool:
        return (
            b.event in ("*", change.type)
            and b.schema in ("*", change.schema)
            and b.table in ("*", change.table)
        )

    def _passes(self, channel: Channel, change: Change, record: dict[str, Any]) -> bool:
        return any(self._matches(b, change) and filters_mod.all_hold(b.filters, record) for b in channel.bindings)

    @staticmethod
    def _data(change: Change, info: TableInfo, selectable: set[str], identity: set[str], pk: list[str]) -> tuple[bytes, bool]:
        """The ``data`` one role sees, and whether it is an error record."""
        base: dict[str, Any] = {
            "schema": change.schema, "table": change.table, "commit_timestamp": change.commit_timestamp, "type": change.type
        }
        if change.type != "DELETE" and not pk:
            return orjson.dumps({**base, "columns": [], "errors": ["Error 400: Bad Request, no primary key"]}), True
        if change.type != "DELETE" and not all(p in selectable for p in pk):
            return orjson.dumps({**base, "columns": [], "errors": ["Error 401: Unauthorized"]}), True
        data = {
            **base,
            "columns": [{"name": c["name"], "type": c["type"]} for c in info.columns if c["name"] in selectable],
            "errors": None,
        }
        if change.type in ("INSERT", "UPDATE"):
            data["record"] = {k: v for k, v in (change.record or {}).items() if k in selectable}
        if change.type in ("UPDATE", "DELETE"):
            kept = identity if not (change.type == "DELETE" and info.rls) else set(pk)
            data["old_record"] = {k: v for k, v in (change.old_record or {}).items() if k in kept and k in selectable}
        return orjson.dumps(data), False

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key = headers.get("apikey") or query.get("apikey")
        if self.api_keys:
            if not key:
                await _refuse(send, 401, {"message": "No API key found in request"})
                return
            if key not in self.api_keys:
                await _refuse(send, 401, {"message": "Invalid API key"})
                return
        serializer = serializer_for(query.get("vsn"))
        if serializer is None:
            await _refuse(send, 403, None)
            return
        token = headers.get("x-api-key") or key
        if not token:
            await _refuse(send, 401, {"error": "API key is missing"})
            return
        try:
            self.verifier.claims(token)
        except TokenError as exc:
            text = "Token has expired" if exc.message.startswith("Token has expired") else exc.message
            await _refuse(send, 401, {"error": text})
            return
        await self.start()
        await send({"type": "websocket.accept"})
        socket = Socket(self, send, serializer, token)
        try:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    continue  # binary frames: broadcast only, not implemented
                try:
                    frame = serializer.decode(text)
                except FrameError as exc:
                    log.info("realtime: dropped a malformed frame: %s", exc)
                    continue
                await socket.handle(frame)
        finally:
            socket.closed()


def _discard(index: dict[Any, set[Channel]], key: Any, channel: Channel) -> bool:
    members = index.get(key)
    if members is None or channel not in members:
        return False
    members.discard(channel)
    if not members:
        del index[key]
    return True


async def _refuse(send: Any, status: int, body: dict[str, Any] | None) -> None:
    content = orjson.dumps(body) if body is not None else b""
    with contextlib.suppress(Exception):
        await send({
            "type": "websocket.http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())],
        })
        await send({"type": "websocket.http.response.body", "body": content})


class WithRealtime:
    """Wraps an ASGI app (the gateway) to serve Realtime's WebSocket path beside it."""

    def __init__(self, app: Any, realtime: Realtime) -> None:
        self.app = app
        self.realtime = realtime

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            if scope["path"].rstrip("/") == PATH:
                await self.realtime(scope, receive, send)
            else:
                await receive()
                await _refuse(send, 404, {"message": "no Route matched with those values"})
            return
        if scope["type"] == "lifespan":
            async def receive_and_stop() -> Any:
                message = await receive()
                if message["type"] == "lifespan.shutdown":
                    await self.realtime.stop()
                return message

            await self.app(scope, receive_and_stop, send)
            return
        await self.app(scope, receive, send)
