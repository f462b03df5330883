"""``up --network``: relays start as services, the env points at them, status lists them,
the next ``up`` without a network stops them, ``down`` stops them; the session's stack is
put back on loopback after each test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox import launcher
from sandbox.network import active_profile, resolve
from tests.sandbox.network_helpers import ROOT

pytestmark = pytest.mark.sandbox


def _services(env: dict[str, str]) -> list[str]:
    return ["postgres", "supabase", *(["convex"] if env.get("CONVEX_URL") else [])]


@pytest.fixture
def stack(sandbox_env: dict[str, str]) -> Iterator[tuple[Path, list[str]]]:
    state = Path(sandbox_env["SANDBOX_DIR"])
    services = _services(sandbox_env)
    try:
        yield state, services
    finally:
        launcher.up(services, state)  # loopback again: the relays stop


def _pid(state: Path, name: str) -> str | None:
    path = state / f"{name}.pid"
    return path.read_text().split()[0] if path.exists() else None


def _cli(state: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sandbox", *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "SANDBOX_DIR": str(state)})


def test_up_with_a_network_puts_relays_in_front_and_loopback_removes_them(stack: tuple[Path, list[str]]) -> None:
    state, services = stack
    convex = "convex" in services
    rtt = "supabase=20ms" + (",convex=20ms" if convex else "")
    env = launcher.up(services, state, resolve(None, rtt))

    assert env["SUPABASE_URL"] == "http://127.0.0.1:54401"
    assert env["SUPABASE_DIRECT_URL"] == "http://127.0.0.1:54321"
    if convex:
        assert (env["CONVEX_URL"], env["CONVEX_SITE_URL"]) == ("http://127.0.0.1:54402", "http://127.0.0.1:54403")
        assert env["CONVEX_DIRECT_URL"] == "http://127.0.0.1:3210"
        assert env["CONVEX_SITE_DIRECT_URL"] == "http://127.0.0.1:3211"
    assert env["SANDBOX_NETWORK"] == str(state / "network.json")
    meta = active_profile(state)
    assert meta is not None and meta["name"] == f"loopback+{rtt}"
    assert meta["links"]["supabase"]["relayed"] and not meta["links"]["app"]["relayed"]
    assert active_profile(env=env) == meta

    status = launcher.status(state)
    assert status["relay-supabase"] and status.get("relay-convex", not convex) and "relay-app" not in status
    cli_status = json.loads(_cli(state, "status").stdout)
    assert cli_status["relay-supabase"] is True
    cli_env = _cli(state, "env").stdout
    assert "SUPABASE_URL=http://127.0.0.1:54401\n" in cli_env and f"SANDBOX_NETWORK={state / 'network.json'}\n" in cli_env
    shown = _cli(state, "network").stdout
    assert shown.startswith(f"loopback+{rtt}: supabase 20 ms") and "54401->54321" in shown

    # through the relay: a new connection pays the TCP handshake, then each request one RTT
    with httpx.Client() as client:
        start = time.perf_counter()
        assert client.get(f"{env['SUPABASE_URL']}/health").status_code == 200
        first = time.perf_counter() - start
        start = time.perf_counter()
        assert client.get(f"{env['SUPABASE_URL']}/health").status_code == 200
        second = time.perf_counter() - start
    assert first >= 0.040 - 0.001 and second >= 0.020 - 0.001, (first, second)

    relay_pid = _pid(state, "relay-supabase")
    gateway_pid = _pid(state, "supabase")
    again = launcher.up(services, state, resolve(None, rtt))  # idempotent: nothing restarts
    assert again == env
    assert _pid(state, "relay-supabase") == relay_pid and _pid(state, "supabase") == gateway_pid

    faster = launcher.up(services, state, resolve(None, "supabase=10ms"))  # a new RTT restarts that relay only
    assert _pid(state, "relay-supabase") not in (None, relay_pid) and _pid(state, "supabase") == gateway_pid
    assert "relay-convex" not in launcher.status(state) and _pid(state, "relay-convex") is None
    assert faster["CONVEX_URL" if convex else "SUPABASE_URL"].endswith(":3210" if convex else ":54401")

    back = launcher.up(services, state)
    assert back["SUPABASE_URL"] == "http://127.0.0.1:54321" and "SUPABASE_DIRECT_URL" not in back
    assert _pid(state, "relay-supabase") is None and not any(k.startswith("relay-") for k in launcher.status(state))
    assert launcher._port_free(54401)
    assert active_profile(state)["name"] == "loopback"  # type: ignore[index]


def test_down_stops_the_relays(sandbox_env: dict[str, str], tmp_path: Path) -> None:
    """A stack of one relay in its own state dir (its backend is the session's gateway)."""
    other = tmp_path / "relays"
    env = launcher.up(["relay-supabase"], other, resolve(None, "supabase=5ms"))
    try:
        assert env["SUPABASE_URL"] == "http://127.0.0.1:54401"
        assert launcher.status(other)["relay-supabase"]
        assert httpx.get(f"{env['SUPABASE_URL']}/health").status_code == 200
    finally:
        stopped = launcher.down(other)
    assert stopped == ["relay-supabase"]
    assert launcher._port_free(54401) and not (other / "relay-supabase.pid").exists()
    assert httpx.get("http://127.0.0.1:54321/health").status_code == 200  # the session's stack is untouched


def test_a_taken_relay_port_is_one_clear_line(stack: tuple[Path, list[str]]) -> None:
    import socket

    state, services = stack
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 54401))
        squatter.listen()
        with pytest.raises(launcher.LauncherError) as err:
            launcher.up(services, state, resolve(None, "supabase=5ms"))
    message = str(err.value)
    assert "54401" in message and "relay-supabase" in message and "\n" not in message
