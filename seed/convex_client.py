"""The seed's client for Convex's HTTP API (``/api/query``, ``/api/mutation``).

A thin httpx client rather than the PyPI ``convex`` package: that one holds the
GIL while it waits (so worker threads would not overlap) and does not expose
its retry policy. This one retries 429/503 and network errors with backoff and
jitter, and nothing else; a function that throws comes back as HTTP 200
``{"status": "error"}`` and is never retried.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from typing import Any

import httpx
import orjson

from harness.settings import url_host

from . import retry
from .errors import SeedError


class ConvexFunctionError(SeedError):
    """The function ran and threw (``ConvexError`` data in ``data``)."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.data = data


class ConvexClient:
    def __init__(
        self,
        url: str,
        admin_key: str,
        *,
        timeout: float = 120.0,
        attempts: int = 7,
        max_connections: int = 16,
        identity: dict[str, Any] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.host = url_host(self.url)
        self.attempts = attempts
        auth = f"Convex {admin_key}"
        if identity is not None:
            # acting as a user: "Convex <key>:<base64(UserIdentityAttributes JSON)>"
            auth += ":" + base64.b64encode(json.dumps(identity).encode()).decode()
        self.client = httpx.Client(
            base_url=self.url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            headers={"Authorization": auth, "Content-Type": "application/json", "Accept": "application/json"},
        )
        self._lock = threading.Lock()
        self.retries = 0

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> ConvexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def encode(path: str, args: dict[str, Any]) -> bytes:
        return orjson.dumps({"path": path, "args": args, "format": "json"})

    def query(self, path: str, args: dict[str, Any], *, attempts: int | None = None) -> Any:
        return self.call_raw("query", path, self.encode(path, args), attempts=attempts)

    def mutation(self, path: str, args: dict[str, Any], *, attempts: int | None = None) -> Any:
        return self.call_raw("mutation", path, self.encode(path, args), attempts=attempts)

    def call_raw(self, kind: str, path: str, body: bytes, *, attempts: int | None = None) -> Any:
        """POST an already encoded ``{"path","args","format"}`` body; return the value."""
        last = ""
        for pause in [*retry.delays(attempts or self.attempts), None]:
            try:
                resp = self.client.post(f"/api/{kind}", content=body)
            except httpx.TransportError as exc:
                last = f"cannot reach CONVEX_URL {self.host}: {type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if resp.status_code not in retry.RETRY_STATUS:
                    return self._result(resp, path)
                last = f"Convex at {self.host} answered {resp.status_code} to {path} repeatedly ({_message(resp)})"
                hinted = retry.retry_after(resp.headers.get("retry-after"))
                if hinted is not None and pause is not None:
                    pause = max(pause, hinted)
            if pause is None:
                break
            with self._lock:
                self.retries += 1
            time.sleep(pause)
        raise SeedError(last)

    def _result(self, resp: httpx.Response, path: str) -> Any:
        if resp.status_code in (401, 403):
            return _raise(
                SeedError(
                    f"CONVEX_ADMIN_KEY was rejected by {self.host} ({resp.status_code}: {_message(resp)})"
                )
            )
        if resp.status_code != 200:
            return _raise(
                SeedError(f"Convex at {self.host} answered {resp.status_code} to {path}: {_message(resp)}")
            )
        try:
            body = orjson.loads(resp.content)
        except orjson.JSONDecodeError:
            return _raise(SeedError(f"Convex at {self.host} sent a non-JSON answer to {path}"))
        if body.get("status") == "success":
            return body.get("value")
        message = str(body.get("errorMessage") or "unknown error")
        first = _headline(message)
        if "Could not find" in message and ("function" in message or "module" in message):
            raise SeedError(
                f"Convex at {self.host} has no function {path} (deploy convex/ with `npx convex deploy`): {first}"
            )
        if (
            "ArgumentValidationError" in message
            or "does not match the schema" in message
            or "Validator" in message
        ):
            raise SeedError(f"Convex schema mismatch at {self.host} ({path}): {first}")
        raise ConvexFunctionError(f"{path} failed on {self.host}: {first}", body.get("errorData"))


_REQUEST_ID = re.compile(r"^\[Request ID: [^\]]*\]\s*")


def _headline(message: str) -> str:
    """The informative line of a Convex error ("[Request ID: …] Server Error" comes first)."""
    for line in message.strip().splitlines():
        line = _REQUEST_ID.sub("", line).strip()
        if line and line != "Server Error":
            return line[:300]
    return message.strip()[:300] or "unknown error"


def _raise(exc: Exception) -> Any:
    raise exc


def _message(resp: httpx.Response) -> str:
    try:
        body = orjson.loads(resp.content)
    except orjson.JSONDecodeError:
        return resp.text[:200].strip() or resp.reason_phrase
    if isinstance(body, dict):
        return str(body.get("message") or body.get("code") or body)[:200]
    return str(body)[:200]
