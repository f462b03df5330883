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


def sqlstate_status(sqlstate: str, authenticated: bool) -> int:
    if sqlstate.startswith("PT") and sqlstate[2:].isdigit():
        return int(sqlstate[2:])
    if sqlstate == "42501":
        return 403 if authenticated else 401
    exact = {
        "23503": 409,
        "23505": 409,
        "25006": 405,
        "42883": 404,
        "42P01": 404,
        "57014": 500,
        "P0001": 400,
        "40001": 409,
        "40P01": 409,
        "23P01": 409,
        "0L000": 403,
        "0LP01": 403,
        "28000": 403,
        "28P01": 403,
        "P0002": 404,
        "P0003": 409,
        "42P17": 500,
        "57P01": 503,
        "57P02": 503,
        "57P03": 503,
    }
    if sqlstate in exact:
        return exact[sqlstate]
    prefix = sqlstate[:2]
    if prefix in ("08", "53"):
        return 503
    if prefix in ("09", "0L", "0P", "2F", "38", "39", "3B"):
        return 500
    if prefix in ("25", "F0", "HV", "P0", "XX", "54", "55", "58"):
        return 500
    if prefix == "23":
        return 409
    if prefix in ("42", "22", "21"):
        return 400
    return 400


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
