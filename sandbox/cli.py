"""``python -m sandbox up|down|status|env|network|token|rest|relay``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any


def _rest(args: argparse.Namespace) -> int:
    from .rest.server import serve

    return serve(args)


def _relay(args: argparse.Namespace) -> int:
    from .network import Jitter, LinkSpec, NetworkError, parse_bandwidth, parse_duration
    from .network.relay import Route, serve

    try:
        routes = []
        for text in args.route:
            listen, sep, upstream = text.partition("=")
            host, _, port = upstream.rpartition(":")
            if not sep or not listen.isdigit() or not port.isdigit():
                raise NetworkError(f"--route: {text!r} is not LISTEN=HOST:PORT (e.g. 54401=127.0.0.1:54321)")
            routes.append(Route(int(listen), int(port), upstream_host=host or "127.0.0.1"))
        jitter = Jitter()
        if args.jitter:
            dist, _, sigma = args.jitter.partition(":")
            from .network.profile import DISTRIBUTIONS

            if dist not in DISTRIBUTIONS or not sigma:
                raise NetworkError(f"--jitter: {args.jitter!r} is not DISTRIBUTION:SIGMA (e.g. normal:2ms; "
                                   f"distributions: {', '.join(DISTRIBUTIONS)})")
            jitter = Jitter(dist, parse_duration(sigma, "--jitter"))
        spec = LinkSpec(
            rtt_s=parse_duration(args.rtt, "--rtt"),
            jitter=jitter,
            bandwidth_bps=parse_bandwidth(args.bandwidth, "--bandwidth") if args.bandwidth else None,
            tls=args.tls,
        )
    except NetworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return serve(args.link, spec, routes, args.seed, priority=not args.normal_priority)


def _show_network(args: argparse.Namespace, state: Path | None) -> int:
    from .launcher import state_dir_of
    from .network import active_profile, resolve, summary

    if args.list:
        from .network import shipped

        for name in shipped():
            profile = resolve(name)
            print(f"{name:16} {profile.description}")
        return 0
    meta: dict[str, Any] | None
    if args.profile or args.network_rtt:
        meta = resolve(args.profile, args.network_rtt).to_dict()
    else:
        meta = active_profile(state_dir_of(state))
        if meta is None:
            print("error: the sandbox has not been started (run `python -m sandbox up`)", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    print(summary(meta))
    print(f"{'link':13} {'from -> to':34} {'RTT':>9} {'jitter':>16} {'TLS':>4} {'setup':>6} {'bandwidth':>11}  relay")
    for name, link in meta["links"].items():
        jitter = link["jitter"]
        jit = "-" if jitter["distribution"] == "none" else f"{jitter['distribution']} {jitter['sigma_ms']:g}ms"
        bw = "-" if link["bandwidth_mbit"] is None else f"{link['bandwidth_mbit']:g} Mbit/s"
        ports = ", ".join(f"{p['listen']}->{p['upstream']}" for p in link["ports"]) if link["relayed"] else "direct"
        print(f"{name:13} {link['from'] + ' -> ' + link['to']:34} {link['rtt_ms']:>7g}ms {jit:>16} "
              f"{link['tls']:>4} {link['setup_rtts']:>4}RT {bw:>11}  {ports}")
    return 0


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="The local sandbox stack.")
    sub = parser.add_subparsers(dest="command", required=True)
    p_up = sub.add_parser("up", help="start the services in the background and print the env")
    p_up.add_argument("--services", help="comma-separated: postgres,supabase,convex,... (default: all available)")
    p_up.add_argument(
        "--network", metavar="PROFILE",
        help="latency on the links: a shipped profile (loopback, same-region, cross-region-us, asia-us, spike) "
             "or a .toml/.json profile file (default: loopback, no relays); docs/network.md",
    )
    p_up.add_argument(
        "--network-rtt", metavar="LINK=DURATION[,...]",
        help="override links' RTT on top of the profile, e.g. supabase=80ms,convex=20ms "
             "(links: supabase, convex, app, app-supabase, app-convex)",
    )
    sub.add_parser("down", help="stop what `up` started")
    sub.add_parser("status", help="which services are running and healthy")
    sub.add_parser("env", help="print the sandbox env (dotenv form)")
    p_net = sub.add_parser("network", help="show the active network profile, or resolve one without starting it")
    p_net.add_argument("profile", nargs="?", help="a shipped profile or a profile file (default: the active one)")
    p_net.add_argument("--network-rtt", metavar="LINK=DURATION[,...]", help="RTT overrides, as for `up`")
    p_net.add_argument("--list", action="store_true", help="list the shipped profiles")
    p_net.add_argument("--json", action="store_true", help="print the profile's JSON (what network.json holds)")
    p_relay = sub.add_parser("relay", help="run one link's latency relay in the foreground")
    p_relay.add_argument("--link", default="link", help="the link's name (for logs)")
    p_relay.add_argument("--route", action="append", required=True, metavar="LISTEN=HOST:PORT",
                         help="listen on 127.0.0.1:LISTEN, forward to HOST:PORT (repeatable; the routes share the link)")
    p_relay.add_argument("--rtt", default="0ms", help="round-trip time, half each way (e.g. 80ms)")
    p_relay.add_argument("--jitter", metavar="DIST:SIGMA", help="e.g. normal:2ms (normal, uniform, pareto)")
    p_relay.add_argument("--bandwidth", help="cap per direction, shared by the link's connections (e.g. 100mbit)")
    p_relay.add_argument("--tls", choices=("none", "1.2", "1.3"), default="none",
                         help="new connections also wait the TLS handshake: 1 RTT (1.3) or 2 (1.2)")
    p_relay.add_argument("--seed", type=int, help="seed of the jitter samples")
    p_relay.add_argument("--normal-priority", action="store_true",
                         help="do not ask for real-time scheduling (by default asked for, when permitted, "
                              "so wake-ups stay on time on a busy machine)")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    if args.command == "rest":
        return _rest(args)
    if args.command == "relay":
        return _relay(args)
    if args.command == "token":
        return _token(args)

    from .launcher import LauncherError, down, read_env, status, up
    from .network import NetworkError, resolve

    state = Path(os.environ["SANDBOX_DIR"]) if os.environ.get("SANDBOX_DIR") else None
    try:
        if args.command == "network":
            return _show_network(args, state)
        if args.command == "up":
            services = [s.strip() for s in args.services.split(",") if s.strip()] if args.services else None
            profile = resolve(args.network, args.network_rtt)
            env = up(services, state, profile)
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
    except NetworkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LauncherError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line, never a traceback with secrets in it
        print(f"error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", file=sys.stderr)
        return 1
    return 0
