"""Member access tokens for the Convex query path (and Supabase's anon key + RLS).

Against a deployment the token is ``CONVEX_AUTH_TOKEN``, a real member's
Supabase access token. On the sandbox one is minted per workspace the workload
draws from, signed with the sandbox's issuer key, for a member named by the
workload (or, for a pinned workspace, asked of the sandbox's Supabase).
Tokens are never logged.
"""

from __future__ import annotations

import logging

from harness.settings import Settings
from harness.workload import Workload

log = logging.getLogger("harness")


def member_tokens(settings: Settings, workload: Workload) -> dict[str, str]:
    """Workspace id -> token; empty when ``CONVEX_AUTH_TOKEN`` is set or the target is not the sandbox."""
    if settings.get("CONVEX_AUTH_TOKEN") or not settings.is_sandbox:
        return {}
    try:
        from sandbox.tokens import mint_jwt  # the sandbox's issuer; absent outside the sandbox
    except ImportError:
        log.warning("sandbox.tokens is not available: convex_query runs without a member token")
        return {}
    members = dict(workload.members)
    for ws in {k.workspace_id for k in workload.known} - members.keys():
        user = sandbox_member(settings, ws)
        if user is not None:
            members[ws] = user
    try:
        return {ws: mint_jwt(sub=user, alg="ES256") for ws, user in members.items()}
    except (OSError, ValueError) as e:  # keys of another sandbox state dir (SANDBOX_DIR), or none
        log.warning(f"cannot mint sandbox member tokens ({type(e).__name__}: {e}); set SANDBOX_DIR to the "
                    "running sandbox's state dir, or CONVEX_AUTH_TOKEN")
        return {}


def sandbox_member(settings: Settings, workspace_id: str) -> str | None:
    """A member of a pinned workspace (TEST_WORKSPACE_ID), asked of the sandbox's Supabase once per test."""
    import httpx  # test start only, never on the hot path

    key = settings.get("SUPABASE_SERVICE_ROLE_KEY")
    if not key or not settings.get("SUPABASE_URL"):
        return None
    try:
        resp = httpx.get(
            f"{settings.supabase_url}/rest/v1/workspace_members",
            params={"select": "user_id", "workspace_id": f"eq.{workspace_id}", "order": "created_at", "limit": "1"},
            headers={"apikey": key, "Authorization": f"Bearer {key}"},
            timeout=10.0,
        )
        rows = resp.json() if resp.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        rows = []
    if rows and isinstance(rows[0], dict) and isinstance(rows[0].get("user_id"), str):
        return str(rows[0]["user_id"])
    log.warning(f"workspace {workspace_id} has no member on the sandbox: convex_query will run without a token")
    return None
