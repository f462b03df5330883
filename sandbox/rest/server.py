"""Run the gateway under uvicorn (httptools + uvloop)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .app import Config, Gateway


def config_from_args(args: argparse.Namespace) -> Config:
    if not args.db_uri:
        raise SystemExit("error: --db-uri (or PGRST_DB_URI) is required")
    jwks: list[dict[str, object]] = []
    public = None
    if args.jwks_file:
        public = json.loads(Path(args.jwks_file).read_text())
        jwks = list(public.get("keys", []))
    import os

    api_keys = {k: "key" for k in os.environ.get("GATEWAY_API_KEYS", "").split(",") if k}
    max_rows = None if str(args.db_max_rows).strip() in ("", "0", "none") else int(args.db_max_rows)
    return Config(
        db_uri=args.db_uri,
        schemas=[s.strip() for s in args.db_schemas.split(",") if s.strip()],
        anon_role=args.db_anon_role or None,
        jwt_secret=args.jwt_secret,
        jwks=jwks,
        max_rows=max_rows,
        pool_size=args.db_pool,
        extra_search_path=[s.strip() for s in args.db_extra_search_path.split(",") if s.strip()],
        api_keys=api_keys,
        public_jwks=public,
        server_timing_enabled=args.server_timing_enabled,
        db_plan_enabled=args.db_plan_enabled,
        db_aggregates_enabled=args.db_aggregates_enabled,
        db_config=args.db_config,
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    config = config_from_args(args)
    from sandbox.realtime import with_realtime

    app = with_realtime(Gateway(config), config)  # + Supabase Realtime at /realtime/v1/websocket
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        proxy_headers=False,
        ws="websockets-sansio",  # Realtime's WebSocket
        ws_per_message_deflate=False,
        interface="asgi3",
        date_header=True,
    )
    return 0
