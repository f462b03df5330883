"""The Next.js app (``nextjs/``) as a sandbox service: ``next start`` on 127.0.0.1:3000.

``prepare`` runs ``npm ci`` when ``nextjs/package-lock.json`` changed since the
last install and ``next build`` when the app's sources changed since the last
build; both are skipped otherwise (stamps hold a hash of their inputs, because
a build takes a while on two cores). The app reads the sandbox's Supabase and
Convex values from its environment; the service exports ``APP_URL``. When the
network profile delays the app's own links (``app-supabase``, ``app-convex``),
the app's Supabase and Convex URLs point at those links' relays.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from .network.links import LINKS
from .services import Context, Service

HOST = "127.0.0.1"
PORT = 3000
APP_URL = f"http://{HOST}:{PORT}"
MIN_NODE = (20, 9)

# Files whose change requires a new `next build` (besides everything under src/).
BUILD_INPUTS = ("package.json", "package-lock.json", "next.config.mjs", "tsconfig.json")
INSTALL_STAMP = Path("node_modules") / ".stamp"
BUILD_STAMP = Path(".next") / ".build-stamp"
# Passed to the app; everything else in the sandbox env stays out of its process.
APP_ENV = (
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
    "CONVEX_URL",
    "CONVEX_SITE_URL",
    "CONVEX_AUTH_TOKEN",
    "CRM_API_KEY",
)


class NextjsError(RuntimeError):
    """Installing or building the app failed; the message says which step and where the log is."""


def app_dir(ctx: Context) -> Path:
    return ctx.root / "nextjs"


def node_version() -> tuple[int, int] | None:
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    try:
        major, minor, *_ = out.lstrip("v").split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def _available(ctx: Context) -> str | None:
    version = node_version()
    if version is None:
        return "nextjs: skipped (node not found; install Node.js 20.9 or newer)"
    if version < MIN_NODE:
        return f"nextjs: skipped (Node.js {version[0]}.{version[1]} is too old; 20.9 or newer is required)"
    if not (app_dir(ctx) / "package-lock.json").is_file():
        return "nextjs: skipped (nextjs/package-lock.json is missing)"
    return None


def lock_hash(app: Path) -> str:
    return hashlib.sha256((app / "package-lock.json").read_bytes()).hexdigest()


def sources_hash(app: Path) -> str:
    """Hash of every file that shapes the build output."""
    digest = hashlib.sha256()
    files = [app / name for name in BUILD_INPUTS if (app / name).is_file()]
    files += sorted(p for p in (app / "src").rglob("*") if p.is_file())
    for path in files:
        digest.update(str(path.relative_to(app)).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _stamp_matches(path: Path, value: str) -> bool:
    return path.is_file() and path.read_text().strip() == value


def _run(step: str, argv: list[str], cwd: Path, log: Path, env: dict[str, str]) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, check=False)
    if result.returncode != 0:
        raise NextjsError(f"nextjs: {step} failed (exit {result.returncode}); see {log}")


def _build_env(build_hash: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    env["APP_BUILD_HASH"] = build_hash
    return env


def install(app: Path, log: Path) -> bool:
    """``npm ci`` unless node_modules matches the lockfile. True when it ran."""
    wanted = lock_hash(app)
    if _stamp_matches(app / INSTALL_STAMP, wanted):
        return False
    npm = shutil.which("npm")
    if npm is None:
        raise NextjsError("nextjs: npm not found; install Node.js 20.9 or newer (it ships npm)")
    _run("npm ci", [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], app, log, _build_env())
    (app / INSTALL_STAMP).write_text(wanted + "\n")
    return True


def build(app: Path, log: Path) -> bool:
    """``next build`` unless the last build was of the same sources. True when it ran."""
    wanted = sources_hash(app)
    if _stamp_matches(app / BUILD_STAMP, wanted) and (app / ".next" / "BUILD_ID").is_file():
        return False
    next_bin = app.resolve() / "node_modules" / "next" / "dist" / "bin" / "next"
    _run("next build", ["node", str(next_bin), "build"], app, log, _build_env(wanted))
    (app / BUILD_STAMP).write_text(wanted + "\n")
    return True


def _prepare(ctx: Context) -> None:
    app = app_dir(ctx)
    log = ctx.state_dir / "logs" / "nextjs-build.log"
    install(app, log)
    build(app, log)


def _argv(ctx: Context, port: int = PORT) -> list[str]:
    next_bin = app_dir(ctx) / "node_modules" / "next" / "dist" / "bin" / "next"
    return ["node", str(next_bin), "start", "-H", HOST, "-p", str(port)]


def server_command(ctx: Context, port: int = PORT) -> tuple[list[str], dict[str, str]]:
    """``next start`` of the built app on ``port`` and the environment entries it runs with
    (the service's own command; a second server beside it, e.g. the same app with other URLs)."""
    return _argv(ctx, port), _env(ctx)


def app_urls(ctx: Context) -> dict[str, str]:
    """The app's Supabase/Convex URLs: direct, or through the relays of its delayed links."""
    urls = {}
    for name in ("app-supabase", "app-convex"):
        if ctx.network is None or not ctx.network.link(name).relayed:
            continue
        for port in LINKS[name].ports:
            if ctx.env.get(port.env):  # only for a backend that is part of the stack
                urls[port.env] = port.url
    return urls


def _env(ctx: Context) -> dict[str, str]:
    env = {name: ctx.env[name] for name in APP_ENV if ctx.env.get(name)}
    # the generator's relays must not leak in: the app's own calls take the app's links
    for port in (*LINKS["supabase"].ports, *LINKS["convex"].ports):
        if ctx.env.get(port.env):
            env[port.env] = port.upstream_url
    env.update(app_urls(ctx))
    env["NEXT_TELEMETRY_DISABLED"] = "1"
    env["NODE_ENV"] = "production"
    version = node_version()
    # supabase-js constructs its realtime client eagerly and needs a global
    # WebSocket, which Node < 22 only has behind this flag.
    if version is not None and version < (22, 0):
        env["NODE_OPTIONS"] = (os.environ.get("NODE_OPTIONS", "") + " --experimental-websocket").strip()
    return env


def _health_url(app: Path) -> str:
    # Healthy only when the running server was built from the current sources:
    # the launcher then restarts a server left over from an older build.
    build = sources_hash(app) if (app / "src").is_dir() else ""
    return f"{APP_URL}/api/health?build={build}"


SERVICE = Service(
    name="nextjs",
    argv=_argv,
    env=_env,
    cwd=app_dir,
    health_url=_health_url(Path(__file__).resolve().parent.parent / "nextjs"),
    ports=(PORT,),
    prepare=_prepare,
    available=_available,
    requires=("supabase",),
    # The routes check CRM_API_KEY, so clients of the app need it too.
    exports=lambda ctx: {"APP_URL": APP_URL, "CRM_API_KEY": ctx.env["CRM_API_KEY"]},
    startup_timeout=60.0,
)
