"""The six CRM tables as the seed sees them: Supabase columns, Convex fields, and
the conversion between a Supabase row and its Convex form (docs/formats.md).

Convex form: camelCase fields, ``supabaseId`` for ``id``, epoch-millisecond
integers for times, references as the referenced row's Supabase uuid, and a
null column omitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# column kinds
UUID = "uuid"
TEXT = "text"
INT = "int"
TS = "ts"
TAGS = "tags"
JSON = "json"


@dataclass(frozen=True)
class Column:
    name: str  # Supabase column
    field: str  # Convex field
    kind: str
    nullable: bool = False
    ref: str | None = None  # referenced Supabase table


@dataclass(frozen=True)
class Table:
    name: str  # Supabase table
    convex: str  # Convex table
    columns: tuple[Column, ...]

    @property
    def mutation(self) -> str:
        return "migrate:upsert" + self.convex[0].upper() + self.convex[1:]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def refs(self) -> list[Column]:
        return [c for c in self.columns if c.ref]


def _c(name: str, field: str, kind: str, nullable: bool = False, ref: str | None = None) -> Column:
    return Column(name, field, kind, nullable, ref)


_ID = _c("id", "supabaseId", UUID)
_WS = _c("workspace_id", "workspaceId", UUID, ref="workspaces")

TABLES: tuple[Table, ...] = (
    Table(
        "workspaces",
        "workspaces",
        (_ID, _c("name", "name", TEXT), _c("slug", "slug", TEXT), _c("created_at", "createdAt", TS)),
    ),
    Table(
        "workspace_members",
        "workspaceMembers",
        (
            _ID,
            _WS,
            _c("user_id", "userId", UUID),
            _c("role", "role", TEXT),
            _c("created_at", "createdAt", TS),
        ),
    ),
    Table(
        "contacts",
        "contacts",
        (
            _ID,
            _WS,
            _c("phone", "phone", TEXT),
            _c("name", "name", TEXT, True),
            _c("email", "email", TEXT, True),
            _c("tags", "tags", TAGS),
            _c("lead_status", "leadStatus", TEXT, True),
            _c("lead_score", "leadScore", INT, True),
            _c("metadata", "metadata", JSON, True),
            _c("created_at", "createdAt", TS),
            _c("updated_at", "updatedAt", TS),
        ),
    ),
    Table(
        "conversations",
        "conversations",
        (
            _ID,
            _WS,
            _c("contact_id", "contactId", UUID, ref="contacts"),
            _c("status", "status", TEXT),
            _c("assigned_to", "assignedTo", UUID, True),
            _c("last_message_at", "lastMessageAt", TS, True),
            _c("last_message_preview", "lastMessagePreview", TEXT, True),
            _c("unread_count", "unreadCount", INT),
            _c("created_at", "createdAt", TS),
        ),
    ),
    Table(
        "messages",
        "messages",
        (
            _ID,
            _WS,
            _c("conversation_id", "conversationId", UUID, ref="conversations"),
            _c("direction", "direction", TEXT),
            _c("sender_type", "senderType", TEXT),
            _c("content", "content", TEXT),
            _c("message_type", "messageType", TEXT),
            _c("created_at", "createdAt", TS),
        ),
    ),
    Table(
        "contact_notes",
        "contactNotes",
        (
            _ID,
            _WS,
            _c("contact_id", "contactId", UUID, ref="contacts"),
            _c("author_id", "authorId", UUID, True),
            _c("content", "content", TEXT),
            _c("created_at", "createdAt", TS),
        ),
    ),
)

BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}
BY_CONVEX: dict[str, Table] = {t.convex: t for t in TABLES}


def table(name: str) -> Table:
    """A table by its Supabase or Convex name."""
    found = BY_NAME.get(name) or BY_CONVEX.get(name)
    if found is None:
        raise KeyError(name)
    return found


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_epoch_ms(value: Any) -> int:
    """A timestamptz (datetime, PostgREST's ISO string, or ms already) -> epoch ms, floored like the RPC."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        value = parse_timestamp(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a timestamp: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    # integer arithmetic: float seconds lose the microseconds of far dates
    return (delta.days * 86_400_000_000 + delta.seconds * 1_000_000 + delta.microseconds) // 1000


def parse_timestamp(text: str) -> datetime:
    """PostgREST renders timestamptz as ``2026-01-21T10:00:00.123+00:00`` (fraction optional)."""
    s = text.strip().replace(" ", "T", 1)
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    # Python < 3.11 needs 0/3/6 fraction digits; 3.11's fromisoformat accepts any, but pad anyway
    head, sep, tail = s.partition(".")
    if sep:
        digits = ""
        rest = tail
        while rest and rest[0].isdigit():
            digits += rest[0]
            rest = rest[1:]
        s = f"{head}.{(digits + '000000')[:6]}{rest}"
    # "+00" (PostgreSQL's text form) -> "+00:00"
    if len(s) >= 3 and s[-3] in "+-" and s[-2:].isdigit():
        s += ":00"
    return datetime.fromisoformat(s)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms // 1000, tz=UTC).replace(microsecond=(ms % 1000) * 1000)


def to_convex(tbl: Table, row: dict[str, Any]) -> dict[str, Any]:
    """A Supabase row (REST JSON or psycopg values) -> its Convex form; nulls omitted."""
    out: dict[str, Any] = {}
    for col in tbl.columns:
        value = row.get(col.name)
        if value is None:
            continue
        if col.kind == TS:
            value = to_epoch_ms(value)
        elif col.kind == UUID:
            value = str(value)
        elif col.kind == TAGS:
            value = list(value)
        out[col.field] = value
    return out
