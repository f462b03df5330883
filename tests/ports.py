"""The port a child process listens on, as the kernel reports it.

Tests start servers on port 0 and read the port the child bound, rather than
picking a free port and handing it over (another process may take it between
the two)."""

from __future__ import annotations

import subprocess
import time

import psutil


def listening_port(proc: subprocess.Popen, timeout: float = 60.0, host: str = "127.0.0.1") -> int:
    """The TCP port ``proc`` listens on at ``host``; AssertionError if it exits or does not listen in time."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args!r} exited with status {proc.returncode} before listening")
        try:
            ports = sorted(
                c.laddr.port
                for c in psutil.Process(proc.pid).net_connections(kind="tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.ip == host
            )
        except psutil.NoSuchProcess:
            ports = []
        if ports:
            if len(ports) > 1:
                raise AssertionError(f"{proc.args!r} listens on several ports: {ports}")
            return ports[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.args!r} did not listen on {host} within {timeout:.0f} s")
        time.sleep(0.05)
