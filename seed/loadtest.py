"""The rows the load tests' write task leaves behind, on both backends (docs/formats.md, "Load-test rows").

The write task appends messages with ``message_type = 'loadtest'`` (content
``loadtest <hex>``) and sets its conversation's ``last_message_at`` and
``last_message_preview``. Here: the same data seen as if those writes had not
happened (for parity checks), and ``python -m seed cleanup``, which deletes the
messages and restores each touched conversation from its newest remaining
message, the seed's own rule (preview = the first 100 characters).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .convex_client import ConvexClient
from .supabase_rest import SupabaseRest
from .tables import BY_NAME

MESSAGE_TYPE = "loadtest"
PREVIEW_PREFIX = "loadtest "
PREVIEW_LENGTH = 100
DELETE_CHUNK = 200  # ids per DELETE: keeps the URL well under proxies' limits
CONVEX_PAGE = 1000


def touched(conversation: dict[str, Any]) -> bool:
    """Whether the write task was the last to set this (Supabase-form) conversation's preview."""
    preview = conversation.get("last_message_preview")
    return isinstance(preview, str) and preview.startswith(PREVIEW_PREFIX)


def fields_without_loadtest(rest: SupabaseRest, conversation_id: str) -> dict[str, Any]:
    """``last_message_at`` / ``last_message_preview`` from the newest message that is not a load-test one."""
    resp = rest.request(
        "GET",
        "/messages",
        params={
            "select": "created_at,content",
            "conversation_id": f"eq.{conversation_id}",
            "message_type": f"neq.{MESSAGE_TYPE}",
            "order": "created_at.desc",
            "limit": "1",
        },
    )
    rows = orjson.loads(resp.content)
    if not rows:
        return {"last_message_at": None, "last_message_preview": None}
    return {"last_message_at": rows[0]["created_at"], "last_message_preview": rows[0]["content"][:PREVIEW_LENGTH]}


def _keyset(rest: SupabaseRest, table: str, select: str, filters: dict[str, str]) -> Iterator[list[dict]]:
    after: str | None = None
    while True:
        params = {"select": select, "order": "id.asc", "limit": "1000", **filters}
        if after is not None:
            params["id"] = f"gt.{after}"
        rows = orjson.loads(rest.request("GET", f"/{table}", params=params).content)
        if not rows:
            return
        yield rows
        after = rows[-1]["id"]


@dataclass
class Cleaned:
    deleted: int = 0
    restored: int = 0


def cleanup_supabase(rest: SupabaseRest) -> Cleaned:
    """Delete the loadtest messages, then restore every conversation still showing a load-test write.

    The second pass finds conversations by their preview, so a run interrupted
    between the two is repaired by running it again.
    """
    done = Cleaned()
    messages = BY_NAME["messages"]
    for page in _keyset(rest, "messages", "id", {"message_type": f"eq.{MESSAGE_TYPE}"}):
        ids = [r["id"] for r in page]
        for i in range(0, len(ids), DELETE_CHUNK):
            rest.delete_in(messages, "id", ids[i : i + DELETE_CHUNK])
        done.deleted += len(ids)
    stale = [
        r["id"]
        for page in _keyset(rest, "conversations", "id", {"last_message_preview": f"like.{PREVIEW_PREFIX}*"})
        for r in page
    ]
    for conversation_id in stale:
        rest.request(
            "PATCH",
            "/conversations",
            params={"id": f"eq.{conversation_id}"},
            content=orjson.dumps(fields_without_loadtest(rest, conversation_id)),
            headers={"Content-Type": "application/json", "Prefer": "return=minimal"},
        )
        done.restored += 1
    return done


def cleanup_convex(convex: ConvexClient) -> Cleaned:
    """``loadtest:cleanupPage`` over the messages table, then ``loadtest:restoreConversationsPage``."""
    done = Cleaned()
    for path in ("loadtest:cleanupPage", "loadtest:restoreConversationsPage"):
        cursor: str | None = None
        while True:
            page = convex.mutation(path, {"cursor": cursor, "numItems": CONVEX_PAGE})
            done.deleted += int(page.get("deleted", 0))
            done.restored += int(page.get("restored", 0))
            if page.get("isDone"):
                break
            cursor = page["cursor"]
    return done
