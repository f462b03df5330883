"""What a failed request most likely means, and what to do about it: one line per kind.

Shared by the harness's preflight (before any user starts) and the report's
"Failures" section, so a 401 reads the same in both. Errors are the harness's
own failure texts (``contacts: HTTP 401: …``, ``convex error: Unauthenticated``,
``contact not found for a known phone``), as Locust's failures CSV holds them,
possibly wrapped in the exception's repr.
"""

from __future__ import annotations

import re

from harness.contracts import TRANSACTION_TYPES

# the setting(s) that authenticate each target's requests
CREDENTIALS: dict[str, str] = {
    "supabase_rest": "SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_ANON_KEY with a member token)",
    "supabase_nested": "SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_ANON_KEY with a member token)",
    "supabase_rpc": "SUPABASE_SERVICE_ROLE_KEY (or SUPABASE_ANON_KEY with a member token)",
    "convex_http": "CRM_API_KEY",
    "convex_query": "CONVEX_AUTH_TOKEN",
    "api_supabase": "CRM_API_KEY",
    "api_convex": "CRM_API_KEY",
}
_FIX: dict[str, str] = {
    "supabase": "copy the key from the Supabase dashboard (Project Settings > API Keys)",
    "convex_http": "it must equal the Convex deployment's CRM_API_KEY (`npx convex env get CRM_API_KEY`)",
    "convex_query": "a workspace member's Supabase access token, signed with the asymmetric key "
    "Convex's auth config trusts (SUPABASE_JWKS_URL / SUPABASE_JWT_ISSUER on the deployment)",
    "api": "it must equal the CRM_API_KEY the Next.js app runs with",
}

_STATUS = re.compile(r"HTTP (\d{3})")


def status_of(error: str) -> int | None:
    """The HTTP status a failure text names; 0 for a connection error; None when it names none."""
    if "connection error" in error:
        return 0
    m = _STATUS.search(error)
    return int(m.group(1)) if m else None


def credential_fix(target: str) -> str:
    family = "supabase" if target.startswith("supabase") else "api" if target.startswith("api") else target
    return _FIX.get(family, "")


def auth_hint(target: str, credential: str | None = None) -> str:
    what = credential or CREDENTIALS.get(target, "the target's key")
    fix = credential_fix(target)
    return f"check {what}" + (f": {fix}" if fix else "")


def hint(target: str, error: str, transaction: str | None = None) -> str | None:
    """A one-line likely cause and fix for one failure text, or None when nothing better than the text itself."""
    status = status_of(error)
    lowered = error.lower()
    if status in (401, 403) or "unauthenticated" in lowered or "invalid x-api-key" in lowered:
        return f"authentication refused: {auth_hint(target)}"
    if "contact not found for a known phone" in lowered or (status == 404 and transaction == "lookup"):
        return ("a known phone was not found: the workload comes from another dataset (rerun `python -m seed "
                "workload`), or this backend lacks the data (`python -m seed migrate`, `python -m seed verify`)")
    if "contact found for an unknown phone" in lowered:
        return "a phone that should not exist was found: the workload's unknown phones were added to the data"
    if status == 429:
        return ("rate limited (429): the backend caps concurrent requests; lower the users or the open-model rate, "
                "or raise the plan's limit")
    if status == 0:
        return "no connection: the host refused or dropped it (down, overloaded, or a connection cap reached)"
    if status is not None and status >= 500:
        return f"server error ({status}): see the backend's logs for these requests"
    if "forbidden" in lowered or "not a member" in lowered:
        return f"the token's user is not a member of the workspace: {auth_hint(target)}"
    return None


# Locust's failures CSV stores the exception's repr: CallFailed('contacts: HTTP 401: …')
_WRAPPED = re.compile(r"""^\w+\((['"])(.*)\1\)$""", re.S)


def unwrap(error: str) -> str:
    m = _WRAPPED.match(error.strip())
    return m.group(2) if m else error.strip()


def reasons(rows: list[tuple[str, str, str, int]], target: str, top: int = 5) -> list[tuple[str, str, int]]:
    """(transaction type, error, occurrences) of the target's failed transactions, most frequent first.

    ``rows`` are Locust's failures (method, name, error, occurrences); the HTTP call rows repeat their
    transaction's error, so only transaction rows (method lookup, lookup-miss or write) are counted.
    """
    merged: dict[tuple[str, str], int] = {}
    for method, name, error, n in rows:
        if name == target and method in TRANSACTION_TYPES:
            key = (method, unwrap(error))
            merged[key] = merged.get(key, 0) + n
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    return [(m, e, n) for (m, e), n in ranked[:top]]
