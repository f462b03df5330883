"""AI-context lookup load: one user class per target id (docs/formats.md, docs/load-testing.md).

The realtime targets (``--targets convex_sub supabase_realtime``) measure how fast
an agent's inbox sees a new message; they run only when asked for.

    locust -f locustfiles/ai_context.py --headless -u 20 -r 10 -t 60s --csv runs/x

The harness (options, HDR, workload hand-off, Decision tab, exit code) is wired
by importing ``harness.runtime``.
"""

from locust import events  # noqa: F401  (locust first: gevent patching)

import harness.runtime  # noqa: F401  (registers the harness's event listeners)
from harness.users import (
    ApiConvexUser,
    ApiSupabaseUser,
    ConvexHttpUser,
    ConvexQueryUser,
    ConvexSubUser,
    SupabaseNestedUser,
    SupabaseRealtimeUser,
    SupabaseRestUser,
    SupabaseRpcUser,
)

__all__ = [
    "ApiConvexUser",
    "ApiSupabaseUser",
    "ConvexHttpUser",
    "ConvexQueryUser",
    "ConvexSubUser",
    "SupabaseNestedUser",
    "SupabaseRealtimeUser",
    "SupabaseRestUser",
    "SupabaseRpcUser",
]
