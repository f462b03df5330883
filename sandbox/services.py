"""The sandbox's services: what to run, how to tell it is healthy, what it exports.

Adding a service is one entry: write a module that defines a :class:`Service`
(e.g. ``sandbox/nextjs.py`` with ``SERVICE = Service(name="nextjs", ...)``) and
add one line ``"sandbox.nextjs:SERVICE",`` to :data:`PLUGINS`. Entries are
loaded lazily, so the module may import this one. ``python -m sandbox up``
starts every available service in registry order (``postgres`` and
``supabase`` first); ``--services a,b`` picks some.

A service is a detached process started from ``argv(ctx)`` with ``env(ctx)``
added to the environment, logging to ``<state>/logs/<name>.log``, with its pid
in ``<state>/<name>.pid``; it is healthy when ``health_url`` answers 2xx.
``prepare(ctx)`` runs before start (a build step, writing config files), and
on every ``up`` when ``prepare_on_reuse`` (the gateway: migrations);
``exports(ctx)`` adds lines to ``<state>/env``; ``available(ctx)`` returns
``None`` or the reason the service is skipped. A service with custom
``start``/``stop``/``running`` hooks (PostgreSQL) manages its own process.
"""

from __future__ import annotations

import importlib
import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .postgres import Postgres

ROOT = Path(__file__).resolve().parent.parent
SUPABASE_PORT = 54321
CONVEX_PORT = 3210
CONVEX_SITE_PORT = 3211
CONVEX_RUNTIME = ROOT / "sandbox" / "convex_runtime" / "bin" / "convex-sandbox.mjs"


@dataclass
class Context:
    """What a service needs to know: the state dir and the env being built."""

    state_dir: Path
    env: dict[str, str]
    root: Path = ROOT

    def secret(self, name: str, factory: Callable[[], str] | None = None) -> str:
        """A secret kept in ``<state>/keys/<name>``, generated once."""
        path = self.state_dir / "keys" / name
        if not path.exists():
            from .postgres import _write_secret

            _write_secret(path, (factory or (lambda: secrets.token_urlsafe(32)))())
        return path.read_text().strip()


def _nothing(_ctx: Context) -> dict[str, str]:
    return {}


@dataclass
class Service:
    name: str
    argv: Callable[[Context], list[str]] | None = None
    env: Callable[[Context], dict[str, str]] = _nothing
    cwd: Callable[[Context], Path] | None = None
    health_url: str | None = None
    ports: tuple[int, ...] = ()
    prepare: Callable[[Context], None] | None = None
    exports: Callable[[Context], dict[str, str]] = _nothing
    available: Callable[[Context], str | None] = lambda _ctx: None
    requires: tuple[str, ...] = ()
    # custom lifecycle (for processes that daemonize themselves)
    start: Callable[[Context], None] | None = None
    stop: Callable[[Context], None] | None = None
    running: Callable[[Context], bool] | None = None
    startup_timeout: float = 60.0
    # run prepare() also when `up` finds the service already running (migrations)
    prepare_on_reuse: bool = False


# postgres --------------------------------------------------------------------
def _external_db(ctx: Context) -> str | None:
    return ctx.env.get("EXTERNAL_DATABASE_URL") or None


def _pg_start(ctx: Context) -> None:
    if _external_db(ctx):
        return
    Postgres(ctx.state_dir).start()


def _pg_stop(ctx: Context) -> None:
    if _external_db(ctx):
        return
    Postgres(ctx.state_dir).stop()


def _pg_running(ctx: Context) -> bool:
    if _external_db(ctx):
        return True
    return Postgres(ctx.state_dir).is_running()


def _pg_exports(ctx: Context) -> dict[str, str]:
    external = _external_db(ctx)
    return {"DATABASE_URL": external or Postgres(ctx.state_dir).url()}


POSTGRES = Service(
    name="postgres",
    start=_pg_start,
    stop=_pg_stop,
    running=_pg_running,
    exports=_pg_exports,
)


# supabase gateway ------------------------------------------------------------
def gateway_db_uri(ctx: Context) -> str:
    external = _external_db(ctx)
    if external:
        return external
    pg = Postgres(ctx.state_dir)
    return pg.url("authenticator", pg.authenticator_password())


def _supabase_prepare(ctx: Context) -> None:
    from .migrate import apply_all

    database_url = ctx.env["DATABASE_URL"]
    authenticator = None if _external_db(ctx) else Postgres(ctx.state_dir).authenticator_password()
    apply_all(database_url, authenticator)


def _supabase_argv(ctx: Context) -> list[str]:
    return [
        sys.executable, "-m", "sandbox", "rest",
        "--host", "127.0.0.1", "--port", str(SUPABASE_PORT),
        "--db-schemas", "public",
        "--db-anon-role", "anon",
        "--jwks-file", str(ctx.state_dir / "keys" / "jwks.json"),
        # what the harness's attribution and `reports diagnose` read: Server-Timing and plans
        "--server-timing-enabled",
        "--db-plan-enabled",
    ]


def _supabase_env(ctx: Context) -> dict[str, str]:
    # Secrets go through the environment, not argv (argv is visible in `ps`).
    return {
        "PGRST_DB_URI": gateway_db_uri(ctx),
        "PGRST_JWT_SECRET": ctx.env["SUPABASE_JWT_SECRET"],
        "GATEWAY_API_KEYS": ",".join([ctx.env["SUPABASE_ANON_KEY"], ctx.env["SUPABASE_SERVICE_ROLE_KEY"]]),
    }


SUPABASE = Service(
    name="supabase",
    argv=_supabase_argv,
    env=_supabase_env,
    health_url=f"http://127.0.0.1:{SUPABASE_PORT}/health",
    ports=(SUPABASE_PORT,),
    prepare=_supabase_prepare,
    requires=("postgres",),
    exports=lambda ctx: {"SUPABASE_URL": f"http://127.0.0.1:{SUPABASE_PORT}"},
    startup_timeout=30.0,
    prepare_on_reuse=True,
)


# convex ----------------------------------------------------------------------
def _convex_available(_ctx: Context) -> str | None:
    if not CONVEX_RUNTIME.exists():
        return f"convex: skipped ({CONVEX_RUNTIME.relative_to(ROOT)} does not exist yet)"
    return None


def _convex_dir(ctx: Context) -> Path:
    return ctx.state_dir / "convex"


def missing_npm_packages(root: Path) -> list[str]:
    """The dependencies of ``root/package.json`` that ``root/node_modules`` lacks."""
    try:
        manifest = json.loads((root / "package.json").read_text())
    except (OSError, ValueError):
        return []
    return [name for name in manifest.get("dependencies", {}) if not (root / "node_modules" / name / "package.json").is_file()]


def _convex_prepare(ctx: Context) -> None:
    missing = missing_npm_packages(ctx.root)
    if missing:
        from .launcher import LauncherError  # imported here: the launcher imports this module

        raise LauncherError(f"convex: the npm packages {', '.join(missing)} are not installed; run `make deps`")
    data = _convex_dir(ctx)
    data.mkdir(parents=True, exist_ok=True)
    env_file = data / "deployment-env.json"
    deployment_env = {
        "CRM_API_KEY": ctx.env["CRM_API_KEY"],
        "SUPABASE_JWT_ISSUER": f"http://127.0.0.1:{SUPABASE_PORT}/auth/v1",
        "SUPABASE_JWKS_URL": f"http://127.0.0.1:{SUPABASE_PORT}/auth/v1/.well-known/jwks.json",
    }
    from .postgres import _write_secret

    _write_secret(env_file, json.dumps(deployment_env, indent=2))


def _convex_argv(ctx: Context) -> list[str]:
    data = _convex_dir(ctx)
    return [
        "node", str(CONVEX_RUNTIME),
        "--host", "127.0.0.1",
        "--port", str(CONVEX_PORT),
        "--site-port", str(CONVEX_SITE_PORT),
        "--functions", str(ctx.root / "convex"),
        "--data-dir", str(data),
        "--env-file", str(data / "deployment-env.json"),
    ]


CONVEX = Service(
    name="convex",
    argv=_convex_argv,
    env=lambda ctx: {"CONVEX_ADMIN_KEY": ctx.env["CONVEX_ADMIN_KEY"]},
    cwd=lambda ctx: ctx.root,
    health_url=f"http://127.0.0.1:{CONVEX_PORT}/version",
    ports=(CONVEX_PORT, CONVEX_SITE_PORT),
    prepare=_convex_prepare,
    available=_convex_available,
    exports=lambda ctx: {
        "CONVEX_URL": f"http://127.0.0.1:{CONVEX_PORT}",
        "CONVEX_SITE_URL": f"http://127.0.0.1:{CONVEX_SITE_PORT}",
        "CONVEX_ADMIN_KEY": ctx.env["CONVEX_ADMIN_KEY"],
        "CRM_API_KEY": ctx.env["CRM_API_KEY"],
    },
    startup_timeout=90.0,
)


REGISTRY: list[Service] = [POSTGRES, SUPABASE, CONVEX]

# "module:attribute" entries, loaded lazily (see the module docstring).
PLUGINS: list[str] = [
    "sandbox.nextjs:SERVICE",
]


def registry() -> list[Service]:
    services = list(REGISTRY)
    for entry in PLUGINS:
        module_name, _, attr = entry.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        services.append(getattr(module, attr or "SERVICE"))
    return services


def by_name() -> dict[str, Service]:
    return {s.name: s for s in registry()}
