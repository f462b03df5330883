"""Phoenix channel frames in the two serializers Realtime offers.

``vsn=1.0.0`` (Phoenix.Socket.V1.JSONSerializer): JSON objects; from the
server ``{topic, event, payload, ref}`` (V1 never carries ``join_ref``).
``vsn=2.0.0`` (RealtimeWeb.Socket.V2Serializer, text frames): JSON arrays
``[join_ref, ref, topic, event, payload]``. A missing ``vsn`` is 1.0.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


class FrameError(ValueError):
    pass


@dataclass
class Frame:
    topic: str
    event: str
    payload: Any
    ref: str | None
    join_ref: str | None


def _ref(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise FrameError(f"invalid ref {value!r}")


class Serializer:
    version: str

    def decode(self, text: str | bytes) -> Frame:
        raise NotImplementedError

    def message(self, topic: str, event: str, payload: Any, ref: str | None, join_ref: str | None) -> str:
        """A server message (a push, a reply, or a broadcast when ref and join_ref are None)."""
        raise NotImplementedError

    def reply(self, frame: Frame, status: str, response: Any) -> str:
        return self.message(frame.topic, "phx_reply", {"status": status, "response": response}, frame.ref, frame.join_ref)

    def broadcast_prefix(self, topic: str, event: str) -> bytes:
        """Everything of a broadcast frame before its payload (fan-out encodes the rest once)."""
        raise NotImplementedError

    def broadcast_suffix(self) -> bytes:
        raise NotImplementedError


class V1(Serializer):
    version = "1.0.0"

    def decode(self, text: str | bytes) -> Frame:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FrameError(str(exc)) from None
        if not isinstance(data, dict) or not isinstance(data.get("topic"), str) or not isinstance(data.get("event"), str):
            raise FrameError("expected {topic, event, payload, ref}")
        return Frame(data["topic"], data["event"], data.get("payload"), _ref(data.get("ref")), _ref(data.get("join_ref")))

    def message(self, topic: str, event: str, payload: Any, ref: str | None, join_ref: str | None) -> str:
        return orjson.dumps({"topic": topic, "event": event, "payload": payload, "ref": ref}).decode()

    def broadcast_prefix(self, topic: str, event: str) -> bytes:
        return b'{"topic":' + orjson.dumps(topic) + b',"event":' + orjson.dumps(event) + b',"payload":'

    def broadcast_suffix(self) -> bytes:
        return b',"ref":null}'


class V2(Serializer):
    version = "2.0.0"

    def decode(self, text: str | bytes) -> Frame:
        try:
            data = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise FrameError(str(exc)) from None
        if not isinstance(data, list) or len(data) != 5 or not isinstance(data[2], str) or not isinstance(data[3], str):
            raise FrameError("expected [join_ref, ref, topic, event, payload]")
        return Frame(data[2], data[3], data[4], _ref(data[1]), _ref(data[0]))

    def message(self, topic: str, event: str, payload: Any, ref: str | None, join_ref: str | None) -> str:
        return orjson.dumps([join_ref, ref, topic, event, payload]).decode()

    def broadcast_prefix(self, topic: str, event: str) -> bytes:
        return b"[null,null," + orjson.dumps(topic) + b"," + orjson.dumps(event) + b","

    def broadcast_suffix(self) -> bytes:
        return b"]"


def serializer_for(vsn: str | None) -> Serializer | None:
    """Phoenix negotiates `~> 1.0.0` and `~> 2.0.0`; anything else is refused."""
    parts = (vsn or "1.0.0").split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    major, minor = int(parts[0]), int(parts[1])
    if (major, minor) == (1, 0):
        return V1()
    if (major, minor) == (2, 0):
        return V2()
    return None
