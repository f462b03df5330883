"""Start, stop and inspect the sandbox stack (``python -m sandbox up|down|status|env``).

State lives in ``.sandbox/`` at the repository root (``SANDBOX_DIR`` overrides):
``env`` (dotenv of everything a client needs), ``network.json`` (the active
network profile), ``pg/``, ``keys/`` (secrets, generated at first start),
``logs/<service>.log``, ``<service>.pid`` and ``<service>.started`` (a hash of
the command and environment it was started with).
Services run detached and outlive the command; ``up`` is idempotent (it restarts
only what its configuration changed) and ``down`` stops only processes whose pid
files it wrote.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from harness.settings import NAMES

from . import tokens
from .network import ENV_NAME as NETWORK_ENV
from .network import Profile, active_profile, load_profile, profile_from_dict, write_active
from .services import Context, Service, by_name, registry

# the env file lists the settings in the one settings module's order, then the network profile's file
ENV_ORDER = (*NAMES, NETWORK_ENV)


class LauncherError(RuntimeError):
    """A problem worded as one line for the user."""


def state_dir_of(state_dir: Path | None) -> Path:
    return Path(state_dir).resolve() if state_dir is not None else tokens.default_state_dir()


def notice(message: str) -> None:
    print(message, file=sys.stderr)


@contextlib.contextmanager
def _locked(state: Path) -> Iterator[None]:
    state.mkdir(parents=True, exist_ok=True)
    with open(state / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _is_loopback_db(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def _context(state: Path) -> Context:
    tokens.ensure_keys(state)
    env: dict[str, str] = {}
    ctx = Context(state, env)
    env["SUPABASE_JWT_SECRET"] = tokens.jwt_secret(state)
    env["SUPABASE_ANON_KEY"] = ctx.secret("anon_key", lambda: tokens.api_key("anon", state))
    env["SUPABASE_SERVICE_ROLE_KEY"] = ctx.secret("service_role_key", lambda: tokens.api_key("service_role", state))
    # shell-safe characters only: people `source` the env file
    admin_key = state / "keys" / "convex_admin_key"
    if admin_key.exists() and not re.fullmatch(r"[A-Za-z0-9_.:-]+", admin_key.read_text().strip()):
        admin_key.unlink()
    env["CONVEX_ADMIN_KEY"] = ctx.secret("convex_admin_key", lambda: "sandbox:" + os.urandom(32).hex())
    env["CRM_API_KEY"] = ctx.secret("crm_api_key")
    external = os.environ.get("DATABASE_URL", "")
    if external:
        if _is_loopback_db(external):
            env["EXTERNAL_DATABASE_URL"] = external
        else:
            notice("sandbox: DATABASE_URL is not a loopback address; using the embedded PostgreSQL instead")
    return ctx


def _pidfile(state: Path, name: str) -> Path:
    return state / f"{name}.pid"


def _read_pid(state: Path, name: str) -> int | None:
    try:
        pid = int(_pidfile(state, name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    # a recycled pid is not ours: our processes carry the state dir in their environment
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        if f"SANDBOX_DIR={state}".encode() not in environ.split(b"\0"):
            return None
    except OSError:
        pass
    return pid


def _fingerprint(service: Service, ctx: Context) -> str:
    """A hash of what the service is started with: a change means a restart."""
    assert service.argv is not None
    cwd = service.cwd(ctx) if service.cwd else ctx.root
    blob = json.dumps([service.argv(ctx), sorted(service.env(ctx).items()), str(cwd)])
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _started_with(state: Path, name: str) -> str | None:
    try:
        return (state / f"{name}.started").read_text().strip() or None
    except OSError:
        return None


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _healthy(url: str | None, timeout: float = 2.0) -> bool:
    """2xx from an http(s) URL; for ``tcp://host:port``, a connection accepted."""
    if url is None:
        return True
    if url.startswith("tcp://"):
        parts = urlsplit(url)
        try:
            with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=timeout):
                return True
        except OSError:
            return False
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _running(service: Service, ctx: Context) -> bool:
    if service.running is not None:
        return service.running(ctx)
    return _read_pid(ctx.state_dir, service.name) is not None


def _start_process(service: Service, ctx: Context, fingerprint: str = "") -> None:
    assert service.argv is not None
    state = ctx.state_dir
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)
    env.update(service.env(ctx))
    env["SANDBOX_DIR"] = str(state)
    cwd = service.cwd(ctx) if service.cwd else ctx.root
    with open(logs / f"{service.name}.log", "ab") as log:
        proc = subprocess.Popen(
            service.argv(ctx),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: survives this command and its terminal
        )
    _pidfile(state, service.name).write_text(f"{proc.pid}\n")
    (state / f"{service.name}.started").write_text(f"{fingerprint}\n")
    deadline = time.monotonic() + service.startup_timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _pidfile(state, service.name).unlink(missing_ok=True)
            raise LauncherError(
                f"{service.name} exited with status {proc.returncode} at start (see {logs / (service.name + '.log')})"
            )
        if _healthy(service.health_url, timeout=1.0):
            return
        time.sleep(0.1)
    _terminate(state, service.name)
    raise LauncherError(
        f"{service.name} did not become healthy in {service.startup_timeout:.0f} s (see {logs / (service.name + '.log')})"
    )


def _terminate(state: Path, name: str, timeout: float = 10.0) -> None:
    pid = _read_pid(state, name)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            # reap it if it is our child (tests start and stop in one process)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    _pidfile(state, name).unlink(missing_ok=True)
    (state / f"{name}.started").unlink(missing_ok=True)


def _select(names: list[str] | None, ctx: Context) -> list[Service]:
    """The services to run, in registry order: the named ones (default: all but the attached
    ones) and what they require, among those the configuration enables and the machine can
    run; then the attached ones (relays) whose services are all selected or already running."""
    known = by_name()
    if names:
        unknown = [n for n in names if n not in known]
        if unknown:
            raise LauncherError(f"unknown service(s): {', '.join(unknown)} (known: {', '.join(known)})")
        wanted = set(names)
        for name in list(wanted):  # dependencies first
            wanted.update(known[name].requires)
    else:
        wanted = {n for n, s in known.items() if not s.attached_to}
    chosen: set[str] = set()
    for service in registry():
        if service.name not in wanted or not service.enabled(ctx):
            continue
        reason = service.available(ctx)
        if reason is not None:
            notice(reason)
            continue
        chosen.add(service.name)
    for service in registry():
        if not service.attached_to or service.name in chosen or not service.enabled(ctx):
            continue
        if all(r in chosen or _running(known[r], ctx) for r in service.attached_to):
            reason = service.available(ctx)
            if reason is not None:
                notice(reason)
                continue
            chosen.add(service.name)
    return [s for s in registry() if s.name in chosen]


def _ordered(env: dict[str, str]) -> dict[str, str]:
    """The contract's names first, then whatever a plugged-in service exports."""
    first = {k: env[k] for k in ENV_ORDER if env.get(k)}
    return {**first, **{k: v for k, v in env.items() if k not in first and v}}


def _write_env(state: Path, env: dict[str, str]) -> None:
    lines = [f"{k}={v}" for k, v in _ordered(env).items()]
    path = state / "env"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def read_env(state_dir: Path | None = None) -> dict[str, str]:
    path = state_dir_of(state_dir) / "env"
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                out[key] = value
    return out


@contextlib.contextmanager
def _stopped_on_failure(state: Path) -> Iterator[None]:
    """When the block fails, stop the services it started; those running before it stay."""
    ctx = Context(state, {})
    external = os.environ.get("DATABASE_URL", "")
    if external and _is_loopback_db(external):
        ctx.env["EXTERNAL_DATABASE_URL"] = external

    def running() -> set[str]:
        return {
            s.name for s in registry()
            if (s.running(ctx) if s.running is not None else _read_pid(state, s.name) is not None)
        }

    before = running()
    try:
        yield
    except BaseException:
        started = running() - before
        for service in reversed(registry()):
            if service.name not in started:
                continue
            if service.stop is not None:
                service.stop(ctx)
            else:
                _terminate(state, service.name)
        raise


def _network(network: Profile | str | None) -> Profile:
    return network if isinstance(network, Profile) else load_profile(network)


def up(
    services: list[str] | None = None,
    state_dir: Path | None = None,
    network: Profile | str | None = None,
) -> dict[str, str]:
    """Start (or reuse) the services; returns the env also written to ``<state>/env``.

    ``network``: a :class:`~sandbox.network.Profile`, a shipped profile's name or a
    profile file; ``None`` is ``loopback`` (no relays). Each ``up`` sets the network:
    relays of links the profile no longer delays stop, and running services whose
    command or environment changed (the app's URLs) restart. When it fails, what it
    started is stopped again.
    """
    state = state_dir_of(state_dir)
    profile = _network(network)
    with _locked(state), _stopped_on_failure(state):
        ctx = _context(state)
        ctx.network = profile
        selected = _select(services, ctx)
        chosen = {s.name for s in selected}
        for service in registry():  # e.g. a relay the new profile does not need
            if service.argv is not None and not service.enabled(ctx) and _read_pid(state, service.name) is not None:
                _terminate(state, service.name)
        network_file = write_active(state, profile)
        for service in registry():
            running = service.argv is not None and _read_pid(state, service.name) is not None
            if service.name not in chosen and not (running and service.enabled(ctx)):
                continue
            if service.name in chosen and service.running is not None and service.start is not None:
                service.start(ctx)
            ctx.env.update(service.exports(ctx))
            if service.argv is None:
                continue
            fingerprint = _fingerprint(service, ctx)
            current = running and _started_with(state, service.name) == fingerprint
            if current and (service.name not in chosen or _healthy(service.health_url)):
                if service.name in chosen and service.prepare is not None and service.prepare_on_reuse:
                    service.prepare(ctx)
                continue
            _terminate(state, service.name)  # stale, unhealthy, or started with another configuration
            for port in service.ports:
                if not _port_free(port):
                    raise LauncherError(
                        f"port {port} ({service.name}) is taken by another process; stop it, or run "
                        f"`python -m sandbox down` if it is another sandbox"
                    )
            if service.prepare is not None:
                service.prepare(ctx)
            _start_process(service, ctx, fingerprint)
        base = ("SUPABASE_ANON_KEY", "SUPABASE_SERVICE_ROLE_KEY", "SUPABASE_JWT_SECRET")
        env = {k: ctx.env[k] for k in base}
        for service in registry():
            if service in selected or (service.argv is not None and service.enabled(ctx) and _running(service, ctx)):
                env.update(service.exports(ctx))
        env[NETWORK_ENV] = str(network_file)
        _write_env(state, env)
        return _ordered(env)


def _active(state: Path) -> Profile | None:
    meta = active_profile(state)
    return profile_from_dict(meta) if meta is not None else None


def down(state_dir: Path | None = None) -> list[str]:
    """Stop what ``up`` started in this state dir; returns the names stopped."""
    state = state_dir_of(state_dir)
    if not state.exists():
        return []
    stopped = []
    with _locked(state):
        ctx = _context(state)
        for service in reversed(registry()):
            if service.stop is not None:
                # the hook knows what is its own (postgres: nothing when DATABASE_URL is external)
                if (service.running is None or service.running(ctx)) and not (
                    service.name == "postgres" and ctx.env.get("EXTERNAL_DATABASE_URL")
                ):
                    service.stop(ctx)
                    stopped.append(service.name)
                continue
            if _read_pid(state, service.name) is not None:
                _terminate(state, service.name)
                stopped.append(service.name)
            else:
                _pidfile(state, service.name).unlink(missing_ok=True)
                (state / f"{service.name}.started").unlink(missing_ok=True)
    return stopped


def status(state_dir: Path | None = None) -> dict[str, bool]:
    """Service name -> running and healthy (the relays: those of the active network profile)."""
    state = state_dir_of(state_dir)
    ctx = Context(state, {}, network=_active(state))
    external = os.environ.get("DATABASE_URL", "")
    if external and _is_loopback_db(external):
        ctx.env["EXTERNAL_DATABASE_URL"] = external
    out: dict[str, bool] = {}
    for service in registry():
        if service.available(ctx) is not None:
            continue
        if not service.enabled(ctx) and (service.argv is None or _read_pid(state, service.name) is None):
            continue
        if service.running is not None:
            out[service.name] = state.exists() and service.running(ctx)
        else:
            out[service.name] = _read_pid(state, service.name) is not None and _healthy(service.health_url)
    return out
