"""The sandbox's Supabase Realtime: ``postgres_changes`` over Phoenix channels.

Served by the gateway process on the Supabase port at ``/realtime/v1/websocket``
(``with_realtime`` wraps the gateway's ASGI app). The database side is
``schema.sql`` (capture triggers + NOTIFY, applied by ``python -m sandbox up``);
see sandbox/README.md for what differs from hosted Realtime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from .auth import TokenVerifier
from .server import PATH, Realtime, WithRealtime

SCHEMA_SQL = Path(__file__).with_name("schema.sql")

__all__ = ["PATH", "SCHEMA_SQL", "Realtime", "WithRealtime", "with_realtime"]


def with_realtime(app: Any, config: Any) -> WithRealtime:
    """``app`` plus Realtime, configured like the gateway: ``config.db_uri``,
    ``jwt_secret`` (HS256 secret, or a JWK/JWKS), ``jwks`` and ``api_keys``."""
    secret = config.jwt_secret
    jwks = list(config.jwks or [])
    if secret and secret.lstrip().startswith("{"):
        parsed = orjson.loads(secret)
        jwks += parsed.get("keys") or [parsed]
        secret = None
    verifier = TokenVerifier(secret, jwks)
    return WithRealtime(app, Realtime(config.db_uri, verifier, set(config.api_keys or ())))
