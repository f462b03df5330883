"""``python -m sandbox up|down|status|env|token|rest``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path


def _rest(args: argparse.Namespace) -> int:
    from .rest.server import serve

    return serve(args)


def _uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a uuid: {text!r}") from None


def _positive_seconds(text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of seconds above 0, not {text!r}")
    return int(text)


def _token(args: argparse.Namespace) -> int:
    from .tokens import NoMember, member_token

    state = Path(os.environ["SANDBOX_DIR"]) if os.environ.get("SANDBOX_DIR") else None
    try:
        print(member_token(args.workspace, args.role, args.ttl, state))
    except NoMember as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, never a traceback
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    return 0


def _env_bool(name: str, default: bool) -> bool:
    """A PGRST_* boolean as PostgREST reads it (true/false in any case, or an integer > 0)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    from .rest.app import coerce_bool

    value = coerce_bool(raw)
    return default if value is None else value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The local sandbox stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the services in the background and print the env")
    p_up.add_argument("--services", help="comma-separated: postgres,supabase,convex,... (default: all available)")
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="which services are running and healthy")
    sub.add_parser("env", help="print the sandbox env (dotenv form)")
    p_token = sub.add_parser(
        "token",
        help="print a fresh access token of a workspace member (accepted by the gateway, Realtime and Convex)",
        description="Prints an ES256 access token, shaped like Supabase Auth's, for a member of the workspace "
        "(its owner with --role owner, else its longest-standing admin or agent). The gateway, Realtime and the "
        "Convex runtime accept it; Convex functions see the member only once the data is migrated (seed migrate). "
        "Example: curl -H \"apikey: $SUPABASE_ANON_KEY\" -H \"Authorization: Bearer $(python -m sandbox token "
        "--workspace ID)\" $SUPABASE_URL/rest/v1/conversations",
    )
    p_token.add_argument("--workspace", required=True, type=_uuid, help="the workspace's uuid")
    p_token.add_argument("--role", choices=["member", "owner"], default="member")
    p_token.add_argument("--ttl", type=_positive_seconds, default=3600, help="seconds until it expires (default 3600)")
    p_rest = sub.add_parser("rest", help="run the PostgREST-compatible gateway in the foreground")
    p_rest.add_argument("--db-uri", default=os.environ.get("PGRST_DB_URI"), help="PostgreSQL URI (PGRST_DB_URI)")
    p_rest.add_argument(
        "--db-schemas", default=os.environ.get("PGRST_DB_SCHEMAS", "public"), help="exposed schemas, first is the default"
    )
    p_rest.add_argument(
        "--db-anon-role", default=os.environ.get("PGRST_DB_ANON_ROLE", "anon"), help="empty: anonymous access disabled"
    )
    p_rest.add_argument("--db-extra-search-path", default=os.environ.get("PGRST_DB_EXTRA_SEARCH_PATH", "public"))
    p_rest.add_argument("--db-max-rows", default=os.environ.get("PGRST_DB_MAX_ROWS", "1000"), help="0: no cap")
    p_rest.add_argument("--db-pool", type=int, default=int(os.environ.get("PGRST_DB_POOL", "10")), help="connections")
    p_rest.add_argument(
        "--jwt-secret", default=os.environ.get("PGRST_JWT_SECRET"), help="HS256 secret or a JWK/JWKS (prefer PGRST_JWT_SECRET)"
    )
    p_rest.add_argument("--jwks-file", default=os.environ.get("GATEWAY_JWKS_FILE"), help="public JWKS also accepted and served")
    for name, help_text in (
        ("server-timing-enabled", "Server-Timing header on successful responses"),
        ("db-plan-enabled", "the application/vnd.pgrst.plan media type (EXPLAIN)"),
        ("db-aggregates-enabled", "aggregate functions in select (count(), sum(), ...)"),
        ("db-config", "read the login role's in-database pgrst.* settings (default on)"),
    ):
        env_name = "PGRST_" + name.upper().replace("-", "_")
        p_rest.add_argument(
            f"--{name}",
            action=argparse.BooleanOptionalAction,
            default=_env_bool(env_name, name == "db-config"),
            help=f"{help_text} ({env_name})",
        )
    p_rest.add_argument("--host", default=os.environ.get("PGRST_SERVER_HOST", "127.0.0.1"))
    p_rest.add_argument("--port", type=int, default=int(os.environ.get("PGRST_SERVER_PORT", "3000")))
    args = parser.parse_args(argv)

    if args.command == "rest":
        return _rest(args)
    if args.command == "token":
        return _token(args)

    from .launcher import LauncherError, down, read_env, status, up

    state = Path(os.environ["SANDBOX_DIR"]) if os.environ.get("SANDBOX_DIR") else None
    try:
        if args.command == "up":
            services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
            env = up(services, state)
            sys.stdout.write("".join(f"{k}={v}\n" for k, v in env.items()))
        elif args.command == "down":
            stopped = down(state)
            print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"), file=sys.stderr)
        elif args.command == "status":
            result = status(state)
            print(json.dumps(result))
            return 0 if result and all(result.values()) else 1
        elif args.command == "env":
            env = read_env(state)
            if not env:
                print("error: the sandbox has not been started (run `python -m sandbox up`)", file=sys.stderr)
                return 1
            sys.stdout.write("".join(f"{k}={v}\n" for k, v in env.items()))
    except LauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, never a traceback with secrets in it
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    return 0
