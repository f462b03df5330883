"""PostgREST error bodies and the SQLSTATE -> HTTP status mapping (v14)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error answered as ``{"code","message","details","hint"}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: str | None = None,
        hint: str | None = None,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or []

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}


class PlainError(Exception):
    """A gateway (Kong-like) error: a body that is not PostgREST's shape."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", ""))
        self.status = status
        self.body = body


def parse_error(what: str, value: str, details: str) -> ApiError:
    return ApiError(400, "PGRST100", f'"failed to parse {what} ({value})" (line 1, column 1)', details)


_EXACT = {
    "23503": 409,
    "23505": 409,
    "25006": 405,
    "42883": 404,
    "42P01": 404,
    "42P17": 500,
    "P0001": 400,
    "57014": 500,
    "57P01": 503,
}
_BY_CLASS = {
    "08": 503,
    "09": 500,
    "0L": 403,
    "0P": 403,
    "25": 500,
    "28": 403,
    "2D": 500,
    "38": 500,
    "39": 500,
    "3B": 500,
    "40": 500,
    "53": 503,
    "54": 500,
    "55": 500,
    "57": 500,
    "58": 500,
    "F0": 500,
    "HV": 500,
    "P0": 500,
    "XX": 500,
}


def sqlstate_status(sqlstate: str, authenticated: bool) -> int:
    """PostgREST's Error.hs mapping; everything not listed is 400."""
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 403 if authenticated else 401
    if sqlstate in _EXACT:
        return _EXACT[sqlstate]
    return _BY_CLASS.get(sqlstate[:2], 400)


def from_pg(exc: Any, authenticated: bool) -> ApiError:
    """Turn an asyncpg PostgresError into PostgREST's error body."""
    sqlstate = getattr(exc, "sqlstate", None) or "XX000"
    message = getattr(exc, "message", None) or str(exc)
    details = getattr(exc, "detail", None)
    hint = getattr(exc, "hint", None)
    status = sqlstate_status(sqlstate, authenticated)
    if sqlstate == "22023" and "role" in message and "does not exist" in message:
        status = 401
    headers: list[tuple[bytes, bytes]] = []
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    return ApiError(status, sqlstate, message, details, hint, headers)
