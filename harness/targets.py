"""The seven target paths: ids, hosts, and the exact requests each lookup sends.

Pure functions only (no I/O), so the wire format of every call is unit-tested
without a server; :mod:`harness.users` sends them.  Requests mirror
``nextjs/src/app/api/contacts/by-phone/route.ts`` (the app today) for
``supabase_rest`` and ``docs/formats.md`` for the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson

from harness.contracts import TARGET_IDS, TARGETS, URL_SETTING
from harness.settings import Settings, SettingsError, url_host

MESSAGE_LIMIT = 20
CONVERSATION_LIMIT = 3
NOTE_LIMIT = 10

CONTACT_COLUMNS = (
    "id,workspace_id,phone,name,email,tags,lead_status,lead_score,metadata,created_at,updated_at,"
    "workspace:workspaces(id,name)"
)
CONVERSATION_COLUMNS = "id,status,assigned_to,last_message_at,last_message_preview,unread_count,created_at"
MESSAGE_COLUMNS = "id,conversation_id,direction,sender_type,content,message_type,created_at"
NOTE_COLUMNS = "id,author_id,content,created_at"
NESTED_SELECT = (
    "id,workspace_id,phone,name,email,tags,lead_status,lead_score,metadata,created_at,updated_at,"
    "workspace:workspaces(id,name),"
    f"conversations({CONVERSATION_COLUMNS},messages(id,direction,sender_type,content,message_type,created_at)),"
    f"contact_notes({NOTE_COLUMNS})"
)

# Characters PostgREST's grammar needs literally; everything else is percent-encoded.
_SAFE = "*,.():!"


def query_string(params: Iterable[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe=_SAFE)}={quote(v, safe=_SAFE)}" for k, v in params)


def in_list(values: Iterable[str]) -> str:
    """PostgREST ``in.(…)`` value, quoting elements that hold reserved characters (as supabase-js)."""
    out = []
    for v in values:
        if any(c in v for c in ',:()"\\ '):
            v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(v)
    return f"in.({','.join(out)})"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    what: str  # the second half of the Locust row name: "<target id> <what>"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def __repr__(self) -> str:  # headers carry keys: never shown
        return f"Request({self.method} {self.what})"


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


@dataclass(frozen=True)
class Endpoints:
    """Base URLs and credentials of every configured target.  ``repr`` shows hosts only."""

    supabase_url: str | None = None
    convex_url: str | None = None
    convex_site_url: str | None = None
    app_url: str | None = None
    supabase_key: str | None = None  # sent as `apikey`
    supabase_bearer: str | None = None  # sent as `Authorization: Bearer` when no member token is used
    crm_api_key: str | None = None
    convex_token: str | None = None  # member access token for /api/query (CONVEX_AUTH_TOKEN)

    def __repr__(self) -> str:
        return f"Endpoints({self.hosts()})"

    @classmethod
    def from_settings(cls, settings: Settings) -> Endpoints:
        site: str | None
        try:
            site = settings.convex_site_url if settings.get("CONVEX_URL") or settings.get("CONVEX_SITE_URL") else None
        except SettingsError:
            site = None
        service = settings.get("SUPABASE_SERVICE_ROLE_KEY")
        anon = settings.get("SUPABASE_ANON_KEY")
        return cls(
            supabase_url=settings.get("SUPABASE_URL") and settings.supabase_url,
            convex_url=settings.get("CONVEX_URL") and settings.convex_url,
            convex_site_url=site,
            app_url=settings.app_url,
            # the app's routes use the service role; without it, anon + a member token (RLS applies)
            supabase_key=service or anon,
            supabase_bearer=service,
            crm_api_key=settings.get("CRM_API_KEY"),
            convex_token=settings.get("CONVEX_AUTH_TOKEN"),
        )

    def base_url(self, target: str) -> str | None:
        name = URL_SETTING[target]
        return {
            "SUPABASE_URL": self.supabase_url,
            "CONVEX_URL": self.convex_url,
            "CONVEX_SITE_URL": self.convex_site_url,
            "APP_URL": self.app_url,
        }[name]

    def hosts(self) -> dict[str, str]:
        return {t: url_host(u) for t in TARGET_IDS if (u := self.base_url(t))}

    def missing(self, target: str) -> str | None:
        """One line naming what is not configured for ``target``, or None."""
        if not self.base_url(target):
            return f"{target}: {URL_SETTING[target]} is not set"
        if target.startswith("supabase") and not self.supabase_key:
            return f"{target}: SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_ANON_KEY) is not set"
        if target in ("convex_http", "api_supabase", "api_convex", "convex_sub") and not self.crm_api_key:
            return f"{target}: CRM_API_KEY is not set"
        return None

    # ----------------------------------------------------------------- headers
    def supabase_headers(self, member_token: str | None = None) -> dict[str, str]:
        bearer = self.supabase_bearer or member_token or self.supabase_key or ""
        return {"apikey": self.supabase_key or "", "Authorization": f"Bearer {bearer}", "Accept": "application/json"}

    def api_key_headers(self) -> dict[str, str]:
        return {"x-api-key": self.crm_api_key or "", "Accept": "application/json"}


# --------------------------------------------------------------------------- lookups


def rest_contact(ep: Endpoints, workspace_id: str, phone: str, headers: Mapping[str, str]) -> Request:
    qs = query_string(
        [("select", CONTACT_COLUMNS), ("workspace_id", f"eq.{workspace_id}"), ("phone", f"eq.{phone}"), ("limit", "1")]
    )
    return Request("GET", f"{ep.supabase_url}/rest/v1/contacts?{qs}", "contacts", headers)


def rest_conversations(ep: Endpoints, contact_id: str, headers: Mapping[str, str]) -> Request:
    qs = query_string(
        [
            ("select", CONVERSATION_COLUMNS),
            ("contact_id", f"eq.{contact_id}"),
            ("order", "last_message_at.desc.nullslast"),
            ("limit", str(CONVERSATION_LIMIT)),
        ]
    )
    return Request("GET", f"{ep.supabase_url}/rest/v1/conversations?{qs}", "conversations", headers)


def rest_messages(ep: Endpoints, conversation_ids: list[str], headers: Mapping[str, str]) -> Request:
    qs = query_string(
        [("select", MESSAGE_COLUMNS), ("conversation_id", in_list(conversation_ids)), ("order", "created_at.desc")]
    )
    return Request("GET", f"{ep.supabase_url}/rest/v1/messages?{qs}", "messages", headers)


def rest_notes(ep: Endpoints, contact_id: str, headers: Mapping[str, str]) -> Request:
    qs = query_string(
        [
            ("select", NOTE_COLUMNS),
            ("contact_id", f"eq.{contact_id}"),
            ("order", "created_at.desc"),
            ("limit", str(NOTE_LIMIT)),
        ]
    )
    return Request("GET", f"{ep.supabase_url}/rest/v1/contact_notes?{qs}", "contact_notes", headers)


def nested(ep: Endpoints, workspace_id: str, phone: str, headers: Mapping[str, str]) -> Request:
    qs = query_string(
        [
            ("select", NESTED_SELECT),
            ("workspace_id", f"eq.{workspace_id}"),
            ("phone", f"eq.{phone}"),
            ("conversations.order", "last_message_at.desc.nullslast"),
            ("conversations.limit", str(CONVERSATION_LIMIT)),
            ("conversations.messages.order", "created_at.desc"),
            ("conversations.messages.limit", str(MESSAGE_LIMIT)),
            ("contact_notes.order", "created_at.desc"),
            ("contact_notes.limit", str(NOTE_LIMIT)),
            ("limit", "1"),
        ]
    )
    return Request("GET", f"{ep.supabase_url}/rest/v1/contacts?{qs}", "contacts nested", headers)


def rpc(ep: Endpoints, workspace_id: str, phone: str, headers: Mapping[str, str]) -> Request:
    body = _json({"p_workspace_id": workspace_id, "p_phone": phone, "p_message_limit": MESSAGE_LIMIT})
    hdrs = {**headers, "Content-Type": "application/json"}
    return Request("POST", f"{ep.supabase_url}/rest/v1/rpc/get_contact_context", "rpc/get_contact_context", hdrs, body)


def convex_http(ep: Endpoints, workspace_id: str, phone: str) -> Request:
    qs = query_string([("workspaceId", workspace_id), ("phone", phone)])
    return Request("GET", f"{ep.convex_site_url}/contacts/by-phone?{qs}", "/contacts/by-phone", ep.api_key_headers())


def convex_query(ep: Endpoints, workspace_id: str, phone: str, token: str | None) -> Request:
    body = _json(
        {"path": "contacts:getContextByPhone", "args": {"workspaceId": workspace_id, "phone": phone}, "format": "json"}
    )
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return Request("POST", f"{ep.convex_url}/api/query", "contacts:getContextByPhone", headers, body)


def api_route(ep: Endpoints, target: str, workspace_id: str, phone: str) -> Request:
    route = "/api/contacts/by-phone" if target == "api_supabase" else "/api/contacts/by-phone-convex"
    qs = query_string([("workspaceId", workspace_id), ("phone", phone)])
    return Request("GET", f"{ep.app_url}{route}?{qs}", route, ep.api_key_headers())


# --------------------------------------------------------------------------- writes


def write_message_body(workspace_id: str, conversation_id: str, content: str) -> dict[str, Any]:
    return {
        "workspace_id": workspace_id,
        "conversation_id": conversation_id,
        "direction": "outbound",
        "sender_type": "ai",
        "content": content,
        "message_type": "loadtest",  # marks rows the load tests write (docs/formats.md)
    }


def rest_insert_message(
    ep: Endpoints, workspace_id: str, conversation_id: str, content: str, headers: Mapping[str, str]
) -> Request:
    hdrs = {**headers, "Content-Type": "application/json", "Prefer": "return=minimal"}
    body = _json(write_message_body(workspace_id, conversation_id, content))
    return Request("POST", f"{ep.supabase_url}/rest/v1/messages", "messages insert", hdrs, body)


def rest_touch_conversation(
    ep: Endpoints, conversation_id: str, at_iso: str, preview: str, headers: Mapping[str, str]
) -> Request:
    hdrs = {**headers, "Content-Type": "application/json", "Prefer": "return=minimal"}
    qs = query_string([("id", f"eq.{conversation_id}")])
    body = _json({"last_message_at": at_iso, "last_message_preview": preview[:100]})
    return Request("PATCH", f"{ep.supabase_url}/rest/v1/conversations?{qs}", "conversations update", hdrs, body)


def rest_newest_conversation(ep: Endpoints, contact_id: str, headers: Mapping[str, str]) -> Request:
    qs = query_string(
        [("select", "id"), ("contact_id", f"eq.{contact_id}"), ("order", "last_message_at.desc.nullslast"), ("limit", "1")]
    )
    return Request("GET", f"{ep.supabase_url}/rest/v1/conversations?{qs}", "conversations newest", headers)


def rest_contact_id(ep: Endpoints, workspace_id: str, phone: str, headers: Mapping[str, str]) -> Request:
    qs = query_string([("select", "id"), ("workspace_id", f"eq.{workspace_id}"), ("phone", f"eq.{phone}"), ("limit", "1")])
    return Request("GET", f"{ep.supabase_url}/rest/v1/contacts?{qs}", "contacts id", headers)


def convex_outbound(ep: Endpoints, workspace_id: str, phone: str, content: str) -> Request:
    hdrs = {**ep.api_key_headers(), "Content-Type": "application/json"}
    body = _json({"workspaceId": workspace_id, "phone": phone, "content": content})
    return Request("POST", f"{ep.convex_site_url}/messages/outbound", "/messages/outbound", hdrs, body)


def describe(ep: Endpoints, targets: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Artifact metadata: host, level and round trips per target; never a key."""
    out: dict[str, dict[str, Any]] = {}
    for t in targets:
        base = ep.base_url(t)
        info = TARGETS[t]
        out[t] = {"host": url_host(base) if base else None, "level": info.level, "round_trips": info.round_trips}
    return out
